//! Records and commands of the catalogue. These are wire and storage
//! formats (JSON in RocksDB values and HTTP bodies): fields are only added,
//! with `#[serde(default)]`.

use std::collections::BTreeMap;

use cairn_core::acl::{Acl, ObjectOwnership};
use cairn_core::ids::{BlobId, ChunkId, NodeId, RackId};
use cairn_core::manifest::{BlobManifest, ObjectManifest};
use cairn_core::placement::NodeState;
use serde::{Deserialize, Serialize};

use crate::shard_map::ShardId;

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    pub owner: String,
    pub created_ms: u64,
    #[serde(default)]
    pub versioning: Versioning,
    /// Present when object lock is enabled (it never turns off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Lifecycle rules, carried out by the scrubber's lifecycle job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Default encryption of new versions whose request names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<DefaultEncryption>,
    /// The bucket policy, as the owner sent it (validated JSON; the
    /// gateway parses and evaluates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// S3's Block Public Access settings for this bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// Browser access from other origins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Object Ownership: whether ACLs count (records from before ACLs
    /// were built read as `BucketOwnerEnforced`, which they were).
    #[serde(default)]
    pub ownership: ObjectOwnership,
    /// The bucket's ACL when ACLs are on; `None`: private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
    /// The code of the bucket's erasure-coded blobs from now on (`RS(8,4)`,
    /// `LRC(12,2,2)`, …); `None`: the gateway's. Blobs keep the code they
    /// were written with (their manifest names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<cairn_core::codec::StorageClass>,
}

/// A bucket's Block Public Access settings (`PutPublicAccessBlock`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// ACLs are disabled on every bucket, so the two ACL settings are
    /// stored and shown back; they cannot loosen anything.
    #[serde(default)]
    pub block_public_acls: bool,
    #[serde(default)]
    pub ignore_public_acls: bool,
    /// A public bucket policy is refused when put.
    #[serde(default)]
    pub block_public_policy: bool,
    /// A public policy grants only the owner (its `Allow`s for anyone
    /// else are ignored).
    #[serde(default)]
    pub restrict_public_buckets: bool,
}

/// One replaceable setting of a bucket (`None` / empty removes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "setting", rename_all = "snake_case")]
pub enum BucketSetting {
    Tags {
        tags: BTreeMap<String, String>,
    },
    Lifecycle {
        lifecycle: Option<Lifecycle>,
    },
    Encryption {
        encryption: Option<DefaultEncryption>,
    },
    Policy {
        policy: Option<String>,
    },
    PublicAccessBlock {
        block: Option<PublicAccessBlock>,
    },
    Cors {
        cors: Option<Cors>,
    },
    Ownership {
        ownership: ObjectOwnership,
    },
    Acl {
        acl: Option<Acl>,
    },
    StorageClass {
        class: Option<cairn_core::codec::StorageClass>,
    },
}

impl BucketSetting {
    /// Writes the setting into a bucket record.
    pub fn apply_to(&self, record: &mut BucketRecord) {
        match self {
            Self::Tags { tags } => record.tags = tags.clone(),
            Self::Lifecycle { lifecycle } => record.lifecycle = lifecycle.clone(),
            Self::Encryption { encryption } => record.encryption = encryption.clone(),
            Self::Policy { policy } => record.policy = policy.clone(),
            Self::PublicAccessBlock { block } => record.public_access_block = *block,
            Self::Cors { cors } => record.cors = cors.clone(),
            Self::Ownership { ownership } => record.ownership = *ownership,
            Self::Acl { acl } => record.acl = acl.clone(),
            Self::StorageClass { class } => record.storage_class = *class,
        }
    }

    /// Short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tags { .. } => "set_bucket_tags",
            Self::Lifecycle { .. } => "set_lifecycle",
            Self::Encryption { .. } => "set_bucket_encryption",
            Self::Policy { .. } => "set_bucket_policy",
            Self::PublicAccessBlock { .. } => "set_public_access_block",
            Self::Cors { .. } => "set_bucket_cors",
            Self::Ownership { .. } => "set_bucket_ownership",
            Self::Acl { .. } => "set_bucket_acl",
            Self::StorageClass { .. } => "set_bucket_storage_class",
        }
    }
}

/// A bucket's CORS configuration (`PutBucketCors`): which web origins may
/// use it from a browser, with which methods and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cors {
    pub rules: Vec<CorsRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Origins, each with at most one `*`.
    pub allowed_origins: Vec<String>,
    /// Of GET, PUT, HEAD, POST, DELETE.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may name, each with at most one `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    /// Response headers a browser script may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// A bucket's default encryption (`PutBucketEncryption`). The algorithm is
/// always SSE-S3 (`AES256`): Cairn has no key management service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultEncryption {
    /// Stored and shown back as set; it changes nothing (S3 Bucket Keys
    /// reduce KMS calls, and SSE-S3 makes none).
    #[serde(default)]
    pub bucket_key_enabled: bool,
}

/// A bucket's lifecycle configuration (S3's rule subset Cairn runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub rules: Vec<LifecycleRule>,
}

/// One lifecycle rule. Ages are in days, a day being the scrubber's
/// `lifecycle_day_ms` (a real day unless a test scales it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    #[serde(default)]
    pub id: Option<String>,
    pub enabled: bool,
    /// Keys the rule applies to: this prefix and every one of these tags.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The rule named its prefix the pre-2016 way (a `Prefix` element, no
    /// `Filter`): shown back the same way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_prefix: bool,
    /// Only versions larger / smaller than this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<u64>,
    /// Current versions expire this many days after they were written…
    #[serde(default)]
    pub expiration_days: Option<u32>,
    /// …or from this time on.
    #[serde(default)]
    pub expiration_date_ms: Option<u64>,
    /// A delete marker left as a key's only version is removed.
    #[serde(default)]
    pub expired_object_delete_marker: bool,
    /// Noncurrent versions expire this many days after becoming
    /// noncurrent…
    #[serde(default)]
    pub noncurrent_days: Option<u32>,
    /// …except the newest this many of them.
    #[serde(default)]
    pub newer_noncurrent_versions: Option<u32>,
    /// Multipart uploads are aborted this many days after they started.
    #[serde(default)]
    pub abort_incomplete_upload_days: Option<u32>,
}

impl LifecycleRule {
    /// Whether the rule applies to a version of `key` with these tags and
    /// this size (an upload has neither: a rule filtering on them never
    /// aborts uploads).
    pub fn matches(&self, key: &str, tags: &BTreeMap<String, String>, size: Option<u64>) -> bool {
        self.enabled
            && key.starts_with(&self.prefix)
            && self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
            && self
                .size_greater_than
                .is_none_or(|min| size.is_some_and(|s| s > min))
            && self
                .size_less_than
                .is_none_or(|max| size.is_some_and(|s| s < max))
    }

    /// When a current version written at `created_ms` expires under this
    /// rule: `expiration_days` after it was written, rounded up to the next
    /// day boundary (S3 rounds to the next midnight UTC; with a real day
    /// the boundaries are exactly the UTC midnights), or the rule's date.
    pub fn current_expiry_ms(&self, created_ms: u64, day_ms: u64) -> Option<u64> {
        let day_ms = day_ms.max(1);
        let by_age = self.expiration_days.map(|days| {
            let due = created_ms.saturating_add(u64::from(days).saturating_mul(day_ms));
            due.div_ceil(day_ms).saturating_mul(day_ms)
        });
        match (by_age, self.expiration_date_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Lifecycle {
    /// The earliest expiry of a current version (of `key`, with these tags
    /// and size, written at `created_ms`) among the rules that match it,
    /// with the rule's id: what `x-amz-expiration` reports and when the
    /// scrubber's lifecycle job expires the version.
    pub fn current_expiry(
        &self,
        key: &str,
        tags: &BTreeMap<String, String>,
        size: u64,
        created_ms: u64,
        day_ms: u64,
    ) -> Option<(u64, Option<&str>)> {
        self.rules
            .iter()
            .filter(|rule| rule.matches(key, tags, Some(size)))
            .filter_map(|rule| {
                rule.current_expiry_ms(created_ms, day_ms)
                    .map(|at| (at, rule.id.as_deref()))
            })
            .min_by_key(|(at, _)| *at)
    }
}

/// A bucket's object lock configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    /// Applied to new versions that name no retention of their own.
    #[serde(default)]
    pub default_retention: Option<DefaultRetention>,
}

/// A bucket's default retention: a period, in days or in years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    #[serde(default)]
    pub days: Option<u32>,
    #[serde(default)]
    pub years: Option<u32>,
}

impl DefaultRetention {
    /// The retention a version written at `now_ms` gets.
    pub fn from(&self, now_ms: u64) -> Retention {
        let days = u64::from(self.days.unwrap_or(0)) + 365 * u64::from(self.years.unwrap_or(0));
        Retention {
            mode: self.mode,
            until_ms: now_ms + days * 86_400_000,
        }
    }
}

/// S3's retention modes: GOVERNANCE can be lifted by a user allowed to
/// bypass it; COMPLIANCE by no one until it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RetentionMode {
    Governance,
    Compliance,
}

/// A version's retention: it cannot be deleted before `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: RetentionMode,
    pub until_ms: u64,
}

/// The lock a new version is written with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionLock {
    #[serde(default)]
    pub retention: Option<Retention>,
    #[serde(default)]
    pub legal_hold: bool,
}

/// A change to one version that keeps its body (the `UpdateVersion`
/// command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionChange {
    Tags(BTreeMap<String, String>),
    /// Sets or (with `None`) removes the retention. Shortening or removing
    /// a GOVERNANCE retention needs `bypass_governance`; a COMPLIANCE one
    /// can only be extended.
    Retention {
        retention: Option<Retention>,
        #[serde(default)]
        bypass_governance: bool,
    },
    LegalHold(bool),
    /// Replaces the version's ACL (`None`: private).
    Acl(Option<Acl>),
}

/// A bucket's versioning state (S3's three: once enabled, a bucket can be
/// suspended but never unversioned again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Versioning {
    /// Every write replaces the key's only version (the `null` one).
    #[default]
    Unversioned,
    /// Every write adds a version; a delete without a version id adds a
    /// delete marker.
    Enabled,
    /// Writes and deletes replace the `null` version and keep the others.
    Suspended,
}

impl Versioning {
    /// Whether writes under this state keep older versions.
    pub fn keeps_versions(self) -> bool {
        self != Self::Unversioned
    }
}

/// The version id S3 gives versions written while versioning was off or
/// suspended.
pub const NULL_VERSION: &str = "null";

/// One version of an object: an object, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    /// Opaque id of this version: `<sequence hex>` in a versioned bucket,
    /// [`NULL_VERSION`] otherwise; assigned at commit.
    pub version_id: String,
    /// Commit order within the shard: larger is newer. Never a clock.
    pub sequence: u64,
    /// A delete marker has no body: its manifest is empty but for its time.
    pub manifest: ObjectManifest,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
}

impl ObjectRecord {
    /// Why this version cannot be removed at `now_ms`, if it cannot: a
    /// legal hold, or a retention not yet over (GOVERNANCE yields to
    /// `bypass_governance`).
    pub fn lock_refusal(&self, now_ms: u64, bypass_governance: bool) -> Option<String> {
        if self.legal_hold {
            return Some(format!("version {} is under a legal hold", self.version_id));
        }
        match self.retention {
            Some(r) if r.until_ms > now_ms => match r.mode {
                RetentionMode::Compliance => Some(format!(
                    "version {} is retained in COMPLIANCE mode",
                    self.version_id
                )),
                RetentionMode::Governance if !bypass_governance => Some(format!(
                    "version {} is retained in GOVERNANCE mode",
                    self.version_id
                )),
                RetentionMode::Governance => None,
            },
            _ => None,
        }
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub modified_ms: u64,
}

/// One listed version (ListObjectVersions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSummary {
    pub key: String,
    pub version_id: String,
    /// Commit order (a compare-and-swap handle for the version).
    #[serde(default)]
    pub sequence: u64,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub modified_ms: u64,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub created_ms: u64,
    /// Manifest fields fixed at creation (content type, metadata, …); parts
    /// are filled in at completion.
    pub template: ObjectManifest,
    #[serde(default)]
    pub parts: BTreeMap<u32, PartRecord>,
    /// The lock named at creation (`x-amz-object-lock-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<VersionLock>,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub part_number: u32,
    /// Hex MD5 of the part, without quotes.
    pub etag: String,
    pub size: u64,
    pub uploaded_ms: u64,
    pub blob: BlobManifest,
    /// The part's additional checksum (base64) in its upload's algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// A part named in CompleteMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// Where a chunk's blob is referenced from (reverse index value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkOwner {
    pub bucket: String,
    pub key: String,
    /// The object version, or the multipart upload holding the part.
    pub version_id: Option<String>,
    pub upload_id: Option<String>,
}

/// One entry of "what lives on node X".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChunk {
    pub node: NodeId,
    pub blob: BlobId,
    pub index: u8,
    pub owner: ChunkOwner,
}

/// A chunk on a node, as garbage collection asks the catalogue about it
/// before deleting it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlacedChunk {
    pub node: NodeId,
    pub chunk: ChunkId,
}

/// Chunks that no manifest references any more, to be deleted by GC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbageEntry {
    pub id: u64,
    pub queued_ms: u64,
    pub blob: BlobManifest,
}

/// When a write applies: checked against the key's current version inside
/// the shard command, so check and write are one atomic step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precondition {
    /// Unconditionally (S3 PUT semantics: the last commit wins).
    #[default]
    None,
    /// Only if the key has no current version (`If-None-Match: *`; a
    /// current delete marker counts as none).
    Absent,
    /// Only if the key has a current version (`If-Match: *`).
    Exists,
    /// Only if the current version is this one.
    VersionIs(String),
    /// Only if the current version was committed at this sequence (a
    /// compare-and-swap that also works where every version id is `null`).
    SequenceIs(u64),
    /// Only if the current version's ETag (unquoted) is this
    /// (`If-Match: "etag"`); no current version: NoSuchKey.
    EtagIs(String),
    /// Unless the current version's ETag is this (`If-None-Match: "etag"`);
    /// no current version passes.
    EtagIsNot(String),
    /// A conditional delete (`If-Match`, `x-amz-if-match-size`,
    /// `x-amz-if-match-last-modified-time`): each given field must match
    /// the version deleted; when there is none, the delete does nothing.
    DeleteIf(DeleteCondition),
}

/// What a conditional delete requires of the version it deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteCondition {
    /// An ETag (unquoted), or `*` for any.
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    /// Compared in whole seconds (HTTP dates have no finer precision).
    #[serde(default)]
    pub last_modified_secs: Option<u64>,
}

impl DeleteCondition {
    /// Whether it names a value a version must have (an ETag other than
    /// `*`, a size, a modification time): a delete marker has none, so a
    /// marker that is current fails such a condition.
    pub fn names_a_value(&self) -> bool {
        self.etag.as_deref().is_some_and(|e| e != "*")
            || self.size.is_some()
            || self.last_modified_secs.is_some()
    }

    /// Whether `record` (the version a delete would remove) satisfies it.
    pub fn holds_for(&self, record: &ObjectRecord) -> bool {
        let m = &record.manifest;
        self.etag
            .as_deref()
            .is_none_or(|e| e == "*" || e.trim_matches('"') == m.etag)
            && self.size.is_none_or(|s| s == m.size)
            && self
                .last_modified_secs
                .is_none_or(|t| t == m.created_ms / 1000)
    }
}

/// Every mutation of a shard. Applying a command is the shard's only way to
/// change state, so a replicated log of commands (Raft) can replace the
/// local apply without changing callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    CreateBucket {
        name: String,
        owner: String,
        /// Object lock enabled (and so versioning, for good).
        #[serde(default)]
        object_lock: bool,
        /// Settings the bucket starts with (Object Ownership, an ACL),
        /// applied in the same commit.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        settings: Vec<BucketSetting>,
    },
    /// Sets a bucket's object lock configuration (enabling it on a
    /// versioning-enabled bucket).
    SetObjectLock {
        bucket: String,
        config: ObjectLock,
    },
    /// Replaces one of a bucket's settings (tags, lifecycle, default
    /// encryption, policy, Block Public Access, CORS).
    SetBucketSetting {
        bucket: String,
        setting: BucketSetting,
    },
    /// Changes one version's tags, retention or legal hold (`version_id`
    /// `None`: the current version).
    UpdateVersion {
        bucket: String,
        key: String,
        #[serde(default)]
        version_id: Option<String>,
        change: VersionChange,
    },
    DeleteBucket {
        name: String,
    },
    /// Sets a bucket's versioning to `Enabled` or `Suspended`.
    SetVersioning {
        bucket: String,
        state: Versioning,
    },
    CommitObject {
        bucket: String,
        key: String,
        manifest: ObjectManifest,
        #[serde(default)]
        precondition: Precondition,
        /// The bucket's versioning as the writer read it (the bucket record
        /// may live on another shard).
        #[serde(default)]
        versioning: Versioning,
        #[serde(default)]
        lock: VersionLock,
    },
    /// Without `version_id`: deletes the current version (unversioned),
    /// or adds a delete marker. With it: removes that version for good.
    DeleteObject {
        bucket: String,
        key: String,
        #[serde(default)]
        precondition: Precondition,
        #[serde(default)]
        versioning: Versioning,
        #[serde(default)]
        version_id: Option<String>,
        /// `x-amz-bypass-governance-retention`.
        #[serde(default)]
        bypass_governance: bool,
    },
    CreateUpload {
        bucket: String,
        key: String,
        template: ObjectManifest,
        /// The lock the request named for the object (else the bucket's
        /// default applies when the upload completes).
        #[serde(default)]
        lock: Option<VersionLock>,
    },
    PutPart {
        bucket: String,
        key: String,
        upload_id: String,
        part: PartRecord,
    },
    CompleteUpload {
        bucket: String,
        key: String,
        upload_id: String,
        parts: Vec<CompletedPart>,
        #[serde(default)]
        versioning: Versioning,
        #[serde(default)]
        precondition: Precondition,
        #[serde(default)]
        lock: VersionLock,
        /// The completed object's additional checksum, computed by the
        /// gateway from the listed parts' (the template names only the
        /// algorithm).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<cairn_core::manifest::ObjectChecksum>,
    },
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// Repair moved chunk `index` of `blob` from `from` to `to` (and it is
    /// stored there now). Applies only if the blob is still referenced with
    /// the chunk on `from`.
    MoveChunk {
        bucket: String,
        key: String,
        blob: BlobId,
        index: u8,
        from: NodeId,
        to: NodeId,
        merkle_root: cairn_core::integrity::MerkleRoot,
    },
    /// GC deleted these garbage entries' chunks.
    AckGarbage {
        ids: Vec<u64>,
    },
}

impl Command {
    /// The catalogue key whose shard applies this command (`None`: any
    /// shard may, e.g. garbage acknowledgements go to the shard that listed
    /// them).
    pub fn routing_key(&self) -> Option<String> {
        match self {
            Self::CreateBucket { name, .. } | Self::DeleteBucket { name } => {
                Some(crate::keys::bucket_anchor(name))
            }
            Self::SetVersioning { bucket, .. }
            | Self::SetObjectLock { bucket, .. }
            | Self::SetBucketSetting { bucket, .. } => Some(crate::keys::bucket_anchor(bucket)),
            Self::UpdateVersion { bucket, key, .. } => {
                Some(crate::keys::catalogue_key(bucket, key))
            }
            Self::CommitObject { bucket, key, .. }
            | Self::DeleteObject { bucket, key, .. }
            | Self::CreateUpload { bucket, key, .. }
            | Self::PutPart { bucket, key, .. }
            | Self::CompleteUpload { bucket, key, .. }
            | Self::AbortUpload { bucket, key, .. }
            | Self::MoveChunk { bucket, key, .. } => Some(crate::keys::catalogue_key(bucket, key)),
            Self::AckGarbage { .. } => None,
        }
    }

    /// Short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateBucket { .. } => "create_bucket",
            Self::DeleteBucket { .. } => "delete_bucket",
            Self::SetVersioning { .. } => "set_versioning",
            Self::SetObjectLock { .. } => "set_object_lock",
            Self::SetBucketSetting { setting, .. } => setting.name(),
            Self::UpdateVersion { .. } => "update_version",
            Self::CommitObject { .. } => "commit_object",
            Self::DeleteObject { .. } => "delete_object",
            Self::CreateUpload { .. } => "create_upload",
            Self::PutPart { .. } => "put_part",
            Self::CompleteUpload { .. } => "complete_upload",
            Self::AbortUpload { .. } => "abort_upload",
            Self::MoveChunk { .. } => "move_chunk",
            Self::AckGarbage { .. } => "ack_garbage",
        }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Committed {
        version_id: String,
        sequence: u64,
    },
    Deleted {
        existed: bool,
        /// The version removed, or the delete marker added.
        #[serde(default)]
        version_id: Option<String>,
        /// Whether that version is a delete marker.
        #[serde(default)]
        delete_marker: bool,
    },
    UploadCreated {
        upload_id: String,
    },
}

/// Arguments of a shard listing (S3 semantics, within the shard's range).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRequest {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Start at this object key (inclusive); empty: at the prefix.
    #[serde(default)]
    pub cursor: String,
    pub limit: usize,
}

/// Arguments of a shard's version listing (ListObjectVersions semantics,
/// within the shard's range).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVersionsRequest {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Start at this object key (inclusive); empty: at the prefix.
    #[serde(default)]
    pub cursor: String,
    /// Within the cursor's key, start after the version with this id
    /// (S3's `version-id-marker`).
    #[serde(default)]
    pub after_version: Option<String>,
    pub limit: usize,
}

/// One listed version or common prefix, in (key, newest first) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VersionEntry {
    Version(VersionSummary),
    Prefix { prefix: String },
}

/// One page of a shard's version listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionPage {
    pub entries: Vec<VersionEntry>,
    /// Where the listing continues (a key, inclusive), when it may.
    pub next_cursor: Option<String>,
}

/// One listed item, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ListEntry {
    Object(ObjectSummary),
    /// A common prefix (up to and including the delimiter).
    Prefix {
        prefix: String,
    },
}

impl ListEntry {
    /// Where a listing that has not yet returned this entry resumes
    /// (inclusive).
    pub fn resume_cursor(&self) -> &str {
        match self {
            Self::Object(o) => &o.key,
            Self::Prefix { prefix } => prefix,
        }
    }
}

/// One page of a shard listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    /// Where the listing continues (an object key, inclusive; possibly on
    /// another shard); `None` when nothing more can match.
    pub next_cursor: Option<String>,
}

/// A storage node as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    pub rack: RackId,
    pub address: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub chunk_count: u64,
    pub state: NodeState,
    pub last_heartbeat_ms: u64,
    pub state_since_ms: u64,
    /// What the operator has decided for it (liveness is `state`).
    #[serde(default)]
    pub lifecycle: NodeLifecycle,
    /// Where services on the node's host may read its chunk files directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<cairn_node_api::LocalEndpoint>,
}

/// The operator's decision about a node, independent of its liveness: a
/// `draining` node keeps serving reads while the scrubber moves every chunk
/// off it, and receives no new chunk; once nothing references it, it is
/// `retired` and may be removed (`cairn node drain`, `cairn node remove`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeLifecycle {
    #[default]
    Active,
    Draining,
    Retired,
}

impl NodeRecord {
    /// The node as placement sees it. A draining or retired node is offered
    /// as not accepting chunks, the way a suspect one is: placement gives
    /// new chunks (writes, repairs) only to nodes that are up and active.
    pub fn candidate(&self) -> cairn_core::placement::NodeCandidate {
        let state = match self.lifecycle {
            NodeLifecycle::Active => self.state,
            NodeLifecycle::Draining | NodeLifecycle::Retired if self.state == NodeState::Up => {
                NodeState::Suspect
            }
            NodeLifecycle::Draining | NodeLifecycle::Retired => self.state,
        };
        cairn_core::placement::NodeCandidate {
            id: self.id.clone(),
            rack: self.rack.clone(),
            capacity: self.capacity_bytes,
            free: self.free_bytes,
            state,
        }
    }
}

/// An operator's change to a node (`POST /cluster/nodes/{id}/lifecycle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum LifecycleChange {
    /// Start moving its chunks off (from active).
    Drain,
    /// Stop a drain: back to active (from draining).
    Cancel,
    /// Nothing references it any more (the scrubber, from draining).
    Retire,
    /// Forget a retired or down node that holds nothing.
    Remove,
}

/// A recorded node state change (the change feed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub sequence: u64,
    pub node: NodeId,
    pub from: Option<NodeState>,
    pub to: NodeState,
    pub at_ms: u64,
}

/// Body of `POST /cluster/split`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRequest {
    /// Give every key under this catalogue prefix (`bucket/dir/`) its own shard.
    pub prefix: String,
}

/// Body of `POST /shards/{id}/split` (internal: the cluster leader asks a
/// shard's leader to split off `[at, …)` as shard `child`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSplit {
    pub at: String,
    pub child: ShardId,
}

/// Body of `POST /cluster/replicas` and `POST /raft/{group}/members`: add
/// a metadata replica (seeded by snapshot, then a voter) or remove one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaChange {
    /// Added to every group with fewer replicas than the map asks for
    /// (every group, when the map places groups on every replica).
    Add {
        id: u64,
        url: String,
        #[serde(default)]
        rack: Option<String>,
    },
    /// Removed from every group it is in.
    Remove { id: u64 },
}

/// One replica's fingerprint of one group's state (`GET /raft/{group}/digest`):
/// equal applied indexes must have equal digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDigest {
    pub group: String,
    pub applied_index: Option<u64>,
    /// blake3 of every state row (key and value, length-prefixed), hex.
    pub digest: String,
    pub rows: u64,
}

/// Body of `POST /shards/{id}/apply`: a command and the id that makes a
/// retry of it (after a lost answer or a change of leader) apply once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub request_id: String,
    pub command: Command,
}

/// A metadata process and the Raft groups it hosts, reported on `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaStatus {
    pub replica_id: u64,
    pub advertise_url: String,
    pub map_version: u64,
    pub groups: Vec<GroupStatus>,
}

/// One group as one replica sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// `cluster` or `shard-N`.
    pub group: String,
    pub term: u64,
    pub leader: Option<u64>,
    /// Index of the last log entry on this replica.
    pub last_log_index: Option<u64>,
    /// Index of the last entry applied to its state machine.
    pub applied_index: Option<u64>,
    pub voters: Vec<u64>,
    /// On the leader: how far each replica's log lags the leader's, in
    /// entries (`None`: not known yet).
    #[serde(default)]
    pub lag: std::collections::BTreeMap<u64, Option<u64>>,
}

/// Whether a shard holds any object or upload of a bucket (the per-shard
/// half of the empty-bucket check on delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketContent {
    pub has_content: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    #[test]
    fn an_expiry_in_days_rounds_up_to_the_next_midnight() {
        let rule = LifecycleRule {
            enabled: true,
            expiration_days: Some(1),
            ..Default::default()
        };
        // Day 20 000 at 10:14 UTC, plus one day, is midnight ending day 20 001.
        let written = 20_000 * DAY + 10 * 3_600_000 + 14 * 60_000;
        assert_eq!(rule.current_expiry_ms(written, DAY), Some(20_002 * DAY));
        // Exactly on a boundary stays there.
        assert_eq!(rule.current_expiry_ms(3 * DAY, DAY), Some(4 * DAY));
    }

    #[test]
    fn the_earliest_matching_rule_wins_and_names_itself() {
        let rule = |id: &str, prefix: &str, days: Option<u32>, date: Option<u64>| LifecycleRule {
            id: Some(id.into()),
            enabled: true,
            prefix: prefix.into(),
            expiration_days: days,
            expiration_date_ms: date,
            ..Default::default()
        };
        let lifecycle = Lifecycle {
            rules: vec![
                rule("slow", "", Some(30), None),
                rule("fast", "logs/", Some(2), None),
                rule("dated", "tmp/", None, Some(10 * DAY)),
                LifecycleRule {
                    enabled: false,
                    ..rule("off", "", Some(1), None)
                },
            ],
        };
        let none = BTreeMap::new();
        let at = |key: &str| lifecycle.current_expiry(key, &none, 1, DAY / 2, DAY);
        assert_eq!(at("logs/a"), Some((3 * DAY, Some("fast"))));
        assert_eq!(at("data/a"), Some((31 * DAY, Some("slow"))));
        assert_eq!(at("tmp/a"), Some((10 * DAY, Some("dated"))));
        let tagged = Lifecycle {
            rules: vec![LifecycleRule {
                tags: BTreeMap::from([("k".into(), "v".into())]),
                ..rule("tagged", "", Some(1), None)
            }],
        };
        assert_eq!(tagged.current_expiry("a", &none, 1, 0, DAY), None);
        let tags = BTreeMap::from([("k".into(), "v".into())]);
        assert_eq!(
            tagged.current_expiry("a", &tags, 1, 0, DAY),
            Some((DAY, Some("tagged")))
        );
    }
}
