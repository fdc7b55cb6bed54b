//! A running storage node: its state, and `run` to serve it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use cairn_meta_api::MetaClient;
use cairn_node_api::NodeConfig;
use cairn_node_api::wire::NodeStatus;
use cairn_service::tasks::{CancellationToken, DRAIN_DEADLINE, TaskSet, pause};
use cairn_service::tls::ServiceListener;
use cairn_service::{ClusterSecret, Timeouts};
use tokio::net::TcpListener;

use crate::local_socket::LocalSocket;
use crate::metrics::NodeMetrics;
use crate::store::{ChunkStore, StoreError};

/// State shared by all request handlers of one node.
#[derive(Debug)]
pub struct NodeShared {
    pub(crate) config: NodeConfig,
    pub(crate) store: ChunkStore,
    pub(crate) secret: ClusterSecret,
    pub(crate) metrics: NodeMetrics,
    advertise_url: String,
    /// Where this node serves short-circuit reads, if it does.
    local: Option<cairn_node_api::LocalEndpoint>,
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
            local: self.local.clone(),
        }
    }

    pub(crate) fn refresh_usage_gauges(&self) {
        self.metrics.used_bytes.set(self.store.used_bytes() as i64);
        self.metrics.chunks.set(self.store.chunk_count() as i64);
    }

    /// Capacity and free space (a `statvfs` each): refreshed with every
    /// heartbeat's status, and at start.
    pub(crate) fn refresh_space_gauges(&self, status: &NodeStatus) {
        self.metrics
            .capacity_bytes
            .set(status.capacity_bytes as i64);
        self.metrics.free_bytes.set(status.free_bytes as i64);
    }
}

/// Registers with the metadata service and keeps heartbeating with the
/// node's status, so the registry knows its rack, address and free space
/// and the failure detector knows it is alive. Each heartbeat is one
/// [`MetaClient::heartbeat`] call, bounded by the client's deadlines.
async fn heartbeat_loop(shared: Arc<NodeShared>, meta: MetaClient, token: CancellationToken) {
    let period = Duration::from_millis(shared.config.heartbeat_interval_ms.max(10));
    let mut healthy = false;
    loop {
        let status = shared.status();
        shared.refresh_space_gauges(&status);
        match (meta.heartbeat(&status).await, healthy) {
            (Ok(_), false) => {
                tracing::info!("registered with the metadata service");
                healthy = true;
            }
            (Err(err), true) => {
                tracing::warn!(%err, "heartbeat failed");
                healthy = false;
            }
            _ => {}
        }
        if !pause(&token, period).await {
            return;
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
    local_socket: Option<LocalSocket>,
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
                "{}://{}",
                if secret.tls().is_some() {
                    "https"
                } else {
                    "http"
                },
                listener.local_addr().map_or(config.listen, |a| a)
            ),
        };
        let local_socket = if config.short_circuit {
            LocalSocket::bind(&config.data_dir)
        } else {
            None
        };
        let shared = Arc::new(NodeShared {
            config,
            store,
            secret,
            metrics: NodeMetrics::new(),
            advertise_url,
            local: local_socket.as_ref().map(|socket| socket.endpoint.clone()),
        });
        shared.refresh_usage_gauges();
        shared.refresh_space_gauges(&shared.status());
        Ok(Self {
            shared,
            listener,
            local_socket,
        })
    }

    pub fn shared(&self) -> &Arc<NodeShared> {
        &self.shared
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, waits for
    /// in-flight requests, and stops the heartbeat within the drain deadline.
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
        let tasks = TaskSet::new();
        if let Some(socket) = self.local_socket {
            tasks.spawn(
                "local socket",
                socket.serve(self.shared.clone(), tasks.token()),
            );
        }
        if let Some(url) = &self.shared.config.metadata_url {
            // A heartbeat that takes longer than a period (at least 2 s) is
            // abandoned and the next one sent: a slow answer must not make
            // the node look silent.
            let period = Duration::from_millis(self.shared.config.heartbeat_interval_ms.max(10));
            let deadline = period.max(Duration::from_secs(2));
            let timeouts = Timeouts {
                connect: deadline,
                request: deadline,
                progress: deadline,
            };
            let meta = MetaClient::unconnected_with(url, &self.shared.secret, timeouts);
            tasks.spawn(
                "heartbeat",
                heartbeat_loop(self.shared.clone(), meta, tasks.token()),
            );
        }
        let app = crate::api::router(self.shared.clone());
        let listener = ServiceListener::new(self.listener, self.shared.secret.server_tls())?;
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        tasks.shutdown(DRAIN_DEADLINE).await;
        tracing::info!("storage node stopped");
        served
    }
}
