//! Scrub jobs: creation, cancellation, and the runner that walks a job's
//! scope object by object, verifies every chunk where it lives (at the
//! job's rate), records findings, queues repairs, and checkpoints its
//! cursor so that a restart resumes where it stopped.

use cairn_service::ErrorCode;
use cairn_service::tasks::{CancellationToken, pause};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::manifest::ChunkState;
use cairn_core::placement::NodeState;
use cairn_meta_api::client::{ListVersions, MetaError};
use cairn_meta_api::model::{BucketRecord, NodeRecord, VersionEntry, VersionSummary};

use crate::context::{Context, now_ms};
use crate::lifecycle;
use crate::model::{
    ChunkFinding, Cursor, JobKind, JobRecord, JobRun, JobSpec, JobState, MAX_FINDINGS,
    RepairReason, RepairTask,
};
use crate::rate::TokenBucket;
use crate::store::StoreError;
use crate::verify::{ChunkHealth, check_chunk};

/// Objects listed per catalogue page.
const PAGE: usize = 100;
/// A running job saves its checkpoint at least this often.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("no job {0}")]
    NoSuchJob(u64),
}

/// Creates a job; it runs as soon as the runner is free.
pub fn create_job(ctx: &Context, spec: JobSpec) -> Result<JobRecord, JobError> {
    let now = now_ms();
    let job = JobRecord {
        id: ctx.store.next_job_id()?,
        spec,
        state: JobState::Pending,
        created_ms: now,
        next_run_ms: now,
        runs: 0,
        current: None,
        last: None,
    };
    ctx.store.save_job(&job)?;
    Ok(job)
}

/// Cancels a job: a pending one at once, a running one at its next object.
pub fn cancel_job(ctx: &Context, id: u64) -> Result<JobRecord, JobError> {
    let mut job = ctx.store.job(id)?.ok_or(JobError::NoSuchJob(id))?;
    if job.state == JobState::Running {
        ctx.cancelled.lock().expect("cancel set").insert(id);
    }
    if matches!(job.state, JobState::Pending | JobState::Running) {
        job.state = JobState::Cancelled;
        ctx.store.save_job(&job)?;
    }
    Ok(job)
}

/// Runs due jobs until cancelled, one at a time: a running job left by a
/// restart first, then the highest priority due job. A job cut short by
/// cancellation resumes from its last checkpoint on the next start.
pub async fn run_jobs(ctx: Arc<Context>, token: CancellationToken) {
    loop {
        let wait = match next_job(&ctx) {
            Ok(Some(job)) => {
                let id = job.id;
                let Some(outcome) = token.run_until_cancelled(run_job(&ctx, job)).await else {
                    return;
                };
                match outcome {
                    Ok(()) => continue,
                    Err(err) => {
                        tracing::error!(job = id, error = %err, "scrub job failed; it will be retried");
                        ctx.config.poll_interval()
                    }
                }
            }
            Ok(None) => ctx.config.poll_interval().min(Duration::from_millis(250)),
            Err(err) => {
                tracing::error!(error = %err, "cannot read scrub jobs");
                ctx.config.poll_interval()
            }
        };
        if !pause(&token, wait).await {
            return;
        }
    }
}

fn next_job(ctx: &Context) -> Result<Option<JobRecord>, StoreError> {
    let now = now_ms();
    let jobs = ctx.store.jobs()?;
    if let Some(running) = jobs.iter().find(|j| j.state == JobState::Running) {
        return Ok(Some(running.clone()));
    }
    Ok(jobs
        .into_iter()
        .filter(|j| j.state == JobState::Pending && j.next_run_ms <= now)
        .max_by(|a, b| a.spec.priority.cmp(&b.spec.priority).then(b.id.cmp(&a.id))))
}

/// The buckets a scope covers, in name order.
async fn buckets_in_scope(ctx: &Context, spec: &JobSpec) -> Result<Vec<BucketRecord>, MetaError> {
    Ok(match &spec.scope.bucket {
        Some(bucket) => ctx.meta.head_bucket(bucket).await?.into_iter().collect(),
        None => ctx.meta.list_buckets().await?,
    })
}

/// Object versions in scope now (for progress and ETA).
async fn count_objects(
    ctx: &Context,
    spec: &JobSpec,
    buckets: &[BucketRecord],
) -> Result<u64, MetaError> {
    let mut total = 0;
    for bucket in buckets {
        if spec.kind == JobKind::Lifecycle && bucket.lifecycle.is_none() {
            continue;
        }
        let prefix = spec.scope.prefix.clone().unwrap_or_default();
        let mut pages = VersionPages::new(&bucket.name, &prefix, String::new());
        while let Some(entries) = pages.next(ctx).await? {
            total += entries.iter().filter(|e| is_object(e)).count() as u64;
        }
    }
    Ok(total)
}

/// Whether a listed version has a body to check (not a delete marker).
fn is_object(entry: &VersionEntry) -> bool {
    matches!(entry, VersionEntry::Version(v) if !v.delete_marker)
}

/// Pages through every version of a bucket under a prefix, from `cursor`
/// (a key, inclusive): scrubs and repair cover old versions too.
struct VersionPages {
    request: Option<ListVersions>,
}

impl VersionPages {
    fn new(bucket: &str, prefix: &str, cursor: String) -> Self {
        Self {
            request: Some(ListVersions {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                delimiter: None,
                cursor,
                after_version: None,
                max_keys: PAGE,
            }),
        }
    }

    async fn next(&mut self, ctx: &Context) -> Result<Option<Vec<VersionEntry>>, MetaError> {
        let Some(request) = self.request.take() else {
            return Ok(None);
        };
        let page = ctx.meta.list_versions(&request).await?;
        if let Some((key, version)) = page.next_marker.filter(|_| page.truncated) {
            self.request = Some(ListVersions {
                cursor: if version.is_some() {
                    key
                } else {
                    format!("{key}\0")
                },
                after_version: version,
                ..request
            });
        }
        Ok(Some(page.entries))
    }
}

#[tracing::instrument(skip_all, fields(job = job.id))]
async fn run_job(ctx: &Context, mut job: JobRecord) -> Result<(), JobError> {
    let buckets = buckets_in_scope(ctx, &job.spec).await?;
    let mut run = match job.current.take() {
        Some(mut run) => {
            run.resumed += 1;
            tracing::info!(cursor = ?run.cursor, checked = run.results.objects_checked, "resuming scrub job from its checkpoint");
            run
        }
        None => JobRun {
            started_ms: now_ms(),
            objects_total: count_objects(ctx, &job.spec, &buckets).await?,
            ..Default::default()
        },
    };
    job.state = JobState::Running;
    job.current = Some(run.clone());
    ctx.store.save_job(&job)?;
    tracing::info!(scope = ?job.spec.scope, rate = job.spec.rate_bytes_per_sec, objects = run.objects_total, "scrub job running");

    let mut bucket_rate = TokenBucket::new(
        job.spec.rate_bytes_per_sec,
        job.spec.burst(),
        Instant::now(),
    );
    let ops = ctx.config.lifecycle_ops_per_sec;
    let mut lifecycle_rate = TokenBucket::new(ops, ops, Instant::now());
    let prefix = job.spec.scope.prefix.clone().unwrap_or_default();
    let mut last_save = Instant::now();
    let start_bucket = run.cursor.as_ref().map(|c| c.bucket.clone());
    'buckets: for bucket in buckets
        .iter()
        .filter(|b| start_bucket.as_ref().is_none_or(|start| b.name >= *start))
    {
        if job.spec.kind == JobKind::Lifecycle {
            if bucket.lifecycle.is_none() {
                continue;
            }
            lifecycle::abort_uploads(ctx, bucket, &mut lifecycle_rate, &mut run.results.lifecycle)
                .await?;
        }
        // A checkpoint names the last key whose versions were all handled.
        let cursor = match &run.cursor {
            Some(c) if c.bucket == bucket.name => c
                .after_key
                .as_ref()
                .map(|k| format!("{k}\0"))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let mut pages = VersionPages::new(&bucket.name, &prefix, cursor);
        // One key's versions, newest first, handled together once the
        // listing moves past the key (or ends: the `None` after the last).
        let mut group: Vec<VersionSummary> = Vec::new();
        loop {
            let entries = match pages.next(ctx).await {
                Ok(Some(entries)) => entries,
                Ok(None) => Vec::new(),
                Err(err) if err.code() == Some(ErrorCode::NoSuchBucket) => Vec::new(),
                Err(err) => return Err(err.into()),
            };
            let end = entries.is_empty();
            let versions = entries.into_iter().filter_map(|entry| match entry {
                VersionEntry::Version(version) => Some(version),
                VersionEntry::Prefix { .. } => None,
            });
            for next in versions.map(Some).chain(end.then_some(None)) {
                let key_done = match &next {
                    Some(version) => group.first().is_some_and(|g| g.key != version.key),
                    None => !group.is_empty(),
                };
                if key_done {
                    if ctx.is_cancelled(job.id) {
                        break 'buckets;
                    }
                    handle_key(
                        ctx,
                        &job.spec,
                        bucket,
                        &group,
                        &mut run,
                        &mut bucket_rate,
                        &mut lifecycle_rate,
                    )
                    .await?;
                    run.cursor = Some(Cursor {
                        bucket: bucket.name.clone(),
                        after_key: Some(std::mem::take(&mut group).swap_remove(0).key),
                    });
                    if last_save.elapsed() >= CHECKPOINT_EVERY {
                        save_progress(ctx, &mut job, &run)?;
                        last_save = Instant::now();
                    }
                }
                group.extend(next);
            }
            if end {
                break;
            }
        }
    }

    // Finished (or cancelled): keep the run as the job's last.
    let cancelled = ctx.cancelled.lock().expect("cancel set").remove(&job.id);
    let mut job = ctx.store.job(job.id)?.unwrap_or(job);
    run.finished_ms = Some(now_ms());
    run.cursor = None;
    tracing::info!(results = ?run.results, ms = run.duration_ms(now_ms()), cancelled, "scrub job run ended");
    job.runs += 1;
    job.current = None;
    job.last = Some(run);
    job.state = match (
        cancelled || job.state == JobState::Cancelled,
        job.spec.every_secs,
    ) {
        (true, _) => JobState::Cancelled,
        (false, Some(every)) => {
            job.next_run_ms = now_ms() + every * 1000;
            JobState::Pending
        }
        (false, None) => JobState::Done,
    };
    ctx.store.save_job(&job)?;
    Ok(())
}

/// What a job does with one key's versions (newest first): a scrub checks
/// every version that has a body; a lifecycle job applies the rules.
async fn handle_key(
    ctx: &Context,
    spec: &JobSpec,
    bucket: &BucketRecord,
    versions: &[VersionSummary],
    run: &mut JobRun,
    bytes_rate: &mut TokenBucket,
    ops_rate: &mut TokenBucket,
) -> Result<(), JobError> {
    match spec.kind {
        JobKind::Scrub => {
            for version in versions.iter().filter(|v| !v.delete_marker) {
                check_object(
                    ctx,
                    run,
                    bytes_rate,
                    &bucket.name,
                    &version.key,
                    (!version.is_latest).then_some(version.version_id.as_str()),
                )
                .await?;
            }
        }
        JobKind::Lifecycle => {
            run.results.objects_checked += versions.len() as u64;
            lifecycle::apply_rules(ctx, bucket, versions, ops_rate, &mut run.results.lifecycle)
                .await?;
        }
    }
    Ok(())
}

fn save_progress(ctx: &Context, job: &mut JobRecord, run: &JobRun) -> Result<(), StoreError> {
    // A cancel from the API must not be overwritten by the runner.
    if let Some(stored) = ctx.store.job(job.id)?
        && stored.state == JobState::Cancelled
    {
        job.state = JobState::Cancelled;
    }
    job.current = Some(run.clone());
    ctx.store.save_job(job)
}

/// Verifies every chunk of one version of `bucket/key` (`None`: the
/// current one).
async fn check_object(
    ctx: &Context,
    run: &mut JobRun,
    rate: &mut TokenBucket,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<(), JobError> {
    let record = match version_id {
        Some(version) => ctx.meta.get_version(bucket, key, Some(version)).await?,
        None => ctx.meta.get_object(bucket, key).await?,
    };
    let Some(record) = record.filter(|r| !r.delete_marker) else {
        return Ok(()); // deleted since it was listed
    };
    if let Some(inline) = &record.manifest.inline {
        run.results.inline_checked += 1;
        if inline.verified().is_err() {
            tracing::error!(bucket, key, "inline body does not match its hash");
            if run.results.inline_corrupt.len() < MAX_FINDINGS {
                run.results.inline_corrupt.push(format!("{bucket}/{key}"));
            }
        }
    }
    let nodes = ctx.nodes().await?;
    for part in &record.manifest.parts {
        let chunk_bytes = part.layout().chunk_len();
        let mut surviving = part.chunks.len() as u8;
        let mut findings: Vec<(u8, RepairReason, ChunkFinding)> = Vec::new();
        for desc in &part.chunks {
            if desc.state == ChunkState::Stored {
                rate.take(chunk_bytes).await;
            }
            let health = check_chunk(ctx, &nodes, part, desc).await;
            let finding = ChunkFinding {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                blob: part.blob,
                index: desc.index,
                node: desc.node.clone(),
                blocks: Vec::new(),
            };
            if desc.state == ChunkState::Stored && !matches!(health, ChunkHealth::Unreachable(_)) {
                run.results.bytes_checked += chunk_bytes;
                ctx.metrics.bytes_verified.inc_by(chunk_bytes);
            }
            let results = &mut run.results;
            match health {
                ChunkHealth::Healthy => {
                    results.chunks_healthy += 1;
                    ctx.metrics
                        .chunks_verified
                        .with_label_values(&["healthy"])
                        .inc();
                }
                ChunkHealth::Corrupt(blocks) => {
                    tracing::warn!(bucket, key, blob = %part.blob, index = desc.index, node = %desc.node, ?blocks, "corrupt chunk");
                    results.chunks_corrupt += 1;
                    ctx.metrics
                        .chunks_verified
                        .with_label_values(&["corrupt"])
                        .inc();
                    surviving -= 1;
                    let finding = ChunkFinding {
                        blocks: blocks.clone(),
                        ..finding
                    };
                    if results.corrupt.len() < MAX_FINDINGS {
                        results.corrupt.push(finding.clone());
                    }
                    findings.push((desc.index, RepairReason::Corrupt { blocks }, finding));
                }
                ChunkHealth::Missing => {
                    tracing::warn!(bucket, key, blob = %part.blob, index = desc.index, node = %desc.node, "missing chunk");
                    results.chunks_missing += 1;
                    ctx.metrics
                        .chunks_verified
                        .with_label_values(&["missing"])
                        .inc();
                    surviving -= 1;
                    if results.missing.len() < MAX_FINDINGS {
                        results.missing.push(finding.clone());
                    }
                    findings.push((desc.index, RepairReason::Missing, finding));
                }
                ChunkHealth::Unreachable(why) => {
                    tracing::debug!(node = %desc.node, why, "chunk unreachable");
                    results.chunks_unreachable += 1;
                    ctx.metrics
                        .chunks_verified
                        .with_label_values(&["unreachable"])
                        .inc();
                    if node_is_down(&nodes, &desc.node) {
                        surviving -= 1;
                    }
                }
            }
        }
        for (index, reason, finding) in findings {
            let task = RepairTask {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: version_id.map(str::to_owned),
                blob: part.blob,
                index,
                node: finding.node,
                reason,
                surviving,
                queued_ms: now_ms(),
                attempts: 0,
                not_before_ms: 0,
            };
            if ctx.store.enqueue(&task, ctx.config.repair_queue_limit)? {
                run.results.repairs_queued += 1;
            }
        }
    }
    run.results.objects_checked += 1;
    Ok(())
}

fn node_is_down(nodes: &[NodeRecord], node: &cairn_core::ids::NodeId) -> bool {
    nodes
        .iter()
        .find(|n| &n.id == node)
        .is_none_or(|n| n.state == NodeState::Down)
}
