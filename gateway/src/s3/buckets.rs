//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, Put/GetBucketVersioning.

use cairn_core::codec::StorageClass;
use cairn_meta_api::client::ListVersions;
use cairn_meta_api::model::{BucketRecord, BucketSetting, Versioning};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Cairn, errors, owner};
use crate::s3::attrs::timestamp;

/// CreateBucket header naming the bucket's storage class (`LRC(12,2,2)`).
pub(crate) const STORAGE_CLASS_HEADER: &str = "x-cairn-storage-class";

/// ListBuckets's `max-buckets` range (AWS's).
const MAX_BUCKETS_PER_PAGE: i32 = 10_000;

pub(super) fn owner_of(name: &str) -> Owner {
    Owner {
        display_name: Some(name.to_owned()),
        id: Some(name.to_owned()),
    }
}

impl Cairn {
    pub(super) async fn list_buckets_op(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let owner = owner(&req);
        let input = req.input;
        let max = match input.max_buckets {
            None => None,
            Some(n) if (1..=MAX_BUCKETS_PER_PAGE).contains(&n) => Some(n as usize),
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-buckets must be an integer between 1 and {MAX_BUCKETS_PER_PAGE}"
                ));
            }
        };
        let after = input
            .continuation_token
            .as_deref()
            .map(super::listing::decode_token)
            .transpose()?;
        let prefix = input.prefix.unwrap_or_default();
        if let Some(region) = &input.bucket_region
            && *region != self.region
        {
            // Every bucket is in this cluster's one region.
            return Ok(S3Response::new(ListBucketsOutput {
                buckets: Some(Vec::new()),
                owner: Some(owner_of(&owner)),
                prefix: (!prefix.is_empty()).then_some(prefix),
                ..Default::default()
            }));
        }
        let mut mine: Vec<BucketRecord> = self
            .backend
            .meta
            .list_buckets()
            .await
            .map_err(errors::meta)?
            .into_iter()
            .filter(|b| b.owner == owner && b.name.starts_with(&prefix))
            .filter(|b| after.as_ref().is_none_or(|after| b.name > *after))
            .collect();
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        let continuation_token = match max {
            Some(max) if mine.len() > max => {
                mine.truncate(max);
                mine.last().map(|b| super::listing::encode_token(&b.name))
            }
            _ => None,
        };
        let buckets = mine
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner_of(&owner)),
            continuation_token,
            prefix: (!prefix.is_empty()).then_some(prefix),
        }))
    }

    pub(super) async fn create_bucket_op(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let owner = owner(&req);
        let mut settings = self.creation_settings(&req.input, &owner).await?;
        // Cairn's own header: the code of the bucket's erasure-coded blobs
        // (`cairn bucket class` changes it later).
        if let Some(value) = req.headers.get(STORAGE_CLASS_HEADER) {
            let class: StorageClass = value
                .to_str()
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidStorageClass,
                        "{STORAGE_CLASS_HEADER}: expected RS(k,m) or LRC(k,l,r), e.g. RS(8,4), LRC(12,2,2)"
                    )
                })?;
            self.backend
                .check_class(class)
                .await
                .map_err(errors::backend)?;
            settings.push(BucketSetting::StorageClass { class: Some(class) });
        }
        let object_lock = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
        let bucket = req.input.bucket;
        if let Some(constraint) = req
            .input
            .create_bucket_configuration
            .and_then(|c| c.location_constraint)
            && constraint.as_str() != self.region
        {
            return Err(s3_error!(
                InvalidLocationConstraint,
                "this cluster serves region {}",
                self.region
            ));
        }
        match self
            .backend
            .meta
            .create_bucket_configured(&bucket, &owner, object_lock, settings)
            .await
        {
            Ok(()) => {}
            // S3's legacy rule: in us-east-1, re-creating a bucket one
            // owns succeeds (and changes nothing); elsewhere it is 409.
            Err(err)
                if self.region == "us-east-1"
                    && err.code() == Some(cairn_service::ErrorCode::BucketAlreadyOwnedByYou) => {}
            Err(err) => return Err(errors::meta(err)),
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    pub(super) async fn head_bucket_op(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_bucket_op(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        // As S3: a bucket holding any object version or delete marker is
        // not empty; uploads in progress are aborted with it (checked
        // first, so a refused delete aborts nothing).
        let meta = &self.backend.meta;
        let content = meta
            .list_versions(&ListVersions {
                bucket: bucket.clone(),
                max_keys: 1,
                ..Default::default()
            })
            .await
            .map_err(errors::meta)?;
        if !content.entries.is_empty() {
            return Err(s3_error!(BucketNotEmpty, "the bucket is not empty"));
        }
        loop {
            let uploads = meta
                .list_uploads(&bucket, "", 1000)
                .await
                .map_err(errors::meta)?;
            if uploads.is_empty() {
                break;
            }
            for upload in uploads {
                meta.abort_upload(&bucket, &upload.key, &upload.upload_id)
                    .await
                    .map_err(errors::meta)?;
            }
        }
        self.backend
            .meta
            .delete_bucket(&bucket)
            .await
            .map_err(errors::meta)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(super) async fn get_bucket_location_op(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        // S3 reports us-east-1 as an empty constraint.
        let location_constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    pub(super) async fn put_bucket_versioning_op(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        if input.mfa.is_some()
            || input
                .versioning_configuration
                .mfa_delete
                .as_ref()
                .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
        {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let state = match input
            .versioning_configuration
            .status
            .as_ref()
            .map(|s| s.as_str())
        {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "versioning status must be Enabled or Suspended"
                ));
            }
        };
        // S3 records Suspended even on a never-versioned bucket.
        self.require_bucket(&input.bucket).await?;
        self.backend
            .meta
            .set_versioning(&input.bucket, state)
            .await
            .map_err(errors::meta)?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    pub(super) async fn get_bucket_versioning_op(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let status = match bucket.versioning {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            mfa_delete: None,
        }))
    }

    /// The bucket's record, or NoSuchBucket.
    pub(super) async fn require_bucket(&self, bucket: &str) -> S3Result<BucketRecord> {
        match self
            .backend
            .meta
            .head_bucket(bucket)
            .await
            .map_err(errors::meta)?
        {
            Some(record) => {
                self.recent_buckets.put(&record);
                Ok(record)
            }
            None => {
                self.recent_buckets.forget(bucket);
                Err(s3_error!(NoSuchBucket, "bucket {bucket} does not exist"))
            }
        }
    }
}
