//! Who may do what, checked for every request before it runs (s3s's
//! `S3Access` hook, after the signature is verified):
//!
//! 1. no bucket named (ListBuckets, CreateBucket): any signed-in user;
//!    anonymous requests are refused;
//! 2. the bucket's policy, if any, is evaluated for the request: an
//!    explicit `Deny` refuses it, whoever asks (except that the owner may
//!    always read, change and delete the policy itself, as on S3);
//! 3. the bucket's owner may do everything else;
//! 4. anyone else, anonymous requests included, needs an `Allow` from the
//!    policy (void when the policy is public and the bucket's Block Public
//!    Access has `RestrictPublicBuckets`); otherwise `AccessDenied` (403).
//!
//! ACLs are disabled (`s3/acl.rs`): they never grant anything.
//!
//! Bucket records (owner, policy) come from [`RecentBuckets`]: a policy
//! changed through this gateway applies at once, one changed through
//! another gateway within [`super::recent_buckets::TTL`] (AWS, too, calls
//! policy changes eventually consistent). A bucket that does not exist is
//! let through, so the operation answers `NoSuchBucket`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use cairn_core::acl::Permission;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use super::Users;
use super::recent_buckets::{KnownBucket, RecentBuckets};
use crate::backend::Backend;
use crate::policy::{Decision, EXISTING_OBJECT_TAG, REQUEST_OBJECT_TAG, Request};

/// The access check, sharing the S3 service's bucket records.
#[derive(Debug, Clone)]
pub struct Access {
    backend: Arc<Backend>,
    recent: Arc<RecentBuckets>,
    users: Users,
    /// The S3 listener speaks TLS (`aws:SecureTransport`).
    secure_transport: bool,
    /// SSE-C keys accepted over plain HTTP (`sse_c_over_plain_http`).
    sse_c_in_clear: bool,
}

/// The user a signed request acts for (absent: anonymous), as the access
/// check resolved it; operations that need it (ListBuckets, CreateBucket)
/// read it from the request's extensions.
#[derive(Debug, Clone)]
pub(super) struct Caller(pub(super) Arc<str>);

impl Access {
    pub(super) fn new(backend: Arc<Backend>, recent: Arc<RecentBuckets>, users: Users) -> Self {
        Self {
            backend,
            recent,
            users,
            secure_transport: false,
            sse_c_in_clear: false,
        }
    }

    /// Accept SSE-C keys on a plain-HTTP listener (a loopback dev cluster);
    /// otherwise, as S3 does, such requests are refused.
    pub fn sse_c_in_clear(mut self, allowed: bool) -> Self {
        self.sse_c_in_clear = allowed;
        self
    }

    /// Requests arrive over TLS: policies testing `aws:SecureTransport` see
    /// `true`.
    pub fn over_tls(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }

    async fn bucket(&self, name: &str) -> S3Result<Option<Arc<KnownBucket>>> {
        if let Some(known) = self.recent.get(name) {
            return Ok(Some(known));
        }
        let record = self
            .backend
            .meta
            .head_bucket(name)
            .await
            .map_err(super::errors::meta)?;
        Ok(record.map(|record| self.recent.put(&record)))
    }

    /// Whether `principal` may do `action` on `bucket` (or an object in
    /// it, `key`), given the request's condition keys.
    async fn allowed(
        &self,
        principal: Option<&str>,
        bucket: &str,
        key: Option<&str>,
        action: &str,
        context: &BTreeMap<String, String>,
    ) -> S3Result<bool> {
        match self.bucket(bucket).await? {
            Some(known) => {
                self.resolve(
                    &known,
                    principal,
                    key,
                    None,
                    decide(&known, principal, key, action, context),
                )
                .await
            }
            None => Ok(true),
        }
    }

    /// The version a request names (the current one without an id).
    async fn version_record(
        &self,
        known: &KnownBucket,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<Option<cairn_meta_api::model::ObjectRecord>> {
        let bucket = known.record.name.as_str();
        let meta = &self.backend.meta;
        match version_id {
            None => meta.get_object(bucket, key).await,
            Some(id) => meta.get_version(bucket, key, Some(id)).await,
        }
        .map_err(super::errors::meta)
    }

    /// The object's current tags as `s3:ExistingObjectTag/<key>` condition
    /// keys (one catalogue read, only for policies that test them).
    async fn add_existing_tags(
        &self,
        known: &KnownBucket,
        key: &str,
        version_id: Option<&str>,
        context: &mut BTreeMap<String, String>,
    ) -> S3Result<()> {
        let record = self.version_record(known, key, version_id).await?;
        for (tag, value) in record.iter().flat_map(|r| &r.manifest.tags) {
            context.insert(
                format!("{EXISTING_OBJECT_TAG}{}", tag.to_ascii_lowercase()),
                value.clone(),
            );
        }
        Ok(())
    }

    /// A verdict made final: an object's own owner and ACL decide the
    /// object-level actions of a bucket with ACLs on (one catalogue read
    /// of the version; only such buckets pay it).
    async fn resolve(
        &self,
        known: &KnownBucket,
        principal: Option<&str>,
        key: Option<&str>,
        version_id: Option<&str>,
        verdict: Verdict,
    ) -> S3Result<bool> {
        let permission = match verdict {
            Verdict::Allowed => return Ok(true),
            Verdict::Denied => return Ok(false),
            Verdict::ObjectAcl(permission) => permission,
        };
        let Some(key) = key else {
            return Ok(false);
        };
        let record = self.version_record(known, key, version_id).await?;
        let Some(record) = record.filter(|r| !r.delete_marker) else {
            // Nothing to judge by: the operation answers (a missing key is
            // hidden from whoever may not list, see `MayList`).
            return Ok(true);
        };
        let owner = record
            .manifest
            .owner
            .as_deref()
            .unwrap_or(&known.record.owner);
        if principal == Some(owner) {
            return Ok(true);
        }
        let ignore_public = known
            .record
            .public_access_block
            .is_some_and(|b| b.ignore_public_acls);
        Ok(record
            .manifest
            .acl
            .as_ref()
            .is_some_and(|acl| acl.allows(principal, permission, ignore_public)))
    }
}

/// What the policy, ownership and the bucket's ACL say about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Denied,
    /// ACLs are on and the action is on an object: its owner and its ACL
    /// decide, needing this permission.
    ObjectAcl(Permission),
}

/// The permission an object-level action needs from the object's ACL.
fn object_permission(action: &str) -> Option<Permission> {
    match action {
        "s3:GetObject"
        | "s3:GetObjectVersion"
        | "s3:GetObjectAttributes"
        | "s3:GetObjectVersionAttributes"
        | "s3:GetObjectTagging"
        | "s3:GetObjectVersionTagging" => Some(Permission::Read),
        "s3:GetObjectAcl" | "s3:GetObjectVersionAcl" => Some(Permission::ReadAcp),
        "s3:PutObjectAcl" | "s3:PutObjectVersionAcl" => Some(Permission::WriteAcp),
        _ => None,
    }
}

/// The permission an action needs from the bucket's ACL.
fn bucket_permission(action: &str) -> Option<Permission> {
    match action {
        "s3:ListBucket" | "s3:ListBucketVersions" | "s3:ListBucketMultipartUploads" => {
            Some(Permission::Read)
        }
        "s3:PutObject"
        | "s3:DeleteObject"
        | "s3:DeleteObjectVersion"
        | "s3:AbortMultipartUpload"
        | "s3:ListMultipartUploadParts" => Some(Permission::Write),
        "s3:GetBucketAcl" => Some(Permission::ReadAcp),
        "s3:PutBucketAcl" => Some(Permission::WriteAcp),
        _ => None,
    }
}

/// What the bucket policy, ownership and the bucket's ACL say about
/// `principal` doing `action` on a bucket (or its object `key`).
fn decide(
    known: &KnownBucket,
    principal: Option<&str>,
    key: Option<&str>,
    action: &str,
    context: &BTreeMap<String, String>,
) -> Verdict {
    let owner = principal == Some(known.record.owner.as_str());
    let verdict = |allowed: bool| {
        if allowed {
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    };
    let decision = match &known.policy {
        None => Decision::Silent,
        Some(policy) => {
            let bucket = &known.record.name;
            let resource = match key {
                Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
                None => format!("arn:aws:s3:::{bucket}"),
            };
            let decision = policy.evaluate(&Request {
                principal,
                action,
                resource: &resource,
                context,
            });
            // RestrictPublicBuckets: a public policy's grants reach no one
            // but the owner (its denies still apply).
            let restricted = known
                .record
                .public_access_block
                .is_some_and(|block| block.restrict_public_buckets)
                && policy.is_public();
            match decision {
                // The owner can always manage the policy that locks it out.
                Decision::Deny => return verdict(owner && action.ends_with("BucketPolicy")),
                Decision::Allow => return verdict(!restricted || owner),
                Decision::Silent => Decision::Silent,
            }
        }
    };
    debug_assert_eq!(decision, Decision::Silent);
    if !known.record.ownership.acls_enabled() {
        return verdict(owner);
    }
    // ACLs on: an object's reads and ACL belong to its owner and grantees
    // (its owner may not be the bucket's).
    if key.is_some()
        && let Some(permission) = object_permission(action)
    {
        return Verdict::ObjectAcl(permission);
    }
    if owner {
        return Verdict::Allowed;
    }
    let ignore_public = known
        .record
        .public_access_block
        .is_some_and(|b| b.ignore_public_acls);
    verdict(bucket_permission(action).is_some_and(|permission| {
        known
            .record
            .acl
            .as_ref()
            .is_some_and(|acl| acl.allows(principal, permission, ignore_public))
    }))
}

/// Whether the caller of a GetObject or HeadObject may list the bucket:
/// without it, a missing key is `AccessDenied`, not `NoSuchKey`, as on S3
/// (otherwise a public object's bucket would tell anyone which keys exist).
#[derive(Debug, Clone, Copy)]
pub(super) struct MayList(pub(super) bool);

impl MayList {
    /// `err`, or `AccessDenied` when it reveals that a key does not exist
    /// to someone who may not list the bucket.
    pub(super) fn hide_absence(
        extensions: &axum::http::Extensions,
        err: s3s::S3Error,
    ) -> s3s::S3Error {
        let may_list = extensions.get::<Self>().is_none_or(|m| m.0);
        if !may_list && *err.code() == s3s::S3ErrorCode::NoSuchKey {
            return denied();
        }
        err
    }
}

/// What a DeleteObjects or a browser POST upload needs to check its keys
/// (they are in the body, read after this check): the caller and its
/// condition keys.
#[derive(Debug, Clone)]
pub(super) struct KeyChecks {
    principal: Option<Arc<str>>,
    context: BTreeMap<String, String>,
}

impl Access {
    /// Whether one key of a DeleteObjects may be deleted (a request that
    /// did not pass [`Access::check`] may delete nothing).
    pub(super) async fn may_delete(
        &self,
        extensions: &axum::http::Extensions,
        bucket: &str,
        key: &str,
        version: bool,
    ) -> S3Result<()> {
        let action = if version {
            "s3:DeleteObjectVersion"
        } else {
            "s3:DeleteObject"
        };
        self.may(extensions, bucket, key, action).await
    }

    /// Whether the key a browser POST upload names may be written. `None`
    /// when the request's access was decided whole (every other PUT).
    pub(super) async fn deferred_put(
        &self,
        extensions: &axum::http::Extensions,
        bucket: &str,
        key: &str,
    ) -> Option<S3Result<()>> {
        extensions.get::<KeyChecks>()?;
        Some(self.may(extensions, bucket, key, "s3:PutObject").await)
    }

    /// `action` on one key, for a check deferred until its key was read.
    async fn may(
        &self,
        extensions: &axum::http::Extensions,
        bucket: &str,
        key: &str,
        action: &str,
    ) -> S3Result<()> {
        let Some(checks) = extensions.get::<KeyChecks>() else {
            return Err(denied());
        };
        match self
            .allowed(
                checks.principal.as_deref(),
                bucket,
                Some(key),
                action,
                &checks.context,
            )
            .await?
        {
            true => Ok(()),
            false => Err(denied()),
        }
    }
}

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if !self.secure_transport && !self.sse_c_in_clear && carries_customer_key(cx.headers()) {
            // A key sent in clear is a key disclosed: S3 refuses before
            // looking at anything else, and so does Cairn.
            return Err(s3_error!(
                InvalidRequest,
                "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
            ));
        }
        let principal = cx.credentials().map(|c| self.users.user_of(&c.access_key));
        if let Some(user) = &principal {
            cx.extensions_mut().insert(Caller(user.clone()));
        }
        let op = cx.s3_op().name().to_owned();
        let op = op.as_str();
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => {
                return match principal {
                    Some(_) => Ok(()),
                    None => Err(denied()),
                };
            }
            S3Path::Bucket { bucket } => (bucket.to_string(), None),
            S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
        };
        if op == "CreateBucket" {
            return match principal {
                Some(_) => Ok(()),
                None => Err(denied()),
            };
        }
        let query = query_pairs(cx.uri().query());
        let copies = matches!(op, "CopyObject" | "UploadPartCopy");
        // Condition keys cost allocations: built only when a policy may
        // read them (the common request, to a bucket without a policy by
        // its owner, never needs them).
        let known = self.bucket(&bucket).await?;
        let has_policy = known.as_ref().is_some_and(|known| known.policy.is_some());
        let context = if has_policy || copies || op == "DeleteObjects" || op == "PostObject" {
            condition_keys(cx, &query, self.secure_transport)
        } else {
            BTreeMap::new()
        };
        // `x-amz-expected-bucket-owner`: the caller's guard against writing
        // to a bucket someone else owns (DeleteObjects included).
        if let Some(known) = &known
            && cx
                .headers()
                .get("x-amz-expected-bucket-owner")
                .is_some_and(|expected| expected.as_bytes() != known.record.owner.as_bytes())
        {
            return Err(denied());
        }
        if op == "DeleteObjects" || op == "PostObject" {
            // Each key is checked (as a DeleteObject, or a PutObject) once
            // the body that names it is read.
            cx.extensions_mut().insert(KeyChecks { principal, context });
            return Ok(());
        }
        let version_id = query.get("versionId").map(String::as_str);
        let action = action_of(op, version_id.is_some());
        let mut context = context;
        if let (Some(known), Some(key)) = (&known, &key)
            && known
                .policy
                .as_ref()
                .is_some_and(|p| p.tests_existing_object_tags())
        {
            self.add_existing_tags(known, key, version_id, &mut context)
                .await?;
        }
        // A bucket that does not exist is let through: the operation
        // answers NoSuchBucket.
        if let Some(known) = &known {
            let principal = principal.as_deref();
            let verdict = decide(known, principal, key.as_deref(), action, &context);
            if !self
                .resolve(known, principal, key.as_deref(), version_id, verdict)
                .await?
            {
                return Err(denied());
            }
            if matches!(op, "GetObject" | "HeadObject" | "GetObjectAttributes") {
                let may_list =
                    decide(known, principal, None, "s3:ListBucket", &context) == Verdict::Allowed;
                cx.extensions_mut().insert(MayList(may_list));
            }
        }
        // A copy reads its source: that needs s3:GetObject there.
        if copies
            && let Some(source) = cx
                .headers()
                .get("x-amz-copy-source")
                .and_then(|v| v.to_str().ok())
        {
            let (source, version) = match source.split_once("?versionId=") {
                Some((path, id)) => (path, Some(id.to_owned())),
                None => (source, None),
            };
            let source: String = percent_decode(source.trim_start_matches('/'));
            if let Some((source_bucket, source_key)) = source.split_once('/') {
                let action = if version.is_some() {
                    "s3:GetObjectVersion"
                } else {
                    "s3:GetObject"
                };
                let expected_owner = cx
                    .headers()
                    .get("x-amz-source-expected-bucket-owner")
                    .map(|v| v.as_bytes().to_vec());
                let allowed = match self.bucket(source_bucket).await? {
                    Some(known) => {
                        let principal = principal.as_deref();
                        let verdict = decide(&known, principal, Some(source_key), action, &context);
                        expected_owner.is_none_or(|o| o == known.record.owner.as_bytes())
                            && self
                                .resolve(
                                    &known,
                                    principal,
                                    Some(source_key),
                                    version.as_deref(),
                                    verdict,
                                )
                                .await?
                    }
                    None => true,
                };
                if !allowed {
                    return Err(denied());
                }
            }
        }
        Ok(())
    }
}

fn query_pairs(query: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An SSE-C key in the request (for the object, or a copy's source).
fn carries_customer_key(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key("x-amz-server-side-encryption-customer-key")
        || headers.contains_key("x-amz-copy-source-server-side-encryption-customer-key")
}

fn percent_decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The condition keys a policy may test, lowercase: the caller's address,
/// transport and agent, the listing parameters, and every `x-amz-*`
/// request header as `s3:x-amz-…`.
fn condition_keys(
    cx: &mut S3AccessContext<'_>,
    query: &BTreeMap<String, String>,
    secure_transport: bool,
) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    if let Some(ConnectInfo(peer)) = cx.extensions_mut().get::<ConnectInfo<SocketAddr>>() {
        keys.insert("aws:sourceip".into(), peer.ip().to_canonical().to_string());
    }
    keys.insert("aws:securetransport".into(), secure_transport.to_string());
    let headers = cx.headers();
    for (name, key) in [("user-agent", "aws:useragent"), ("referer", "aws:referer")] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            keys.insert(key.into(), value.to_owned());
        }
    }
    for (name, value) in headers {
        let name = name.as_str();
        let signing = matches!(
            name,
            "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token"
        ) || name.starts_with("x-amz-server-side-encryption-customer-key");
        if name.starts_with("x-amz-")
            && !signing
            && let Ok(value) = value.to_str()
        {
            keys.insert(format!("s3:{name}"), value.to_owned());
        }
    }
    // The tags a write asks for (`x-amz-tagging`, a URL query string).
    if let Some(tagging) = headers.get("x-amz-tagging").and_then(|v| v.to_str().ok()) {
        for (tag, value) in form_urlencoded::parse(tagging.as_bytes()) {
            keys.insert(
                format!("{REQUEST_OBJECT_TAG}{}", tag.to_ascii_lowercase()),
                value.into_owned(),
            );
        }
    }
    let now = time::OffsetDateTime::now_utc();
    if let Ok(text) = now.format(&time::format_description::well_known::Rfc3339) {
        keys.insert("aws:currenttime".into(), text);
    }
    keys.insert("aws:epochtime".into(), now.unix_timestamp().to_string());
    for (param, key) in [
        ("prefix", "s3:prefix"),
        ("delimiter", "s3:delimiter"),
        ("max-keys", "s3:max-keys"),
        ("versionId", "s3:versionid"),
    ] {
        if let Some(value) = query.get(param) {
            keys.insert(key.into(), value.clone());
        }
    }
    keys
}

/// The IAM action of an S3 operation (AWS's names).
fn action_of(op: &str, names_version: bool) -> &'static str {
    match (op, names_version) {
        ("GetObject" | "HeadObject", false) => "s3:GetObject",
        ("GetObject" | "HeadObject", true) => "s3:GetObjectVersion",
        ("DeleteObject", false) => "s3:DeleteObject",
        ("DeleteObject", true) => "s3:DeleteObjectVersion",
        ("GetObjectTagging", false) => "s3:GetObjectTagging",
        ("GetObjectTagging", true) => "s3:GetObjectVersionTagging",
        ("PutObjectTagging", false) => "s3:PutObjectTagging",
        ("PutObjectTagging", true) => "s3:PutObjectVersionTagging",
        ("DeleteObjectTagging", false) => "s3:DeleteObjectTagging",
        ("DeleteObjectTagging", true) => "s3:DeleteObjectVersionTagging",
        ("GetObjectAcl", false) => "s3:GetObjectAcl",
        ("GetObjectAcl", true) => "s3:GetObjectVersionAcl",
        ("PutObjectAcl", false) => "s3:PutObjectAcl",
        ("PutObjectAcl", true) => "s3:PutObjectVersionAcl",
        (op, _) => match op {
            "PutObject"
            | "CopyObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload" => "s3:PutObject",
            "AbortMultipartUpload" => "s3:AbortMultipartUpload",
            "ListParts" => "s3:ListMultipartUploadParts",
            "GetObjectAttributes" => "s3:GetObjectAttributes",
            "GetObjectRetention" => "s3:GetObjectRetention",
            "PutObjectRetention" => "s3:PutObjectRetention",
            "GetObjectLegalHold" => "s3:GetObjectLegalHold",
            "PutObjectLegalHold" => "s3:PutObjectLegalHold",
            "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
            "ListObjectVersions" => "s3:ListBucketVersions",
            "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
            "DeleteBucket" => "s3:DeleteBucket",
            "GetBucketLocation" => "s3:GetBucketLocation",
            "GetBucketPolicy" => "s3:GetBucketPolicy",
            "PutBucketPolicy" => "s3:PutBucketPolicy",
            "DeleteBucketPolicy" => "s3:DeleteBucketPolicy",
            "GetBucketPolicyStatus" => "s3:GetBucketPolicyStatus",
            "GetBucketVersioning" => "s3:GetBucketVersioning",
            "PutBucketVersioning" => "s3:PutBucketVersioning",
            "GetBucketTagging" => "s3:GetBucketTagging",
            "PutBucketTagging" | "DeleteBucketTagging" => "s3:PutBucketTagging",
            "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
            "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
                "s3:PutLifecycleConfiguration"
            }
            "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
            "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
            "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
            "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
            "GetBucketAcl" => "s3:GetBucketAcl",
            "PutBucketAcl" => "s3:PutBucketAcl",
            "GetBucketOwnershipControls" => "s3:GetBucketOwnershipControls",
            "PutBucketOwnershipControls" | "DeleteBucketOwnershipControls" => {
                "s3:PutBucketOwnershipControls"
            }
            "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
            "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
            "GetBucketCors" => "s3:GetBucketCORS",
            "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
            // Anything not named here is the owner's alone (no policy
            // grants an action the map does not know).
            _ => "s3:Unmapped",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_aws_action_names() {
        assert_eq!(action_of("HeadObject", false), "s3:GetObject");
        assert_eq!(action_of("GetObject", true), "s3:GetObjectVersion");
        assert_eq!(action_of("ListObjectsV2", false), "s3:ListBucket");
        assert_eq!(action_of("UploadPart", false), "s3:PutObject");
        assert_eq!(
            action_of("DeleteBucketLifecycle", false),
            "s3:PutLifecycleConfiguration"
        );
        assert_eq!(action_of("SomethingNew", false), "s3:Unmapped");
    }

    #[test]
    fn copy_sources_are_percent_decoded() {
        assert_eq!(percent_decode("b/a%20b%2Bc"), "b/a b+c");
        assert_eq!(percent_decode("b/a+b"), "b/a+b");
    }
}
