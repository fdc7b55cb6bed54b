//! A running storage node: its state, and `run` to serve it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use cairn_meta_api::MetaClient;
use cairn_node_api::NodeConfig;
use cairn_node_api::wire::NodeStatus;
use cairn_service::tasks::{CancellationToken, DRAIN_DEADLINE, TaskSet};
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
/// and the failure detector knows it is alive.
///
/// Heartbeats go out at a fixed rate, one every period, whether or not the
/// previous one has been answered: the detector counts a heartbeat when it
/// *arrives*, but its answer waits for a catalogue commit, which a busy
/// disk can hold for seconds (a 1 GiB PUT on `cairn dev` did: every node
/// went suspect and the PUT's next blob found no node to place on). A loop
/// that waited for each answer fell silent for answer + period. Each
/// heartbeat gives up after `deadline`, so at most deadline / period + 1
/// are in flight. Two in flight may be applied out of order: the registry's
/// usage figures are then one period old until the next.
async fn heartbeat_loop(
    shared: Arc<NodeShared>,
    meta: MetaClient,
    deadline: Duration,
    token: CancellationToken,
) {
    let period = Duration::from_millis(shared.config.heartbeat_interval_ms.max(10));
    let most_in_flight = (deadline.as_millis() / period.as_millis().max(1)) as usize + 1;
    let meta = Arc::new(meta);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut healthy = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if in_flight.len() >= most_in_flight {
                    continue;
                }
                let status = shared.status();
                shared.refresh_space_gauges(&status);
                let meta = meta.clone();
                in_flight.spawn(async move {
                    match tokio::time::timeout(deadline, meta.heartbeat(&status)).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(err)) => Err(err.to_string()),
                        Err(_) => Err(format!("no answer within {deadline:?}")),
                    }
                });
            }
            Some(done) = in_flight.join_next() => {
                match (done.unwrap_or_else(|join| Err(join.to_string())), healthy) {
                    (Ok(()), false) => {
                        tracing::info!("registered with the metadata service");
                        healthy = true;
                    }
                    (Err(err), true) => {
                        tracing::warn!(%err, "heartbeat failed");
                        healthy = false;
                    }
                    _ => {}
                }
            }
            () = token.cancelled() => return,
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
            // A heartbeat unanswered after a period (at least 2 s) is
            // abandoned; the next ones go out meanwhile (`heartbeat_loop`):
            // a slow answer must not make the node look silent.
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
                heartbeat_loop(self.shared.clone(), meta, deadline, tasks.token()),
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
