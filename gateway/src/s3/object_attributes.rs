//! GetObjectAttributes: what HEAD tells and more, in one XML answer
//! (ETag, size, storage class, the additional checksum, and a multipart
//! object's parts page by page), for the attributes a client names.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::access::MayList;
use super::encryption::customer_key;
use super::{Cairn, attrs, checksums};

/// Parts listed per answer unless `max-parts` says fewer (S3's page).
const MAX_PARTS: i32 = 1000;

impl Cairn {
    pub(super) async fn get_object_attributes_op(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        let customer = customer_key!(input);
        // One header, comma-separated (s3s hands it over unsplit).
        let named: Vec<&str> = input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        let wants = |name: &str| named.iter().any(|a| a.eq_ignore_ascii_case(name));
        if named.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty"
            ));
        }
        if let Some(unknown) = named.iter().find(|a| {
            ![
                ObjectAttributes::CHECKSUM,
                ObjectAttributes::ETAG,
                ObjectAttributes::OBJECT_PARTS,
                ObjectAttributes::OBJECT_SIZE,
                ObjectAttributes::STORAGE_CLASS,
            ]
            .iter()
            .any(|known| a.eq_ignore_ascii_case(known))
        }) {
            return Err(s3_error!(
                InvalidArgument,
                "Invalid attribute name specified: {unknown}"
            ));
        }
        let max_parts = match input.max_parts {
            None => MAX_PARTS,
            Some(n) if (0..=MAX_PARTS).contains(&n) => n,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-parts must be between 0 and {MAX_PARTS}"
                ));
            }
        };
        let record = self
            .version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await
            .map_err(|err| MayList::hide_absence(&req.extensions, err))?;
        let version_id = super::objects::shown_version(&record, input.version_id.is_some());
        let object = record.manifest;
        // An SSE-C object's attributes need its key, as its reads do.
        self.open_version(&object, customer.as_ref())?;

        let mut output = GetObjectAttributesOutput {
            version_id,
            last_modified: Some(attrs::timestamp(object.created_ms)),
            ..Default::default()
        };
        if wants(ObjectAttributes::ETAG) {
            output.e_tag = Some(attrs::etag(&object.etag));
        }
        if wants(ObjectAttributes::OBJECT_SIZE) {
            output.object_size = Some(object.size as i64);
        }
        if wants(ObjectAttributes::STORAGE_CLASS) {
            output.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wants(ObjectAttributes::CHECKSUM)
            && let Some(checksum) = &object.checksum
        {
            let mut reported = Checksum {
                checksum_type: Some(checksums::type_of(checksum.kind)),
                ..Default::default()
            };
            checksums::set_checksum_field!(reported, checksum.algorithm, checksum.value.clone());
            output.checksum = Some(reported);
        }
        // Only a completed multipart upload has parts (ETag `…-N`).
        if wants(ObjectAttributes::OBJECT_PARTS) && object.etag.contains('-') {
            let marker = input.part_number_marker.unwrap_or(0).max(0);
            let after = usize::try_from(marker).unwrap_or(0);
            let listed: Vec<ObjectPart> = object
                .parts
                .iter()
                .enumerate()
                .skip(after)
                .take(max_parts as usize)
                .map(|(index, blob)| {
                    let mut part = ObjectPart {
                        part_number: Some(index as i32 + 1),
                        size: Some(blob.size as i64),
                        ..Default::default()
                    };
                    if let Some(checksum) = &object.checksum
                        && let Some(value) = checksum.parts.get(index)
                    {
                        checksums::set_checksum_field!(part, checksum.algorithm, value.clone());
                    }
                    part
                })
                .collect();
            let last = listed.last().and_then(|p| p.part_number);
            let truncated = after + listed.len() < object.parts.len();
            output.object_parts = Some(GetObjectAttributesParts {
                total_parts_count: Some(object.parts.len() as i32),
                part_number_marker: Some(marker),
                next_part_number_marker: if truncated { last } else { None },
                max_parts: Some(max_parts),
                is_truncated: Some(truncated),
                parts: Some(listed),
            });
        }
        Ok(S3Response::new(output))
    }
}
