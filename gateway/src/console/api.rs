//! The console's JSON: one call per page, each assembled from the services'
//! own APIs. A service that does not answer makes its part of a page say
//! so (502 with the reason), never a page of zeros.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_core::codec::{CodecParams, StorageClass};
use cairn_core::durability::{ClassReport, FailureModel};
use cairn_core::ids::BlobId;
use cairn_core::manifest::EncryptionMode;
use cairn_core::placement::NodeCandidate;
use cairn_meta_api::client::ListObjects;
use cairn_meta_api::model::{ListEntry, NodeEvent, NodeRecord};
use cairn_scrubber_api::ScrubberClient;
use cairn_scrubber_api::model::{JobKind, JobSpec, ScrubScope};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::census::{Census, Taken};
use super::{ConsoleState, now_ms};

/// A census is taken at most this often, however many pages poll.
const CENSUS_FRESH_FOR: Duration = Duration::from_secs(3);
/// Newest state changes shown on the cluster page.
const EVENTS_SHOWN: usize = 20;
/// Objects and prefixes per page of the browser.
const OBJECTS_PER_PAGE: usize = 200;
/// Repair throughput is averaged over the last minute of samples.
const THROUGHPUT_SAMPLES: usize = 12;

/// A part of the cluster that did not answer.
#[derive(Debug)]
pub(crate) struct Unavailable(String);

impl<E: std::fmt::Display> From<E> for Unavailable {
    fn from(err: E) -> Self {
        Self(err.to_string())
    }
}

impl IntoResponse for Unavailable {
    fn into_response(self) -> Response {
        (StatusCode::BAD_GATEWAY, Json(json!({"error": self.0}))).into_response()
    }
}

type Answer = Result<Json<Value>, Unavailable>;

/// API answers are live data: never cached by the browser.
pub(crate) async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) async fn session() -> Json<Value> {
    Json(json!({"user": super::ADMIN_USER}))
}

#[derive(Debug, Serialize)]
struct NodeView<'a> {
    id: String,
    address: &'a str,
    /// Liveness (`up`, `suspect`, `down`), or the lifecycle when it is not
    /// `active` and the node is up (`draining`, `retired`).
    state: String,
    liveness: String,
    lifecycle: String,
    used_bytes: u64,
    capacity_bytes: u64,
    free_bytes: u64,
    chunk_count: u64,
    heartbeat_age_ms: u64,
    state_since_ms: u64,
}

fn lowercase(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_lowercase))
        .unwrap_or_default()
}

fn node_view(node: &NodeRecord, now: u64) -> NodeView<'_> {
    let liveness = lowercase(node.state);
    let lifecycle = lowercase(node.lifecycle);
    let state = if lifecycle != "active" && liveness == "up" {
        lifecycle.clone()
    } else {
        liveness.clone()
    };
    NodeView {
        id: node.id.to_string(),
        address: &node.address,
        state,
        liveness,
        lifecycle,
        used_bytes: node.used_bytes,
        capacity_bytes: node.capacity_bytes,
        free_bytes: node.free_bytes,
        chunk_count: node.chunk_count,
        heartbeat_age_ms: now.saturating_sub(node.last_heartbeat_ms),
        state_since_ms: node.state_since_ms,
    }
}

/// Racks → nodes, the newest state changes, the metadata replicas.
pub(crate) async fn cluster(State(state): State<ConsoleState>) -> Answer {
    let now = now_ms();
    let nodes = state.meta().nodes().await?;
    let mut racks: BTreeMap<String, Vec<NodeView>> = BTreeMap::new();
    for node in &nodes {
        racks
            .entry(node.rack.to_string())
            .or_default()
            .push(node_view(node, now));
    }
    let events: Vec<Value> = newest_events(&state)
        .await?
        .iter()
        .map(|e| {
            json!({
                "node": e.node.to_string(),
                "from": e.from.map(lowercase),
                "to": lowercase(e.to),
                "at_ms": e.at_ms,
            })
        })
        .collect();
    let replicas: Vec<Value> = state
        .meta()
        .statuses()
        .await
        .into_iter()
        .map(|(id, url, status)| match status {
            Ok(status) => json!({
                "replica": id,
                "url": url,
                "up": true,
                "groups": status.groups.len(),
                "leading": status.groups.iter().filter(|g| g.leader == Some(id)).count(),
            }),
            Err(err) => json!({"replica": id, "url": url, "up": false, "error": err.to_string()}),
        })
        .collect();
    let racks: Vec<Value> = racks
        .into_iter()
        .map(|(rack, nodes)| json!({"rack": rack, "nodes": nodes}))
        .collect();
    Ok(Json(json!({
        "now_ms": now,
        "racks": racks,
        "events": events,
        "metadata": replicas,
    })))
}

async fn census(state: &ConsoleState) -> Result<Arc<Census>, Unavailable> {
    let mut cached = state.census.lock().await;
    if let Some(taken) = cached.as_ref()
        && taken.is_fresh(CENSUS_FRESH_FOR)
    {
        return Ok(taken.census.clone());
    }
    let started = Instant::now();
    let nodes = state.meta().nodes().await?;
    let fresh = Arc::new(
        super::census::take(
            state.meta(),
            &nodes,
            &state.classes.known_shapes(),
            now_ms(),
        )
        .await?,
    );
    *cached = Some(Taken {
        census: fresh.clone(),
        at: Instant::now(),
        took: started.elapsed(),
    });
    Ok(fresh)
}

/// The newest [`EVENTS_SHOWN`] state changes, newest first: the feed is
/// read forward from the last sequence seen (the first call pages through
/// it once).
async fn newest_events(state: &ConsoleState) -> Result<Vec<NodeEvent>, Unavailable> {
    let mut recent = state.events.lock().await;
    loop {
        let page = state.meta().events(recent.after).await?;
        let Some(last) = page.last() else {
            break;
        };
        recent.after = last.sequence;
        for event in page {
            if recent.newest.len() == EVENTS_SHOWN {
                recent.newest.pop_front();
            }
            recent.newest.push_back(event);
        }
    }
    Ok(recent.newest.iter().rev().cloned().collect())
}

/// The at-risk histogram now, and what the current topology gives each
/// class the gateway writes.
pub(crate) async fn durability(State(state): State<ConsoleState>) -> Answer {
    let census = census(&state).await?;
    let nodes = state.meta().nodes().await?;
    let candidates: Vec<NodeCandidate> = nodes.iter().map(NodeRecord::candidate).collect();
    let model = FailureModel::SEED;
    let classes = &state.classes;
    let mut codes = Vec::new();
    if let Some((max, copies)) = classes.replicated {
        codes.push((
            format!(
                "{copies} copies ({} B < size <= {max} B)",
                classes.inline_max
            ),
            1,
            copies - 1,
        ));
    }
    let codes: Vec<(String, usize, usize)> = codes;
    let mut codes = codes;
    codes.push((
        format!("RS({},{}) chunks (the gateway's)", classes.k, classes.m),
        classes.k,
        classes.m,
    ));
    // Every other class a bucket asks for.
    let mut asked: BTreeMap<String, (StorageClass, Vec<String>)> = BTreeMap::new();
    for bucket in state.meta().list_buckets().await? {
        if let Some(class) = bucket.storage_class {
            asked
                .entry(class.to_string())
                .or_insert_with(|| (class, Vec::new()))
                .1
                .push(bucket.name);
        }
    }
    let mut reports: Vec<Value> = codes
        .into_iter()
        .map(|(name, k, m)| report(name, CodecParams::new(k, m, 1), &candidates, model))
        .collect();
    for (class, buckets) in asked.into_values() {
        let name = format!("{class} chunks (buckets {})", buckets.join(", "));
        reports.push(report(name, class.codec(1), &candidates, model));
    }
    Ok(Json(json!({
        "census": *census,
        "classes": reports,
        "model": {"q_node": model.q_node, "q_rack": model.q_rack},
        "inline_max": classes.inline_max,
    })))
}

/// One class's report on the nodes up now, or why it cannot be placed.
fn report(
    name: String,
    params: Result<CodecParams, cairn_core::codec::CodecError>,
    candidates: &[NodeCandidate],
    model: FailureModel,
) -> Value {
    let placed = params.map_err(|e| e.to_string()).and_then(|params| {
        ClassReport::for_code(name.clone(), &BlobId::random(), candidates, &params, model)
            .map_err(|e| e.to_string())
    });
    match placed {
        Ok(report) => json!(report),
        Err(err) => {
            json!({"name": name, "error": format!("no rack-safe placement on the nodes up now: {err}")})
        }
    }
}

fn scrubber(state: &ConsoleState) -> Result<&ScrubberClient, Unavailable> {
    state.scrubber.as_ref().ok_or_else(|| {
        Unavailable("this gateway has no scrubber_url: repair and scrub are not shown".into())
    })
}

/// Repair now, per lost node, throughput and ETA, and the last hour.
pub(crate) async fn repair(State(state): State<ConsoleState>) -> Answer {
    let status = scrubber(&state)?.repair_status().await?;
    let census = census(&state).await?;
    let chunks_left = |node: String| {
        let left = census.chunks_per_node.get(&node).copied().unwrap_or(0);
        (node, left)
    };
    // Nodes being emptied: lost ones (rebuilt elsewhere) and draining ones
    // (copied elsewhere); each count falls to 0 as repair moves chunks.
    let lost: Vec<Value> = status
        .lost_nodes
        .iter()
        .map(|node| chunks_left(node.to_string()))
        .map(|(node, left)| json!({"node": node, "why": "lost", "chunks_left": left}))
        .collect();
    let draining: Vec<Value> = state
        .meta()
        .nodes()
        .await?
        .iter()
        .filter(|n| n.lifecycle == cairn_meta_api::model::NodeLifecycle::Draining)
        .map(|n| chunks_left(n.id.to_string()))
        .map(|(node, left)| json!({"node": node, "why": "draining", "chunks_left": left}))
        .collect();
    let lost: Vec<Value> = lost.into_iter().chain(draining).collect();
    let samples = state.history.samples();
    let recent: Vec<f64> = samples
        .iter()
        .rev()
        .take(THROUGHPUT_SAMPLES)
        .filter_map(|s| s.repair.as_ref().map(|r| r.chunks_per_sec))
        .collect();
    let chunks_per_sec = if recent.is_empty() {
        0.0
    } else {
        recent.iter().sum::<f64>() / recent.len() as f64
    };
    let left = status.queued + status.in_progress;
    let eta_secs = (left > 0 && chunks_per_sec > 0.0).then(|| left as f64 / chunks_per_sec);
    let history: Vec<Value> = samples
        .iter()
        .filter_map(|s| {
            s.repair
                .as_ref()
                .map(|r| json!({"at_ms": s.at_ms, "repair": r}))
        })
        .collect();
    Ok(Json(json!({
        "status": status,
        "lost": lost,
        "chunks_per_sec": chunks_per_sec,
        "eta_secs": eta_secs,
        "history": history,
    })))
}

pub(crate) async fn scrub_jobs(State(state): State<ConsoleState>) -> Answer {
    let mut jobs = scrubber(&state)?.jobs().await?;
    jobs.sort_by_key(|job| std::cmp::Reverse(job.id));
    Ok(Json(json!({"now_ms": now_ms(), "jobs": jobs})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ScrubForm {
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    rate_bytes_per_sec: u64,
    #[serde(default)]
    every_secs: Option<u64>,
}

/// Schedules a scrub (what `cairn scrub start` does).
pub(crate) async fn schedule_scrub(
    State(state): State<ConsoleState>,
    Json(form): Json<ScrubForm>,
) -> Result<Response, Unavailable> {
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let spec = JobSpec {
        kind: JobKind::Scrub,
        scope: ScrubScope {
            bucket: nonempty(form.bucket),
            prefix: nonempty(form.prefix),
        },
        rate_bytes_per_sec: form.rate_bytes_per_sec,
        every_secs: form.every_secs.filter(|s| *s > 0),
        ..JobSpec::default()
    };
    let job = scrubber(&state)?.create_job(&spec).await?;
    tracing::info!(job = job.id, "console scheduled a scrub");
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

pub(crate) async fn cancel_scrub(State(state): State<ConsoleState>, Path(id): Path<u64>) -> Answer {
    let job = scrubber(&state)?.cancel(id).await?;
    tracing::info!(job = job.id, "console cancelled a scrub");
    Ok(Json(json!(job)))
}

pub(crate) async fn buckets(State(state): State<ConsoleState>) -> Answer {
    let buckets: Vec<Value> = state
        .meta()
        .list_buckets()
        .await?
        .into_iter()
        .map(|b| {
            json!({
                "name": b.name,
                "owner": b.owner,
                "created_ms": b.created_ms,
                "versioning": lowercase(b.versioning),
            })
        })
        .collect();
    Ok(Json(json!({"buckets": buckets})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Browse {
    bucket: String,
    #[serde(default)]
    prefix: String,
    /// Continue after this cursor (the last page's `next`).
    #[serde(default)]
    cursor: String,
}

/// One level of a bucket under `prefix` (`/` separates levels).
pub(crate) async fn objects(
    State(state): State<ConsoleState>,
    Query(browse): Query<Browse>,
) -> Answer {
    let listing = state
        .meta()
        .list_objects(&ListObjects {
            bucket: browse.bucket.clone(),
            prefix: browse.prefix.clone(),
            delimiter: Some("/".into()),
            cursor: browse.cursor,
            max_keys: OBJECTS_PER_PAGE,
        })
        .await?;
    let entries: Vec<Value> = listing
        .entries
        .iter()
        .map(|entry| match entry {
            ListEntry::Object(o) => json!({
                "key": o.key, "size": o.size, "etag": o.etag, "modified_ms": o.modified_ms,
            }),
            ListEntry::Prefix { prefix } => json!({"prefix": prefix}),
        })
        .collect();
    Ok(Json(json!({
        "bucket": browse.bucket,
        "prefix": browse.prefix,
        "entries": entries,
        "next": listing.truncated.then_some(listing.next_cursor).flatten(),
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ObjectQuery {
    bucket: String,
    key: String,
    #[serde(default)]
    version: Option<String>,
}

/// What `cairn inspect` prints: parts, chunks, their nodes, racks and
/// states, and Merkle roots.
pub(crate) async fn object(
    State(state): State<ConsoleState>,
    Query(query): Query<ObjectQuery>,
) -> Result<Response, Unavailable> {
    // The current version (a delete marker too), or the one asked for.
    let record = state
        .meta()
        .get_version(&query.bucket, &query.key, query.version.as_deref())
        .await?;
    let Some(record) = record else {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no object {}/{}", query.bucket, query.key)})),
        )
            .into_response());
    };
    let nodes: BTreeMap<String, NodeRecord> = state
        .meta()
        .nodes()
        .await?
        .into_iter()
        .map(|n| (n.id.to_string(), n))
        .collect();
    let m = &record.manifest;
    let parts: Vec<Value> = m
        .parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let chunks: Vec<Value> = part
                .chunks
                .iter()
                .map(|c| {
                    let node = nodes.get(&c.node.to_string());
                    json!({
                        "index": c.index,
                        "node": c.node.to_string(),
                        "rack": node.map(|n| n.rack.to_string()),
                        "node_state": node.map_or_else(|| "unknown".to_owned(), |n| node_view(n, now_ms()).state),
                        "state": lowercase(c.state),
                        "merkle_root": c.merkle_root.to_hex(),
                    })
                })
                .collect();
            json!({
                "number": i + 1,
                "class": part.codec.to_string(),
                "blob": part.blob.to_hex(),
                "size": part.size,
                "k": part.codec.k,
                "m": part.codec.m,
                "block_size": part.codec.block_size,
                "root": part.root.to_hex(),
                "chunks": chunks,
            })
        })
        .collect();
    let encryption = m.encryption.as_ref().map(|e| match &e.mode {
        EncryptionMode::CustomerKey { .. } => "SSE-C (the customer's key)".to_owned(),
        EncryptionMode::ClusterKey { key_id } => format!("SSE-S3 (master key {key_id})"),
    });
    let inline = m.inline.as_ref().map(|inline| {
        json!({
            "bytes": inline.data.len(),
            "blake3": inline.hash.to_hex(),
            "intact": inline.verified().is_ok(),
        })
    });
    Ok(Json(json!({
        "bucket": record.bucket,
        "key": record.key,
        "version_id": record.version_id,
        "delete_marker": record.delete_marker,
        "size": m.size,
        "etag": m.etag,
        "content_type": m.content_type,
        "created_ms": m.created_ms,
        "root": m.integrity_root().to_hex(),
        "encryption": encryption,
        "inline": inline,
        "parts": parts,
    }))
    .into_response())
}

/// The gateway's request rates, bytes and latency over the last hour.
pub(crate) async fn traffic(State(state): State<ConsoleState>) -> Answer {
    let samples = state.history.samples();
    Ok(Json(json!({
        "every_secs": super::history::SAMPLE_EVERY.as_secs(),
        "samples": samples,
    })))
}
