//! Object lock: the bucket's configuration (Put/GetObjectLockConfiguration),
//! per-version retention and legal hold (Put/GetObjectRetention,
//! Put/GetObjectLegalHold) and the lock a new version is written with. The
//! gateway only translates: the catalogue's shard command refuses every
//! removal of a locked version, so no gateway path can bypass a lock.

use std::time::{Duration, UNIX_EPOCH};

use cairn_meta_api::model::{
    BucketRecord, DefaultRetention, ObjectLock, ObjectRecord, Retention, RetentionMode,
    VersionChange, VersionLock,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Cairn, attrs, errors};

fn ms_of(ts: &Timestamp) -> u64 {
    let secs = time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos() / 1_000_000;
    u64::try_from(secs).unwrap_or(0)
}

fn timestamp_of(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn mode_of(value: &str) -> S3Result<RetentionMode> {
    match value {
        ObjectLockRetentionMode::GOVERNANCE => Ok(RetentionMode::Governance),
        ObjectLockRetentionMode::COMPLIANCE => Ok(RetentionMode::Compliance),
        other => Err(s3_error!(MalformedXML, "unknown retention mode {other}")),
    }
}

fn mode_name(mode: RetentionMode) -> &'static str {
    match mode {
        RetentionMode::Governance => ObjectLockRetentionMode::GOVERNANCE,
        RetentionMode::Compliance => ObjectLockRetentionMode::COMPLIANCE,
    }
}

/// The lock a new version in `bucket` is written with: the request's
/// `x-amz-object-lock-*` headers, else the bucket's default retention.
pub(super) fn new_version_lock(
    bucket: &BucketRecord,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<VersionLock> {
    let asked = mode.is_some() || until.is_some() || legal_hold.is_some();
    let Some(config) = &bucket.object_lock else {
        if asked {
            return Err(s3_error!(
                InvalidRequest,
                "Bucket is missing Object Lock Configuration"
            ));
        }
        return Ok(VersionLock::default());
    };
    let now = attrs::now_ms();
    let retention = match (mode, until) {
        (Some(mode), Some(until)) => {
            let until_ms = ms_of(until);
            if until_ms <= now {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Some(Retention {
                mode: mode_of(mode.as_str())?,
                until_ms,
            })
        }
        (None, None) => config.default_retention.map(|d| d.from(now)),
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date must both be supplied"
            ));
        }
    };
    Ok(VersionLock {
        retention,
        legal_hold: legal_hold.is_some_and(|h| h.as_str() == ObjectLockLegalHoldStatus::ON),
    })
}

/// The lock a write request names for its new version in `bucket` (its
/// `object_lock_*` fields; PutObject, CopyObject, CreateMultipartUpload).
macro_rules! requested_lock {
    ($bucket:expr, $input:expr) => {
        super::lock::new_version_lock(
            $bucket,
            $input.object_lock_mode.as_ref(),
            $input.object_lock_retain_until_date.as_ref(),
            $input.object_lock_legal_hold_status.as_ref(),
        )
    };
}
pub(super) use requested_lock;

/// The lock fields a GET or HEAD reports.
pub(super) fn reported(
    record: &ObjectRecord,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    let retention = record.retention;
    (
        retention.map(|r| ObjectLockMode::from(mode_name(r.mode).to_owned())),
        retention.map(|r| timestamp_of(r.until_ms)),
        record
            .legal_hold
            .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON)),
    )
}

impl Cairn {
    pub(super) async fn put_object_lock_configuration_op(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let input = req.input;
        let config = input
            .object_lock_configuration
            .ok_or_else(|| s3_error!(MalformedXML, "missing ObjectLockConfiguration"))?;
        if config
            .object_lock_enabled
            .as_ref()
            .is_none_or(|e| e.as_str() != ObjectLockEnabled::ENABLED)
        {
            return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
        }
        let default_retention = match config.rule.and_then(|r| r.default_retention) {
            None => None,
            Some(d) => {
                let mode = mode_of(
                    d.mode
                        .as_ref()
                        .ok_or_else(|| s3_error!(MalformedXML, "a default retention needs a mode"))?
                        .as_str(),
                )?;
                let positive = |n: i32| {
                    u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                        let mut err = s3s::S3Error::with_message(
                            s3s::S3ErrorCode::Custom("InvalidRetentionPeriod".into()),
                            "Default retention period must be a positive integer value",
                        );
                        err.set_status_code(axum::http::StatusCode::BAD_REQUEST);
                        err
                    })
                };
                let (days, years) = match (d.days, d.years) {
                    (Some(days), None) => (Some(positive(days)?), None),
                    (None, Some(years)) => (None, Some(positive(years)?)),
                    _ => {
                        return Err(s3_error!(
                            MalformedXML,
                            "a default retention names either Days or Years"
                        ));
                    }
                };
                Some(DefaultRetention { mode, days, years })
            }
        };
        self.require_bucket(&input.bucket).await?;
        self.backend
            .meta
            .set_object_lock(&input.bucket, ObjectLock { default_retention })
            .await
            .map_err(errors::meta)?;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(super) async fn get_object_lock_configuration_op(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let Some(config) = bucket.object_lock else {
            return Err(s3_error!(
                ObjectLockConfigurationNotFoundError,
                "Object Lock configuration does not exist for this bucket"
            ));
        };
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(
                    ObjectLockEnabled::ENABLED,
                )),
                rule: config.default_retention.map(|d| ObjectLockRule {
                    default_retention: Some(s3s::dto::DefaultRetention {
                        mode: Some(ObjectLockRetentionMode::from(mode_name(d.mode).to_owned())),
                        days: d.days.map(|n| n as i32),
                        years: d.years.map(|n| n as i32),
                    }),
                }),
            }),
        }))
    }

    pub(super) async fn put_object_retention_op(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let input = req.input;
        self.require_lock(&input.bucket).await?;
        let retention = match input.retention {
            Some(ObjectLockRetention {
                mode: Some(mode),
                retain_until_date: Some(until),
            }) => Some(Retention {
                mode: mode_of(mode.as_str())?,
                until_ms: ms_of(&until),
            }),
            Some(ObjectLockRetention {
                mode: None,
                retain_until_date: None,
            })
            | None => None,
            Some(_) => {
                return Err(s3_error!(
                    MalformedXML,
                    "a retention needs both a mode and a retain-until date"
                ));
            }
        };
        self.change_version(
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            VersionChange::Retention {
                retention,
                bypass_governance: input.bypass_governance_retention.unwrap_or(false),
            },
        )
        .await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn get_object_retention_op(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let input = req.input;
        self.require_lock(&input.bucket).await?;
        let record = self
            .version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let Some(retention) = record.retention else {
            return Err(s3_error!(
                NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration"
            ));
        };
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(
                    mode_name(retention.mode).to_owned(),
                )),
                retain_until_date: Some(timestamp_of(retention.until_ms)),
            }),
        }))
    }

    pub(super) async fn put_object_legal_hold_op(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let input = req.input;
        self.require_lock(&input.bucket).await?;
        let on = match input.legal_hold.and_then(|h| h.status) {
            Some(status) if status.as_str() == ObjectLockLegalHoldStatus::ON => true,
            Some(status) if status.as_str() == ObjectLockLegalHoldStatus::OFF => false,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "legal hold status must be ON or OFF"
                ));
            }
        };
        self.change_version(
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            VersionChange::LegalHold(on),
        )
        .await?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn get_object_legal_hold_op(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let input = req.input;
        self.require_lock(&input.bucket).await?;
        let record = self
            .version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let status = if record.legal_hold {
            ObjectLockLegalHoldStatus::ON
        } else {
            ObjectLockLegalHoldStatus::OFF
        };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(ObjectLockLegalHoldStatus::from_static(status)),
            }),
        }))
    }

    /// Retention and legal holds exist only in buckets with object lock
    /// (S3: 400 InvalidRequest).
    async fn require_lock(&self, bucket: &str) -> S3Result<BucketRecord> {
        let record = self.require_bucket(bucket).await?;
        if record.object_lock.is_none() {
            return Err(s3_error!(
                InvalidRequest,
                "Bucket is missing Object Lock Configuration"
            ));
        }
        Ok(record)
    }
}
