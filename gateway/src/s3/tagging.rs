//! Object and bucket tagging: Put/Get/DeleteObjectTagging (per version),
//! `x-amz-tagging` on writes, Put/Get/DeleteBucketTagging. Tags live in the
//! version's manifest (so a copy carries them) and in the bucket record.

use std::collections::BTreeMap;

use cairn_meta_api::model::{BucketSetting, VersionChange};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Cairn, errors};

/// S3's limits: an object has at most 10 tags, a bucket at most 50.
const MAX_OBJECT_TAGS: usize = 10;
const MAX_BUCKET_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// The tags of an `x-amz-tagging` header (URL query encoding).
pub(super) fn from_header(header: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let mut tags = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(header.as_bytes()) {
        if tags.insert(key.into_owned(), value.into_owned()).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    check(&tags, MAX_OBJECT_TAGS)?;
    Ok(tags)
}

/// The tags of a `Tagging` document.
fn from_document(tagging: Tagging, limit: usize) -> S3Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for tag in tagging.tag_set {
        let (Some(key), Some(value)) = (tag.key, tag.value) else {
            return Err(s3_error!(MalformedXML, "a tag needs a key and a value"));
        };
        if tags.insert(key, value).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    check(&tags, limit)?;
    Ok(tags)
}

fn check(tags: &BTreeMap<String, String>, limit: usize) -> S3Result<()> {
    if tags.len() > limit {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than {limit}"
        ));
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey you have provided is invalid"
            ));
        }
        if value.chars().count() > MAX_TAG_VALUE {
            return Err(s3_error!(
                InvalidTag,
                "The TagValue you have provided is invalid"
            ));
        }
    }
    Ok(())
}

fn tag_set(tags: &BTreeMap<String, String>) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

impl Cairn {
    pub(super) async fn put_object_tagging_op(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags = from_document(input.tagging, MAX_OBJECT_TAGS)?;
        self.change_version(
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            VersionChange::Tags(tags),
        )
        .await?;
        Ok(S3Response::new(PutObjectTaggingOutput {
            version_id: input.version_id,
        }))
    }

    pub(super) async fn get_object_tagging_op(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let record = self
            .version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(&record.manifest.tags),
            version_id: Some(record.version_id),
        }))
    }

    pub(super) async fn delete_object_tagging_op(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        self.change_version(
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            VersionChange::Tags(BTreeMap::new()),
        )
        .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput {
            version_id: input.version_id,
        }))
    }

    pub(super) async fn put_bucket_tagging_op(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let input = req.input;
        let tags = from_document(input.tagging, MAX_BUCKET_TAGS)?;
        self.require_bucket(&input.bucket).await?;
        self.set_bucket(&input.bucket, BucketSetting::Tags { tags })
            .await?;
        Ok(S3Response::new(PutBucketTaggingOutput {}))
    }

    pub(super) async fn get_bucket_tagging_op(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        if bucket.tags.is_empty() {
            return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
        }
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tag_set(&bucket.tags),
        }))
    }

    pub(super) async fn delete_bucket_tagging_op(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.set_bucket(
            &req.input.bucket,
            BucketSetting::Tags {
                tags: BTreeMap::new(),
            },
        )
        .await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput {}))
    }

    /// Applies a change to one version (the current one without an id).
    pub(super) async fn change_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: VersionChange,
    ) -> S3Result<()> {
        if let Some(id) = version_id {
            super::objects::check_version_id(id)?;
        }
        self.require_bucket(bucket).await?;
        self.backend
            .meta
            .update_version(bucket, key, version_id, change)
            .await
            .map_err(errors::meta)
    }
}
