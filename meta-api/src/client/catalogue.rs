//! Catalogue calls: buckets, objects, listings, multipart uploads, and the
//! reads that repair and garbage collection need.

use std::collections::HashSet;

use cairn_core::ids::{BlobId, NodeId};
use cairn_core::manifest::ObjectManifest;
use cairn_service::ErrorCode;
use reqwest::Method;

use super::{MetaClient, MetaError, unexpected};
use crate::keys::{bucket_anchor, catalogue_key};
use crate::model::{
    ApplyRequest, BucketContent, BucketRecord, Command, CompletedPart, GarbageEntry, ListEntry,
    ListPage, ListRequest, ListVersionsRequest, NodeChunk, ObjectRecord, Outcome, PartRecord,
    PlacedChunk, Precondition, UploadRecord, VersionChange, VersionEntry, VersionLock, VersionPage,
    Versioning,
};
use crate::shard_map::{ShardId, ShardMap, prefix_successor};

/// Reverse-index entries asked for per request.
const NODE_CHUNK_PAGE: usize = 1000;
/// Chunks asked about per `referenced` request.
const REFERENCED_BATCH: usize = 1000;

/// One page of an object listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectListing {
    pub entries: Vec<ListEntry>,
    pub truncated: bool,
    /// Where the next page starts (inclusive), when truncated.
    pub next_cursor: Option<String>,
}

/// Arguments of [`MetaClient::list_objects`].
#[derive(Debug, Clone, Default)]
pub struct ListObjects {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    /// First key to consider (inclusive): a continuation cursor, or
    /// `start_after + "\0"`.
    pub cursor: String,
    pub max_keys: usize,
}

/// Arguments of [`MetaClient::list_versions`] (ListObjectVersions).
#[derive(Debug, Clone, Default)]
pub struct ListVersions {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    /// First key to consider (inclusive): empty, or where a `key-marker`
    /// resumes…
    pub cursor: String,
    /// …or, with this, after this version of the cursor's key
    /// (`version-id-marker`).
    pub after_version: Option<String>,
    pub max_keys: usize,
}

/// One page of a version listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionListing {
    pub entries: Vec<VersionEntry>,
    pub truncated: bool,
    /// `(key-marker, version-id-marker)` of the next page, when truncated
    /// (no version marker when the page ended on a common prefix).
    pub next_marker: Option<(String, Option<String>)>,
}

/// How a new version is written: its condition on the current version,
/// the bucket's versioning as the writer read it, and its lock.
#[derive(Debug, Clone, Default)]
pub struct VersionWrite {
    pub precondition: Precondition,
    pub versioning: Versioning,
    pub lock: VersionLock,
}

/// What a delete removes and under which conditions.
#[derive(Debug, Clone, Default)]
pub struct VersionDelete {
    pub precondition: Precondition,
    pub versioning: Versioning,
    /// A version removed for good; `None`: the current version (in a
    /// versioned bucket, a delete marker is added instead).
    pub version_id: Option<String>,
    /// `x-amz-bypass-governance-retention`.
    pub bypass_governance: bool,
}

/// What a delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    pub existed: bool,
    /// The version removed, or the delete marker added.
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

impl MetaClient {
    /// Applies a command on the shard that owns it.
    /// Retries (a lost answer, a new leader) carry the same request id, so
    /// the command applies at most once.
    pub async fn apply(&self, command: &Command) -> Result<Outcome, MetaError> {
        let key = command.routing_key().unwrap_or_default();
        let request = ApplyRequest {
            request_id: super::request_id(),
            command: command.clone(),
        };
        self.on_shard(&key, Method::POST, "apply", Some(&request), &[])
            .await
    }

    // ---- buckets ----

    pub async fn create_bucket(&self, name: &str, owner: &str) -> Result<(), MetaError> {
        self.create_bucket_with(name, owner, false).await
    }

    /// Creates a bucket, with object lock (and so versioning) enabled if
    /// `object_lock`.
    pub async fn create_bucket_with(
        &self,
        name: &str,
        owner: &str,
        object_lock: bool,
    ) -> Result<(), MetaError> {
        self.create_bucket_configured(name, owner, object_lock, Vec::new())
            .await
    }

    /// Creates a bucket with `settings` applied in the same commit.
    pub async fn create_bucket_configured(
        &self,
        name: &str,
        owner: &str,
        object_lock: bool,
        settings: Vec<crate::model::BucketSetting>,
    ) -> Result<(), MetaError> {
        self.apply(&Command::CreateBucket {
            name: name.into(),
            owner: owner.into(),
            object_lock,
            settings,
        })
        .await
        .map(drop)
    }

    /// Sets a bucket's object lock configuration.
    pub async fn set_object_lock(
        &self,
        bucket: &str,
        config: crate::model::ObjectLock,
    ) -> Result<(), MetaError> {
        self.apply(&Command::SetObjectLock {
            bucket: bucket.into(),
            config,
        })
        .await
        .map(drop)
    }

    /// Replaces one of a bucket's settings.
    pub async fn set_bucket_setting(
        &self,
        bucket: &str,
        setting: crate::model::BucketSetting,
    ) -> Result<(), MetaError> {
        self.apply(&Command::SetBucketSetting {
            bucket: bucket.into(),
            setting,
        })
        .await
        .map(drop)
    }

    /// Changes one version's tags, retention or legal hold.
    pub async fn update_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: VersionChange,
    ) -> Result<(), MetaError> {
        self.apply(&Command::UpdateVersion {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.map(str::to_owned),
            change,
        })
        .await
        .map(drop)
    }

    /// Sets a bucket's versioning (`Enabled` or `Suspended`).
    pub async fn set_versioning(&self, bucket: &str, state: Versioning) -> Result<(), MetaError> {
        self.apply(&Command::SetVersioning {
            bucket: bucket.into(),
            state,
        })
        .await
        .map(drop)
    }

    /// A record read from the shard owning `key`; `None` when the shard
    /// answers `absent`.
    async fn lookup<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        path: &str,
        query: &[(&str, String)],
        absent: ErrorCode,
    ) -> Result<Option<T>, MetaError> {
        match self
            .on_shard(key, Method::GET, path, None::<&()>, query)
            .await
        {
            Ok(record) => Ok(Some(record)),
            Err(err) if err.code() == Some(absent) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn head_bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetaError> {
        let query = [("name", name.to_owned())];
        self.lookup(
            &bucket_anchor(name),
            "bucket",
            &query,
            ErrorCode::NoSuchBucket,
        )
        .await
    }

    /// All buckets, by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, MetaError> {
        self.across_shards("list buckets", |map: ShardMap| async move {
            let mut buckets: Vec<BucketRecord> = Vec::new();
            for shard in &map.shards {
                let page: Vec<BucketRecord> = self.shard_read(shard, "buckets", &[]).await?;
                buckets.extend(page);
            }
            buckets.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(buckets)
        })
        .await
    }

    /// Deletes an empty bucket. Shards other than the one holding the
    /// bucket record are checked first; the record's own shard re-checks
    /// its part atomically. (A write racing into another shard during the
    /// delete is not excluded.)
    pub async fn delete_bucket(&self, name: &str) -> Result<(), MetaError> {
        let anchor = &bucket_anchor(name);
        let end = &prefix_successor(anchor);
        self.across_shards("bucket content", |map: ShardMap| async move {
            let home = map.route(anchor).id;
            for shard in map.shards_for_range(anchor, end.as_deref()) {
                if shard.id == home {
                    continue;
                }
                let reply: BucketContent = self
                    .shard_read(shard, "bucket-content", &[("name", name.to_owned())])
                    .await?;
                if reply.has_content {
                    return Err(MetaError::Catalogue {
                        code: ErrorCode::BucketNotEmpty,
                        message: format!("bucket {name} is not empty"),
                    });
                }
            }
            Ok(())
        })
        .await?;
        self.apply(&Command::DeleteBucket { name: name.into() })
            .await
            .map(drop)
    }

    // ---- objects ----

    /// Makes `manifest` the current version of `bucket/key` (atomic) in an
    /// unversioned bucket.
    pub async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        manifest: ObjectManifest,
        precondition: Precondition,
    ) -> Result<(String, u64), MetaError> {
        let write = VersionWrite {
            precondition,
            ..Default::default()
        };
        self.commit_version(bucket, key, manifest, write).await
    }

    /// Makes `manifest` the current version of `bucket/key` (atomic) as
    /// `write` says: the version id and commit sequence.
    pub async fn commit_version(
        &self,
        bucket: &str,
        key: &str,
        manifest: ObjectManifest,
        write: VersionWrite,
    ) -> Result<(String, u64), MetaError> {
        self.ensure_bucket_elsewhere(bucket, key).await?;
        match self
            .apply(&Command::CommitObject {
                bucket: bucket.into(),
                key: key.into(),
                manifest,
                precondition: write.precondition,
                versioning: write.versioning,
                lock: write.lock,
            })
            .await?
        {
            Outcome::Committed {
                version_id,
                sequence,
            } => Ok((version_id, sequence)),
            other => Err(unexpected(other)),
        }
    }

    /// The shard applying a write checks the bucket itself when it holds the
    /// bucket record; otherwise the bucket is checked here.
    async fn ensure_bucket_elsewhere(&self, bucket: &str, key: &str) -> Result<(), MetaError> {
        let map = self.shard_map();
        if map.route(&bucket_anchor(bucket)).id == map.route(&catalogue_key(bucket, key)).id {
            return Ok(());
        }
        match self.head_bucket(bucket).await? {
            Some(_) => Ok(()),
            None => Err(MetaError::Catalogue {
                code: ErrorCode::NoSuchBucket,
                message: format!("bucket {bucket} does not exist"),
            }),
        }
    }

    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, MetaError> {
        let query = [("bucket", bucket.to_owned()), ("key", key.to_owned())];
        self.lookup(
            &catalogue_key(bucket, key),
            "object",
            &query,
            ErrorCode::NoSuchKey,
        )
        .await
    }

    /// Deletes the current version of an unversioned object; `Ok(false)`
    /// if there was none.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        precondition: Precondition,
    ) -> Result<bool, MetaError> {
        let delete = VersionDelete {
            precondition,
            ..Default::default()
        };
        self.delete_version(bucket, key, delete)
            .await
            .map(|d| d.existed)
    }

    /// Deletes as `delete` says: a version for good, or the current version
    /// (in a versioned bucket that adds a delete marker).
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        delete: VersionDelete,
    ) -> Result<Deleted, MetaError> {
        match self
            .apply(&Command::DeleteObject {
                bucket: bucket.into(),
                key: key.into(),
                precondition: delete.precondition,
                versioning: delete.versioning,
                version_id: delete.version_id,
                bypass_governance: delete.bypass_governance,
            })
            .await?
        {
            Outcome::Deleted {
                existed,
                version_id,
                delete_marker,
            } => Ok(Deleted {
                existed,
                version_id,
                delete_marker,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// One version of an object, delete markers included: the current one
    /// (`version_id` `None`), or the one with that id.
    pub async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectRecord>, MetaError> {
        let mut query = vec![
            ("bucket", bucket.to_owned()),
            ("key", key.to_owned()),
            ("markers", "true".to_owned()),
        ];
        if let Some(version) = version_id {
            query.push(("version", version.to_owned()));
        }
        self.lookup(
            &catalogue_key(bucket, key),
            "object",
            &query,
            ErrorCode::NoSuchKey,
        )
        .await
    }

    /// One page of a version listing (ListObjectVersions), across shards.
    pub async fn list_versions(&self, request: &ListVersions) -> Result<VersionListing, MetaError> {
        let mut after_version = request.after_version.clone();
        let mut entries = self
            .page_across_shards(
                &request.bucket,
                request.cursor.as_str().max(request.prefix.as_str()),
                request.max_keys + 1,
                "list-versions",
                |cursor, limit| ListVersionsRequest {
                    bucket: request.bucket.clone(),
                    prefix: request.prefix.clone(),
                    delimiter: request.delimiter.clone(),
                    cursor,
                    // Only the first page resumes inside a key.
                    after_version: after_version.take(),
                    limit,
                },
                |page: VersionPage| (page.entries, page.next_cursor),
            )
            .await?;
        let truncated = entries.len() > request.max_keys;
        entries.truncate(request.max_keys);
        let next_marker = if truncated {
            entries.last().map(|last| match last {
                VersionEntry::Version(v) => (v.key.clone(), Some(v.version_id.clone())),
                VersionEntry::Prefix { prefix } => (prefix.clone(), None),
            })
        } else {
            None
        };
        Ok(VersionListing {
            entries,
            truncated,
            next_marker,
        })
    }

    /// One page of a bucket listing with S3 semantics, across shards.
    pub async fn list_objects(&self, request: &ListObjects) -> Result<ObjectListing, MetaError> {
        // One extra entry tells whether the listing is truncated.
        let mut entries = self
            .page_across_shards(
                &request.bucket,
                request.cursor.as_str().max(request.prefix.as_str()),
                request.max_keys + 1,
                "list",
                |cursor, limit| ListRequest {
                    bucket: request.bucket.clone(),
                    prefix: request.prefix.clone(),
                    delimiter: request.delimiter.clone(),
                    cursor,
                    limit,
                },
                |page: ListPage| (page.entries, page.next_cursor),
            )
            .await?;
        let truncated = entries.len() > request.max_keys;
        let next_cursor = truncated.then(|| entries[request.max_keys].resume_cursor().to_owned());
        entries.truncate(request.max_keys);
        Ok(ObjectListing {
            entries,
            truncated,
            next_cursor,
        })
    }

    /// Up to `want` entries of a bucket listing from `start` on, page after
    /// page, each from the shard that owns where the listing stands: the
    /// loop both object and version listings share. `request(cursor,
    /// limit)` builds a shard's request; `split` takes a page apart into
    /// its entries and where the listing continues.
    async fn page_across_shards<Req, Page, Entry>(
        &self,
        bucket: &str,
        start: &str,
        want: usize,
        path: &str,
        mut request: impl FnMut(String, usize) -> Req,
        split: impl Fn(Page) -> (Vec<Entry>, Option<String>),
    ) -> Result<Vec<Entry>, MetaError>
    where
        Req: serde::Serialize,
        Page: serde::de::DeserializeOwned,
    {
        let mut entries = Vec::new();
        let mut cursor = start.to_owned();
        loop {
            let shard_request = request(cursor.clone(), want - entries.len());
            let page: Page = self
                .on_shard(
                    &catalogue_key(bucket, &cursor),
                    Method::POST,
                    path,
                    Some(&shard_request),
                    &[],
                )
                .await?;
            let (page_entries, next_cursor) = split(page);
            entries.extend(page_entries);
            match next_cursor {
                Some(next) if entries.len() < want && next > cursor => cursor = next,
                _ => return Ok(entries),
            }
        }
    }

    // ---- multipart ----

    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        template: ObjectManifest,
    ) -> Result<String, MetaError> {
        self.create_upload_locked(bucket, key, template, None).await
    }

    /// Starts an upload whose object gets `lock` (else the bucket's
    /// default retention when it completes).
    pub async fn create_upload_locked(
        &self,
        bucket: &str,
        key: &str,
        template: ObjectManifest,
        lock: Option<VersionLock>,
    ) -> Result<String, MetaError> {
        self.ensure_bucket_elsewhere(bucket, key).await?;
        match self
            .apply(&Command::CreateUpload {
                bucket: bucket.into(),
                key: key.into(),
                template,
                lock,
            })
            .await?
        {
            Outcome::UploadCreated { upload_id } => Ok(upload_id),
            other => Err(unexpected(other)),
        }
    }

    pub async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: PartRecord,
    ) -> Result<(), MetaError> {
        self.apply(&Command::PutPart {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            part,
        })
        .await
        .map(drop)
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(String, u64), MetaError> {
        self.complete_upload_versioned(bucket, key, upload_id, parts, VersionWrite::default(), None)
            .await
    }

    /// Completes an upload as a new version written as `write` says.
    pub async fn complete_upload_versioned(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        write: VersionWrite,
        checksum: Option<cairn_core::manifest::ObjectChecksum>,
    ) -> Result<(String, u64), MetaError> {
        match self
            .apply(&Command::CompleteUpload {
                bucket: bucket.into(),
                key: key.into(),
                upload_id: upload_id.into(),
                parts,
                versioning: write.versioning,
                precondition: write.precondition,
                lock: write.lock,
                checksum,
            })
            .await?
        {
            Outcome::Committed {
                version_id,
                sequence,
            } => Ok((version_id, sequence)),
            other => Err(unexpected(other)),
        }
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), MetaError> {
        self.apply(&Command::AbortUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
        })
        .await
        .map(drop)
    }

    pub async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, MetaError> {
        let query = [
            ("bucket", bucket.to_owned()),
            ("key", key.to_owned()),
            ("upload_id", upload_id.to_owned()),
        ];
        self.on_shard(
            &catalogue_key(bucket, key),
            Method::GET,
            "upload",
            None::<&()>,
            &query,
        )
        .await
    }

    /// In-progress uploads of a bucket under `prefix`, in (key, id) order.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, MetaError> {
        let start = &catalogue_key(bucket, prefix);
        let end = &prefix_successor(start);
        self.across_shards("list uploads", |map: ShardMap| async move {
            let mut out = Vec::new();
            for shard in map.shards_for_range(start, end.as_deref()) {
                let query = [
                    ("bucket", bucket.to_owned()),
                    ("prefix", prefix.to_owned()),
                    ("limit", (limit - out.len()).to_string()),
                ];
                let page: Vec<UploadRecord> = self.shard_read(shard, "uploads", &query).await?;
                out.extend(page);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    // ---- repair and garbage collection ----

    /// Everything the catalogue places on `node` (reverse index, all shards).
    pub async fn chunks_on_node(&self, node: &NodeId) -> Result<Vec<NodeChunk>, MetaError> {
        self.across_shards("chunks on a node", |map: ShardMap| async move {
            let mut out = Vec::new();
            for shard in &map.shards {
                let mut after: Option<(BlobId, u8)> = None;
                loop {
                    let mut query = vec![
                        ("node", node.to_string()),
                        ("limit", NODE_CHUNK_PAGE.to_string()),
                    ];
                    if let Some((blob, index)) = after {
                        query.push(("after_blob", blob.to_hex()));
                        query.push(("after_index", index.to_string()));
                    }
                    let page: Vec<NodeChunk> =
                        self.shard_read(shard, "node-chunks", &query).await?;
                    let done = page.len() < NODE_CHUNK_PAGE;
                    after = page.last().map(|c| (c.blob, c.index));
                    out.extend(page);
                    if done {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// The subset of `chunks` that some manifest or upload references, by
    /// every shard's reverse index read under one shard map (a shard split
    /// meanwhile makes the whole question be asked again). Garbage
    /// collection's last check before it deletes.
    pub async fn referenced(
        &self,
        chunks: &[PlacedChunk],
    ) -> Result<HashSet<PlacedChunk>, MetaError> {
        if chunks.is_empty() {
            return Ok(HashSet::new());
        }
        self.across_shards("referenced chunks", |map: ShardMap| async move {
            let mut found = HashSet::new();
            for shard in &map.shards {
                for batch in chunks.chunks(REFERENCED_BATCH) {
                    let answers: Vec<bool> =
                        self.shard_read_posting(shard, "referenced", &batch).await?;
                    if answers.len() != batch.len() {
                        return Err(MetaError::UnexpectedOutcome(format!(
                            "{} answers for {} chunks",
                            answers.len(),
                            batch.len()
                        )));
                    }
                    found.extend(
                        batch
                            .iter()
                            .zip(answers)
                            .filter(|(_, referenced)| *referenced)
                            .map(|(chunk, _)| chunk.clone()),
                    );
                }
            }
            Ok(found)
        })
        .await
    }

    /// Garbage queued on one shard, after `after`.
    pub async fn garbage(
        &self,
        shard: ShardId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<GarbageEntry>, MetaError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        Ok(self
            .on_shard_id(shard, Method::GET, "garbage", None::<&()>, &query)
            .await?
            .unwrap_or_default())
    }

    /// Acknowledges garbage entries of `shard` whose chunks are deleted.
    pub async fn ack_garbage(&self, shard: ShardId, ids: Vec<u64>) -> Result<(), MetaError> {
        let _: Option<Outcome> = self
            .on_shard_id(
                shard,
                Method::POST,
                "apply",
                Some(&ApplyRequest {
                    request_id: super::request_id(),
                    command: Command::AckGarbage { ids },
                }),
                &[],
            )
            .await?;
        Ok(())
    }
}
