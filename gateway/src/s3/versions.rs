//! ListObjectVersions over the catalogue's cross-shard version listing:
//! every version and delete marker, keys in order and each key's versions
//! newest first, with prefix, delimiter, key-marker / version-id-marker and
//! `encoding-type=url` as in ListObjects.

use cairn_meta_api::client::ListVersions;
use cairn_meta_api::model::VersionEntry;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::listing::{max_keys, resume_after, url_encode};
use super::{Cairn, attrs, errors};

impl Cairn {
    pub(super) async fn list_object_versions_op(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let limit = max_keys(input.max_keys)?;
        // Versions are the bucket owner's (ACLs are disabled, S3's
        // BucketOwnerEnforced): each entry names it, as S3's listing does.
        let bucket_owner = self.require_bucket(&input.bucket).await?.owner;
        let owner = || Owner {
            display_name: Some(bucket_owner.clone()),
            id: Some(bucket_owner.clone()),
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let key_marker = input.key_marker.clone().filter(|k| !k.is_empty());
        let version_marker = input.version_id_marker.clone().filter(|v| !v.is_empty());
        if version_marker.is_some() && key_marker.is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        let (cursor, after_version) = match (&key_marker, &version_marker) {
            (Some(key), Some(version)) => (key.clone(), Some(version.clone())),
            (Some(key), None) => (resume_after(&prefix, delimiter.as_deref(), key), None),
            _ => (String::new(), None),
        };
        let listing = if limit == 0 {
            Default::default()
        } else {
            self.backend
                .meta
                .list_versions(&ListVersions {
                    bucket: input.bucket.clone(),
                    prefix: prefix.clone(),
                    delimiter: delimiter.clone(),
                    cursor,
                    after_version,
                    max_keys: limit,
                })
                .await
                .map_err(errors::meta)?
        };
        let encode = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let name = |s: &str| if encode { url_encode(s) } else { s.to_owned() };
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes = Vec::new();
        for entry in &listing.entries {
            match entry {
                VersionEntry::Version(v) if v.delete_marker => markers.push(DeleteMarkerEntry {
                    key: Some(name(&v.key)),
                    version_id: Some(v.version_id.clone()),
                    is_latest: Some(v.is_latest),
                    last_modified: Some(attrs::timestamp(v.modified_ms)),
                    owner: Some(owner()),
                }),
                VersionEntry::Version(v) => versions.push(ObjectVersion {
                    key: Some(name(&v.key)),
                    version_id: Some(v.version_id.clone()),
                    is_latest: Some(v.is_latest),
                    last_modified: Some(attrs::timestamp(v.modified_ms)),
                    e_tag: Some(attrs::etag(&v.etag)),
                    size: Some(v.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    owner: Some(owner()),
                    ..Default::default()
                }),
                VersionEntry::Prefix { prefix } => prefixes.push(CommonPrefix {
                    prefix: Some(name(prefix)),
                }),
            }
        }
        let (next_key_marker, next_version_id_marker) = match listing.next_marker {
            Some((key, version)) => (Some(name(&key)), version),
            None => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(name(&prefix)),
            delimiter: delimiter.map(|d| name(&d)),
            key_marker: Some(key_marker.as_deref().map(name).unwrap_or_default()),
            version_id_marker: Some(version_marker.unwrap_or_default()),
            max_keys: Some(limit as i32),
            is_truncated: Some(listing.truncated),
            next_key_marker,
            next_version_id_marker,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}
