//! Starts metadata processes in-process on ephemeral ports with real
//! RocksDB in temp dirs.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use cairn_service::listen::HandDown;
use std::time::Duration;

use cairn_core::manifest::ObjectManifest;
use cairn_meta_api::MetaClient;
use cairn_meta_api::config::DetectorConfig;
use cairn_metadata_service::{MetaOptions, MetaServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const SECRET: &str = "meta-test-secret";

pub fn secret() -> cairn_service::ClusterSecret {
    cairn_service::ClusterSecret::new(SECRET).expect("secret")
}

pub struct Process {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Process {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("serve");
        }
    }
}

pub async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

pub async fn serve(listener: TcpListener, options: MetaOptions) -> Process {
    let url = options.advertise_url.clone();
    let server = MetaServer::open(options, secret(), listener)
        .await
        .expect("open");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Process {
        url,
        stop: Some(stop),
        task: Some(task),
    }
}

/// One primary process hosting every shard of a map cut at `splits`.
pub async fn primary(data_dir: &Path, splits: &[&str]) -> (Process, MetaClient) {
    primary_with(data_dir, splits, DetectorConfig::LOCAL).await
}

pub async fn primary_with(
    data_dir: &Path,
    splits: &[&str],
    detector: DetectorConfig,
) -> (Process, MetaClient) {
    let (listener, url) = bind().await;
    let process = serve(
        listener,
        MetaOptions::single(data_dir.to_owned(), &url, splits, detector),
    )
    .await;
    let client = MetaClient::connect(&url, &secret()).await.expect("connect");
    (process, client)
}

/// A manifest with no chunks, for catalogue-only tests.
pub fn manifest(size: u64, etag: &str) -> ObjectManifest {
    ObjectManifest {
        size,
        etag: etag.to_owned(),
        content_type: None,
        headers: Default::default(),
        user_metadata: Default::default(),
        created_ms: 0,
        parts: Vec::new(),
        inline: None,
        tags: Default::default(),
        encryption: None,
        checksum: None,
        owner: None,
        acl: None,
    }
}

pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Reserves a loopback port for a process the test starts later, and
/// holds it until then (drop the listener just before the spawn).
///
/// Why not `bind("127.0.0.1:0")` and drop: the kernel hands the same
/// ephemeral port to the next `bind(0)` of a concurrent test, and to
/// outgoing connections, so two tests' clusters could be configured on
/// one port — one replica then cannot start, and the other cluster's Raft
/// messages (same secret, same replica ids) reach a stranger. Ports here
/// come from below the ephemeral range (32768–60999 by default), which
/// outgoing connections never use, and are held while reserved, so a
/// concurrent test's reservation skips them.
pub fn reserve_port() -> std::net::TcpListener {
    loop {
        let port = rand::random_range(20_000..32_000u16);
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener;
        }
    }
}

/// Runs `cairn-meta` and waits until it is listening: on `socket`, which
/// the caller keeps (a restart comes back at the same address and nobody
/// takes it in between), or on its config's address when `None` (a killed
/// process's port then refuses connections, as after a real crash).
#[allow(
    clippy::zombie_processes,
    reason = "the child is returned; every caller kills and waits for it"
)]
pub fn spawn_meta(
    config: &Path,
    addr_file: &Path,
    socket: Option<&std::net::TcpListener>,
) -> std::process::Child {
    let _ = std::fs::remove_file(addr_file);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-meta"));
    command
        .arg("--config")
        .arg(config)
        .arg("--addr-file")
        .arg(addr_file)
        .env("CAIRN_CLUSTER_SECRET", SECRET)
        .env("RUST_LOG", "error");
    if let Some(socket) = socket {
        let handed = socket.try_clone().expect("clone the socket").into();
        command
            .hand_down(vec![handed])
            .expect("hand the socket down");
    }
    let mut child = command.spawn().expect("spawn cairn-meta");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut file) = std::fs::File::open(addr_file) {
            let mut text = String::new();
            if file.read_to_string(&mut text).is_ok() && !text.is_empty() {
                return child;
            }
        }
        // A process that could not bind its address exits at once: say
        // so now rather than after the deadline.
        if let Ok(Some(status)) = child.try_wait() {
            panic!("cairn-meta exited before listening ({status}); its error is above");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cairn-meta did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A storage node's heartbeat, for registry and failure-detector tests.
pub fn node_status(id: &str) -> cairn_node_api::wire::NodeStatus {
    cairn_node_api::wire::NodeStatus {
        id: cairn_core::ids::NodeId::new(id).expect("id"),
        rack: cairn_core::ids::RackId::new("rack-1").expect("rack"),
        address: format!("http://{id}.invalid"),
        capacity_bytes: 1000,
        used_bytes: 10,
        free_bytes: 990,
        chunk_count: 1,
        version: "test".into(),
        local: None,
    }
}
