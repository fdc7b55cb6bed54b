//! A metadata process: one replica of every Raft group it hosts (the
//! cluster group and the catalogue shards), serving the metadata API on the
//! groups it leads. HTTP/JSON API, every route behind the cluster secret;
//! documented in docs/apis.md ("Metadata API").
//!
//! [`MetaServer`] is the lifecycle (open, serve, background loop, drain);
//! [`groups`] the groups this process hosts (opened at start, created by
//! splits, opened on first contact) and the split orchestration;
//! [`detector`] the failure detector, which runs on the cluster group's
//! leader; [`http`] the routes and handlers.

mod detector;
mod groups;
mod http;
mod join;
mod membership;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cairn_meta_api::shard_map::{GroupId, ReplicaId, Replicas, ShardMap, ShardMapError};
use cairn_service::tasks::{CancellationToken, DRAIN_DEADLINE, TaskSet};
use cairn_service::tls::ca::ClusterCa;
use cairn_service::tls::{PeerIdentity, ServiceListener};
use cairn_service::{ClusterSecret, HttpClient, Timeouts};
use tokio::net::TcpListener;

use crate::liveness::DetectorConfig;
use crate::metrics::MetaMetrics;
use crate::raft::Group;
use crate::raft::group::GroupStartError;
use crate::shard::CatalogError;

/// Everything a metadata process needs to start.
#[derive(Debug, Clone)]
pub struct MetaOptions {
    pub data_dir: PathBuf,
    /// The URL this process is known by (must equal its entry in
    /// `replicas`).
    pub advertise_url: String,
    /// This process's replica id.
    pub replica_id: ReplicaId,
    /// Every metadata process of the cluster, this one included. Each
    /// initial group is placed on `replicas_per_group` of them; its first
    /// replica initialises it on first start (and so first leads it).
    pub replicas: Replicas,
    /// Split points of the initial shard map (first start only; every
    /// replica must be given the same).
    pub initial_splits: Vec<String>,
    pub detector: DetectorConfig,
    /// Each replica's rack (groups are placed across racks).
    pub racks: std::collections::BTreeMap<ReplicaId, String>,
    /// Replicas per group (0: every replica).
    pub replicas_per_group: usize,
    /// This replica joins an existing cluster (`cairn meta add-replica`):
    /// it creates and initialises nothing on its own, and waits for each
    /// group's leader to seed it.
    pub join: bool,
    /// The cluster CA (certificate and key): this replica admits joining
    /// hosts (`POST /join`, docs/security.md).
    pub issuer: Option<Arc<ClusterCa>>,
}

impl MetaOptions {
    /// A cluster of one metadata process (tests, `--meta-replicas 1`).
    pub fn single(data_dir: PathBuf, url: &str, splits: &[&str], detector: DetectorConfig) -> Self {
        Self {
            data_dir,
            advertise_url: url.to_owned(),
            replica_id: 1,
            replicas: [(1, url.to_owned())].into(),
            initial_splits: splits.iter().map(|s| (*s).to_owned()).collect(),
            detector,
            join: false,
            racks: Default::default(),
            replicas_per_group: 0,
            issuer: None,
        }
    }

    /// The map the cluster starts with: every group on
    /// `replicas_per_group` replicas in distinct racks.
    pub fn initial_map(&self) -> Result<ShardMap, ShardMapError> {
        let splits: Vec<&str> = self.initial_splits.iter().map(String::as_str).collect();
        ShardMap::placed(
            &splits,
            &self.replicas,
            &self.racks,
            self.replicas_per_group,
        )
    }
}

pub(crate) struct Shared {
    options: MetaOptions,
    /// `options.initial_map()`, computed once: which groups start where,
    /// and the first entry of each.
    initial: ShardMap,
    secret: ClusterSecret,
    /// Raft RPCs: short deadlines, since openraft retries on its own.
    raft_http: HttpClient,
    groups: RwLock<BTreeMap<GroupId, Arc<Group>>>,
    /// Serialises opening groups (at start, after a split, on first
    /// contact), so one database is never opened twice.
    opening: tokio::sync::Mutex<()>,
    /// Serialises splits and replica changes (both on the cluster leader),
    /// so a replica change never misses a shard a split creates.
    reshaping: tokio::sync::Mutex<()>,
    detector: Mutex<detector::Detector>,
    metrics: MetaMetrics,
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
    #[error(transparent)]
    Raft(#[from] GroupStartError),
    #[error("invalid initial shard map: {0}")]
    Map(#[from] ShardMapError),
    #[error("replica {id} is not in the replica list {replicas:?}")]
    NotAReplica { id: ReplicaId, replicas: Replicas },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl MetaServer {
    /// Opens every group found in the data directory (creating the initial
    /// groups on first start) and starts their Raft replicas.
    pub async fn open(
        options: MetaOptions,
        secret: ClusterSecret,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        if !options.replicas.contains_key(&options.replica_id) {
            return Err(StartError::NotAReplica {
                id: options.replica_id,
                replicas: options.replicas.clone(),
            });
        }
        let initial = options.initial_map()?;
        let raft_http = HttpClient::new(
            secret.clone(),
            Timeouts {
                connect: Duration::from_secs(1),
                request: Duration::from_secs(5),
                progress: Duration::from_secs(5),
            },
        );
        let shared = Arc::new(Shared {
            detector: Mutex::new(detector::Detector::new(options.detector)),
            initial,
            options,
            secret,
            raft_http,
            groups: RwLock::new(BTreeMap::new()),
            opening: tokio::sync::Mutex::new(()),
            reshaping: tokio::sync::Mutex::new(()),
            metrics: MetaMetrics::new(),
        });
        shared.open_all().await?;
        Ok(Self { shared, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves. The background loop initialises
    /// groups this replica leads and runs the failure detector while it
    /// leads the cluster group. On shutdown the server drains, the loop
    /// stops within the drain deadline, then every Raft replica stops.
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
            replica = self.shared.options.replica_id,
            groups = ?self.shared.groups.read().expect("groups").keys().map(ToString::to_string).collect::<Vec<_>>(),
            "metadata service serving"
        );
        let app = http::router(self.shared.clone());
        // Hosts without a certificate yet may connect, for the join routes
        // only (the router refuses them everything else).
        let tls = self
            .shared
            .secret
            .tls()
            .map(|tls| tls.server_config_admitting_joiners());
        let listener = ServiceListener::new(self.listener, tls)?;
        let app = app.into_make_service_with_connect_info::<PeerIdentity>();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        tasks.shutdown(DRAIN_DEADLINE).await;
        let groups: Vec<Arc<Group>> = self.shared.all_groups();
        for group in groups {
            match tokio::time::timeout(DRAIN_DEADLINE, group.raft.shutdown()).await {
                Err(_) => {
                    tracing::warn!(group = %group.id, "Raft did not stop within the drain deadline")
                }
                Ok(Err(err)) => {
                    tracing::warn!(group = %group.id, %err, "Raft did not stop cleanly")
                }
                Ok(Ok(())) => {}
            }
        }
        tracing::info!("metadata service stopped");
        result
    }
}

/// Initialises groups this replica leads (every 100 ms, so a new cluster
/// serves soon after its leaders are elected) and runs the failure
/// detector on the cluster group's leader (every quarter of
/// `suspect_after`).
async fn background(shared: Arc<Shared>, token: CancellationToken) {
    let detector_period = (shared.options.detector.suspect_after / 4)
        .clamp(Duration::from_millis(50), Duration::from_millis(500));
    let mut interval = tokio::time::interval(Duration::from_millis(100).min(detector_period));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = tokio::time::Instant::now();
    tokio::select! {
        () = shared.initialise_new_groups() => {}
        () = token.cancelled() => return,
    }
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = token.cancelled() => return,
        }
        shared.initialise_led_groups().await;
        if last_tick.elapsed() >= detector_period {
            last_tick = tokio::time::Instant::now();
            shared.detector_tick().await;
        }
    }
}
