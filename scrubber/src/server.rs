//! The scrubber's admin API (cluster secret required on every route):
//!
//! | method, path | body / answer |
//! | --- | --- |
//! | `POST /scrub/jobs` | `JobSpec` → `JobRecord` (201) |
//! | `GET /scrub/jobs` | `[JobRecord]` |
//! | `GET /scrub/jobs/{id}` | `JobRecord` |
//! | `POST /scrub/jobs/{id}/cancel` | `JobRecord` |
//! | `GET /repair/status` | `RepairStatus` |
//! | `POST /rebalance` | plans a rebalance, queues its moves → `RebalancePlan` |
//! | `GET /rebalance` | `RebalanceStatus` (moves still queued) |
//! | `POST /rebalance/cancel` | drops the queued moves → `RebalanceStatus` (those left) |
//! | `GET /metrics`, `GET /health` | Prometheus text, `ok` |

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use cairn_service::server::{render_metrics, require_secret};
use cairn_service::{ApiError, ClusterSecret, ErrorCode};

use crate::context::Context;
use crate::jobs::{JobError, cancel_job, create_job};
use crate::model::{
    JobRecord, JobSpec, RebalancePlan, RebalanceStatus, RepairReason, RepairStatus,
};
use crate::store::StoreError;

pub fn router(ctx: Arc<Context>, secret: ClusterSecret) -> Router {
    Router::new()
        .route("/scrub/jobs", post(create).get(list))
        .route("/scrub/jobs/{id}", get(show))
        .route("/scrub/jobs/{id}/cancel", post(cancel))
        .route("/repair/status", get(repair_status))
        .route("/rebalance", post(rebalance).get(rebalance_status))
        .route("/rebalance/cancel", post(cancel_rebalance))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(secret, require_secret))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(ctx)
}

fn store_error(err: StoreError) -> ApiError {
    ApiError::internal(err.to_string())
}

fn job_error(err: JobError) -> ApiError {
    match err {
        JobError::NoSuchJob(id) => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoSuchJob,
            format!("no scrub job {id}"),
        ),
        other => ApiError::internal(other.to_string()),
    }
}

async fn create(
    State(ctx): State<Arc<Context>>,
    Json(spec): Json<JobSpec>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    if spec.scope.prefix.is_some() && spec.scope.bucket.is_none() {
        return Err(ApiError::bad_request("a prefix needs a bucket"));
    }
    if spec.every_secs == Some(0) {
        return Err(ApiError::bad_request("every_secs must be positive"));
    }
    let job = create_job(&ctx, spec).map_err(job_error)?;
    tracing::info!(job = job.id, spec = ?job.spec, "scrub job created");
    Ok((StatusCode::CREATED, Json(job)))
}

async fn list(State(ctx): State<Arc<Context>>) -> Result<Json<Vec<JobRecord>>, ApiError> {
    ctx.store.jobs().map(Json).map_err(store_error)
}

async fn show(
    State(ctx): State<Arc<Context>>,
    Path(id): Path<u64>,
) -> Result<Json<JobRecord>, ApiError> {
    ctx.store
        .job(id)
        .map_err(store_error)?
        .map(Json)
        .ok_or_else(|| job_error(JobError::NoSuchJob(id)))
}

async fn cancel(
    State(ctx): State<Arc<Context>>,
    Path(id): Path<u64>,
) -> Result<Json<JobRecord>, ApiError> {
    cancel_job(&ctx, id).map(Json).map_err(job_error)
}

async fn rebalance(State(ctx): State<Arc<Context>>) -> Result<Json<RebalancePlan>, ApiError> {
    crate::rebalance::plan_and_queue(&ctx)
        .await
        .map(Json)
        .map_err(|e| ApiError::internal(format!("rebalance: {e}")))
}

async fn rebalance_status(State(ctx): State<Arc<Context>>) -> Json<RebalanceStatus> {
    Json(RebalanceStatus {
        queued: ctx.store.queue_counts().rebalance as u64,
    })
}

async fn cancel_rebalance(
    State(ctx): State<Arc<Context>>,
) -> Result<Json<RebalanceStatus>, ApiError> {
    let removed = ctx
        .store
        .remove_reason(&RepairReason::Rebalance)
        .map_err(store_error)?;
    tracing::info!(removed, "rebalance cancelled");
    Ok(rebalance_status(State(ctx)).await)
}

async fn repair_status(State(ctx): State<Arc<Context>>) -> Result<Json<RepairStatus>, ApiError> {
    let totals = ctx.store.totals().map_err(store_error)?;
    let in_progress = ctx.in_progress.load(Ordering::Relaxed);
    let queue = ctx.store.queue_len().map_err(store_error)? as u64;
    Ok(Json(RepairStatus {
        // Tasks being rebuilt stay in the queue until done.
        queued: queue.saturating_sub(in_progress),
        in_progress,
        repaired_chunks: totals.repaired_chunks,
        failures: totals.failures,
        obsolete: totals.obsolete,
        bytes_read: totals.bytes_read,
        bytes_rebuilt: totals.bytes_rebuilt,
        read_amplification: totals.read_amplification(),
        cross_rack_bytes: totals.cross_rack_bytes,
        repair_ms: totals.repair_ms,
        lost_nodes: ctx.store.lost_nodes().map_err(store_error)?,
        garbage_deleted: ctx.store.garbage_deleted().map_err(store_error)?,
        by_class: totals.by_class.clone(),
        queued_by_reason: ctx
            .store
            .queue_counts()
            .by_reason()
            .into_iter()
            .map(|(reason, count)| (reason.to_owned(), count as u64))
            .collect(),
    }))
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    render_metrics(ctx.metrics.registry())
}
