//! Child processes of a dev cluster: start one (its output to a log file,
//! its listeners handed down), wait until it listens, stop it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_service::listen::HandDown;
use tokio::process::{Child, Command};

use super::{DevError, io};

/// How long a process may take to start listening.
pub(crate) const START_PATIENCE: Duration = Duration::from_secs(60);
/// How long a process may take to stop after SIGTERM before SIGKILL.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// One supervised child process.
#[derive(Debug)]
pub(crate) struct Supervised {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Supervised {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }
}

/// What to start.
#[derive(Debug)]
pub(crate) struct Spawn<'a> {
    pub(crate) name: &'a str,
    pub(crate) binary: &'a Path,
    pub(crate) args: Vec<String>,
    pub(crate) secret: &'a str,
    pub(crate) log: PathBuf,
    /// Listening sockets for the child, in the order it takes them.
    pub(crate) listeners: Vec<OwnedFd>,
}

fn log_file(path: &Path) -> Result<(Stdio, Stdio), DevError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(format!("open {}", path.display())))?;
    let clone = file
        .try_clone()
        .map_err(io(format!("open {}", path.display())))?;
    Ok((Stdio::from(file), Stdio::from(clone)))
}

pub(crate) fn spawn(spec: Spawn<'_>) -> Result<Supervised, DevError> {
    let (stdout, stderr) = log_file(&spec.log)?;
    let mut command = Command::new(spec.binary);
    command
        .args(&spec.args)
        .env("CAIRN_CLUSTER_SECRET", spec.secret)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .hand_down(spec.listeners)
        .map_err(io("hand listeners down"))?;
    let child = command
        .spawn()
        .map_err(io(format!("start {}", spec.binary.display())))?;
    Ok(Supervised {
        name: spec.name.to_owned(),
        child,
        log: spec.log,
    })
}

/// Waits for a process to write its address file (fresh: removed before
/// the start), failing early if it exits.
pub(crate) async fn wait_for_addr(
    process: &mut Supervised,
    file: &Path,
) -> Result<String, DevError> {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && !text.trim().is_empty()
        {
            return Ok(text.trim().to_owned());
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            return Err(DevError::StartFailed {
                name: process.name.clone(),
                status,
                log: process.log.display().to_string(),
            });
        }
        if started.elapsed() > START_PATIENCE {
            return Err(DevError::StartTimeout {
                name: process.name.clone(),
                log: process.log.display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `path`, with any file left there by an earlier run removed.
pub(crate) fn fresh(path: PathBuf) -> PathBuf {
    let _ = std::fs::remove_file(&path);
    path
}

pub(crate) fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(err) => err.to_string(),
    }
}

/// SIGTERM, then SIGKILL after a grace period.
pub(crate) async fn terminate(process: &mut Supervised) {
    if let Ok(Some(_)) = process.child.try_wait() {
        return;
    }
    if let Some(pid) = process.child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(STOP_PATIENCE, process.child.wait())
        .await
        .is_err()
    {
        eprintln!(
            "cairn dev: {} did not stop in time; killing it",
            process.name
        );
        let _ = process.child.kill().await;
    }
}
