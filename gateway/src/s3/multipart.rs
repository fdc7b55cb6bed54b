//! Multipart uploads: CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts,
//! ListMultipartUploads. Each part is its own erasure-coded blob; the
//! completed object's manifest lists them in order.

use cairn_meta_api::model::{CompletedPart as MetaPart, PartRecord};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use cairn_core::manifest::ObjectChecksum;

use super::checksums::{self, ChecksumCheck, claimed_checksums, output_with_checksum};
use super::encryption::{Reported, report};
use super::objects::{BodyChecks, body_stream, content_md5, declared_length};
use super::{Cairn, attrs, errors};
use crate::backend::Stored;

/// S3's part number range.
const PART_NUMBERS: std::ops::RangeInclusive<i32> = 1..=10_000;
/// Uploads scanned for one ListMultipartUploads page.
const UPLOAD_SCAN_LIMIT: usize = 10_000;

/// The ETag of a completed multipart object: MD5 of the parts' binary MD5s,
/// then `-<part count>`.
pub(crate) fn multipart_etag(part_etags: &[String]) -> Option<String> {
    let mut md5 = Md5::new();
    for etag in part_etags {
        md5.update(hex::decode(etag).ok()?);
    }
    Some(format!(
        "{}-{}",
        hex::encode(md5.finalize()),
        part_etags.len()
    ))
}

/// The checksum a part is checked or computed with: its upload's
/// algorithm (computed when the part names none; another one is refused),
/// or whatever the part sends when the upload has none.
pub(super) fn part_checksum(
    template: &cairn_core::manifest::ObjectManifest,
    sent: Option<ChecksumCheck>,
) -> S3Result<Option<ChecksumCheck>> {
    match (&template.checksum, sent) {
        (Some(wanted), Some(sent)) if sent.algorithm() != wanted.algorithm => Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            wanted.algorithm.name(),
            sent.algorithm().name()
        )),
        (Some(wanted), None) => Ok(Some(ChecksumCheck::computing(wanted.algorithm))),
        (_, sent) => Ok(sent),
    }
}

/// S3's part numbers are 1 to 10,000.
pub(super) fn check_part_number(number: i32) -> S3Result<()> {
    if PART_NUMBERS.contains(&number) {
        Ok(())
    } else {
        Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ))
    }
}

impl Cairn {
    pub(super) async fn create_multipart_upload_op(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let writer = super::caller(&req);
        let headers = req.headers;
        super::acl::refuse_object_grant_write(&headers)?;
        let input = req.input;
        cairn_core::ids::validate_object_key(&input.key)
            .map_err(|e| s3_error!(KeyTooLongError, "{e}"))?;
        super::refuse_storage_class(input.storage_class.as_ref(), &headers)?;
        let requested = super::encryption::requested!(input);
        let mut template = attrs::manifest_template(&headers, input.content_type, input.metadata)?;
        template.tags = super::tagging::from_header(input.tagging.as_deref())?;
        let named = input.object_lock_mode.is_some()
            || input.object_lock_retain_until_date.is_some()
            || input.object_lock_legal_hold_status.is_some();
        let bucket = self.require_bucket(&input.bucket).await?;
        (template.owner, template.acl) = self
            .version_acl(
                &bucket,
                writer.as_deref(),
                input.acl.as_ref().map(|a| a.as_str()),
                super::acl::object_grants!(input),
            )
            .await?;
        let lock = if named {
            Some(super::lock::requested_lock!(&bucket, input)?)
        } else {
            None
        };
        // Every part is encrypted under the upload's version key.
        let requested = super::encryption::or_bucket_default(requested, &bucket);
        template.encryption = self.seal(&requested)?.map(|(record, _)| record);
        let reported = Reported::of(template.encryption.as_ref(), requested.customer());
        let checksum = checksums::requested(
            input.checksum_algorithm.as_ref(),
            input.checksum_type.as_ref(),
        )?;
        template.checksum = checksum.map(|(algorithm, kind)| ObjectChecksum {
            algorithm,
            kind,
            value: String::new(),
            parts: Vec::new(),
        });
        let upload_id = self
            .backend
            .meta
            .create_upload_locked(&input.bucket, &input.key, template, lock)
            .await
            .map_err(errors::meta)?;
        let mut output = CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: checksum.map(|(a, _)| checksums::algorithm_name(a)),
            checksum_type: checksum.map(|(_, kind)| checksums::type_of(kind)),
            ..Default::default()
        };
        report!(output, reported);
        Ok(S3Response::new(output))
    }

    pub(super) async fn upload_part_op(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let req = (req.headers, req.trailing_headers);
        let customer = super::encryption::customer_key!(input);
        check_part_number(input.part_number)?;
        let expected_md5 = content_md5(input.content_md5.as_deref())?;
        let checksum = ChecksumCheck::from_request(&req.0, &claimed_checksums!(input), req.1)?;
        // Fail before storing data for an upload that does not exist.
        let upload = self
            .backend
            .meta
            .get_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(errors::meta)?;
        let checksum = part_checksum(&upload.template, checksum)?;
        let algorithm = upload.template.checksum.as_ref().map(|c| c.algorithm);
        let key = self.part_key(&upload.template, customer.as_ref())?;
        let (etag, _, computed) = self
            .store_part(
                (
                    &input.bucket,
                    &input.key,
                    &input.upload_id,
                    input.part_number,
                ),
                body_stream(input.body),
                BodyChecks {
                    declared_length: declared_length(input.content_length),
                    md5: expected_md5,
                    checksum,
                },
                key.as_ref(),
                algorithm,
            )
            .await?;
        let mut output = output_with_checksum!(UploadPartOutput, attrs::etag(&etag), computed);
        report!(
            output,
            Reported::of(upload.template.encryption.as_ref(), customer.as_ref())
        );
        Ok(S3Response::new(output))
    }

    /// Writes one part (never inline: a part is one blob of its object),
    /// checks it, and records it in its upload, with its checksum in the
    /// upload's `algorithm`. Returns its ETag, upload time and the
    /// checksum computed; on failure its chunks are deleted again.
    pub(super) async fn store_part(
        &self,
        (bucket, key, upload_id, part_number): (&str, &str, &str, i32),
        body: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
        checks: BodyChecks,
        sealing: Option<&crate::sse::VersionKey>,
        algorithm: Option<cairn_core::manifest::ChecksumAlgorithm>,
    ) -> S3Result<(String, u64, Checksum)> {
        let (stored, computed) = self
            .write_checked(bucket, body, checks, false, sealing)
            .await?;
        let Stored::Blob(written) = stored else {
            return Err(s3_error!(InternalError, "a part was stored inline"));
        };
        let etag = hex::encode(sealing.map_or(written.md5, |key| key.etag(written.md5)));
        let uploaded_ms = attrs::now_ms();
        let part = PartRecord {
            part_number: part_number as u32,
            etag: etag.clone(),
            size: written.manifest.size,
            uploaded_ms,
            blob: written.manifest.clone(),
            checksum: algorithm.and_then(|a| checksums::checksum_field!(computed, a)),
        };
        if let Err(err) = self
            .backend
            .meta
            .put_part(bucket, key, upload_id, part)
            .await
        {
            self.backend.discard(&written.manifest).await;
            return Err(errors::meta(err));
        }
        Ok((etag, uploaded_ms, computed))
    }

    /// The key a part of an upload is encrypted with: an SSE-C upload's
    /// parts must name its key again (S3's 400 when they name another or
    /// none), a plaintext upload's parts none.
    pub(super) fn part_key(
        &self,
        template: &cairn_core::manifest::ObjectManifest,
        customer: Option<&crate::sse::CustomerKey>,
    ) -> S3Result<Option<crate::sse::VersionKey>> {
        let sse_c = matches!(
            template.encryption.as_ref().map(|e| &e.mode),
            Some(cairn_core::manifest::EncryptionMode::CustomerKey { .. })
        );
        match (sse_c, customer) {
            (false, Some(_)) => Err(s3_error!(
                InvalidRequest,
                "The multipart upload was not created with SSE-C; its parts take no SSE-C key"
            )),
            (true, None) => Err(s3_error!(
                InvalidRequest,
                "The multipart upload was created with SSE-C; each part must name its key"
            )),
            _ => self.open_version(template, customer).map_err(|err| {
                if err.code().as_str() == "AccessDenied" {
                    s3_error!(
                        InvalidArgument,
                        "The SSE-C key of a part must be the key its multipart upload was created with"
                    )
                } else {
                    err
                }
            }),
        }
    }

    pub(super) async fn complete_multipart_upload_op(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let requested_parts = input
            .multipart_upload
            .as_ref()
            .and_then(|u| u.parts.clone())
            .unwrap_or_default();
        let parts: Vec<MetaPart> = requested_parts
            .iter()
            .map(|p| {
                let number = p.part_number.unwrap_or(0);
                let etag = p
                    .e_tag
                    .as_ref()
                    .map(|t| t.value().to_owned())
                    .unwrap_or_default();
                MetaPart {
                    part_number: u32::try_from(number).unwrap_or(0),
                    etag,
                }
            })
            .collect();
        if parts.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let etags: Vec<String> = parts.iter().map(|p| p.etag.clone()).collect();
        let precondition = super::objects::write_precondition(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
        )?;
        let bucket = self.require_bucket(&input.bucket).await?;
        // The bucket's default retention, from when the upload completes.
        let lock = super::lock::new_version_lock(&bucket, None, None, None)?;
        // The upload as it stands: its checksum algorithm and encryption
        // (absent when this is a retry of a Complete that succeeded).
        let upload = self
            .backend
            .meta
            .get_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .ok();
        // S3 does not need an SSE-C upload's key to complete it, but one
        // that is named must be the upload's.
        let customer = super::encryption::customer_key!(input);
        if let (Some(upload), Some(customer)) = (&upload, &customer) {
            self.part_key(&upload.template, Some(customer))?;
        }
        let checksum = match &upload {
            Some(upload) => self.completed_checksum(&input, &requested_parts, upload)?,
            None => None,
        };
        // `x-amz-mp-object-size`: the client's own count of the object it
        // is completing; a mismatch is refused, never ignored.
        if let (Some(claimed), Some(upload)) = (input.mpu_object_size, &upload) {
            let size: u64 = requested_parts
                .iter()
                .filter_map(|p| p.part_number.and_then(|n| u32::try_from(n).ok()))
                .filter_map(|n| upload.parts.get(&n))
                .map(|p| p.size)
                .sum();
            if u64::try_from(claimed).ok() != Some(size) {
                return Err(s3_error!(
                    InvalidRequest,
                    "The provided x-amz-mp-object-size {claimed} does not match the object's size {size}"
                ));
            }
        }
        let mut encryption = upload.and_then(|u| u.template.encryption);
        let completed = self
            .backend
            .meta
            .complete_upload_versioned(
                &input.bucket,
                &input.key,
                &input.upload_id,
                parts,
                cairn_meta_api::client::VersionWrite {
                    precondition,
                    versioning: bucket.versioning,
                    lock,
                },
                checksum.clone(),
            )
            .await
            .map_err(errors::meta);
        // The catalogue checked every part's ETag, so this is its ETag too.
        let etag = multipart_etag(&etags)
            .ok_or_else(|| s3_error!(InvalidPart, "a part ETag is not an MD5"))?;
        let (version_id, checksum) = match completed {
            Ok((version_id, _)) => (version_id, checksum),
            // A retry of a Complete that succeeded (its answer was lost):
            // the upload is gone, and the current version is what this
            // very list of parts made. S3 answers 200 again, alike.
            Err(err) if *err.code() == s3s::S3ErrorCode::NoSuchUpload => {
                match self.version_of(&input.bucket, &input.key, None).await {
                    Ok(current) if current.manifest.etag == etag => {
                        encryption = current.manifest.encryption;
                        (current.version_id, current.manifest.checksum)
                    }
                    _ => return Err(err),
                }
            }
            Err(err) => return Err(err),
        };
        let expiration = self
            .completed_expiration(&bucket, &input.key, &version_id)
            .await;
        let mut output = CompleteMultipartUploadOutput {
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(attrs::etag(&etag)),
            version_id: super::objects::reported_version(bucket.versioning, version_id),
            expiration,
            ..Default::default()
        };
        if let Some(checksum) = checksum {
            checksums::set_checksum_field!(output, checksum.algorithm, checksum.value);
            output.checksum_type = Some(checksums::type_of(checksum.kind));
        }
        // S3 names SSE-S3 on Complete (its output has no SSE-C fields).
        output.server_side_encryption =
            Reported::of(encryption.as_ref(), None).server_side_encryption;
        Ok(S3Response::new(output))
    }

    /// The checksum of the object a Complete makes, when its upload was
    /// created with an algorithm: each listed part's stored checksum (a
    /// part whose listed checksum differs is `InvalidPart`), combined; a
    /// checksum the request claims for the whole object must match it.
    fn completed_checksum(
        &self,
        input: &CompleteMultipartUploadInput,
        listed: &[CompletedPart],
        upload: &cairn_meta_api::model::UploadRecord,
    ) -> S3Result<Option<ObjectChecksum>> {
        let Some(wanted) = &upload.template.checksum else {
            return Ok(None);
        };
        if let Some(kind) = &input.checksum_type
            && *kind != checksums::type_of(wanted.kind)
        {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created using the {} checksum mode; the complete request names {}",
                checksums::type_of(wanted.kind).as_str(),
                kind.as_str()
            ));
        }
        let mut parts = Vec::with_capacity(listed.len());
        for listed in listed {
            let number = listed.part_number.and_then(|n| u32::try_from(n).ok());
            let Some(part) = number.and_then(|n| upload.parts.get(&n)) else {
                // The catalogue refuses the missing part (InvalidPart).
                return Ok(None);
            };
            let Some(value) = &part.checksum else {
                return Ok(None);
            };
            if let Some(claimed) = checksums::checksum_field!(listed, wanted.algorithm)
                && claimed != *value
            {
                return Err(s3_error!(
                    InvalidPart,
                    "part {} was uploaded with another {} checksum",
                    part.part_number,
                    wanted.algorithm.name()
                ));
            }
            parts.push((value.clone(), part.size));
        }
        let combined = checksums::combine_parts(wanted.algorithm, wanted.kind, &parts)?;
        if let Some(claimed) = checksums::checksum_field!(input, wanted.algorithm) {
            let (value, _) = combined
                .value
                .split_once('-')
                .unwrap_or((combined.value.as_str(), ""));
            if claimed.split('-').next() != Some(value) {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    wanted.algorithm.name().to_ascii_uppercase()
                ));
            }
        }
        Ok(Some(combined))
    }

    pub(super) async fn abort_multipart_upload_op(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.backend
            .meta
            .abort_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(errors::meta)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn list_parts_op(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let upload = self
            .backend
            .meta
            .get_upload(&input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(errors::meta)?;
        let max_parts = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = input
            .part_number_marker
            .map_or(0, |m| u32::try_from(m).unwrap_or(0));
        let mut remaining = upload.parts.range(marker + 1..);
        let page: Vec<Part> = remaining
            .by_ref()
            .take(max_parts)
            .map(|(_, p)| {
                let mut part = Part {
                    part_number: Some(p.part_number as i32),
                    e_tag: Some(attrs::etag(&p.etag)),
                    size: Some(p.size as i64),
                    last_modified: Some(attrs::timestamp(p.uploaded_ms)),
                    ..Default::default()
                };
                if let (Some(wanted), Some(value)) = (&upload.template.checksum, &p.checksum) {
                    checksums::set_checksum_field!(part, wanted.algorithm, value.clone());
                }
                part
            })
            .collect();
        let truncated = remaining.next().is_some();
        let next_marker = page.last().and_then(|p| p.part_number);
        // The upload's owner (its writer on a bucket with ACLs on).
        let owner = match &upload.template.owner {
            Some(owner) => Some(owner.clone()),
            None => self
                .known_bucket(&input.bucket)
                .await
                .map(|known| known.record.owner.clone()),
        };
        Ok(S3Response::new(ListPartsOutput {
            owner: owner.as_deref().map(super::buckets::owner_of),
            initiator: owner.map(|id| Initiator {
                display_name: Some(id.clone()),
                id: Some(id),
            }),
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next_marker } else { None },
            max_parts: Some(max_parts as i32),
            is_truncated: Some(truncated),
            parts: Some(page),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: upload
                .template
                .checksum
                .as_ref()
                .map(|c| checksums::algorithm_name(c.algorithm)),
            checksum_type: upload
                .template
                .checksum
                .as_ref()
                .map(|c| checksums::type_of(c.kind)),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads_op(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let bucket_owner = self.require_bucket(&input.bucket).await?.owner;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let max_uploads = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let uploads = self
            .backend
            .meta
            .list_uploads(&input.bucket, &prefix, UPLOAD_SCAN_LIMIT)
            .await
            .map_err(errors::meta)?;
        // After the markers: keys past key-marker, or the same key with a
        // later upload id when upload-id-marker is given.
        let after_markers = uploads.into_iter().filter(|u| {
            key_marker.is_empty()
                || u.key > key_marker
                || (u.key == key_marker && !id_marker.is_empty() && u.upload_id > id_marker)
        });
        let mut listed = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut last: Option<(String, String)> = None;
        for upload in after_markers {
            let rolled = delimiter.as_deref().and_then(|d| {
                let rest = &upload.key[prefix.len()..];
                rest.find(d)
                    .map(|at| upload.key[..prefix.len() + at + d.len()].to_owned())
            });
            if let Some(common) = &rolled
                && prefixes.last() == Some(common)
            {
                continue;
            }
            if listed.len() + prefixes.len() == max_uploads {
                truncated = true;
                break;
            }
            last = Some((upload.key.clone(), upload.upload_id.clone()));
            match rolled {
                Some(common) => prefixes.push(common),
                None => {
                    // Its writer on a bucket with ACLs on, else the
                    // bucket's owner.
                    let owner = upload.template.owner.as_deref().unwrap_or(&bucket_owner);
                    listed.push(MultipartUpload {
                        key: Some(upload.key),
                        upload_id: Some(upload.upload_id),
                        initiated: Some(attrs::timestamp(upload.created_ms)),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        owner: Some(super::buckets::owner_of(owner)),
                        initiator: Some(Initiator {
                            display_name: Some(owner.to_owned()),
                            id: Some(owner.to_owned()),
                        }),
                        ..Default::default()
                    })
                }
            }
        }
        let (next_key, next_id) = match (truncated, last) {
            (true, Some((key, id))) => (Some(key), Some(id)),
            _ => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            max_uploads: Some(max_uploads as i32),
            is_truncated: Some(truncated),
            uploads: Some(listed),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_is_md5_of_binary_part_md5s() {
        // Two parts whose MD5s are known: md5("a"), md5("b").
        let a = hex::encode(Md5::digest(b"a"));
        let b = hex::encode(Md5::digest(b"b"));
        let mut joined = Md5::digest(b"a").to_vec();
        joined.extend_from_slice(&Md5::digest(b"b"));
        let expected = format!("{}-2", hex::encode(Md5::digest(&joined)));
        assert_eq!(multipart_etag(&[a, b]), Some(expected));
        assert_eq!(multipart_etag(&["zz".into()]), None);
    }
}
