//! Starts metadata processes in-process on ephemeral ports with real
//! RocksDB in temp dirs.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::Duration;

use cairn_core::manifest::ObjectManifest;
use cairn_meta_api::MetaClient;
use cairn_meta_api::config::DetectorConfig;
use cairn_meta_api::shard_map::ShardMap;
use cairn_metadata_service::{MetaOptions, MetaServer, Role};
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

pub async fn serve(
    listener: TcpListener,
    url: &str,
    data_dir: &Path,
    role: Role,
    detector: DetectorConfig,
) -> Process {
    let options = MetaOptions {
        data_dir: data_dir.to_owned(),
        advertise_url: url.to_owned(),
        role,
        detector,
    };
    let server = MetaServer::open(options, secret(), listener)
        .await
        .expect("open");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Process {
        url: url.to_owned(),
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
    let map = ShardMap::with_splits(splits, &[&url]).expect("map");
    let process = serve(
        listener,
        &url,
        data_dir,
        Role::Primary { initial_map: map },
        detector,
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
