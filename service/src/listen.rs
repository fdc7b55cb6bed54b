//! Where a service's listeners come from, and how it says where it listens.
//!
//! A supervisor that must own its ports (`cairn dev`, or systemd socket
//! activation) binds them itself and hands them down as inherited file
//! descriptors, following systemd's protocol: `LISTEN_FDS=n`, descriptors
//! 3..3+n, in the order the service documents (the gateway: S3, then admin).
//! Then no port can be taken by anything else between "chosen" and "bound".
//! Without inherited descriptors a service binds its configured address.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use command_fds::{CommandFdExt, FdMapping};

use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("bind {what} on {addr}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("inherited listener {index} ({what}): {source}")]
    Inherited {
        what: String,
        index: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("write address file {path}: {source}")]
    AddrFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The listeners a supervisor handed to this process, taken in order.
pub struct Listeners {
    inherited: listenfd::ListenFd,
    next: usize,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("inherited", &self.inherited.len())
            .field("next", &self.next)
            .finish()
    }
}

impl Listeners {
    /// Takes the inherited descriptors (and clears `LISTEN_FDS`, so that
    /// processes this one starts do not believe they inherit them too).
    pub fn from_env() -> Self {
        Self {
            inherited: listenfd::ListenFd::from_env(),
            next: 0,
        }
    }

    /// The next inherited listener, or else a new one bound to `addr`.
    /// `what` names it in errors ("S3 API", "admin").
    pub async fn next(&mut self, what: &str, addr: SocketAddr) -> Result<TcpListener, ListenError> {
        let index = self.next;
        self.next += 1;
        let inherited_error = |source| ListenError::Inherited {
            what: what.to_owned(),
            index,
            source,
        };
        if let Some(listener) = self
            .inherited
            .take_tcp_listener(index)
            .map_err(inherited_error)?
        {
            listener.set_nonblocking(true).map_err(inherited_error)?;
            let listener = TcpListener::from_std(listener).map_err(inherited_error)?;
            tracing::info!(what, addr = ?listener.local_addr().ok(), "listening on an inherited socket");
            return Ok(listener);
        }
        TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind {
                what: what.to_owned(),
                addr,
                source,
            })
    }
}

/// Writes the bound address(es) to `path` atomically (temp file, rename),
/// so a supervisor polling for it never reads half an address.
pub fn write_addr_file(path: &Path, addr: impl std::fmt::Display) -> Result<(), ListenError> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, addr.to_string())
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|source| ListenError::AddrFile {
            path: path.to_owned(),
            source,
        })
}

/// The first inherited descriptor, as systemd numbers them.
const FIRST_LISTEN_FD: i32 = 3;

/// The supervisor's side of [`Listeners`]: hands listening sockets to a
/// child about to be spawned, in the order the child takes them.
pub trait HandDown {
    /// Maps `listeners` to descriptors 3.. in the child and sets
    /// `LISTEN_FDS`. The command keeps the descriptors open until it is
    /// dropped; keep a clone to hand the same socket to a restarted child.
    fn hand_down(&mut self, listeners: Vec<OwnedFd>) -> std::io::Result<&mut Self>;
}

fn mappings(listeners: Vec<OwnedFd>) -> Vec<FdMapping> {
    listeners
        .into_iter()
        .zip(FIRST_LISTEN_FD..)
        .map(|(parent_fd, child_fd)| FdMapping {
            parent_fd,
            child_fd,
        })
        .collect()
}

macro_rules! hand_down_for {
    ($command:ty) => {
        impl HandDown for $command {
            fn hand_down(&mut self, listeners: Vec<OwnedFd>) -> std::io::Result<&mut Self> {
                self.env_remove("LISTEN_PID");
                if listeners.is_empty() {
                    self.env_remove("LISTEN_FDS");
                    return Ok(self);
                }
                self.env("LISTEN_FDS", listeners.len().to_string());
                self.fd_mappings(mappings(listeners))
                    .map_err(std::io::Error::other)
            }
        }
    };
}

hand_down_for!(std::process::Command);
hand_down_for!(tokio::process::Command);
