//! The node's HTTP API (documented in docs/apis.md, "Storage node API").
//!
//! Every route requires the cluster secret. Chunk bodies are streams of
//! block frames (`cairn_core::frame`) in both directions; everything else is
//! JSON. File I/O runs on blocking threads, never on the reactor.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use cairn_core::frame::{self, Frame, FrameDecoder};
use cairn_core::ids::{ChunkId, parse_index};
use cairn_core::integrity::{BlockHash, MerkleRoot};
use cairn_node_api::wire::{ChunkInfo, ChunkListPage, NodeStatus, PutChunkResponse, VerifyReport};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::node::NodeShared;
use crate::store::{ChunkReader, ChunkStore, StoreError, verify_chunk};
use cairn_service::server::blocking;
use cairn_service::{ApiError, ErrorCode};

/// Frames buffered between the socket and the disk, per request.
const PIPELINE_DEPTH: usize = 4;
const DEFAULT_LIST_LIMIT: usize = 1000;
const MAX_LIST_LIMIT: usize = 10_000;

pub(crate) fn router(shared: Arc<NodeShared>) -> Router {
    Router::new()
        .route(
            "/chunks/{blob}/{index}",
            get(get_chunk)
                .put(put_chunk)
                .head(head_chunk)
                .delete(delete_chunk),
        )
        .route("/chunks/{blob}/{index}/verify", get(verify))
        .route("/chunks", get(list_chunks))
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            shared.secret.clone(),
            cairn_service::server::require_secret,
        ))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            record_request,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(shared)
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        let (status, code, block) = match &err {
            StoreError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
            StoreError::CorruptBlock { block, .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::CorruptBlock,
                Some(*block),
            ),
            StoreError::CorruptChunk { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::CorruptChunk,
                None,
            ),
            StoreError::HashMismatch { block } => {
                (StatusCode::BAD_REQUEST, ErrorCode::BadDigest, Some(*block))
            }
            StoreError::InvalidStream(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidStream, None)
            }
            StoreError::RangeOutOfBounds { .. } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::InvalidRange,
                None,
            ),
            StoreError::ModifiedSince { .. } => (StatusCode::CONFLICT, ErrorCode::Conflict, None),
            StoreError::NoSpace(_) => (
                StatusCode::INSUFFICIENT_STORAGE,
                ErrorCode::InsufficientStorage,
                None,
            ),
            StoreError::Io { .. } => {
                tracing::error!(error = %err, "storage I/O failure");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::IoError, None)
            }
        };
        ApiError::new(status, code, message).with_block(block)
    }
}

fn chunk_id(blob: &str, index: &str) -> Result<ChunkId, ApiError> {
    let blob = blob
        .parse()
        .map_err(|e: cairn_core::IdError| ApiError::bad_request(e.to_string()))?;
    let index = parse_index(index).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(ChunkId::new(blob, index))
}

// ---- middleware ----

async fn record_request(
    State(shared): State<Arc<NodeShared>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &shared.metrics;
    metrics
        .requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    metrics
        .request_seconds
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    response
}

// ---- chunk writes ----

#[derive(Debug, Deserialize)]
struct PutQuery {
    block_size: u32,
}

enum WriteStep {
    Block {
        index: u32,
        hash: BlockHash,
        data: Bytes,
    },
    Finish {
        block_count: u32,
        root: MerkleRoot,
    },
}

/// Streams block frames from the request body to a blocking writer. The
/// chunk becomes visible only after the end frame, fsync and rename; if the
/// client goes away first, the writer sees its channel close and discards
/// the temp file.
async fn put_chunk(
    State(shared): State<Arc<NodeShared>>,
    Path((blob, index)): Path<(String, String)>,
    Query(query): Query<PutQuery>,
    body: Body,
) -> Result<(StatusCode, Json<PutChunkResponse>), ApiError> {
    let chunk = chunk_id(&blob, &index)?;
    let block_size = query.block_size as usize;
    if block_size == 0 || block_size > shared.config.max_block_size {
        return Err(ApiError::bad_request(format!(
            "block_size must be 1..={}",
            shared.config.max_block_size
        )));
    }
    let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
    let store = shared.store.clone();
    let metrics = shared.metrics.clone();
    let span = tracing::info_span!("write_chunk", %chunk);
    let writer = tokio::task::spawn_blocking(move || {
        span.in_scope(|| write_chunk(&store, chunk, query.block_size, rx, &metrics))
    });

    let fed = feed_writer(body, block_size, &tx, &shared).await;
    drop(tx);
    let written = writer.await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        )
    })?;
    // The writer's own error explains a closed channel best; otherwise the
    // stream's.
    match (fed, written) {
        (
            _,
            Err(
                err @ (StoreError::HashMismatch { .. }
                | StoreError::NoSpace(_)
                | StoreError::Io { .. }),
            ),
        ) => Err(err.into()),
        (Err(err), _) => Err(err),
        (Ok(()), Ok(response)) => {
            shared.refresh_usage_gauges();
            Ok((StatusCode::CREATED, Json(response)))
        }
        (Ok(()), Err(err)) => Err(err.into()),
    }
}

async fn feed_writer(
    body: Body,
    block_size: usize,
    tx: &mpsc::Sender<WriteStep>,
    shared: &NodeShared,
) -> Result<(), ApiError> {
    let mut stream = body.into_data_stream();
    let mut decoder = FrameDecoder::new(block_size);
    let mut ended = false;
    while let Some(piece) = stream.next().await {
        let piece =
            piece.map_err(|e| ApiError::bad_request(format!("request body failed: {e}")))?;
        decoder.push(&piece);
        while let Some(frame) = decoder.next_frame().map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidStream,
                e.to_string(),
            )
        })? {
            if ended {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidStream,
                    "data after the end frame",
                ));
            }
            let step = match frame {
                Frame::Block { index, hash, data } => {
                    shared.metrics.bytes_in.inc_by(data.len() as u64);
                    WriteStep::Block { index, hash, data }
                }
                Frame::End {
                    block_count,
                    merkle_root,
                } => {
                    ended = true;
                    WriteStep::Finish {
                        block_count,
                        root: merkle_root,
                    }
                }
                Frame::Error { message, .. } => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidStream,
                        format!("writer aborted: {message}"),
                    ));
                }
            };
            if tx.send(step).await.is_err() {
                // The writer stopped early; its error is the answer.
                return Ok(());
            }
        }
    }
    decoder.finish().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidStream,
            e.to_string(),
        )
    })?;
    if !ended {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidStream,
            "stream ended without its end frame",
        ));
    }
    Ok(())
}

fn write_chunk(
    store: &ChunkStore,
    chunk: ChunkId,
    block_size: u32,
    mut rx: mpsc::Receiver<WriteStep>,
    metrics: &crate::metrics::NodeMetrics,
) -> Result<PutChunkResponse, StoreError> {
    let mut writer = store.create(chunk, block_size)?;
    while let Some(step) = rx.blocking_recv() {
        match step {
            WriteStep::Block { index, hash, data } => writer.write_block(index, hash, &data)?,
            WriteStep::Finish { block_count, root } => {
                let started = Instant::now();
                let response = writer.finish(block_count, root)?;
                metrics
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                return Ok(response);
            }
        }
    }
    Err(StoreError::InvalidStream(
        "upload ended before its end frame".into(),
    ))
}

// ---- chunk reads ----

#[derive(Debug, Deserialize)]
struct ReadQuery {
    /// First block to send (default 0).
    first: Option<u64>,
    /// Number of blocks (default: to the end).
    count: Option<u64>,
}

/// Streams verified blocks as frames. The first block is read and checked
/// before the response starts, so a corrupt single-block read is an HTTP
/// error naming the block; a later corrupt block ends the stream with an
/// error frame naming it. Corrupt bytes are never sent.
async fn get_chunk(
    State(shared): State<Arc<NodeShared>>,
    Path((blob, index)): Path<(String, String)>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let chunk = chunk_id(&blob, &index)?;
    let store = shared.store.clone();
    let metrics = shared.metrics.clone();
    let (ready_tx, ready_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(PIPELINE_DEPTH * 2);
    let span = tracing::info_span!("read_chunk", %chunk);
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| stream_blocks(&store, chunk, &query, ready_tx, &tx, &metrics))
    });
    let (info, first, count) = ready_rx
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "reader vanished",
            )
        })?
        .map_err(ApiError::from)?;
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut response = Response::new(body);
    chunk_headers(response.headers_mut(), &info);
    insert(response.headers_mut(), "x-cairn-first-block", first);
    insert(response.headers_mut(), "x-cairn-block-count", count);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-cairn-frames"),
    );
    Ok(response)
}

type ReadyResult = Result<(ChunkInfo, u64, u64), StoreError>;

fn stream_blocks(
    store: &ChunkStore,
    chunk: ChunkId,
    query: &ReadQuery,
    ready: oneshot::Sender<ReadyResult>,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    metrics: &crate::metrics::NodeMetrics,
) {
    let opened = store.open_chunk(chunk).and_then(|reader| {
        let first = query.first.unwrap_or(0);
        let count = query
            .count
            .unwrap_or_else(|| reader.meta().block_count().saturating_sub(first));
        reader.check_range(first, count)?;
        let head = if count > 0 {
            Some(reader.read_block_unverified(first)?)
        } else {
            None
        };
        Ok((reader, first, count, head))
    });
    let (reader, first, count, head) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    if ready.send(Ok((info(&reader), first, count))).is_err() {
        return;
    }
    let send = |bytes: Bytes| tx.blocking_send(Ok(bytes)).is_ok();
    let mut next = head;
    for index in first..first + count {
        // Sent with the stored hash, unchecked here: the receiver checks
        // every block against it (one hash per trust boundary).
        let block = match next.take() {
            Some(block) => Ok(block),
            None => reader.read_block_unverified(index),
        };
        match block {
            Ok((data, hash)) => {
                metrics.bytes_out.inc_by(data.len() as u64);
                let head = frame::block_head(index as u32, &hash, data.len());
                if !send(Bytes::copy_from_slice(&head)) || !send(data) {
                    return; // client went away
                }
            }
            Err(err) => {
                tracing::error!(%chunk, block = index, error = %err, "read failed mid-stream");
                let _ = tx.blocking_send(Err(std::io::Error::other(err.to_string())));
                return;
            }
        }
    }
    let _ = send(frame::end_frame(count as u32, &reader.meta().merkle_root));
}

fn info(reader: &ChunkReader) -> ChunkInfo {
    let meta = reader.meta();
    ChunkInfo {
        chunk: reader.chunk(),
        block_size: meta.header.block_size,
        blocks: meta.block_count(),
        data_len: meta.data_len,
        merkle_root: meta.merkle_root,
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name, value);
    }
}

fn chunk_headers(headers: &mut HeaderMap, info: &ChunkInfo) {
    insert(headers, "x-cairn-blocks", info.blocks);
    insert(headers, "x-cairn-block-size", info.block_size);
    insert(headers, "x-cairn-data-len", info.data_len);
    insert(headers, "x-cairn-merkle-root", info.merkle_root);
}

async fn head_chunk(
    State(shared): State<Arc<NodeShared>>,
    Path((blob, index)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let chunk = chunk_id(&blob, &index)?;
    let store = shared.store.clone();
    let info = blocking(move || store.open_chunk(chunk).map(|r| info(&r))).await?;
    let mut response = StatusCode::OK.into_response();
    chunk_headers(response.headers_mut(), &info);
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    /// Delete only a file last written at or before this time (ms since
    /// the epoch); a later one answers `conflict`.
    unmodified_since_ms: Option<u64>,
}

async fn delete_chunk(
    State(shared): State<Arc<NodeShared>>,
    Path((blob, index)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let chunk = chunk_id(&blob, &index)?;
    let store = shared.store.clone();
    let existed =
        blocking(move || store.delete_unless_modified_after(&chunk, query.unmodified_since_ms))
            .await?;
    shared.refresh_usage_gauges();
    if existed {
        tracing::info!(%chunk, "chunk deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(StoreError::NotFound(chunk).into())
    }
}

#[derive(Debug, Deserialize)]
struct VerifyQuery {
    #[serde(default)]
    leaves: bool,
}

/// Re-hashes a chunk from disk and returns its Merkle root (and, on
/// request, every leaf): only hashes cross the network.
async fn verify(
    State(shared): State<Arc<NodeShared>>,
    Path((blob, index)): Path<(String, String)>,
    Query(query): Query<VerifyQuery>,
) -> Result<Json<VerifyReport>, ApiError> {
    let chunk = chunk_id(&blob, &index)?;
    let path = shared.store.chunk_path(&chunk);
    let outcome = blocking(move || verify_chunk(&path, chunk)).await;
    let metrics = &shared.metrics;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            if err.body.code == ErrorCode::CorruptChunk {
                metrics
                    .verifications
                    .with_label_values(&["unreadable"])
                    .inc();
            }
            return Err(err);
        }
    };
    let clean = outcome.corrupt_blocks.is_empty() && outcome.trailer_intact;
    metrics
        .verifications
        .with_label_values(&[if clean { "intact" } else { "corrupt" }])
        .inc();
    metrics
        .corrupt_blocks
        .inc_by(outcome.corrupt_blocks.len() as u64);
    if !clean {
        tracing::warn!(%chunk, corrupt = ?outcome.corrupt_blocks, trailer_intact = outcome.trailer_intact, "verify found damage");
    }
    Ok(Json(VerifyReport {
        chunk,
        blocks: outcome.blocks,
        data_len: outcome.data_len,
        merkle_root: outcome.merkle_root,
        corrupt_blocks: outcome.corrupt_blocks,
        trailer_intact: outcome.trailer_intact,
        leaves: query.leaves.then_some(outcome.leaves),
    }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Return chunks after this one (`<blob>/<index>`).
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_chunks(
    State(shared): State<Arc<NodeShared>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ChunkListPage>, ApiError> {
    let after = query
        .after
        .as_deref()
        .map(str::parse::<ChunkId>)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_LIST_LIMIT)
        .clamp(1, MAX_LIST_LIMIT);
    let store = shared.store.clone();
    Ok(Json(blocking(move || store.list(after, limit)).await?))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn status(State(shared): State<Arc<NodeShared>>) -> Json<NodeStatus> {
    Json(shared.status())
}

async fn metrics(State(shared): State<Arc<NodeShared>>) -> impl IntoResponse {
    shared.refresh_usage_gauges();
    cairn_service::server::render_metrics(shared.metrics.registry())
}
