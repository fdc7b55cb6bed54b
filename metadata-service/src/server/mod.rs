//! A metadata process: hosts the shards the map assigns to its URL, and (on
//! the primary) the cluster state. HTTP/JSON API, every route behind the
//! cluster secret; documented in docs/apis.md ("Metadata API").

//!
//! [`MetaServer`] is the lifecycle (open, serve, background loop, drain);
//! [`hosted`] the shards this process hosts and the split orchestration;
//! [`http`] the routes and handlers.

mod hosted;
mod http;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cairn_meta_api::MetaClient;
use cairn_meta_api::shard_map::{ShardId, ShardMap};
use cairn_service::tasks::{CancellationToken, DRAIN_DEADLINE, TaskSet};
use cairn_service::{ClusterSecret, now_ms};
use tokio::net::TcpListener;

use crate::cluster::ClusterState;
use crate::liveness::DetectorConfig;
use crate::metrics::MetaMetrics;
use crate::shard::{CatalogError, Shard};

/// How a metadata process finds the cluster state.
#[derive(Debug, Clone)]
pub enum Role {
    /// This process keeps the cluster state; the map starts as given.
    Primary { initial_map: ShardMap },
    /// Another process is primary; fetch the map from it.
    Member { primary_url: String },
}

/// Everything a metadata process needs to start.
#[derive(Debug, Clone)]
pub struct MetaOptions {
    pub data_dir: PathBuf,
    /// The URL this process is known by in the shard map.
    pub advertise_url: String,
    pub role: Role,
    pub detector: DetectorConfig,
}

pub(crate) struct Shared {
    options: MetaOptions,
    secret: ClusterSecret,
    shards: RwLock<BTreeMap<ShardId, Arc<Shard>>>,
    cluster: Option<ClusterState>,
    map: RwLock<ShardMap>,
    metrics: MetaMetrics,
    /// Members fetch the map from the primary through it.
    primary: Option<MetaClient>,
}

/// A metadata process ready to serve.
pub struct MetaServer {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl std::fmt::Debug for MetaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaServer")
            .field("advertise_url", &self.shared.options.advertise_url)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot reach the primary at {url}: {source}")]
    Primary {
        url: String,
        #[source]
        source: cairn_meta_api::MetaError,
    },
    #[error("create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl MetaServer {
    /// Opens the cluster state (primary) or fetches the map (member), then
    /// opens the shards this process owns.
    pub async fn open(
        options: MetaOptions,
        secret: ClusterSecret,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        let shards_dir = options.data_dir.join("shards");
        std::fs::create_dir_all(&shards_dir).map_err(|source| StartError::Io {
            path: shards_dir.clone(),
            source,
        })?;
        let mut primary = None;
        let (cluster, map) = match &options.role {
            Role::Primary { initial_map } => {
                let path = options.data_dir.join("cluster");
                let initial = initial_map.clone();
                let detector = options.detector;
                let cluster = tokio::task::spawn_blocking(move || {
                    ClusterState::open(&path, initial, detector, Instant::now())
                })
                .await
                .map_err(|e| CatalogError::Corrupt(e.to_string()))??;
                let map = cluster.shard_map();
                (Some(cluster), map)
            }
            Role::Member { primary_url } => {
                let client = MetaClient::unconnected(primary_url, &secret);
                let map = client
                    .refresh_map()
                    .await
                    .map_err(|source| StartError::Primary {
                        url: primary_url.clone(),
                        source,
                    })?;
                primary = Some(client);
                (None, map)
            }
        };
        let shared = Arc::new(Shared {
            options,
            secret,
            shards: RwLock::new(BTreeMap::new()),
            cluster,
            map: RwLock::new(map.clone()),
            metrics: MetaMetrics::new(),
            primary,
        });
        shared.open_owned_shards(&map)?;
        Ok(Self { shared, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves. The primary also runs the failure
    /// detector; members refresh their copy of the map. On shutdown the
    /// server drains, then the background loop stops within the drain
    /// deadline.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tasks = TaskSet::new();
        tasks.spawn(
            "meta-background",
            background(self.shared.clone(), tasks.token()),
        );
        tracing::info!(
            url = %self.shared.options.advertise_url,
            shards = ?self.shared.shards.read().expect("shards").keys().collect::<Vec<_>>(),
            primary = self.shared.cluster.is_some(),
            "metadata service serving"
        );
        let app = http::router(self.shared.clone());
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        tasks.shutdown(DRAIN_DEADLINE).await;
        tracing::info!("metadata service stopped");
        result
    }
}

/// Failure detection (primary) and map refresh (members).
async fn background(shared: Arc<Shared>, token: CancellationToken) {
    let period = (shared.options.detector.suspect_after / 4).max(Duration::from_millis(50));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = token.cancelled() => return,
        }
        if shared.cluster.is_some() {
            // The tick writes transitions with a synced WAL: off the reactor.
            let now = tokio::time::Instant::now().into_std();
            let ticking = shared.clone();
            let ticked = tokio::task::spawn_blocking(move || {
                ticking
                    .cluster
                    .as_ref()
                    .map_or(Ok(Vec::new()), |cluster| cluster.tick(now, now_ms()))
            })
            .await;
            match ticked.unwrap_or_else(|e| Err(CatalogError::Corrupt(e.to_string()))) {
                Ok(events) => {
                    for event in events {
                        shared
                            .metrics
                            .node_transitions
                            .with_label_values(&[crate::metrics::state_label(event.to)])
                            .inc();
                    }
                }
                Err(err) => tracing::error!(%err, "failure detector tick failed"),
            }
        } else if let Some(primary) = &shared.primary {
            match primary.refresh_map().await {
                Ok(map) => {
                    if map.version > shared.map.read().expect("map").version {
                        let opening = shared.clone();
                        let result = tokio::task::spawn_blocking(move || {
                            let opened = opening.open_owned_shards(&map);
                            *opening.map.write().expect("map") = map;
                            opened
                        })
                        .await;
                        if let Ok(Err(err)) = result {
                            tracing::error!(%err, "opening newly assigned shards failed");
                        }
                    }
                }
                Err(err) => tracing::warn!(%err, "shard map refresh failed"),
            }
        }
    }
}
