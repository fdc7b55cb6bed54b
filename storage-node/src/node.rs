//! A running storage node: its state, and `run` to serve it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use cairn_core::node_api::NodeStatus;
use tokio::net::TcpListener;

use crate::config::NodeConfig;
use crate::metrics::NodeMetrics;
use crate::secret::ClusterSecret;
use crate::store::{ChunkStore, StoreError};

/// State shared by all request handlers of one node.
#[derive(Debug)]
pub struct NodeShared {
    pub(crate) config: NodeConfig,
    pub(crate) store: ChunkStore,
    pub(crate) secret: ClusterSecret,
    pub(crate) metrics: NodeMetrics,
    advertise_url: String,
}

impl NodeShared {
    /// What this node reports about itself (registration and heartbeats).
    pub fn status(&self) -> NodeStatus {
        let used = self.store.used_bytes();
        let capacity = self
            .config
            .capacity_bytes
            .unwrap_or_else(|| fs_total(&self.config.data_dir));
        let free = capacity
            .saturating_sub(used)
            .min(fs_available(&self.config.data_dir));
        NodeStatus {
            id: self.config.id.clone(),
            rack: self.config.rack.clone(),
            address: self.advertise_url.clone(),
            capacity_bytes: capacity,
            used_bytes: used,
            free_bytes: free,
            chunk_count: self.store.chunk_count(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    pub(crate) fn refresh_usage_gauges(&self) {
        self.metrics.used_bytes.set(self.store.used_bytes() as i64);
        self.metrics.chunks.set(self.store.chunk_count() as i64);
    }
}

/// Registers with the metadata service and keeps heartbeating with the
/// node's status, so the registry knows its rack, address and free space
/// and the failure detector knows it is alive.
async fn heartbeat_loop(shared: Arc<NodeShared>, metadata_url: String) {
    let http = reqwest::Client::new();
    let url = format!("{}/cluster/heartbeat", metadata_url.trim_end_matches('/'));
    let period = std::time::Duration::from_millis(shared.config.heartbeat_interval_ms.max(10));
    let mut interval = tokio::time::interval(period);
    let mut healthy = false;
    loop {
        interval.tick().await;
        let sent = http
            .post(&url)
            .header(cairn_core::node_api::SECRET_HEADER, shared.secret.expose())
            .timeout(period.max(std::time::Duration::from_secs(2)))
            .json(&shared.status())
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match (sent, healthy) {
            (Ok(_), false) => {
                tracing::info!(%url, "registered with the metadata service");
                healthy = true;
            }
            (Err(err), true) => {
                tracing::warn!(%url, %err, "heartbeat failed");
                healthy = false;
            }
            _ => {}
        }
    }
}

fn fs_total(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0)
}

fn fs_available(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0)
}

/// A storage node ready to serve: the store is open and the listener bound.
#[derive(Debug)]
pub struct StorageNode {
    shared: Arc<NodeShared>,
    listener: TcpListener,
}

impl StorageNode {
    /// Opens the chunk store (cleaning up interrupted writes) for a node that
    /// will serve on `listener`. The caller binds the listener, so tests can
    /// use port 0.
    pub fn open(
        config: NodeConfig,
        secret: ClusterSecret,
        listener: TcpListener,
    ) -> Result<Self, StoreError> {
        let store = ChunkStore::open(&config.data_dir)?;
        store.set_direct_io(config.direct_io);
        let advertise_url = match &config.advertise_url {
            Some(url) => url.clone(),
            None => format!(
                "http://{}",
                listener.local_addr().map_or(config.listen, |a| a)
            ),
        };
        let shared = Arc::new(NodeShared {
            config,
            store,
            secret,
            metrics: NodeMetrics::new(),
            advertise_url,
        });
        shared.refresh_usage_gauges();
        Ok(Self { shared, listener })
    }

    pub fn shared(&self) -> &Arc<NodeShared> {
        &self.shared
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits for
    /// in-flight requests to finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let status = self.shared.status();
        tracing::info!(
            id = %status.id,
            rack = %status.rack,
            address = %status.address,
            chunks = status.chunk_count,
            used_bytes = status.used_bytes,
            "storage node serving"
        );
        let heartbeat = self
            .shared
            .config
            .metadata_url
            .clone()
            .map(|url| tokio::spawn(heartbeat_loop(self.shared.clone(), url)));
        let app = crate::api::router(self.shared.clone());
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(task) = heartbeat {
            task.abort();
        }
        tracing::info!("storage node stopped");
        served
    }
}
