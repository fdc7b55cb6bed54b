//! Object operations: PutObject, GetObject, HeadObject, DeleteObject,
//! DeleteObjects, CopyObject.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use cairn_core::manifest::{ChecksumAlgorithm, ChecksumKind, ObjectManifest};
use cairn_meta_api::client::{VersionDelete, VersionWrite};
use cairn_meta_api::model::{
    DeleteCondition, NULL_VERSION, ObjectRecord, Precondition, Versioning,
};
use futures_util::{StreamExt, TryStreamExt};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::access::MayList;
use super::attrs::{self, Conditions};
use super::checksums::{self, ChecksumCheck, claimed_checksums, output_with_checksum};
use super::encryption::{self, Reported, customer_key, report, requested};
use super::{Cairn, errors, lifecycle, lock, tagging};
use crate::backend::{BackendError, Stored};
use crate::blob_writer::{SealCheck, WriteError};
use crate::sse::VersionKey;

/// The conditional headers of a GET or HEAD input.
macro_rules! conditions {
    ($input:expr) => {
        Conditions {
            if_match: $input.if_match,
            if_none_match: $input.if_none_match,
            if_modified_since: $input.if_modified_since,
            if_unmodified_since: $input.if_unmodified_since,
        }
    };
}

/// Most keys one DeleteObjects request may name (S3's limit).
const MAX_DELETE_KEYS: usize = 1000;
/// Deletes of one DeleteObjects request run this many at a time.
const DELETE_CONCURRENCY: usize = 16;

/// The 16 bytes of a `Content-MD5` header (base64), or InvalidDigest.
pub(super) fn content_md5(header: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(value) = header else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .map(Some)
        .ok_or_else(|| s3_error!(InvalidDigest, "the Content-MD5 you specified is not valid"))
}

/// A request body as a byte stream (an absent body is empty).
pub(super) fn body_stream(
    body: Option<StreamingBlob>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    body.map(|b| b.map_err(|e| std::io::Error::other(e.to_string())).boxed())
        .unwrap_or_else(|| futures_util::stream::empty().boxed())
}

pub(super) fn declared_length(length: Option<i64>) -> Option<u64> {
    length.and_then(|l| u64::try_from(l).ok())
}

/// What a client declared about a body, checked once it is read in full.
#[derive(Debug, Default)]
pub(super) struct BodyChecks {
    pub declared_length: Option<u64>,
    pub md5: Option<[u8; 16]>,
    pub checksum: Option<ChecksumCheck>,
}

impl BodyChecks {
    /// The additional checksum computed, or the S3 error the body earns.
    fn verify(&self, md5: &[u8; 16], size: u64) -> S3Result<Checksum> {
        if let Some(declared) = self.declared_length
            && declared != size
        {
            return Err(s3_error!(
                IncompleteBody,
                "received {size} bytes of a declared {declared}"
            ));
        }
        if self.md5.is_some_and(|expected| &expected != md5) {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received."
            ));
        }
        match &self.checksum {
            Some(check) => check.verify(),
            None => Ok(Checksum::default()),
        }
    }
}

impl Cairn {
    pub(super) async fn put_object_op(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        super::refuse_storage_class(req.input.storage_class.as_ref(), &req.headers)?;
        // A browser POST upload (s3s hands it here) names its key in the
        // form: its access check waited for it.
        if let Some(verdict) = self
            .access()
            .deferred_put(&req.extensions, &req.input.bucket, &req.input.key)
            .await
        {
            verdict?;
            // s3s does not hand over the uploaded file's name: refused,
            // never stored under the literal variable.
            if req.input.key.contains("${filename}") {
                return Err(s3_error!(
                    NotImplemented,
                    "The ${{filename}} key variable of browser uploads is not supported; name the key in the form"
                ));
            }
        }
        let writer = super::caller(&req);
        let headers = req.headers;
        super::acl::refuse_object_grant_write(&headers)?;
        let input = req.input;
        cairn_core::ids::validate_object_key(&input.key)
            .map_err(|e| s3_error!(KeyTooLongError, "{e}"))?;
        let requested = requested!(input);
        let expected_md5 = content_md5(input.content_md5.as_deref())?;
        let checksum = ChecksumCheck::from_request(
            &headers,
            &claimed_checksums!(input),
            req.trailing_headers,
        )?;
        let precondition =
            write_precondition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let bucket = self.require_bucket(&input.bucket).await?;
        let versioning = bucket.versioning;
        let version_lock = lock::requested_lock!(&bucket, input)?;
        let requested = encryption::or_bucket_default(requested, &bucket);
        let (owner, acl) = self
            .version_acl(
                &bucket,
                writer.as_deref(),
                input.acl.as_ref().map(|a| a.as_str()),
                super::acl::object_grants!(input),
            )
            .await?;
        let mut manifest = attrs::manifest_template(&headers, input.content_type, input.metadata)?;
        manifest.tags = tagging::from_header(input.tagging.as_deref())?;
        manifest.owner = owner;
        manifest.acl = acl;
        let key = self.seal(&requested)?.map(|(record, key)| {
            manifest.encryption = Some(record);
            key
        });
        let (etag, computed, version_id) = self
            .store_single_blob(
                &input.bucket,
                &input.key,
                &mut manifest,
                body_stream(input.body),
                BodyChecks {
                    declared_length: declared_length(input.content_length),
                    md5: expected_md5,
                    checksum,
                },
                VersionWrite {
                    precondition,
                    versioning,
                    lock: version_lock,
                },
                key.as_ref(),
            )
            .await?;
        let mut output = output_with_checksum!(PutObjectOutput, attrs::etag(&etag), computed);
        output.version_id = reported_version(versioning, version_id);
        report!(
            output,
            Reported::of(manifest.encryption.as_ref(), requested.customer())
        );
        output.expiration =
            lifecycle::expiration(&bucket, &input.key, &manifest, self.lifecycle_day_ms);
        Ok(S3Response::new(output))
    }

    /// Writes `body` as the whole of `manifest` (inline when small, else
    /// its single blob), checks it, and commits it as `bucket/key` under
    /// the bucket's `versioning`. Returns the ETag, the additional checksum
    /// computed and the new version's id. On any failure the written chunks
    /// are deleted again. With `sealing`, the bytes are stored encrypted
    /// (the manifest names how).
    #[allow(clippy::too_many_arguments)]
    async fn store_single_blob(
        &self,
        bucket: &str,
        key: &str,
        manifest: &mut ObjectManifest,
        body: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
        checks: BodyChecks,
        write: VersionWrite,
        sealing: Option<&VersionKey>,
    ) -> S3Result<(String, Checksum, String)> {
        let (stored, computed) = self
            .write_checked(bucket, body, checks, true, sealing)
            .await?;
        if let Some(checksum) = checksums::full_object(&computed) {
            manifest.checksum = Some(checksum);
        }
        let etag = hex::encode(sealing.map_or(stored.md5(), |key| key.etag(stored.md5())));
        manifest.size = stored.size();
        manifest.etag = etag.clone();
        manifest.created_ms = attrs::now_ms();
        let blob = match stored {
            Stored::Inline { body, .. } => {
                manifest.parts = Vec::new();
                manifest.inline = Some(body);
                None
            }
            Stored::Blob(written) => {
                manifest.parts = vec![written.manifest.clone()];
                manifest.inline = None;
                Some(written.manifest)
            }
        };
        match self
            .backend
            .meta
            .commit_version(bucket, key, manifest.clone(), write)
            .await
        {
            Ok((version_id, _)) => Ok((etag, computed, version_id)),
            Err(err) => {
                if let Some(blob) = blob {
                    self.backend.discard(&blob).await;
                }
                Err(errors::meta(err))
            }
        }
    }

    /// Writes a body (inline if `may_inline` and it is small enough, else
    /// as a blob) and checks what the client declared about it: its length
    /// (IncompleteBody), Content-MD5 (BadDigest), and an additional
    /// checksum (header or trailer; BadDigest). The checks run before the
    /// chunks are sealed, so a refused body commits nothing on any node.
    pub(super) async fn write_checked(
        &self,
        bucket: &str,
        body: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
        checks: BodyChecks,
        may_inline: bool,
        sealing: Option<&VersionKey>,
    ) -> S3Result<(Stored, Checksum)> {
        let tap = checks.checksum.as_ref().map(ChecksumCheck::tap);
        let verdict: Arc<Mutex<Option<S3Result<Checksum>>>> = Arc::new(Mutex::new(None));
        let slot = verdict.clone();
        let declared = checks.declared_length;
        let seal: SealCheck = Box::new(move |md5: &[u8; 16], size: u64| {
            let result = checks.verify(md5, size);
            let outcome = result
                .as_ref()
                .map(drop)
                .map_err(|e| format!("{:?}", e.code()));
            *slot.lock().expect("verdict lock") = Some(result);
            outcome
        });
        let stored = if may_inline {
            self.backend
                .write_object(bucket, body, declared, tap, Some(seal), sealing)
                .await
        } else {
            self.backend
                .write(bucket, body, declared, tap, Some(seal), sealing)
                .await
                .map(Stored::Blob)
        };
        let verdict = verdict.lock().expect("verdict lock").take();
        match (stored, verdict) {
            (Ok(stored), Some(Ok(computed))) => Ok((stored, computed)),
            (Err(BackendError::Write(WriteError::Rejected(_))), Some(Err(err))) => Err(err),
            (Err(err), _) => Err(errors::backend(err)),
            (Ok(stored), _) => {
                if let Stored::Blob(written) = stored {
                    self.backend.discard(&written.manifest).await;
                }
                Err(s3_error!(InternalError, "the body checks did not run"))
            }
        }
    }

    /// The version a read names (`version_id`), or the current one. A
    /// delete marker answers as S3 does: 404 NoSuchKey when it is current,
    /// 405 MethodNotAllowed when named, both with `x-amz-delete-marker`.
    pub(super) async fn version_of(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<ObjectRecord> {
        if let Some(id) = version_id {
            check_version_id(id)?;
        }
        let meta = &self.backend.meta;
        let found = match version_id {
            // The common case reads the `o` row alone.
            None => match meta.get_object(bucket, key).await.map_err(errors::meta)? {
                Some(record) => Some(record),
                None => meta
                    .get_version(bucket, key, None)
                    .await
                    .map_err(errors::meta)?,
            },
            Some(id) => meta
                .get_version(bucket, key, Some(id))
                .await
                .map_err(errors::meta)?,
        };
        match found {
            Some(record) if !record.delete_marker => Ok(record),
            Some(marker) => {
                let mut err = if version_id.is_some() {
                    s3_error!(MethodNotAllowed, "the version is a delete marker")
                } else {
                    s3_error!(NoSuchKey, "no object {key} in {bucket}")
                };
                let mut headers = axum::http::HeaderMap::new();
                headers.insert("x-amz-delete-marker", "true".parse().expect("header"));
                if let Ok(value) = marker.version_id.parse() {
                    headers.insert("x-amz-version-id", value);
                }
                if version_id.is_some() {
                    let modified = attrs::http_date(marker.manifest.created_ms);
                    if let Ok(value) = modified.parse() {
                        headers.insert("last-modified", value);
                    }
                }
                err.set_headers(headers);
                Err(err)
            }
            None => {
                self.require_bucket(bucket).await?;
                Err(match version_id {
                    Some(id) => s3_error!(NoSuchVersion, "no version {id} of {key}"),
                    None => s3_error!(NoSuchKey, "no object {key} in {bucket}"),
                })
            }
        }
    }

    pub(super) async fn get_object_op(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        encryption::refuse_sse_header_on_read(&req.headers)?;
        let input = req.input;
        let customer = customer_key!(input);
        let record = self
            .version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await
            .map_err(|err| MayList::hide_absence(&req.extensions, err))?;
        let version_id = shown_version(&record, input.version_id.is_some());
        let (lock_mode, lock_until, legal_hold) = lock::reported(&record);
        let object = record.manifest;
        let key = self.open_version(&object, customer.as_ref())?;
        conditions!(input).check(&object.etag, object.created_ms, S3ErrorCode::NotModified)?;
        let (range, parts_count) = read_span(&object, input.range.as_ref(), input.part_number)?;
        let span = range.clone().unwrap_or(0..object.size);
        let stream = self
            .open_read(&object, span.clone(), key.map(std::sync::Arc::new))
            .await?;
        let expiration = match input.version_id {
            None => {
                self.read_expiration(&input.bucket, &input.key, &object)
                    .await
            }
            Some(_) => None,
        };
        let mut headers = attrs::object_headers(&object);
        override_header(&mut headers, "cache-control", input.response_cache_control);
        override_header(
            &mut headers,
            "content-disposition",
            input.response_content_disposition,
        );
        override_header(
            &mut headers,
            "content-encoding",
            input.response_content_encoding,
        );
        override_header(
            &mut headers,
            "content-language",
            input.response_content_language,
        );
        if let Some(expires) = input.response_expires {
            let mut text = Vec::new();
            if expires.format(TimestampFormat::HttpDate, &mut text).is_ok() {
                override_header(&mut headers, "expires", String::from_utf8(text).ok());
            }
        }
        let mut output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(span.end as i64 - span.start as i64),
            content_range: range.as_ref().map(|r| content_range(r, object.size)),
            accept_ranges: Some("bytes".into()),
            content_type: input
                .response_content_type
                .or_else(|| Some(attrs::content_type(&object))),
            e_tag: Some(attrs::etag(&object.etag)),
            last_modified: Some(attrs::timestamp(object.created_ms)),
            metadata: attrs::metadata(&object),
            parts_count,
            version_id,
            expiration,
            tag_count: (!object.tags.is_empty()).then_some(object.tags.len() as i32),
            object_lock_mode: lock_mode,
            object_lock_retain_until_date: lock_until,
            object_lock_legal_hold_status: legal_hold,
            ..Default::default()
        };
        report!(
            output,
            Reported::of(object.encryption.as_ref(), customer.as_ref())
        );
        if checksum_mode(input.checksum_mode.as_ref())
            && let Some((algorithm, value, kind)) =
                reported_checksum(&object, range.is_some(), input.part_number)
        {
            checksums::set_checksum_field!(output, algorithm, value);
            output.checksum_type = Some(checksums::type_of(kind));
        }
        let mut response = S3Response::new(output);
        response.headers = headers;
        Ok(response)
    }

    /// Opens a read and waits for its first bytes, so that an object that
    /// cannot be read fails with a status instead of a truncated body.
    pub(super) async fn open_read(
        &self,
        object: &ObjectManifest,
        range: Range<u64>,
        key: Option<std::sync::Arc<VersionKey>>,
    ) -> S3Result<
        impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    > {
        let mut stream = Box::pin(self.backend.read(object, range, key));
        let first = match stream.next().await {
            Some(Err(err)) => return Err(errors::read(err)),
            first => first,
        };
        Ok(futures_util::stream::iter(first)
            .chain(stream)
            .map_err(|e| std::io::Error::other(e.to_string())))
    }

    pub(super) async fn head_object_op(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        encryption::refuse_sse_header_on_read(&req.headers)?;
        let input = req.input;
        let customer = customer_key!(input);
        let record = self
            .version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await
            .map_err(|err| MayList::hide_absence(&req.extensions, err))?;
        let version_id = shown_version(&record, input.version_id.is_some());
        let (lock_mode, lock_until, legal_hold) = lock::reported(&record);
        let object = record.manifest;
        self.open_version(&object, customer.as_ref())?;
        conditions!(input).check(&object.etag, object.created_ms, S3ErrorCode::NotModified)?;
        let (range, parts_count) = read_span(&object, input.range.as_ref(), input.part_number)?;
        let checksum = checksum_mode(input.checksum_mode.as_ref())
            .then(|| reported_checksum(&object, range.is_some(), input.part_number))
            .flatten();
        let (length, content_range) = match range {
            Some(r) => (r.end - r.start, Some(content_range(&r, object.size))),
            None => (object.size, None),
        };
        let expiration = match input.version_id {
            None => {
                self.read_expiration(&input.bucket, &input.key, &object)
                    .await
            }
            Some(_) => None,
        };
        let mut output = HeadObjectOutput {
            content_length: Some(length as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            content_type: Some(attrs::content_type(&object)),
            e_tag: Some(attrs::etag(&object.etag)),
            last_modified: Some(attrs::timestamp(object.created_ms)),
            metadata: attrs::metadata(&object),
            parts_count,
            version_id,
            expiration,
            object_lock_mode: lock_mode,
            object_lock_retain_until_date: lock_until,
            object_lock_legal_hold_status: legal_hold,
            ..Default::default()
        };
        report!(
            output,
            Reported::of(object.encryption.as_ref(), customer.as_ref())
        );
        if let Some((algorithm, value, kind)) = checksum {
            checksums::set_checksum_field!(output, algorithm, value);
            output.checksum_type = Some(checksums::type_of(kind));
        }
        let mut response = S3Response::new(output);
        response.headers = attrs::object_headers(&object);
        // S3 sends the tag count on HEAD too (s3s's HeadObjectOutput has no
        // field for it).
        if !object.tags.is_empty() {
            response
                .headers
                .insert("x-amz-tagging-count", object.tags.len().into());
        }
        Ok(response)
    }

    pub(super) async fn delete_object_op(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let versioning = self.require_bucket(&input.bucket).await?.versioning;
        let bypass_governance = input.bypass_governance_retention.unwrap_or(false);
        let condition = delete_precondition(
            input.if_match.as_ref().map(|c| match c {
                ETagCondition::Any => "*".to_owned(),
                ETagCondition::ETag(etag) => etag.value().to_owned(),
            }),
            input.if_match_size,
            input.if_match_last_modified_time.as_ref(),
        );
        let deleted = self
            .delete_one(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                VersionDelete {
                    precondition: condition,
                    versioning,
                    version_id: None,
                    bypass_governance,
                },
            )
            .await?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted.version_id,
            ..Default::default()
        }))
    }

    /// Deletes one key or one version of it under the bucket's versioning.
    async fn delete_one(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        delete: VersionDelete,
    ) -> S3Result<cairn_meta_api::client::Deleted> {
        if let Some(id) = version_id {
            check_version_id(id)?;
        }
        let versioning = delete.versioning;
        let delete = VersionDelete {
            version_id: version_id.map(str::to_owned),
            ..delete
        };
        let mut deleted = self
            .backend
            .meta
            .delete_version(bucket, key, delete)
            .await
            .map_err(errors::meta)?;
        if !versioning.keeps_versions() && version_id.is_none() {
            deleted.version_id = None;
        }
        Ok(deleted)
    }

    pub(super) async fn delete_objects_op(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let extensions = req.extensions;
        let objects = input.delete.objects;
        if objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "at most {MAX_DELETE_KEYS} keys per request"
            ));
        }
        let versioning = self.require_bucket(&input.bucket).await?.versioning;
        let bypass_governance = input.bypass_governance_retention.unwrap_or(false);
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket;
        type Outcome = (ObjectIdentifier, S3Result<cairn_meta_api::client::Deleted>);
        let access = self.access();
        let (access, extensions) = (&access, &extensions);
        let results: Vec<Outcome> = futures_util::stream::iter(objects)
            .map(|object| {
                let bucket = bucket.clone();
                async move {
                    // Each key is a DeleteObject to the access check.
                    let version = object.version_id.is_some();
                    if let Err(err) = access
                        .may_delete(extensions, &bucket, &object.key, version)
                        .await
                    {
                        return (object, Err(err));
                    }
                    let condition = delete_precondition(
                        object.e_tag.as_ref().map(|e| e.value().to_owned()),
                        object.size,
                        object.last_modified_time.as_ref(),
                    );
                    let result = self
                        .delete_one(
                            &bucket,
                            &object.key,
                            object.version_id.as_deref(),
                            VersionDelete {
                                precondition: condition,
                                versioning,
                                version_id: None,
                                bypass_governance,
                            },
                        )
                        .await;
                    (object, result)
                }
            })
            .buffered(DELETE_CONCURRENCY)
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        for (object, result) in results {
            match result {
                Ok(_) if quiet => {}
                Ok(done) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    // A named version echoes its id; a new delete marker
                    // is reported as such.
                    version_id: object.version_id.clone(),
                    delete_marker: done.delete_marker.then_some(true),
                    delete_marker_version_id: done
                        .delete_marker
                        .then_some(done.version_id)
                        .flatten(),
                }),
                Err(err) => failed.push(Error {
                    code: Some(err.code().as_str().to_owned()),
                    message: err.message().map(str::to_owned),
                    key: Some(object.key),
                    version_id: object.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(failed),
            ..Default::default()
        }))
    }

    pub(super) async fn copy_object_op(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let writer = super::caller(&req);
        let headers = req.headers;
        super::acl::refuse_object_grant_write(&headers)?;
        let input = req.input;
        super::refuse_storage_class(input.storage_class.as_ref(), &headers)?;
        let requested = requested!(input);
        let source_customer = crate::sse::CustomerKey::from_headers(
            input.copy_source_sse_customer_algorithm.as_deref(),
            input.copy_source_sse_customer_key.as_deref(),
            input.copy_source_sse_customer_key_md5.as_deref(),
        )?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if let CopySource::Bucket {
            bucket,
            key,
            version_id: None,
        } = &input.copy_source
            && **bucket == *input.bucket
            && **key == *input.key
            && !replace
            && requested.is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let source = self
            .copy_source(
                &input.copy_source,
                source_customer.as_ref(),
                super::copy::copy_conditions!(input),
            )
            .await?;
        let copy_source_version_id = source.version_id;
        let object = source.object;
        let source_key = source.key;
        let bucket = self.require_bucket(&input.bucket).await?;
        let versioning = bucket.versioning;
        let version_lock = lock::requested_lock!(&bucket, input)?;
        let requested = encryption::or_bucket_default(requested, &bucket);
        let mut manifest = if replace {
            attrs::manifest_template(&headers, input.content_type, input.metadata)?
        } else {
            ObjectManifest {
                parts: Vec::new(),
                ..object.clone()
            }
        };
        // A copy is its writer's, with the ACL its request names (S3 does
        // not copy ACLs).
        (manifest.owner, manifest.acl) = self
            .version_acl(
                &bucket,
                writer.as_deref(),
                input.acl.as_ref().map(|a| a.as_str()),
                super::acl::object_grants!(input),
            )
            .await?;
        // A full-object checksum still describes the copied bytes; a
        // composite one described parts the copy does not have.
        manifest.checksum = object
            .checksum
            .clone()
            .filter(|c| c.kind == ChecksumKind::FullObject);
        let checksum = checksums::requested(input.checksum_algorithm.as_ref(), None)?
            .map(|(algorithm, _)| ChecksumCheck::computing(algorithm));
        // The copy is encrypted as its request (or bucket) says, whatever
        // the source was.
        manifest.encryption = None;
        let sealing = self.seal(&requested)?.map(|(record, key)| {
            manifest.encryption = Some(record);
            key
        });
        // Tags follow their own directive (COPY by default).
        manifest.tags = if input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE)
        {
            tagging::from_header(input.tagging.as_deref())?
        } else {
            object.tags.clone()
        };
        let body = self
            .open_read(&object, 0..object.size, source_key.map(std::sync::Arc::new))
            .await?;
        let (etag, _, version_id) = self
            .store_single_blob(
                &input.bucket,
                &input.key,
                &mut manifest,
                body,
                BodyChecks {
                    declared_length: Some(object.size),
                    md5: None,
                    checksum,
                },
                VersionWrite {
                    precondition: Precondition::None,
                    versioning,
                    lock: version_lock,
                },
                sealing.as_ref(),
            )
            .await?;
        let mut output = CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(attrs::etag(&etag)),
                last_modified: Some(attrs::timestamp(manifest.created_ms)),
                ..Default::default()
            }),
            version_id: reported_version(versioning, version_id),
            copy_source_version_id,
            expiration: lifecycle::expiration(
                &bucket,
                &input.key,
                &manifest,
                self.lifecycle_day_ms,
            ),
            ..Default::default()
        };
        report!(
            output,
            Reported::of(manifest.encryption.as_ref(), requested.customer())
        );
        Ok(S3Response::new(output))
    }
}

/// The conditions of a conditional write (S3 since 2024): `If-None-Match`
/// (`*`: no current version; an ETag: not that one), `If-Match` (an ETag or
/// `*`). Checked by the shard in the same step as the commit.
pub(super) fn write_precondition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Precondition> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-Match and If-None-Match together are not supported on writes"
        )),
        (None, Some(ETagCondition::Any)) => Ok(Precondition::Absent),
        (None, Some(ETagCondition::ETag(etag))) => {
            Ok(Precondition::EtagIsNot(etag.value().to_owned()))
        }
        (Some(ETagCondition::Any), None) => Ok(Precondition::Exists),
        (Some(ETagCondition::ETag(etag)), None) => {
            Ok(Precondition::EtagIs(etag.value().to_owned()))
        }
        (None, None) => Ok(Precondition::None),
    }
}

/// Refuses a version id Cairn cannot have issued (S3: 400 InvalidArgument).
pub(super) fn check_version_id(id: &str) -> S3Result<()> {
    let issued =
        id == NULL_VERSION || (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    if issued {
        Ok(())
    } else {
        Err(s3_error!(InvalidArgument, "Invalid version id specified"))
    }
}

/// The `x-amz-version-id` a write reports: only a versioning-enabled
/// bucket's writes have one to report (S3 sends none for `null`).
pub(super) fn reported_version(versioning: Versioning, version_id: String) -> Option<String> {
    (versioning == Versioning::Enabled).then_some(version_id)
}

/// The conditions of a conditional delete, if any were given.
/// `etag` is an ETag or `*`.
fn delete_precondition(
    etag: Option<String>,
    size: Option<i64>,
    last_modified: Option<&Timestamp>,
) -> Precondition {
    if etag.is_none() && size.is_none() && last_modified.is_none() {
        return Precondition::None;
    }
    Precondition::DeleteIf(DeleteCondition {
        etag,
        // A negative size matches no object.
        size: size.map(|s| u64::try_from(s).unwrap_or(u64::MAX)),
        last_modified_secs: last_modified.map(|t| {
            u64::try_from(time::OffsetDateTime::from(t.clone()).unix_timestamp()).unwrap_or(0)
        }),
    })
}

/// The `x-amz-version-id` a read reports: a real version's id, or `null`
/// when the client asked for it by name.
pub(super) fn shown_version(record: &ObjectRecord, named: bool) -> Option<String> {
    (named || record.version_id != NULL_VERSION).then(|| record.version_id.clone())
}

/// What a GET or HEAD reads: a `Range`, or the part `partNumber` names (a
/// multipart object's part N, with the part count to report; an object
/// of one PUT is its own part 1), or everything (`None`).
fn read_span(
    object: &ObjectManifest,
    range: Option<&s3s::dto::Range>,
    part_number: Option<i32>,
) -> S3Result<(Option<Range<u64>>, Option<i32>)> {
    let Some(number) = part_number else {
        return Ok((range.map(|r| r.check(object.size)).transpose()?, None));
    };
    if range.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        ));
    }
    super::multipart::check_part_number(number)?;
    let index = number as usize - 1;
    // Only a completed multipart upload has parts (ETag `…-N`); a copy of
    // one is a single blob, as on S3.
    if !object.etag.contains('-') {
        return match index {
            0 => Ok((None, None)),
            _ => Err(part_not_satisfiable()),
        };
    }
    let part = object.parts.get(index).ok_or_else(part_not_satisfiable)?;
    let start: u64 = object.parts[..index].iter().map(|p| p.size).sum();
    let count = i32::try_from(object.parts.len()).unwrap_or(i32::MAX);
    Ok((Some(start..start + part.size), Some(count)))
}

fn checksum_mode(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
}

/// The checksum a GET or HEAD with `x-amz-checksum-mode: ENABLED` reports:
/// the object's for a whole read, a part's for a `partNumber` read of a
/// composite one, none for a byte range (it would not describe it).
fn reported_checksum(
    object: &ObjectManifest,
    ranged: bool,
    part_number: Option<i32>,
) -> Option<(ChecksumAlgorithm, String, ChecksumKind)> {
    let checksum = object.checksum.as_ref()?;
    match part_number {
        Some(n) if ranged => {
            let part = checksum
                .parts
                .get(usize::try_from(n).ok()?.checked_sub(1)?)?;
            Some((checksum.algorithm, part.clone(), checksum.kind))
        }
        _ if ranged => None,
        _ => Some((checksum.algorithm, checksum.value.clone(), checksum.kind)),
    }
}

/// AWS's answer to a part number past the last part (416).
fn part_not_satisfiable() -> s3s::S3Error {
    let mut err = s3s::S3Error::with_message(
        S3ErrorCode::Custom("InvalidPartNumber".into()),
        "The requested partnumber is not satisfiable",
    );
    err.set_status_code(axum::http::StatusCode::RANGE_NOT_SATISFIABLE);
    err
}

fn content_range(range: &Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", range.start, range.end - 1)
}

fn override_header(headers: &mut axum::http::HeaderMap, name: &'static str, value: Option<String>) {
    if let Some(value) = value
        && let Ok(value) = axum::http::HeaderValue::from_str(&value)
    {
        headers.insert(name, value);
    }
}
