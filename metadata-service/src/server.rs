//! A metadata process: hosts the shards the map assigns to its URL, and (on
//! the primary) the cluster state. HTTP/JSON API, every route behind the
//! cluster secret; documented in ARCHITECTURE.md ("Metadata API").

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::ids::{BlobId, NodeId};
use cairn_core::node_api::{NodeStatus, SECRET_HEADER};
use cairn_storage_node::ClusterSecret;
use cairn_storage_node::service::{self, ApiError, blocking};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::cluster::ClusterState;
use crate::liveness::DetectorConfig;
use crate::metrics::MetaMetrics;
use crate::model::{Command, ListRequest, MetaStatus, SplitRequest};
use crate::shard::{CatalogError, KeyRange, Shard};
use crate::shard_map::{ShardId, ShardMap};

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
    /// Sent on this process's own requests to the primary.
    secret_text: String,
    shards: RwLock<BTreeMap<ShardId, Arc<Shard>>>,
    cluster: Option<ClusterState>,
    map: RwLock<ShardMap>,
    metrics: MetaMetrics,
    http: reqwest::Client,
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
    Secret(#[from] cairn_storage_node::secret::SecretError),
    #[error("cannot reach the primary at {url}: {message}")]
    Primary { url: String, message: String },
    #[error("create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MetaServer {
    /// Opens the cluster state (primary) or fetches the map (member), then
    /// opens the shards this process owns.
    pub async fn open(
        options: MetaOptions,
        secret_text: &str,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        let secret = ClusterSecret::new(secret_text)?;
        let shards_dir = options.data_dir.join("shards");
        std::fs::create_dir_all(&shards_dir).map_err(|source| StartError::Io {
            path: shards_dir.clone(),
            source,
        })?;
        let http = reqwest::Client::new();
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
                (None, fetch_map(&http, primary_url, secret_text).await?)
            }
        };
        let shared = Arc::new(Shared {
            options,
            secret,
            secret_text: secret_text.to_owned(),
            shards: RwLock::new(BTreeMap::new()),
            cluster,
            map: RwLock::new(map.clone()),
            metrics: MetaMetrics::new(),
            http,
        });
        shared.open_owned_shards(&map)?;
        Ok(Self { shared, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves. The primary also runs the failure
    /// detector; members refresh their copy of the map.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let background = tokio::spawn(background(self.shared.clone(), stop_rx));
        tracing::info!(
            url = %self.shared.options.advertise_url,
            shards = ?self.shared.shards.read().expect("shards").keys().collect::<Vec<_>>(),
            primary = self.shared.cluster.is_some(),
            "metadata service serving"
        );
        let app = router(self.shared.clone());
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop_tx.send(true);
        let _ = background.await;
        tracing::info!("metadata service stopped");
        result
    }
}

async fn fetch_map(
    http: &reqwest::Client,
    primary: &str,
    secret: &str,
) -> Result<ShardMap, StartError> {
    let url = format!("{}/cluster/shard-map", primary.trim_end_matches('/'));
    let fail = |message: String| StartError::Primary {
        url: url.clone(),
        message,
    };
    let response = http
        .get(&url)
        .header(SECRET_HEADER, secret)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("status {}", response.status())));
    }
    response.json().await.map_err(|e| fail(e.to_string()))
}

impl Shared {
    fn open_owned_shards(&self, map: &ShardMap) -> Result<(), CatalogError> {
        let mut shards = self.shards.write().expect("shards");
        for range in &map.shards {
            if range.owner != self.options.advertise_url || shards.contains_key(&range.id) {
                continue;
            }
            let path = self
                .options
                .data_dir
                .join("shards")
                .join(range.id.0.to_string());
            let shard = Shard::open(
                range.id,
                &path,
                KeyRange {
                    start: range.start.clone(),
                    end: range.end.clone(),
                },
            )?;
            shards.insert(range.id, Arc::new(shard));
        }
        Ok(())
    }

    fn shard(&self, id: ShardId) -> Result<Arc<Shard>, ApiError> {
        self.shards
            .read()
            .expect("shards")
            .get(&id)
            .cloned()
            .ok_or_else(|| wrong_shard(format!("{id} is not hosted here")))
    }

    fn cluster(&self) -> Result<&ClusterState, ApiError> {
        self.cluster.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "not_primary",
                "ask the primary",
            )
        })
    }

    /// Gives a directory its own shard(s) on this process.
    fn isolate(&self, prefix: &str) -> Result<ShardMap, ApiError> {
        let cluster = self.cluster()?;
        let mut map = cluster.shard_map();
        let next_id =
            |map: &ShardMap| ShardId(map.shards.iter().map(|s| s.id.0).max().unwrap_or(0) + 1);
        let mut cuts = vec![prefix.to_owned()];
        cuts.extend(crate::shard_map::prefix_successor(prefix));
        for at in cuts {
            let holder = map.route(&at).clone();
            if holder.start == at {
                continue;
            }
            if holder.owner != self.options.advertise_url {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "remote_shard",
                    format!(
                        "{} is hosted by {}; split it there",
                        holder.id, holder.owner
                    ),
                ));
            }
            let new_id = next_id(&map);
            let next = map
                .split(holder.id, &at, new_id, &self.options.advertise_url)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_split", e.to_string()))?;
            let source = self.shard(holder.id)?;
            let path = self
                .options
                .data_dir
                .join("shards")
                .join(new_id.0.to_string());
            source.split_off(&at, new_id, &path, |target| {
                self.shards
                    .write()
                    .expect("shards")
                    .insert(new_id, Arc::new(target));
                cluster.publish_map(next.clone())?;
                *self.map.write().expect("map") = next.clone();
                Ok(())
            })?;
            tracing::info!(from = %holder.id, to = %new_id, at, version = next.version, "shard split");
            self.metrics.splits.inc();
            map = next;
        }
        Ok(map)
    }
}

/// Failure detection (primary) and map refresh (members).
async fn background(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let period = (shared.options.detector.suspect_after / 4).max(Duration::from_millis(50));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
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
        } else if let Role::Member { primary_url } = &shared.options.role {
            match fetch_map(&shared.http, primary_url, &shared.secret_text).await {
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

// ---- HTTP ----

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/cluster/shard-map", get(shard_map))
        .route("/cluster/split", post(split))
        .route("/cluster/heartbeat", post(heartbeat))
        .route("/cluster/nodes", get(nodes))
        .route("/cluster/events", get(events))
        .route("/shards/{id}/apply", post(apply))
        .route("/shards/{id}/buckets", get(list_buckets))
        .route("/shards/{id}/bucket", get(get_bucket))
        .route("/shards/{id}/bucket-content", get(bucket_content))
        .route("/shards/{id}/object", get(get_object))
        .route("/shards/{id}/list", post(list))
        .route("/shards/{id}/upload", get(get_upload))
        .route("/shards/{id}/uploads", get(list_uploads))
        .route("/shards/{id}/node-chunks", get(node_chunks))
        .route("/shards/{id}/garbage", get(garbage))
        .layer(middleware::from_fn_with_state(
            shared.secret.clone(),
            service::require_secret,
        ))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            record_request,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(shared)
}

fn wrong_shard(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "wrong_shard", message)
}

fn not_found(code: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        use CatalogError as E;
        let (status, code) = match &err {
            E::NoSuchBucket(_) => (StatusCode::NOT_FOUND, "NoSuchBucket"),
            E::BucketAlreadyOwnedByYou(_) => (StatusCode::CONFLICT, "BucketAlreadyOwnedByYou"),
            E::BucketAlreadyExists(_) => (StatusCode::CONFLICT, "BucketAlreadyExists"),
            E::BucketNotEmpty(_) => (StatusCode::CONFLICT, "BucketNotEmpty"),
            E::InvalidBucketName(_) => (StatusCode::BAD_REQUEST, "InvalidBucketName"),
            E::InvalidKey(_) => (StatusCode::BAD_REQUEST, "KeyTooLongError"),
            E::NoSuchKey { .. } => (StatusCode::NOT_FOUND, "NoSuchKey"),
            E::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "PreconditionFailed"),
            E::NoSuchUpload(_) => (StatusCode::NOT_FOUND, "NoSuchUpload"),
            E::InvalidPart { .. } => (StatusCode::BAD_REQUEST, "InvalidPart"),
            E::InvalidPartOrder => (StatusCode::BAD_REQUEST, "InvalidPartOrder"),
            E::EntityTooSmall { .. } => (StatusCode::BAD_REQUEST, "EntityTooSmall"),
            E::Malformed(_) => (StatusCode::BAD_REQUEST, "MalformedXML"),
            E::WrongShard { .. } => (StatusCode::CONFLICT, "wrong_shard"),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            E::Storage(_) | E::Corrupt(_) => {
                tracing::error!(error = %err, "catalogue failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
        };
        ApiError::new(status, code, err.to_string())
    }
}

async fn record_request(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    shared
        .metrics
        .requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    shared
        .metrics
        .request_seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<MetaStatus> {
    Json(MetaStatus {
        advertise_url: shared.options.advertise_url.clone(),
        shards: shared
            .shards
            .read()
            .expect("shards")
            .keys()
            .copied()
            .collect(),
        map_version: shared.map.read().expect("map").version,
        cluster_role: shared.cluster.is_some(),
    })
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let shards: Vec<Arc<Shard>> = shared
        .shards
        .read()
        .expect("shards")
        .values()
        .cloned()
        .collect();
    for shard in shards {
        shared.metrics.observe_shard(&shard);
    }
    if let Some(cluster) = &shared.cluster {
        shared.metrics.observe_nodes(&cluster.nodes());
    }
    service::render_metrics(shared.metrics.registry())
}

async fn shard_map(State(shared): State<Arc<Shared>>) -> Result<Json<ShardMap>, ApiError> {
    Ok(Json(shared.cluster()?.shard_map()))
}

async fn split(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<SplitRequest>,
) -> Result<Json<ShardMap>, ApiError> {
    let shared2 = shared.clone();
    let result = tokio::task::spawn_blocking(move || shared2.isolate(&request.prefix))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })?;
    result.map(Json)
}

async fn heartbeat(
    State(shared): State<Arc<Shared>>,
    Json(status): Json<NodeStatus>,
) -> Result<Json<crate::model::NodeRecord>, ApiError> {
    shared.cluster()?;
    let now = tokio::time::Instant::now().into_std();
    let record = blocking(move || {
        shared
            .cluster
            .as_ref()
            .expect("checked above")
            .heartbeat(status, now, now_ms())
    })
    .await?;
    Ok(Json(record))
}

async fn nodes(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<Vec<crate::model::NodeRecord>>, ApiError> {
    Ok(Json(shared.cluster()?.nodes()))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn events(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Vec<crate::model::NodeEvent>>, ApiError> {
    Ok(Json(
        shared
            .cluster()?
            .events(query.after, query.limit.unwrap_or(1000))?,
    ))
}

async fn apply(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Json(command): Json<Command>,
) -> Result<Json<crate::model::Outcome>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    let name = command.name();
    let started = Instant::now();
    let outcome = blocking(move || shard.apply(&command, now_ms())).await;
    shared
        .metrics
        .commands
        .with_label_values(&[
            name,
            &id.to_string(),
            if outcome.is_ok() { "ok" } else { "error" },
        ])
        .inc();
    shared
        .metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    outcome.map(Json)
}

async fn list_buckets(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
) -> Result<Json<Vec<crate::model::BucketRecord>>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    Ok(Json(blocking(move || shard.list_buckets()).await?))
}

#[derive(Debug, Deserialize)]
struct NameQuery {
    name: String,
}

async fn get_bucket(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<NameQuery>,
) -> Result<Json<crate::model::BucketRecord>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    let name = q.name.clone();
    blocking(move || shard.get_bucket(&name))
        .await?
        .map(Json)
        .ok_or_else(|| not_found("NoSuchBucket", format!("bucket {} does not exist", q.name)))
}

async fn bucket_content(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<NameQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    let has = blocking(move || shard.bucket_has_content(&q.name)).await?;
    Ok(Json(serde_json::json!({ "has_content": has })))
}

#[derive(Debug, Deserialize)]
struct ObjectQuery {
    bucket: String,
    key: String,
}

async fn get_object(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<ObjectQuery>,
) -> Result<Json<crate::model::ObjectRecord>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    shared
        .metrics
        .shard_reads
        .with_label_values(&["get_object", &id.to_string()])
        .inc();
    let (bucket, key) = (q.bucket.clone(), q.key.clone());
    blocking(move || shard.get_object(&bucket, &key))
        .await?
        .map(Json)
        .ok_or_else(|| not_found("NoSuchKey", format!("no object {}/{}", q.bucket, q.key)))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Json(request): Json<ListRequest>,
) -> Result<Json<crate::model::ListPage>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    shared
        .metrics
        .shard_reads
        .with_label_values(&["list", &id.to_string()])
        .inc();
    Ok(Json(blocking(move || shard.list(&request)).await?))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    bucket: String,
    key: String,
    upload_id: String,
}

async fn get_upload(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<UploadQuery>,
) -> Result<Json<crate::model::UploadRecord>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    let upload_id = q.upload_id.clone();
    blocking(move || shard.get_upload(&q.bucket, &q.key, &q.upload_id))
        .await?
        .map(Json)
        .ok_or_else(|| not_found("NoSuchUpload", format!("no multipart upload {upload_id}")))
}

#[derive(Debug, Deserialize)]
struct UploadsQuery {
    bucket: String,
    #[serde(default)]
    prefix: String,
    after_key: Option<String>,
    after_upload: Option<String>,
    limit: Option<usize>,
}

async fn list_uploads(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<UploadsQuery>,
) -> Result<Json<Vec<crate::model::UploadRecord>>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    Ok(Json(
        blocking(move || {
            let after = q.after_key.as_deref().zip(q.after_upload.as_deref());
            shard.list_uploads(&q.bucket, &q.prefix, after, q.limit.unwrap_or(1000))
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
struct NodeChunksQuery {
    node: NodeId,
    after_blob: Option<BlobId>,
    after_index: Option<u8>,
    limit: Option<usize>,
}

async fn node_chunks(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<NodeChunksQuery>,
) -> Result<Json<Vec<crate::model::NodeChunk>>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    Ok(Json(
        blocking(move || {
            let after = q.after_blob.zip(q.after_index);
            shard.chunks_on_node(&q.node, after, q.limit.unwrap_or(1000))
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
struct GarbageQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn garbage(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<GarbageQuery>,
) -> Result<Json<Vec<crate::model::GarbageEntry>>, ApiError> {
    let shard = shared.shard(ShardId(id))?;
    Ok(Json(
        blocking(move || shard.garbage(q.after, q.limit.unwrap_or(1000))).await?,
    ))
}
