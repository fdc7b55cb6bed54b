//! Object attributes between HTTP and the manifest: the standard headers a
//! client set on PUT (kept verbatim), user metadata, ETags, times, and the
//! conditional-request rules of GET, HEAD and CopyObject.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::http::HeaderMap;
use cairn_core::manifest::ObjectManifest;
use s3s::dto::{ETag, ETagCondition, Metadata, Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// Standard headers stored with an object and returned on GET and HEAD.
pub(crate) const STORED_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// Response header carrying the object's integrity root (root of the chunk
/// Merkle roots), so a client can check what it read against the catalogue.
pub const MERKLE_ROOT_HEADER: &str = "x-cairn-merkle-root";

pub(crate) use cairn_service::now_ms;

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

/// A time as an HTTP date (`Last-Modified`).
pub(crate) fn http_date(ms: u64) -> String {
    let mut text = Vec::new();
    let _ = timestamp(ms).format(TimestampFormat::HttpDate, &mut text);
    String::from_utf8(text).unwrap_or_default()
}

fn unix_secs(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

/// A stored ETag (hex, no quotes) as S3 sends it.
pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

/// A client-supplied ETag without quotes or `W/`.
pub(crate) fn etag_value(tag: &ETag) -> &str {
    tag.value()
}

/// The attributes a PUT (or CreateMultipartUpload, or a REPLACE copy)
/// gives the new object: content type, the standard headers, and user
/// metadata.
pub(crate) fn attributes_from_request(
    headers: &HeaderMap,
    content_type: Option<String>,
    metadata: Option<Metadata>,
) -> (
    Option<String>,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
) {
    let stored = STORED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect();
    let metadata = metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    (content_type, stored, metadata)
}

/// An empty manifest carrying a request's attributes (parts come later).
pub(crate) fn manifest_template(
    headers: &HeaderMap,
    content_type: Option<String>,
    metadata: Option<Metadata>,
) -> S3Result<ObjectManifest> {
    check_metadata_size(metadata.as_ref())?;
    let (content_type, headers, user_metadata) =
        attributes_from_request(headers, content_type, metadata);
    Ok(ObjectManifest {
        size: 0,
        etag: String::new(),
        content_type,
        headers,
        user_metadata,
        created_ms: now_ms(),
        parts: Vec::new(),
        inline: None,
        tags: Default::default(),
        encryption: None,
        checksum: None,
        owner: None,
        acl: None,
    })
}

/// S3's limit on user metadata: the UTF-8 bytes of every key and value
/// (after RFC 2047 decoding, which s3s does) add up to at most 2 KiB.
pub(crate) const MAX_USER_METADATA_BYTES: usize = 2048;

fn check_metadata_size(metadata: Option<&Metadata>) -> S3Result<()> {
    let size: usize = metadata
        .into_iter()
        .flatten()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    if size > MAX_USER_METADATA_BYTES {
        return Err(S3Error::with_message(
            S3ErrorCode::MetadataTooLarge,
            format!(
                "Your metadata headers exceed the maximum allowed metadata size ({size} > {MAX_USER_METADATA_BYTES} bytes)"
            ),
        ));
    }
    Ok(())
}

/// The Content-Type a read reports: the one stored, else S3's default
/// for a body that was sent without one.
pub(crate) fn content_type(object: &ObjectManifest) -> String {
    object
        .content_type
        .clone()
        .unwrap_or_else(|| "binary/octet-stream".to_owned())
}

/// The user metadata of an object, as s3s sends it (`x-amz-meta-*`).
pub(crate) fn metadata(object: &ObjectManifest) -> Option<Metadata> {
    (!object.user_metadata.is_empty()).then(|| {
        object
            .user_metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// Response headers every GET and HEAD of `object` carries beyond the
/// typed output: the stored standard headers and the integrity root.
pub(crate) fn object_headers(object: &ObjectManifest) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &object.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    if let Ok(root) = axum::http::HeaderValue::from_str(&object.integrity_root().to_hex()) {
        headers.insert(MERKLE_ROOT_HEADER, root);
    }
    headers
}

/// The conditional headers of a read.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => etag_value(tag) == etag,
    }
}

impl Conditions {
    /// RFC 9110 evaluation order, as S3 applies it: If-Match (or else
    /// If-Unmodified-Since) failing → 412; then If-None-Match matching (or
    /// else If-Modified-Since not newer) → 304. `not_modified` is the error
    /// for the second kind (CopyObject uses 412 for both).
    pub(crate) fn check(
        &self,
        etag: &str,
        modified_ms: u64,
        not_modified: S3ErrorCode,
    ) -> S3Result<()> {
        let modified = (modified_ms / 1000) as i64;
        let precondition_failed = || {
            S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            )
        };
        if let Some(condition) = &self.if_match {
            if !matches(condition, etag) {
                return Err(precondition_failed());
            }
        } else if let Some(since) = &self.if_unmodified_since
            && modified > unix_secs(since)
        {
            return Err(precondition_failed());
        }
        if let Some(condition) = &self.if_none_match {
            if matches(condition, etag) {
                return Err(S3Error::new(not_modified));
            }
        } else if let Some(since) = &self.if_modified_since
            && modified <= unix_secs(since)
        {
            return Err(S3Error::new(not_modified));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(value: &str) -> Option<ETagCondition> {
        Some(ETagCondition::ETag(etag(value)))
    }

    fn code(result: S3Result<()>) -> Option<S3ErrorCode> {
        result.err().map(|e| e.code().clone())
    }

    const MODIFIED_MS: u64 = 1_700_000_000_000;

    #[test]
    fn conditions_follow_s3_precedence() {
        let before = Some(timestamp(MODIFIED_MS - 10_000));
        let after = Some(timestamp(MODIFIED_MS + 10_000));
        let nm = S3ErrorCode::NotModified;
        let check = |c: Conditions| code(c.check("abc", MODIFIED_MS, nm.clone()));

        assert_eq!(check(Conditions::default()), None);
        assert_eq!(
            check(Conditions {
                if_match: tag("other"),
                ..Default::default()
            }),
            Some(S3ErrorCode::PreconditionFailed)
        );
        // If-Match true wins over a failing If-Unmodified-Since.
        assert_eq!(
            check(Conditions {
                if_match: tag("abc"),
                if_unmodified_since: before.clone(),
                ..Default::default()
            }),
            None
        );
        assert_eq!(
            check(Conditions {
                if_unmodified_since: before.clone(),
                ..Default::default()
            }),
            Some(S3ErrorCode::PreconditionFailed)
        );
        assert_eq!(
            check(Conditions {
                if_none_match: tag("abc"),
                ..Default::default()
            }),
            Some(S3ErrorCode::NotModified)
        );
        // If-None-Match not matching wins over If-Modified-Since.
        assert_eq!(
            check(Conditions {
                if_none_match: tag("other"),
                if_modified_since: after.clone(),
                ..Default::default()
            }),
            None
        );
        assert_eq!(
            check(Conditions {
                if_modified_since: after,
                ..Default::default()
            }),
            Some(S3ErrorCode::NotModified)
        );
        assert_eq!(
            check(Conditions {
                if_modified_since: before,
                ..Default::default()
            }),
            None
        );
        assert_eq!(
            check(Conditions {
                if_none_match: Some(ETagCondition::Any),
                ..Default::default()
            }),
            Some(S3ErrorCode::NotModified)
        );
    }
}
