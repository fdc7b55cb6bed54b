//! Put/Get/DeleteBucketLifecycleConfiguration: the rules are stored in
//! the bucket record; the scrubber's lifecycle job carries them out.
//! Transitions (there is one storage class) are refused with
//! `NotImplemented`, never ignored.

use std::collections::{BTreeMap, BTreeSet};

use cairn_core::manifest::ObjectManifest;
use cairn_meta_api::model::{BucketRecord, BucketSetting, Lifecycle, LifecycleRule as Rule};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Cairn;

/// S3's limit on rules per configuration.
const MAX_RULES: usize = 1000;

fn positive(n: i32, what: &str) -> S3Result<u32> {
    u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "'{what}' for a lifecycle rule must be a positive integer"
        )
    })
}

fn ms_of(ts: &Timestamp) -> u64 {
    let ms = time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).unwrap_or(0)
}

fn tags_of(set: Option<TagSet>) -> S3Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for tag in set.unwrap_or_default() {
        let (Some(k), Some(v)) = (tag.key, tag.value) else {
            return Err(s3_error!(MalformedXML, "a tag needs a key and a value"));
        };
        tags.insert(k, v);
    }
    Ok(tags)
}

fn rule_of(rule: LifecycleRule) -> S3Result<Rule> {
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule
            .noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "lifecycle transitions are not supported (Cairn has one storage class)"
        ));
    }
    let size = |n: Option<i64>| n.map(|n| u64::try_from(n).unwrap_or(0));
    let (prefix, tags, greater, less) = match rule.filter {
        Some(filter) => match filter.and {
            Some(and) => (
                and.prefix.unwrap_or_default(),
                tags_of(and.tags)?,
                size(and.object_size_greater_than),
                size(and.object_size_less_than),
            ),
            None => (
                filter.prefix.unwrap_or_default(),
                tags_of(filter.tag.map(|t| vec![t]))?,
                size(filter.object_size_greater_than),
                size(filter.object_size_less_than),
            ),
        },
        None => (
            rule.prefix.clone().unwrap_or_default(),
            BTreeMap::new(),
            None,
            None,
        ),
    };
    if let (Some(min), Some(max)) = (greater, less)
        && min >= max
    {
        return Err(s3_error!(
            InvalidArgument,
            "ObjectSizeGreaterThan must be less than ObjectSizeLessThan"
        ));
    }
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        other => return Err(s3_error!(MalformedXML, "invalid rule status {other:?}")),
    };
    let mut out = Rule {
        // S3 names a rule that has no ID.
        id: Some(
            rule.id
                .unwrap_or_else(|| cairn_core::ids::BlobId::random().to_hex()),
        ),
        enabled,
        legacy_prefix: rule.prefix.is_some(),
        prefix,
        tags,
        size_greater_than: greater,
        size_less_than: less,
        ..Default::default()
    };
    if let Some(expiration) = rule.expiration {
        out.expiration_days = expiration.days.map(|d| positive(d, "Days")).transpose()?;
        out.expiration_date_ms = expiration.date.as_ref().map(ms_of);
        if out
            .expiration_date_ms
            .is_some_and(|ms| ms % 86_400_000 != 0)
        {
            return Err(s3_error!(InvalidArgument, "'Date' must be at midnight GMT"));
        }
        out.expired_object_delete_marker = expiration.expired_object_delete_marker.unwrap_or(false);
        let set = [
            out.expiration_days.is_some(),
            out.expiration_date_ms.is_some(),
            expiration.expired_object_delete_marker.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(s3_error!(
                MalformedXML,
                "an Expiration names exactly one of Days, Date and ExpiredObjectDeleteMarker"
            ));
        }
        if out.expired_object_delete_marker && !out.tags.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "ExpiredObjectDeleteMarker cannot be specified with tags"
            ));
        }
    }
    if let Some(noncurrent) = rule.noncurrent_version_expiration {
        out.noncurrent_days = Some(positive(
            noncurrent.noncurrent_days.ok_or_else(|| {
                s3_error!(
                    MalformedXML,
                    "NoncurrentVersionExpiration needs NoncurrentDays"
                )
            })?,
            "NoncurrentDays",
        )?);
        out.newer_noncurrent_versions = noncurrent
            .newer_noncurrent_versions
            .map(|n| positive(n, "NewerNoncurrentVersions"))
            .transpose()?;
    }
    if let Some(abort) = rule.abort_incomplete_multipart_upload {
        if !out.tags.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "AbortIncompleteMultipartUpload cannot be specified with tags"
            ));
        }
        out.abort_incomplete_upload_days = abort
            .days_after_initiation
            .map(|d| positive(d, "DaysAfterInitiation"))
            .transpose()?;
    }
    let acts = out.expiration_days.is_some()
        || out.expiration_date_ms.is_some()
        || out.expired_object_delete_marker
        || out.noncurrent_days.is_some()
        || out.abort_incomplete_upload_days.is_some();
    if !acts {
        return Err(s3_error!(
            MalformedXML,
            "a lifecycle rule needs at least one action"
        ));
    }
    Ok(out)
}

fn rule_to_dto(rule: &Rule) -> LifecycleRule {
    let sized = |n: Option<u64>| n.map(|n| n as i64);
    let filter = if rule.tags.is_empty()
        && rule.size_greater_than.is_none()
        && rule.size_less_than.is_none()
    {
        LifecycleRuleFilter {
            prefix: Some(rule.prefix.clone()),
            ..Default::default()
        }
    } else if rule.tags.is_empty() && rule.prefix.is_empty() {
        LifecycleRuleFilter {
            object_size_greater_than: sized(rule.size_greater_than),
            object_size_less_than: sized(rule.size_less_than),
            ..Default::default()
        }
    } else {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some(rule.prefix.clone()),
                tags: Some(
                    rule.tags
                        .iter()
                        .map(|(k, v)| Tag {
                            key: Some(k.clone()),
                            value: Some(v.clone()),
                        })
                        .collect(),
                ),
                object_size_greater_than: sized(rule.size_greater_than),
                object_size_less_than: sized(rule.size_less_than),
            }),
            ..Default::default()
        }
    };
    let expires = rule.expiration_days.is_some()
        || rule.expiration_date_ms.is_some()
        || rule.expired_object_delete_marker;
    let (filter, prefix) = if rule.legacy_prefix {
        (None, Some(rule.prefix.clone()))
    } else {
        (Some(filter), None)
    };
    LifecycleRule {
        id: rule.id.clone(),
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter,
        expiration: expires.then(|| LifecycleExpiration {
            days: rule.expiration_days.map(|d| d as i32),
            date: rule.expiration_date_ms.map(super::attrs::timestamp),
            expired_object_delete_marker: rule.expired_object_delete_marker.then_some(true),
        }),
        noncurrent_version_expiration: rule.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: Some(d as i32),
            newer_noncurrent_versions: rule.newer_noncurrent_versions.map(|n| n as i32),
        }),
        abort_incomplete_multipart_upload: rule.abort_incomplete_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d as i32),
            }
        }),
        noncurrent_version_transitions: None,
        prefix,
        transitions: None,
    }
}

impl Cairn {
    pub(super) async fn put_bucket_lifecycle_configuration_op(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let input = req.input;
        let rules = input
            .lifecycle_configuration
            .map(|c| c.rules)
            .unwrap_or_default();
        if rules.is_empty() || rules.len() > MAX_RULES {
            return Err(s3_error!(
                MalformedXML,
                "a configuration has 1 to {MAX_RULES} rules"
            ));
        }
        let rules = rules
            .into_iter()
            .map(rule_of)
            .collect::<S3Result<Vec<_>>>()?;
        let mut ids = BTreeSet::new();
        for id in rules.iter().filter_map(|r| r.id.as_ref()) {
            if id.len() > 255 {
                return Err(s3_error!(
                    InvalidArgument,
                    "a rule ID is at most 255 characters"
                ));
            }
            if !ids.insert(id) {
                return Err(s3_error!(
                    InvalidArgument,
                    "Rule ID must be unique. Found same ID for more than one rule"
                ));
            }
        }
        self.require_bucket(&input.bucket).await?;
        self.set_bucket(
            &input.bucket,
            BucketSetting::Lifecycle {
                lifecycle: Some(Lifecycle { rules }),
            },
        )
        .await?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(super) async fn get_bucket_lifecycle_configuration_op(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let Some(lifecycle) = bucket.lifecycle else {
            return Err(s3_error!(
                NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist"
            ));
        };
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(lifecycle.rules.iter().map(rule_to_dto).collect()),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_bucket_lifecycle_op(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.set_bucket(
            &req.input.bucket,
            BucketSetting::Lifecycle { lifecycle: None },
        )
        .await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }
}

/// The `x-amz-expiration` value of a current version under its bucket's
/// rules (`expiry-date="…", rule-id="…"`), or none when no rule expires it.
pub(super) fn expiration(
    bucket: &BucketRecord,
    key: &str,
    object: &ObjectManifest,
    day_ms: u64,
) -> Option<String> {
    let (at, rule) = bucket.lifecycle.as_ref()?.current_expiry(
        key,
        &object.tags,
        object.size,
        object.created_ms,
        day_ms,
    )?;
    Some(format!(
        "expiry-date=\"{}\", rule-id=\"{}\"",
        super::attrs::http_date(at),
        rule.unwrap_or_default()
    ))
}

impl Cairn {
    /// [`expiration`] for a read of the current version, from a recently
    /// read bucket record (the header is informational: a rule changed on
    /// another gateway shows within [`super::recent_buckets::TTL`]). A
    /// catalogue error leaves the header out rather than failing the read.
    pub(super) async fn read_expiration(
        &self,
        bucket: &str,
        key: &str,
        object: &ObjectManifest,
    ) -> Option<String> {
        let known = self.known_bucket(bucket).await?;
        expiration(&known.record, key, object, self.lifecycle_day_ms)
    }

    /// [`expiration`] of a just completed multipart upload: the manifest
    /// (size, tags) is the catalogue's, so it is read back, and only when
    /// the bucket has a rule that expires current versions.
    pub(super) async fn completed_expiration(
        &self,
        bucket: &BucketRecord,
        key: &str,
        version_id: &str,
    ) -> Option<String> {
        let expires =
            bucket.lifecycle.as_ref()?.rules.iter().any(|r| {
                r.enabled && (r.expiration_days.is_some() || r.expiration_date_ms.is_some())
            });
        if !expires {
            return None;
        }
        let record = self
            .backend
            .meta
            .get_version(&bucket.name, key, Some(version_id))
            .await
            .ok()??;
        expiration(bucket, key, &record.manifest, self.lifecycle_day_ms)
    }
}
