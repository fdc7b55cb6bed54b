//! The metadata API: routes, handlers and the mapping from catalogue errors
//! to typed error codes. Every route is behind the cluster secret (and, with
//! TLS, a client certificate), but the join routes (`super::join`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::ids::{BlobId, NodeId};
use cairn_meta_api::model::{
    ApplyRequest, BucketContent, ListRequest, MetaStatus, ReplicaChange, ShardSplit, SplitRequest,
};
use cairn_meta_api::shard_map::{ExpectedRange, GroupId, ShardId, ShardMap};
use cairn_node_api::wire::NodeStatus;
use cairn_service::server::{blocking, render_metrics, require_certificate, require_secret};
use cairn_service::{ApiError, ErrorCode, now_ms};
use serde::Deserialize;

use crate::raft::group::Replicated;
use crate::raft::{ReplicaId, Reply};
use crate::shard::{CatalogError, Shard};

use super::Shared;

pub(super) fn router(shared: Arc<Shared>) -> Router {
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
        .route("/cluster/nodes/{id}/lifecycle", post(change_lifecycle))
        .route("/cluster/events", get(events))
        .route("/cluster/users", get(users).post(change_user))
        .route("/cluster/keys/{access_key}", get(access_key))
        .route("/shards/{id}/apply", post(apply))
        .route("/shards/{id}/split", post(split_shard))
        .route("/cluster/replicas", post(change_replicas))
        .route("/raft/{group}/members", post(change_group_replicas))
        .route("/raft/{group}/create", post(create_group))
        .route("/raft/{group}/digest", get(digest))
        .route("/raft/{group}/{rpc}", post(raft_rpc))
        .route("/shards/{id}/buckets", get(list_buckets))
        .route("/shards/{id}/bucket", get(get_bucket))
        .route("/shards/{id}/bucket-content", get(bucket_content))
        .route("/shards/{id}/object", get(get_object))
        .route("/shards/{id}/list", post(list))
        .route("/shards/{id}/list-versions", post(list_versions))
        .route("/shards/{id}/upload", get(get_upload))
        .route("/shards/{id}/uploads", get(list_uploads))
        .route("/shards/{id}/node-chunks", get(node_chunks))
        .route("/shards/{id}/garbage", get(garbage))
        .route("/shards/{id}/referenced", post(referenced))
        .layer(middleware::from_fn_with_state(
            shared.secret.clone(),
            require_secret,
        ))
        .layer(middleware::from_fn_with_state(
            shared.secret.clone(),
            require_certificate,
        ))
        // A host that is joining has neither certificate nor secret yet.
        .merge(super::join::routes())
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            record_request,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(shared)
}

pub(super) fn wrong_shard(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, ErrorCode::WrongShard, message)
}

fn not_found(code: ErrorCode, message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        use CatalogError as E;
        let (status, code) = match &err {
            E::NoSuchBucket(_) => (StatusCode::NOT_FOUND, ErrorCode::NoSuchBucket),
            E::BucketAlreadyOwnedByYou(_) => {
                (StatusCode::CONFLICT, ErrorCode::BucketAlreadyOwnedByYou)
            }
            E::BucketAlreadyExists(_) => (StatusCode::CONFLICT, ErrorCode::BucketAlreadyExists),
            E::BucketNotEmpty(_) => (StatusCode::CONFLICT, ErrorCode::BucketNotEmpty),
            E::InvalidBucketName(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidBucketName),
            E::InvalidKey(_) => (StatusCode::BAD_REQUEST, ErrorCode::KeyTooLongError),
            E::NoSuchKey { .. } => (StatusCode::NOT_FOUND, ErrorCode::NoSuchKey),
            E::PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                ErrorCode::PreconditionFailed,
            ),
            E::NoSuchUpload(_) => (StatusCode::NOT_FOUND, ErrorCode::NoSuchUpload),
            E::InvalidPart { .. } => (StatusCode::BAD_REQUEST, ErrorCode::InvalidPart),
            E::InvalidPartOrder => (StatusCode::BAD_REQUEST, ErrorCode::InvalidPartOrder),
            E::EntityTooSmall { .. } => (StatusCode::BAD_REQUEST, ErrorCode::EntityTooSmall),
            E::Malformed(_) => (StatusCode::BAD_REQUEST, ErrorCode::MalformedXml),
            E::AccessDenied(_) => (StatusCode::FORBIDDEN, ErrorCode::AccessDenied),
            E::InvalidBucketState(_) => (StatusCode::CONFLICT, ErrorCode::InvalidBucketState),
            E::InvalidArgument(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument),
            E::NoSuchVersion { .. } => (StatusCode::NOT_FOUND, ErrorCode::NoSuchVersion),
            E::WrongShard { .. } => (StatusCode::CONFLICT, ErrorCode::WrongShard),
            E::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            E::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            E::Storage(_) | E::Corrupt(_) => {
                tracing::error!(error = %err, "catalogue failure");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError)
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
    let groups: Vec<_> = shared.all_groups();
    let map_version = shared
        .cluster_state()
        .ok()
        .and_then(|state| state.shard_map().ok().flatten())
        .map_or(0, |map| map.version);
    Json(MetaStatus {
        replica_id: shared.options.replica_id,
        advertise_url: shared.options.advertise_url.clone(),
        map_version,
        groups: groups.iter().map(|g| g.status()).collect(),
    })
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let groups: Vec<_> = shared.all_groups();
    for group in groups {
        match &group.state {
            Replicated::Shard(shard) => shared.metrics.observe_shard(shard),
            Replicated::Cluster(state) if group.is_leader() => {
                if let Ok(nodes) = state.nodes() {
                    shared.metrics.observe_nodes(&nodes);
                }
            }
            Replicated::Cluster(_) => {}
        }
    }
    render_metrics(shared.metrics.registry())
}

/// Served by any replica from its applied state: the map is versioned, and
/// a shard answers `wrong_shard` to a client whose map is too old.
async fn shard_map(State(shared): State<Arc<Shared>>) -> Result<Json<ShardMap>, ApiError> {
    // Before the first map is committed (a new cluster electing its
    // first leader) the client is sent on, as by a follower.
    match shared.cluster_state()?.shard_map()? {
        Some(map) => Ok(Json(map)),
        None => match shared.group(GroupId::Cluster) {
            Some(group) => Err(group.not_leader_here()),
            None => Err(shared.cluster_state().expect_err("no cluster group here")),
        },
    }
}

async fn split(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<SplitRequest>,
) -> Result<Json<ShardMap>, ApiError> {
    shared.isolate(&request.prefix).await.map(Json)
}

async fn split_shard(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Json(request): Json<ShardSplit>,
) -> Result<Json<serde_json::Value>, ApiError> {
    shared
        .split_here(ShardId(id), request.at, request.child)
        .await?;
    Ok(Json(serde_json::json!({"status": "split"})))
}

async fn heartbeat(
    State(shared): State<Arc<Shared>>,
    Json(status): Json<NodeStatus>,
) -> Result<Json<cairn_meta_api::model::NodeRecord>, ApiError> {
    let (group, _) = shared.cluster_leader()?;
    shared.heard_from(&status.id);
    match group
        .write(crate::raft::Proposal::Heartbeat {
            status,
            now_ms: now_ms(),
        })
        .await?
    {
        Reply::Node { record } => Ok(Json(record)),
        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
    }
}

/// The registry as the cluster leader has applied it, after a read
/// barrier (placement must not see a node state a new leader changed).
async fn nodes(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<Vec<cairn_meta_api::model::NodeRecord>>, ApiError> {
    let (group, state) = shared.cluster_leader()?;
    read_barrier(&shared, &group).await?;
    Ok(Json(state.nodes()?))
}

async fn users(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<Vec<cairn_meta_api::users::UserRecord>>, ApiError> {
    let (group, state) = shared.cluster_leader()?;
    read_barrier(&shared, &group).await?;
    Ok(Json(state.users()?))
}

/// Drain, cancel, retire or remove a node (`None`: removed).
async fn change_lifecycle(
    State(shared): State<Arc<Shared>>,
    Path(node): Path<NodeId>,
    Json(change): Json<cairn_meta_api::model::LifecycleChange>,
) -> Result<Json<Option<cairn_meta_api::model::NodeRecord>>, ApiError> {
    let (group, _) = shared.cluster_leader()?;
    match group
        .write(crate::raft::Proposal::Lifecycle {
            node,
            change,
            now_ms: now_ms(),
        })
        .await?
    {
        Reply::Node { record } => Ok(Json(Some(record))),
        Reply::Done => Ok(Json(None)),
        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
    }
}

async fn change_user(
    State(shared): State<Arc<Shared>>,
    Json(change): Json<cairn_meta_api::users::UserChange>,
) -> Result<Json<Option<cairn_meta_api::users::UserRecord>>, ApiError> {
    let (group, _) = shared.cluster_leader()?;
    match group
        .write(crate::raft::Proposal::User {
            change,
            now_ms: now_ms(),
        })
        .await?
    {
        Reply::User { record } => Ok(Json(record)),
        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
    }
}

/// One access key, for the gateway's signature check. After a read
/// barrier: a deleted key must stop working once the deletion is
/// acknowledged (the gateway's own cache bounds how long it is trusted).
async fn access_key(
    State(shared): State<Arc<Shared>>,
    Path(access_key): Path<String>,
) -> Result<Json<cairn_meta_api::users::KeyRecord>, ApiError> {
    let (group, state) = shared.cluster_leader()?;
    read_barrier(&shared, &group).await?;
    state.access_key(&access_key)?.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such access key".to_owned(),
        )
    })
}

async fn change_replicas(
    State(shared): State<Arc<Shared>>,
    Json(change): Json<ReplicaChange>,
) -> Result<Json<ShardMap>, ApiError> {
    shared.change_replicas(&change).await.map(Json)
}

fn group_id(text: &str) -> Result<GroupId, ApiError> {
    text.parse().map_err(ApiError::bad_request)
}

async fn change_group_replicas(
    State(shared): State<Arc<Shared>>,
    Path(group): Path<String>,
    Json(change): Json<ReplicaChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    shared
        .change_group_replicas(group_id(&group)?, &change)
        .await?;
    Ok(Json(serde_json::json!({"status": "changed"})))
}

async fn create_group(
    State(shared): State<Arc<Shared>>,
    Path(group): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    shared.create_group(group_id(&group)?).await?;
    Ok(Json(serde_json::json!({"status": "created"})))
}

async fn digest(
    State(shared): State<Arc<Shared>>,
    Path(group): Path<String>,
) -> Result<Json<cairn_meta_api::model::GroupDigest>, ApiError> {
    shared.digest(group_id(&group)?).await.map(Json)
}

/// Whom a Raft RPC is for, as its sender sees it (absent from senders
/// older than the check).
#[derive(Debug, Deserialize)]
struct RaftRecipient {
    to: Option<ReplicaId>,
}

/// Raft's own RPCs between replicas of a group.
///
/// Two checks before openraft sees a message, because openraft trusts
/// whoever holds the cluster secret: a message addressed to another
/// replica id (an address that now belongs to someone else) and a message
/// whose sender claims to be this replica (another cluster sharing the
/// secret, with overlapping ids) are refused with 409 `conflict`. Acting
/// on either could make this replica follow a stranger's log.
async fn raft_rpc(
    State(shared): State<Arc<Shared>>,
    Path((group, rpc)): Path<(String, String)>,
    Query(recipient): Query<RaftRecipient>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let me = shared.options.replica_id;
    if let Some(to) = recipient.to.filter(|to| *to != me) {
        return Err(misdirected(format!(
            "a Raft {rpc} for replica {to} reached replica {me}: the sender's address for {to} is stale"
        )));
    }
    let id: GroupId = group.parse().map_err(ApiError::bad_request)?;
    let group = shared.group_for_rpc(id).await?;
    let raft = &group.raft;
    let answer = match rpc.as_str() {
        "append" => {
            let request = from_another_replica::<
                openraft::raft::AppendEntriesRequest<crate::raft::TypeConfig>,
            >(&body, &rpc, me, |r| &r.vote)?;
            serde_json::to_value(raft.append_entries(request).await)
        }
        "vote" => {
            let request = from_another_replica::<openraft::raft::VoteRequest<ReplicaId>>(
                &body,
                &rpc,
                me,
                |r| &r.vote,
            )?;
            serde_json::to_value(raft.vote(request).await)
        }
        "snapshot" => {
            let request = from_another_replica::<
                openraft::raft::InstallSnapshotRequest<crate::raft::TypeConfig>,
            >(&body, &rpc, me, |r| &r.vote)?;
            serde_json::to_value(raft.install_snapshot(request).await)
        }
        other => return Err(ApiError::bad_request(format!("no Raft RPC {other:?}"))),
    };
    Ok(Json(answer.map_err(|e| ApiError::internal(e.to_string()))?).into_response())
}

/// Parses a Raft request and refuses one whose sender (the vote's leader
/// or candidate) claims to be this replica, `me`.
fn from_another_replica<R: serde::de::DeserializeOwned>(
    body: &[u8],
    rpc: &str,
    me: ReplicaId,
    vote: impl Fn(&R) -> &openraft::Vote<ReplicaId>,
) -> Result<R, ApiError> {
    let request: R =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("{rpc}: {e}")))?;
    if vote(&request).leader_id().voted_for() == Some(me) {
        return Err(misdirected(format!(
            "a Raft {rpc} from replica {me} reached replica {me}: another cluster shares this secret and address space"
        )));
    }
    Ok(request)
}

/// A Raft message this replica must not act on (409 `conflict`), logged:
/// it means a misconfiguration an operator has to fix.
fn misdirected(message: String) -> ApiError {
    tracing::warn!(%message, "refused a Raft message");
    ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
}

/// Waits until a read on `group` sees every write acknowledged before it
/// began (see `Group::linearize`), counting how leadership was confirmed.
async fn read_barrier(shared: &Shared, group: &crate::raft::group::Group) -> Result<(), ApiError> {
    let how = group.linearize().await?;
    shared
        .metrics
        .read_barriers
        .with_label_values(&[how.label()])
        .inc();
    Ok(())
}

/// A shard this replica leads, after a linearizable read barrier: what is
/// read from it includes every write acknowledged before the read began.
async fn read_shard(shared: &Shared, id: u32) -> Result<Arc<Shard>, ApiError> {
    let (group, shard) = shared.shard_group(ShardId(id))?;
    read_barrier(shared, &group).await?;
    Ok(shard)
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
) -> Result<Json<Vec<cairn_meta_api::model::NodeEvent>>, ApiError> {
    // After a read barrier: a feed reader must not miss a transition that
    // a newer leader committed.
    let (group, state) = shared.cluster_leader()?;
    read_barrier(&shared, &group).await?;
    Ok(Json(
        state.events(query.after, query.limit.unwrap_or(1000))?,
    ))
}

async fn apply(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Json(request): Json<ApplyRequest>,
) -> Result<Json<cairn_meta_api::model::Outcome>, ApiError> {
    let name = request.command.name();
    let started = Instant::now();
    let outcome = match shared
        .commit(ShardId(id), request.request_id, request.command)
        .await
    {
        Ok(Reply::Outcome { outcome }) => Ok(outcome),
        Ok(other) => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
        Err(err) => Err(err),
    };
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
    Query(expected): Query<ExpectedRange>,
) -> Result<Json<Vec<cairn_meta_api::model::BucketRecord>>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    Ok(Json(blocking(move || shard.list_buckets(&expected)).await?))
}

#[derive(Debug, Deserialize)]
struct NameQuery {
    name: String,
    #[serde(flatten)]
    expected: ExpectedRange,
}

async fn get_bucket(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<NameQuery>,
) -> Result<Json<cairn_meta_api::model::BucketRecord>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    let name = q.name.clone();
    blocking(move || shard.get_bucket(&name))
        .await?
        .map(Json)
        .ok_or_else(|| {
            not_found(
                ErrorCode::NoSuchBucket,
                format!("bucket {} does not exist", q.name),
            )
        })
}

async fn bucket_content(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<NameQuery>,
) -> Result<Json<BucketContent>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    let has_content = blocking(move || shard.bucket_has_content(&q.name, &q.expected)).await?;
    Ok(Json(BucketContent { has_content }))
}

#[derive(Debug, Deserialize)]
struct ObjectQuery {
    bucket: String,
    key: String,
    /// A version id; absent: the current version.
    #[serde(default)]
    version: Option<String>,
    /// Whether a delete marker may answer (as the current version, or by
    /// its id); off, only objects do.
    #[serde(default)]
    markers: bool,
}

async fn get_object(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<ObjectQuery>,
) -> Result<Json<cairn_meta_api::model::ObjectRecord>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    shared
        .metrics
        .shard_reads
        .with_label_values(&["get_object", &id.to_string()])
        .inc();
    let (bucket, key, version) = (q.bucket.clone(), q.key.clone(), q.version.clone());
    let markers = q.markers;
    blocking(move || {
        if markers || version.is_some() {
            let found = shard.get_version(&bucket, &key, version.as_deref())?;
            Ok(found.filter(|r| markers || !r.delete_marker))
        } else {
            shard.get_object(&bucket, &key)
        }
    })
    .await?
    .map(Json)
    .ok_or_else(|| {
        not_found(
            ErrorCode::NoSuchKey,
            format!("no object {}/{}", q.bucket, q.key),
        )
    })
}

async fn list_versions(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Json(request): Json<cairn_meta_api::model::ListVersionsRequest>,
) -> Result<Json<cairn_meta_api::model::VersionPage>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    shared
        .metrics
        .shard_reads
        .with_label_values(&["list_versions", &id.to_string()])
        .inc();
    Ok(Json(blocking(move || shard.list_versions(&request)).await?))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Json(request): Json<ListRequest>,
) -> Result<Json<cairn_meta_api::model::ListPage>, ApiError> {
    let shard = read_shard(&shared, id).await?;
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
) -> Result<Json<cairn_meta_api::model::UploadRecord>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    let upload_id = q.upload_id.clone();
    blocking(move || shard.get_upload(&q.bucket, &q.key, &q.upload_id))
        .await?
        .map(Json)
        .ok_or_else(|| {
            not_found(
                ErrorCode::NoSuchUpload,
                format!("no multipart upload {upload_id}"),
            )
        })
}

#[derive(Debug, Deserialize)]
struct UploadsQuery {
    bucket: String,
    #[serde(default)]
    prefix: String,
    after_key: Option<String>,
    after_upload: Option<String>,
    limit: Option<usize>,
    #[serde(flatten)]
    expected: ExpectedRange,
}

async fn list_uploads(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<UploadsQuery>,
) -> Result<Json<Vec<cairn_meta_api::model::UploadRecord>>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    Ok(Json(
        blocking(move || {
            let after = q.after_key.as_deref().zip(q.after_upload.as_deref());
            shard.list_uploads(
                &q.bucket,
                &q.prefix,
                after,
                q.limit.unwrap_or(1000),
                &q.expected,
            )
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
    #[serde(flatten)]
    expected: ExpectedRange,
}

async fn node_chunks(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(q): Query<NodeChunksQuery>,
) -> Result<Json<Vec<cairn_meta_api::model::NodeChunk>>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    Ok(Json(
        blocking(move || {
            let after = q.after_blob.zip(q.after_index);
            shard.chunks_on_node(&q.node, after, q.limit.unwrap_or(1000), &q.expected)
        })
        .await?,
    ))
}

/// Whether each chunk is in this shard's reverse index (GC's last check).
async fn referenced(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u32>,
    Query(expected): Query<ExpectedRange>,
    Json(chunks): Json<Vec<cairn_meta_api::model::PlacedChunk>>,
) -> Result<Json<Vec<bool>>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    Ok(Json(
        blocking(move || shard.referenced(&chunks, &expected)).await?,
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
) -> Result<Json<Vec<cairn_meta_api::model::GarbageEntry>>, ApiError> {
    let shard = read_shard(&shared, id).await?;
    Ok(Json(
        blocking(move || shard.garbage(q.after, q.limit.unwrap_or(1000))).await?,
    ))
}
