//! ListObjects (v1) and ListObjectsV2 over the catalogue's cross-shard
//! listing: prefix, delimiter, max-keys, marker / continuation-token /
//! start-after, and `encoding-type=url`.

use cairn_meta_api::client::{ListObjects, ObjectListing};
use cairn_meta_api::model::ListEntry;
use cairn_meta_api::shard_map::prefix_successor;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

// Every object's owner is its bucket's (ownership is BucketOwnerEnforced).
use super::buckets::owner_of;
use super::{Cairn, attrs, errors};

/// S3's page size limit.
const MAX_KEYS: i32 = 1000;

/// Where a listing resumes after `marker` (a key or common prefix a
/// previous page returned): the next key, or past the whole common prefix
/// when the marker lies in one, so a rolled-up prefix is never repeated.
pub(crate) fn resume_after(prefix: &str, delimiter: Option<&str>, marker: &str) -> String {
    if let Some(delimiter) = delimiter
        && let Some(rest) = marker.strip_prefix(prefix)
        && let Some(at) = rest.find(delimiter)
        && let Some(next) = prefix_successor(&marker[..prefix.len() + at + delimiter.len()])
    {
        return next;
    }
    format!("{marker}\0")
}

/// Percent-encodes like S3's `encoding-type=url` (everything but unreserved
/// characters and `/`).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

pub(super) fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "max-keys must be a non-negative integer"
        )),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
        None => Ok(MAX_KEYS as usize),
    }
}

/// Splits a listing page into S3's contents and common prefixes, encoding
/// names when asked; each object names `owner` when given.
fn page_contents(
    listing: &ObjectListing,
    encode: bool,
    owner: Option<&str>,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let name = |s: &str| if encode { url_encode(s) } else { s.to_owned() };
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for entry in &listing.entries {
        match entry {
            ListEntry::Object(o) => objects.push(Object {
                key: Some(name(&o.key)),
                size: Some(o.size as i64),
                e_tag: Some(attrs::etag(&o.etag)),
                last_modified: Some(attrs::timestamp(o.modified_ms)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                owner: owner.map(owner_of),
                ..Default::default()
            }),
            ListEntry::Prefix { prefix } => prefixes.push(CommonPrefix {
                prefix: Some(name(prefix)),
            }),
        }
    }
    (objects, prefixes)
}

fn wants_url_encoding(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method: {other}"
        )),
    }
}

impl Cairn {
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        cursor: String,
        max_keys: usize,
    ) -> S3Result<ObjectListing> {
        self.require_bucket(bucket).await?;
        if max_keys == 0 {
            return Ok(ObjectListing::default());
        }
        self.backend
            .meta
            .list_objects(&ListObjects {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                delimiter: delimiter.map(str::to_owned),
                cursor,
                max_keys,
            })
            .await
            .map_err(errors::meta)
    }

    pub(super) async fn list_objects_op(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let encode = wants_url_encoding(input.encoding_type.as_ref())?;
        let max_keys = max_keys(input.max_keys)?;
        let prefix = input.prefix.unwrap_or_default();
        let delimiter = input.delimiter.filter(|d| !d.is_empty());
        let marker = input.marker.filter(|m| !m.is_empty());
        let cursor = marker
            .as_deref()
            .map(|m| resume_after(&prefix, delimiter.as_deref(), m))
            .unwrap_or_default();
        let listing = self
            .list_page(
                &input.bucket,
                &prefix,
                delimiter.as_deref(),
                cursor,
                max_keys,
            )
            .await?;
        let next_marker = listing
            .truncated
            .then(|| listing.entries.last().map(|e| e.resume_cursor().to_owned()))
            .flatten();
        // ListObjects (v1) always names owners, as S3 does.
        let owner = self.known_bucket(&input.bucket).await;
        let owner = owner.as_ref().map(|k| k.record.owner.as_str());
        let (contents, common_prefixes) = page_contents(&listing, encode, owner);
        let name = |s: String| if encode { url_encode(&s) } else { s };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(name(prefix)),
            delimiter: delimiter.map(name),
            marker: Some(marker.map(name).unwrap_or_default()),
            next_marker: next_marker.map(name),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(listing.truncated),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: encode.then(|| EncodingType::from_static(EncodingType::URL)),
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects_v2_op(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let encode = wants_url_encoding(input.encoding_type.as_ref())?;
        let max_keys = max_keys(input.max_keys)?;
        let prefix = input.prefix.unwrap_or_default();
        let delimiter = input.delimiter.filter(|d| !d.is_empty());
        let cursor = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => decode_token(token)?,
            (None, Some(after)) if !after.is_empty() => {
                resume_after(&prefix, delimiter.as_deref(), after)
            }
            _ => String::new(),
        };
        let listing = self
            .list_page(
                &input.bucket,
                &prefix,
                delimiter.as_deref(),
                cursor,
                max_keys,
            )
            .await?;
        // V2 names owners only when asked (`fetch-owner=true`).
        let owner = match input.fetch_owner {
            Some(true) => self.known_bucket(&input.bucket).await,
            _ => None,
        };
        let owner = owner.as_ref().map(|k| k.record.owner.as_str());
        let (contents, common_prefixes) = page_contents(&listing, encode, owner);
        let name = |s: String| if encode { url_encode(&s) } else { s };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(name(prefix)),
            delimiter: delimiter.map(name),
            max_keys: Some(max_keys as i32),
            key_count: Some((contents.len() + common_prefixes.len()) as i32),
            continuation_token: input.continuation_token,
            next_continuation_token: listing.next_cursor.as_deref().map(encode_token),
            start_after: input.start_after.map(name),
            is_truncated: Some(listing.truncated),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: encode.then(|| EncodingType::from_static(EncodingType::URL)),
            ..Default::default()
        }))
    }
}

/// Continuation tokens are opaque to clients: the hex of the resume key.
pub(super) fn encode_token(cursor: &str) -> String {
    hex::encode(cursor)
}

pub(super) fn decode_token(token: &str) -> S3Result<String> {
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_after_a_common_prefix_skips_all_of_it() {
        assert_eq!(resume_after("", Some("/"), "a/"), "a0");
        assert_eq!(resume_after("a/", Some("/"), "a/b/"), "a/b0");
        assert_eq!(resume_after("", Some("/"), "a/x"), "a0");
        assert_eq!(resume_after("", None, "a/x"), "a/x\0");
        assert_eq!(resume_after("p", Some("/"), "pkey"), "pkey\0");
    }

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/c+d~é"), "a%20b/c%2Bd~%C3%A9");
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = encode_token("dir/key with spaces");
        assert_eq!(
            decode_token(&token).expect("decodes"),
            "dir/key with spaces"
        );
        assert!(decode_token("not hex").is_err());
    }
}
