//! Lifecycle rules, carried out by the scrubber's lifecycle job (a job of
//! kind `Lifecycle`, run on the scrub job machinery: scheduled, rate
//! limited, checkpointed). For each key the job walks, it looks at all of
//! the key's versions at once (newest first) and, as S3 does:
//! - expires the current version `expiration_days` after it was written
//!   (rounded up to the next day boundary, as S3 rounds to midnight UTC)
//!   or from `expiration_date_ms` (a delete marker in a versioned bucket);
//! - removes noncurrent versions `noncurrent_days` after they became
//!   noncurrent (when the next newer version was written), keeping the
//!   `newer_noncurrent_versions` newest;
//! - removes a delete marker left as the key's only version (at once with
//!   `ExpiredObjectDeleteMarker`, `Days` after it was written with an
//!   expiration in days);
//! - aborts multipart uploads `abort_incomplete_upload_days` after they
//!   started.
//!
//! Every removal is a catalogue command with a precondition on what the
//! job saw, so a write racing the job wins; a locked version is refused by
//! the catalogue and counted.

use std::collections::BTreeMap;

use cairn_meta_api::client::{MetaError, VersionDelete};
use cairn_meta_api::model::{BucketRecord, LifecycleRule, Precondition, VersionSummary};
use cairn_service::ErrorCode;

use crate::context::{Context, now_ms};
use crate::jobs::JobError;
use crate::model::{JobKind, JobSpec, JobState, LifecycleCounts};
use crate::rate::TokenBucket;

/// Creates the scheduled lifecycle job unless one exists.
pub fn ensure_job(ctx: &Context) -> Result<(), JobError> {
    let exists = ctx
        .store
        .jobs()?
        .iter()
        .any(|j| j.spec.kind == JobKind::Lifecycle && j.state != JobState::Cancelled);
    if !exists {
        let job = crate::jobs::create_job(
            ctx,
            JobSpec {
                kind: JobKind::Lifecycle,
                every_secs: Some(ctx.config.lifecycle_every_secs.max(1)),
                ..Default::default()
            },
        )?;
        tracing::info!(
            job = job.id,
            every_secs = ctx.config.lifecycle_every_secs,
            "lifecycle job scheduled"
        );
    }
    Ok(())
}

/// Aborts the bucket's uploads older than a matching rule allows.
pub async fn abort_uploads(
    ctx: &Context,
    bucket: &BucketRecord,
    rate: &mut TokenBucket,
    counts: &mut LifecycleCounts,
) -> Result<(), MetaError> {
    let Some(lifecycle) = &bucket.lifecycle else {
        return Ok(());
    };
    let day = ctx.config.lifecycle_day_ms;
    let now = now_ms();
    let no_tags = BTreeMap::new();
    let uploads = ctx.meta.list_uploads(&bucket.name, "", usize::MAX).await?;
    for upload in uploads {
        let due = lifecycle.rules.iter().any(|rule| {
            rule.matches(&upload.key, &no_tags, None)
                && rule.abort_incomplete_upload_days.is_some_and(|days| {
                    now.saturating_sub(upload.created_ms) >= u64::from(days) * day
                })
        });
        if due {
            rate.take(1).await;
            match ctx
                .meta
                .abort_upload(&bucket.name, &upload.key, &upload.upload_id)
                .await
            {
                Ok(()) => {
                    counts.aborted_uploads += 1;
                    ctx.metrics
                        .lifecycle
                        .with_label_values(&["abort_upload"])
                        .inc();
                }
                Err(err) if err.code() == Some(ErrorCode::NoSuchUpload) => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

/// Applies the bucket's rules to one key's versions (newest first).
pub async fn apply_rules(
    ctx: &Context,
    bucket: &BucketRecord,
    versions: &[VersionSummary],
    rate: &mut TokenBucket,
    counts: &mut LifecycleCounts,
) -> Result<(), MetaError> {
    let (Some(lifecycle), Some(latest)) = (&bucket.lifecycle, versions.first()) else {
        return Ok(());
    };
    let rules: Vec<&LifecycleRule> = lifecycle
        .rules
        .iter()
        .filter(|r| r.enabled && latest.key.starts_with(&r.prefix))
        .collect();
    if rules.is_empty() {
        return Ok(());
    }
    let day = ctx.config.lifecycle_day_ms;
    let now = now_ms();
    let filters_tags = rules.iter().any(|r| !r.tags.is_empty());
    let mut removed = vec![false; versions.len()];

    for (i, version) in versions.iter().enumerate() {
        let tags = if filters_tags && !version.delete_marker {
            ctx.meta
                .get_version(&bucket.name, &version.key, Some(&version.version_id))
                .await?
                .map(|r| r.manifest.tags)
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let size = (!version.delete_marker).then_some(version.size);
        let matching = rules
            .iter()
            .filter(|r| r.matches(&version.key, &tags, size));
        let due = if i == 0 {
            // The current version: expiration.
            !version.delete_marker
                && matching.clone().any(|r| {
                    r.current_expiry_ms(version.modified_ms, day)
                        .is_some_and(|at| now >= at)
                })
        } else {
            // Noncurrent since the next newer version was written; the
            // newest `newer_noncurrent_versions` are kept.
            let since = versions[i - 1].modified_ms;
            let newer_noncurrent = (i - 1) as u64;
            matching.clone().any(|r| {
                r.noncurrent_days.is_some_and(|d| {
                    now.saturating_sub(since) >= u64::from(d) * day
                        && r.newer_noncurrent_versions
                            .is_none_or(|keep| newer_noncurrent >= u64::from(keep))
                })
            })
        };
        if !due {
            continue;
        }
        rate.take(1).await;
        let delete = if i == 0 {
            // Expiring the current version is a plain delete (a marker when
            // versioned), only if it is still the one the job saw.
            VersionDelete {
                precondition: Precondition::SequenceIs(version.sequence),
                versioning: bucket.versioning,
                version_id: None,
                bypass_governance: false,
            }
        } else {
            VersionDelete {
                version_id: Some(version.version_id.clone()),
                ..Default::default()
            }
        };
        match ctx
            .meta
            .delete_version(&bucket.name, &version.key, delete)
            .await
        {
            Ok(_) if i == 0 => {
                counts.expired_current += 1;
                ctx.metrics
                    .lifecycle
                    .with_label_values(&["expire_current"])
                    .inc();
            }
            Ok(_) => {
                removed[i] = true;
                counts.expired_noncurrent += 1;
                ctx.metrics
                    .lifecycle
                    .with_label_values(&["expire_noncurrent"])
                    .inc();
            }
            Err(err) if err.code() == Some(ErrorCode::AccessDenied) => {
                counts.locked += 1;
                ctx.metrics.lifecycle.with_label_values(&["locked"]).inc();
            }
            // Changed since it was listed: the next run sees the new state.
            Err(err)
                if matches!(
                    err.code(),
                    Some(ErrorCode::PreconditionFailed | ErrorCode::NoSuchKey)
                ) => {}
            Err(err) => return Err(err),
        }
    }

    // A delete marker that is (now) the key's only version.
    let alone = versions
        .iter()
        .skip(1)
        .zip(&removed[1..])
        .all(|(_, gone)| *gone);
    // With ExpiredObjectDeleteMarker at once; with an Expiration in days,
    // once the marker is that old (S3 removes expired markers for such
    // rules too).
    let marker_age = now.saturating_sub(latest.modified_ms);
    if latest.delete_marker
        && alone
        && rules.iter().any(|r| {
            r.matches(&latest.key, &BTreeMap::new(), None)
                && (r.expired_object_delete_marker
                    || r.expiration_days
                        .is_some_and(|d| marker_age >= u64::from(d) * day))
        })
    {
        rate.take(1).await;
        let delete = VersionDelete {
            version_id: Some(latest.version_id.clone()),
            ..Default::default()
        };
        ctx.meta
            .delete_version(&bucket.name, &latest.key, delete)
            .await?;
        counts.removed_delete_markers += 1;
        ctx.metrics
            .lifecycle
            .with_label_values(&["remove_delete_marker"])
            .inc();
    }
    Ok(())
}
