//! What CopyObject and UploadPartCopy share: finding the source version,
//! opening its encryption, checking the `x-amz-copy-source-if-*`
//! conditions; and UploadPartCopy itself (a part made from a byte range of
//! an existing object, as aws-cli and rclone do for large copies).
//!
//! The source access (`s3:GetObject` on it) is checked by `access.rs`
//! before the operation runs.

use std::ops::Range;
use std::sync::Arc;

use cairn_core::manifest::ObjectManifest;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::attrs::{self, Conditions};
use super::encryption::{Reported, report};
use super::objects::BodyChecks;
use super::{Cairn, errors};
use crate::sse::{CustomerKey, VersionKey};

/// S3's largest part, also the largest range UploadPartCopy copies.
const MAX_PART_BYTES: u64 = 5 << 30;

/// The `x-amz-copy-source-if-*` conditions of a copy (CopyObject,
/// UploadPartCopy: same field names).
macro_rules! copy_conditions {
    ($input:expr) => {
        super::attrs::Conditions {
            if_match: $input.copy_source_if_match,
            if_none_match: $input.copy_source_if_none_match,
            if_modified_since: $input.copy_source_if_modified_since,
            if_unmodified_since: $input.copy_source_if_unmodified_since,
        }
    };
}
pub(super) use copy_conditions;

/// A copy's source version, ready to read.
pub(super) struct CopySourced {
    pub(super) object: ObjectManifest,
    /// The key its bytes are read with (`None`: not encrypted).
    pub(super) key: Option<VersionKey>,
    /// `x-amz-copy-source-version-id` to report.
    pub(super) version_id: Option<String>,
}

impl Cairn {
    /// Resolves `source` to a version, opens it with `customer` (SSE-C
    /// sources need their key), then checks the copy conditions (412 for
    /// every failed one, as S3 answers copies).
    pub(super) async fn copy_source(
        &self,
        source: &CopySource,
        customer: Option<&CustomerKey>,
        conditions: Conditions,
    ) -> S3Result<CopySourced> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = source
        else {
            return Err(s3_error!(NotImplemented, "copy sources must be bucket/key"));
        };
        let record = self.version_of(bucket, key, version_id.as_deref()).await?;
        let version_id = super::objects::shown_version(&record, version_id.is_some());
        let object = record.manifest;
        let key = self.open_version(&object, customer)?;
        conditions.check(
            &object.etag,
            object.created_ms,
            s3s::S3ErrorCode::PreconditionFailed,
        )?;
        Ok(CopySourced {
            object,
            key,
            version_id,
        })
    }

    pub(super) async fn upload_part_copy_op(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let customer = super::encryption::customer_key!(input);
        let source_customer = CustomerKey::from_headers(
            input.copy_source_sse_customer_algorithm.as_deref(),
            input.copy_source_sse_customer_key.as_deref(),
            input.copy_source_sse_customer_key_md5.as_deref(),
        )?;
        super::multipart::check_part_number(input.part_number)?;
        // The range's syntax is the request's own fault: refused before
        // anything is read.
        let range_text = input.copy_source_range.as_deref();
        if let Some(text) = range_text {
            parse_range_syntax(text)?;
        }
        let upload = self
            .backend
            .meta
            .get_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(errors::meta)?;
        let sealing = self.part_key(&upload.template, customer.as_ref())?;
        let source = self
            .copy_source(
                &input.copy_source,
                source_customer.as_ref(),
                copy_conditions!(input),
            )
            .await?;
        let size = source.object.size;
        let range = match range_text {
            Some(text) => copy_range(text, size)?,
            None => 0..size,
        };
        if range.end - range.start > MAX_PART_BYTES {
            return Err(s3_error!(
                EntityTooLarge,
                "a copied part is at most 5 GiB; copy the source in several ranges"
            ));
        }
        let length = range.end - range.start;
        let body = self
            .open_read(&source.object, range, source.key.map(Arc::new))
            .await?;
        let checksum = super::multipart::part_checksum(&upload.template, None)?;
        let algorithm = checksum.as_ref().map(|c| c.algorithm());
        let (etag, uploaded_ms, computed) = self
            .store_part(
                (
                    &input.bucket,
                    &input.key,
                    &input.upload_id,
                    input.part_number,
                ),
                body,
                BodyChecks {
                    declared_length: Some(length),
                    md5: None,
                    checksum,
                },
                sealing.as_ref(),
                algorithm,
            )
            .await?;
        let mut result = CopyPartResult {
            e_tag: Some(attrs::etag(&etag)),
            last_modified: Some(attrs::timestamp(uploaded_ms)),
            ..Default::default()
        };
        if let Some(algorithm) = algorithm
            && let Some(value) = super::checksums::checksum_field!(computed, algorithm)
        {
            super::checksums::set_checksum_field!(result, algorithm, value);
        }
        let mut output = UploadPartCopyOutput {
            copy_part_result: Some(result),
            copy_source_version_id: source.version_id,
            ..Default::default()
        };
        report!(
            output,
            Reported::of(upload.template.encryption.as_ref(), customer.as_ref())
        );
        Ok(S3Response::new(output))
    }
}

/// `bytes=FIRST-LAST`, both given, FIRST ≤ LAST: anything else is
/// `InvalidArgument` (400), as S3 answers.
fn parse_range_syntax(text: &str) -> S3Result<(u64, u64)> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (number(first), number(last)) {
        (Some(first), Some(last)) if first <= last => Ok((first, last)),
        _ => Err(invalid()),
    }
}

/// The byte range a valid `x-amz-copy-source-range` names in a source of
/// `size` bytes; past the end is `InvalidRange` (416).
fn copy_range(text: &str, size: u64) -> S3Result<Range<u64>> {
    let (first, last) = parse_range_syntax(text)?;
    if last >= size {
        return Err(s3_error!(
            InvalidRange,
            "Range specified is not valid for source object of size: {size}"
        ));
    }
    Ok(first..last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_are_bytes_first_last_inside_the_source() {
        assert_eq!(copy_range("bytes=0-4", 5).expect("whole"), 0..5);
        assert_eq!(copy_range("bytes=2-2", 5).expect("one byte"), 2..3);
        for bad in [
            "0-2",
            "bytes=0",
            "bytes=hello-world",
            "bytes=0-bar",
            "bytes=hello-",
            "bytes=0-2,3-5",
            "bytes=-3",
            "bytes=3-1",
        ] {
            let err = copy_range(bad, 5).expect_err(bad);
            assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidArgument, "{bad}");
        }
        let err = copy_range("bytes=0-21", 5).expect_err("past the end");
        assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidRange);
    }
}
