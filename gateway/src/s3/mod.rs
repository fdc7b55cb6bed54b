//! The S3 API, on the `s3s` crate (request model, XML, errors, SigV4). Each
//! operation lives in the module of its resource; this one wires them into
//! the `S3` trait and counts every request by operation and status.

mod access;
mod acl;
mod attrs;
mod bucket_policy;
mod buckets;
mod checksums;
mod copy;
mod cors;
mod encryption;
mod errors;
mod host;
mod lifecycle;
mod listing;
mod lock;
mod multipart;
mod object_attributes;
mod objects;
mod recent_buckets;
mod tagging;
mod users;
mod versions;

use std::sync::Arc;
use std::time::Instant;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::backend::Backend;
use crate::sse::Keyring;

pub use access::Access;
pub use attrs::MERKLE_ROOT_HEADER;
pub use cors::{CorsState, handle as cors};
pub use host::BaseDomain;
pub use users::Users;

/// Cairn's implementation of the S3 operations.
#[derive(Debug, Clone)]
pub struct Cairn {
    backend: Arc<Backend>,
    region: String,
    /// A lifecycle rule's day, for the `x-amz-expiration` header (the
    /// scrubber's `lifecycle_day_ms`: a real day unless a test scales it).
    lifecycle_day_ms: u64,
    recent_buckets: Arc<recent_buckets::RecentBuckets>,
    /// SSE-S3's master keys (empty: SSE-S3 is refused).
    keyring: Arc<Keyring>,
    /// Who signs for which access key (shared with the auth).
    users: Users,
    /// Object Ownership of buckets created without naming one.
    default_ownership: cairn_core::acl::ObjectOwnership,
}

impl Cairn {
    pub fn new(
        backend: Arc<Backend>,
        region: impl Into<String>,
        lifecycle_day_ms: u64,
        keyring: Arc<Keyring>,
        users: Users,
    ) -> Self {
        Self {
            backend,
            region: region.into(),
            lifecycle_day_ms,
            recent_buckets: Default::default(),
            keyring,
            users,
            default_ownership: Default::default(),
        }
    }

    /// Buckets created without naming an Object Ownership get `ownership`.
    pub fn with_default_ownership(mut self, ownership: cairn_core::acl::ObjectOwnership) -> Self {
        self.default_ownership = ownership;
        self
    }

    /// The access check for this service's requests (it shares the
    /// recently read bucket records, so a policy changed here applies at
    /// once).
    pub fn access(&self) -> Access {
        Access::new(
            self.backend.clone(),
            self.recent_buckets.clone(),
            self.users.clone(),
        )
    }

    /// Runs one operation, recording its status and latency.
    async fn observe<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = S3Result<S3Response<T>>>,
    ) -> S3Result<S3Response<T>> {
        let started = Instant::now();
        let result = work.await;
        let status = match &result {
            Ok(response) => response.status.map_or(200, |s| s.as_u16()),
            Err(err) => err.status_code().map_or(500, |s| s.as_u16()),
        };
        let metrics = &self.backend.metrics;
        metrics
            .requests
            .with_label_values(&[operation, &status.to_string()])
            .inc();
        metrics
            .request_seconds
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            tracing::debug!(operation, code = err.code().as_str(), message = ?err.message(), "S3 error");
        }
        result
    }
}

/// The authenticated user (`Access` refuses anonymous requests to the
/// operations that use this: ListBuckets and CreateBucket).
fn owner<T>(req: &S3Request<T>) -> String {
    req.extensions
        .get::<access::Caller>()
        .map(|caller| caller.0.to_string())
        .unwrap_or_default()
}

/// Who signed a request (`None`: anonymous), as the access check found.
/// S3's per-object storage class. Every object is stored in its bucket's
/// class, which is `STANDARD` in S3's words; another (`STANDARD_IA`,
/// `GLACIER`, …) would promise what Cairn does not do, so it is refused,
/// not ignored.
/// Cairn's own class header belongs on CreateBucket: on an object write it
/// would be ignored, so it is refused too.
fn refuse_storage_class(
    class: Option<&s3s::dto::StorageClass>,
    headers: &axum::http::HeaderMap,
) -> S3Result<()> {
    if headers.contains_key(buckets::STORAGE_CLASS_HEADER) {
        return Err(s3s::s3_error!(
            InvalidStorageClass,
            "{} names a bucket's class at CreateBucket (or `cairn bucket class`); objects take their bucket's",
            buckets::STORAGE_CLASS_HEADER
        ));
    }
    match class {
        None => Ok(()),
        Some(class) if class.as_str() == s3s::dto::StorageClass::STANDARD => Ok(()),
        Some(class) => Err(s3s::s3_error!(
            InvalidStorageClass,
            "storage class {} is not offered: every object is stored in its bucket's class \
             (STANDARD); a bucket's code is chosen with x-cairn-storage-class at CreateBucket \
             or `cairn bucket class`",
            class.as_str()
        )),
    }
}

fn caller<T>(req: &S3Request<T>) -> Option<String> {
    req.extensions
        .get::<access::Caller>()
        .map(|caller| caller.0.to_string())
}

/// Each method names its operation for metrics and hands off to its module.
macro_rules! operations {
    ($($method:ident($input:ident) -> $output:ident => $op:ident, $name:literal;)*) => {
        #[async_trait::async_trait]
        impl S3 for Cairn {
            $(
                #[tracing::instrument(skip_all, name = $name)]
                async fn $method(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.observe($name, self.$op(req)).await
                }
            )*
        }
    };
}

operations! {
    list_buckets(ListBucketsInput) -> ListBucketsOutput => list_buckets_op, "ListBuckets";
    create_bucket(CreateBucketInput) -> CreateBucketOutput => create_bucket_op, "CreateBucket";
    head_bucket(HeadBucketInput) -> HeadBucketOutput => head_bucket_op, "HeadBucket";
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput => delete_bucket_op, "DeleteBucket";
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput => get_bucket_location_op, "GetBucketLocation";
    put_bucket_versioning(PutBucketVersioningInput) -> PutBucketVersioningOutput => put_bucket_versioning_op, "PutBucketVersioning";
    get_bucket_versioning(GetBucketVersioningInput) -> GetBucketVersioningOutput => get_bucket_versioning_op, "GetBucketVersioning";
    list_object_versions(ListObjectVersionsInput) -> ListObjectVersionsOutput => list_object_versions_op, "ListObjectVersions";
    put_object_tagging(PutObjectTaggingInput) -> PutObjectTaggingOutput => put_object_tagging_op, "PutObjectTagging";
    get_object_tagging(GetObjectTaggingInput) -> GetObjectTaggingOutput => get_object_tagging_op, "GetObjectTagging";
    delete_object_tagging(DeleteObjectTaggingInput) -> DeleteObjectTaggingOutput => delete_object_tagging_op, "DeleteObjectTagging";
    put_bucket_tagging(PutBucketTaggingInput) -> PutBucketTaggingOutput => put_bucket_tagging_op, "PutBucketTagging";
    get_bucket_tagging(GetBucketTaggingInput) -> GetBucketTaggingOutput => get_bucket_tagging_op, "GetBucketTagging";
    delete_bucket_tagging(DeleteBucketTaggingInput) -> DeleteBucketTaggingOutput => delete_bucket_tagging_op, "DeleteBucketTagging";
    put_object_lock_configuration(PutObjectLockConfigurationInput) -> PutObjectLockConfigurationOutput => put_object_lock_configuration_op, "PutObjectLockConfiguration";
    get_object_lock_configuration(GetObjectLockConfigurationInput) -> GetObjectLockConfigurationOutput => get_object_lock_configuration_op, "GetObjectLockConfiguration";
    put_object_retention(PutObjectRetentionInput) -> PutObjectRetentionOutput => put_object_retention_op, "PutObjectRetention";
    get_object_retention(GetObjectRetentionInput) -> GetObjectRetentionOutput => get_object_retention_op, "GetObjectRetention";
    put_object_legal_hold(PutObjectLegalHoldInput) -> PutObjectLegalHoldOutput => put_object_legal_hold_op, "PutObjectLegalHold";
    get_object_legal_hold(GetObjectLegalHoldInput) -> GetObjectLegalHoldOutput => get_object_legal_hold_op, "GetObjectLegalHold";
    put_bucket_lifecycle_configuration(PutBucketLifecycleConfigurationInput) -> PutBucketLifecycleConfigurationOutput => put_bucket_lifecycle_configuration_op, "PutBucketLifecycleConfiguration";
    get_bucket_lifecycle_configuration(GetBucketLifecycleConfigurationInput) -> GetBucketLifecycleConfigurationOutput => get_bucket_lifecycle_configuration_op, "GetBucketLifecycleConfiguration";
    delete_bucket_lifecycle(DeleteBucketLifecycleInput) -> DeleteBucketLifecycleOutput => delete_bucket_lifecycle_op, "DeleteBucketLifecycle";
    put_bucket_policy(PutBucketPolicyInput) -> PutBucketPolicyOutput => put_bucket_policy_op, "PutBucketPolicy";
    get_bucket_policy(GetBucketPolicyInput) -> GetBucketPolicyOutput => get_bucket_policy_op, "GetBucketPolicy";
    get_bucket_policy_status(GetBucketPolicyStatusInput) -> GetBucketPolicyStatusOutput => get_bucket_policy_status_op, "GetBucketPolicyStatus";
    delete_bucket_policy(DeleteBucketPolicyInput) -> DeleteBucketPolicyOutput => delete_bucket_policy_op, "DeleteBucketPolicy";
    put_public_access_block(PutPublicAccessBlockInput) -> PutPublicAccessBlockOutput => put_public_access_block_op, "PutPublicAccessBlock";
    get_public_access_block(GetPublicAccessBlockInput) -> GetPublicAccessBlockOutput => get_public_access_block_op, "GetPublicAccessBlock";
    delete_public_access_block(DeletePublicAccessBlockInput) -> DeletePublicAccessBlockOutput => delete_public_access_block_op, "DeletePublicAccessBlock";
    get_bucket_acl(GetBucketAclInput) -> GetBucketAclOutput => get_bucket_acl_op, "GetBucketAcl";
    put_bucket_acl(PutBucketAclInput) -> PutBucketAclOutput => put_bucket_acl_op, "PutBucketAcl";
    get_object_acl(GetObjectAclInput) -> GetObjectAclOutput => get_object_acl_op, "GetObjectAcl";
    put_object_acl(PutObjectAclInput) -> PutObjectAclOutput => put_object_acl_op, "PutObjectAcl";
    get_bucket_ownership_controls(GetBucketOwnershipControlsInput) -> GetBucketOwnershipControlsOutput => get_bucket_ownership_controls_op, "GetBucketOwnershipControls";
    put_bucket_ownership_controls(PutBucketOwnershipControlsInput) -> PutBucketOwnershipControlsOutput => put_bucket_ownership_controls_op, "PutBucketOwnershipControls";
    delete_bucket_ownership_controls(DeleteBucketOwnershipControlsInput) -> DeleteBucketOwnershipControlsOutput => delete_bucket_ownership_controls_op, "DeleteBucketOwnershipControls";
    put_bucket_cors(PutBucketCorsInput) -> PutBucketCorsOutput => put_bucket_cors_op, "PutBucketCors";
    get_bucket_cors(GetBucketCorsInput) -> GetBucketCorsOutput => get_bucket_cors_op, "GetBucketCors";
    delete_bucket_cors(DeleteBucketCorsInput) -> DeleteBucketCorsOutput => delete_bucket_cors_op, "DeleteBucketCors";
    put_bucket_encryption(PutBucketEncryptionInput) -> PutBucketEncryptionOutput => put_bucket_encryption_op, "PutBucketEncryption";
    get_bucket_encryption(GetBucketEncryptionInput) -> GetBucketEncryptionOutput => get_bucket_encryption_op, "GetBucketEncryption";
    delete_bucket_encryption(DeleteBucketEncryptionInput) -> DeleteBucketEncryptionOutput => delete_bucket_encryption_op, "DeleteBucketEncryption";
    put_object(PutObjectInput) -> PutObjectOutput => put_object_op, "PutObject";
    get_object(GetObjectInput) -> GetObjectOutput => get_object_op, "GetObject";
    head_object(HeadObjectInput) -> HeadObjectOutput => head_object_op, "HeadObject";
    get_object_attributes(GetObjectAttributesInput) -> GetObjectAttributesOutput => get_object_attributes_op, "GetObjectAttributes";
    delete_object(DeleteObjectInput) -> DeleteObjectOutput => delete_object_op, "DeleteObject";
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput => delete_objects_op, "DeleteObjects";
    copy_object(CopyObjectInput) -> CopyObjectOutput => copy_object_op, "CopyObject";
    list_objects(ListObjectsInput) -> ListObjectsOutput => list_objects_op, "ListObjects";
    list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output => list_objects_v2_op, "ListObjectsV2";
    create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput => create_multipart_upload_op, "CreateMultipartUpload";
    upload_part(UploadPartInput) -> UploadPartOutput => upload_part_op, "UploadPart";
    upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput => upload_part_copy_op, "UploadPartCopy";
    complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput => complete_multipart_upload_op, "CompleteMultipartUpload";
    abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput => abort_multipart_upload_op, "AbortMultipartUpload";
    list_parts(ListPartsInput) -> ListPartsOutput => list_parts_op, "ListParts";
    list_multipart_uploads(ListMultipartUploadsInput) -> ListMultipartUploadsOutput => list_multipart_uploads_op, "ListMultipartUploads";
}
