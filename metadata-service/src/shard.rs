//! One shard: a RocksDB holding a key range of the catalogue, changed only by
//! applying [`Command`]s.
//!
//! Concurrency: commands are applied one at a time under the shard's write
//! lock (read-check-write is then a compare-and-swap), and each command is
//! one `WriteBatch` written with a synced WAL before it is acknowledged.
//! Reads hold the range lock for reading, so a split that moves keys away
//! cannot make a read miss them: the read either finishes first, or it sees
//! the new range and is told `WrongShard`.

use std::path::Path;
use std::sync::{Mutex, RwLock};

use cairn_core::ids::{BlobId, NodeId, validate_bucket_name, validate_object_key};
use cairn_core::integrity::root_of_roots;
use cairn_core::manifest::{BlobManifest, ChunkState, ObjectManifest};
use md5::{Digest, Md5};
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::{self, bucket_anchor, catalogue_key};
use crate::model::{
    BucketRecord, ChunkOwner, Command, CompletedPart, GarbageEntry, ListEntry, ListPage,
    ListRequest, NodeChunk, ObjectRecord, ObjectSummary, Outcome, PartRecord, Precondition,
    UploadRecord,
};
use crate::shard_map::{ShardId, prefix_successor};

/// Smallest size of every multipart part but the last (S3's rule).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0} already exists and is yours")]
    BucketAlreadyOwnedByYou(String),
    #[error("bucket {0} already exists")]
    BucketAlreadyExists(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error("{0}")]
    InvalidBucketName(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("no object {bucket}/{key}")]
    NoSuchKey { bucket: String, key: String },
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("no multipart upload {0}")]
    NoSuchUpload(String),
    #[error("part {part_number} was not uploaded or its ETag does not match")]
    InvalidPart { part_number: u32 },
    #[error("parts must be listed in ascending order")]
    InvalidPartOrder,
    #[error("part {part_number} is {size} bytes; all parts but the last need {MIN_PART_SIZE}")]
    EntityTooSmall { part_number: u32, size: u64 },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("key {key:?} is not in {shard}'s range")]
    WrongShard { shard: ShardId, key: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("storage: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// The key range a shard currently owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: String,
    pub end: Option<String>,
}

impl KeyRange {
    pub fn contains(&self, key: &str) -> bool {
        key >= self.start.as_str() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

pub struct Shard {
    id: ShardId,
    db: DB,
    range: RwLock<KeyRange>,
    write: Mutex<()>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("id", &self.id).finish()
    }
}

fn sync_writes() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("catalogue records serialize")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

impl Shard {
    /// Opens (creating if missing) the shard's database.
    pub fn open(id: ShardId, path: &Path, range: KeyRange) -> Result<Self, CatalogError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let db = DB::open(&options, path)?;
        let shard = Self {
            id,
            db,
            range: RwLock::new(range),
            write: Mutex::new(()),
        };
        shard.drop_rows_outside_range()?;
        Ok(shard)
    }

    /// A crash between publishing a split and deleting the moved rows
    /// leaves rows this shard no longer owns; they are removed on open, so
    /// that a shard's database only ever holds its own range.
    fn drop_rows_outside_range(&self) -> Result<(), CatalogError> {
        let range = self.range();
        let mut stale = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::Start) {
            let (key, value) = item?;
            if catalogue_key_of_row(&key, &value)?.is_some_and(|cat| !range.contains(&cat)) {
                stale.delete(&key);
            }
        }
        if !stale.is_empty() {
            tracing::warn!(shard = %self.id, rows = stale.len(), "removing rows outside the shard's range (interrupted split)");
            self.db.write_opt(stale, &sync_writes())?;
        }
        Ok(())
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    /// RocksDB's estimate of the number of keys (for metrics).
    pub fn estimated_keys(&self) -> Option<u64> {
        self.db
            .property_int_value("rocksdb.estimate-num-keys")
            .ok()
            .flatten()
    }

    /// RocksDB's estimate of live data bytes, memtables included (for metrics).
    pub fn estimated_bytes(&self) -> Option<u64> {
        let property = |name: &str| self.db.property_int_value(name).ok().flatten();
        Some(
            property("rocksdb.estimate-live-data-size")?
                + property("rocksdb.cur-size-all-mem-tables")?,
        )
    }

    pub fn range(&self) -> KeyRange {
        self.range.read().expect("range lock").clone()
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, CatalogError> {
        self.db.get(key)?.map(|v| decode(&v)).transpose()
    }

    fn counter(&self, name: &str) -> Result<u64, CatalogError> {
        Ok(self
            .db
            .get(keys::meta(name))?
            .and_then(|v| v.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    fn check_owns(&self, range: &KeyRange, key: &str) -> Result<(), CatalogError> {
        if range.contains(key) {
            Ok(())
        } else {
            Err(CatalogError::WrongShard {
                shard: self.id,
                key: key.to_owned(),
            })
        }
    }

    /// Applies one command atomically and durably (synced WAL).
    pub fn apply(&self, command: &Command, now_ms: u64) -> Result<Outcome, CatalogError> {
        let _write = self.write.lock().expect("write lock");
        let range = self.range.read().expect("range lock");
        if let Some(key) = command.routing_key() {
            self.check_owns(&range, &key)?;
        }
        let mut tx = Tx {
            shard: self,
            range: &range,
            batch: WriteBatch::default(),
            now_ms,
            sequence: None,
            garbage: None,
        };
        let outcome = tx.apply(command)?;
        let Tx {
            mut batch,
            sequence,
            garbage,
            ..
        } = tx;
        if let Some(sequence) = sequence {
            batch.put(keys::meta("sequence"), sequence.to_be_bytes());
        }
        if let Some(garbage) = garbage {
            batch.put(keys::meta("garbage"), garbage.to_be_bytes());
        }
        self.db.write_opt(batch, &sync_writes())?;
        Ok(outcome)
    }

    // ---- reads ----

    pub fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        self.check_owns(&range, &bucket_anchor(name))?;
        self.get(&keys::bucket(name))
    }

    /// The buckets whose records this shard holds.
    pub fn list_buckets(&self) -> Result<Vec<BucketRecord>, CatalogError> {
        let _range = self.range.read().expect("range lock");
        let scope = keys::namespaced(keys::BUCKET, &[]);
        self.scan(&scope, &scope, usize::MAX, |_, v| decode(v))
    }

    pub fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        let cat = catalogue_key(bucket, key);
        self.check_owns(&range, &cat)?;
        self.get(&keys::object(&cat))
    }

    /// Whether this shard holds any object or upload of `bucket`.
    pub fn bucket_has_content(&self, bucket: &str) -> Result<bool, CatalogError> {
        let _range = self.range.read().expect("range lock");
        self.has_content(bucket)
    }

    /// [`Shard::bucket_has_content`] for callers already holding the range lock.
    fn has_content(&self, bucket: &str) -> Result<bool, CatalogError> {
        let anchor = bucket_anchor(bucket);
        for namespace in [keys::OBJECT, keys::UPLOAD] {
            let prefix = keys::namespaced(namespace, anchor.as_bytes());
            if let Some(Ok((key, _))) = self
                .db
                .iterator(IteratorMode::From(&prefix, Direction::Forward))
                .next()
                && key.starts_with(&prefix)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Lists objects of one bucket with S3 semantics, within this shard's
    /// range (see [`ListPage::next_cursor`] for how to continue).
    pub fn list(&self, request: &ListRequest) -> Result<ListPage, CatalogError> {
        let range = self.range.read().expect("range lock");
        let prefix_cat = catalogue_key(&request.bucket, &request.prefix);
        let mut cursor = request
            .cursor
            .as_str()
            .max(request.prefix.as_str())
            .to_owned();
        let mut entries = Vec::new();
        let anchor_len = request.bucket.len() + 1;
        let mut iter = self.db.raw_iterator();
        let seek_to = |iter: &mut rocksdb::DBRawIterator, cursor: &str| {
            iter.seek(keys::object(&catalogue_key(&request.bucket, cursor)));
        };
        seek_to(&mut iter, &cursor);
        loop {
            if entries.len() >= request.limit {
                return Ok(ListPage {
                    entries,
                    next_cursor: Some(cursor),
                });
            }
            let cat = catalogue_key(&request.bucket, &cursor);
            if !range.contains(&cat) {
                // The cursor left this shard: the caller continues elsewhere.
                return Ok(ListPage {
                    entries,
                    next_cursor: self.continuation(&range, &prefix_cat, anchor_len, Some(cursor)),
                });
            }
            let found = match (iter.valid(), iter.key()) {
                (true, Some(k)) => keys::catalogue_key_of_object(k).map(str::to_owned),
                _ => None,
            };
            let Some(found) = found.filter(|k| k.starts_with(&prefix_cat) && range.contains(k))
            else {
                iter.status()?;
                return Ok(ListPage {
                    entries,
                    next_cursor: self.continuation(&range, &prefix_cat, anchor_len, None),
                });
            };
            let key = &found[anchor_len..];
            let grouped = request
                .delimiter
                .as_deref()
                .filter(|d| !d.is_empty())
                .and_then(|d| {
                    key[request.prefix.len()..]
                        .find(d)
                        .map(|at| key[..request.prefix.len() + at + d.len()].to_owned())
                });
            match grouped {
                Some(common) => {
                    let next = prefix_successor(&common);
                    entries.push(ListEntry::Prefix { prefix: common });
                    match next {
                        Some(next) => {
                            cursor = next;
                            seek_to(&mut iter, &cursor);
                        }
                        None => {
                            return Ok(ListPage {
                                entries,
                                next_cursor: None,
                            });
                        }
                    }
                }
                None => {
                    let record: ObjectRecord = decode(iter.value().unwrap_or_default())?;
                    entries.push(ListEntry::Object(summary(&record)));
                    cursor = format!("{key}\0");
                    iter.next();
                }
            }
        }
    }

    /// Where a listing continues once this shard has nothing more for it:
    /// at the shard's end (or at `beyond`, where a common prefix made the
    /// cursor jump past the end), unless the next shard starts past every
    /// key the listing can match.
    fn continuation(
        &self,
        range: &KeyRange,
        prefix_cat: &str,
        anchor_len: usize,
        beyond: Option<String>,
    ) -> Option<String> {
        let end = range.end.as_deref()?;
        if prefix_successor(prefix_cat).is_some_and(|limit| end >= limit.as_str()) {
            return None;
        }
        // end lies inside the listing's scope, so it starts with `bucket/`.
        let from_end = end.get(anchor_len..)?.to_owned();
        Some(beyond.filter(|b| *b > from_end).unwrap_or(from_end))
    }

    pub fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        let cat = catalogue_key(bucket, key);
        self.check_owns(&range, &cat)?;
        self.get(&keys::upload(&cat, upload_id))
    }

    /// In-progress uploads of a bucket under `prefix`, in (key, upload id)
    /// order, after `after` = (key, upload id).
    pub fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, CatalogError> {
        let _range = self.range.read().expect("range lock");
        let start = match after {
            Some((key, id)) => {
                let mut k = keys::upload(&catalogue_key(bucket, key), id);
                k.push(0);
                k
            }
            None => keys::namespaced(keys::UPLOAD, catalogue_key(bucket, prefix).as_bytes()),
        };
        let scope = keys::namespaced(keys::UPLOAD, catalogue_key(bucket, prefix).as_bytes());
        self.scan(&scope, &start, limit, |_, v| decode(v))
    }

    /// Reverse index: chunks this shard's catalogue places on `node`, after
    /// `after` (blob, index).
    pub fn chunks_on_node(
        &self,
        node: &NodeId,
        after: Option<(BlobId, u8)>,
        limit: usize,
    ) -> Result<Vec<NodeChunk>, CatalogError> {
        let _range = self.range.read().expect("range lock");
        let prefix = keys::node_prefix(node);
        let start = match after {
            Some((blob, index)) => {
                let mut k = keys::node_chunk(node, &blob, index);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        self.scan(&prefix, &start, limit, |k, v| {
            let rest = &k[prefix.len()..];
            let (Some(blob), Some(&index)) = (rest.get(..16), rest.get(16)) else {
                return Err(CatalogError::Corrupt("reverse index key".into()));
            };
            let blob: [u8; 16] = blob
                .try_into()
                .map_err(|_| CatalogError::Corrupt("blob id".into()))?;
            Ok(NodeChunk {
                node: node.clone(),
                blob: BlobId::from_bytes(blob),
                index,
                owner: decode(v)?,
            })
        })
    }

    /// Queued garbage with id > `after`.
    pub fn garbage(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<GarbageEntry>, CatalogError> {
        self.scan(
            &keys::namespaced(keys::GARBAGE, &[]),
            &keys::garbage(after.map_or(0, |a| a + 1)),
            limit,
            |_, v| decode(v),
        )
    }

    /// Up to `limit` rows whose keys start with `scope`, from `start` on,
    /// each turned into a `T` by `f(key, value)`.
    fn scan<T>(
        &self,
        scope: &[u8],
        start: &[u8],
        limit: usize,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<T, CatalogError>,
    ) -> Result<Vec<T>, CatalogError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item?;
            if !k.starts_with(scope) || out.len() >= limit {
                break;
            }
            out.push(f(&k, &v)?);
        }
        Ok(out)
    }

    // ---- splitting ----

    /// Moves every record at or above catalogue key `at` into a new shard
    /// opened at `path`, and shrinks this shard's range to end at `at`.
    /// Writes to this shard wait for the whole move; reads continue until
    /// the final switch. `install` is called with the new shard before this
    /// shard's range shrinks, so that requests rejected here as
    /// `WrongShard` find the new shard already serving.
    pub fn split_off(
        &self,
        at: &str,
        new_id: ShardId,
        path: &Path,
        install: impl FnOnce(Shard) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        let _write = self.write.lock().expect("write lock");
        let old = self.range();
        if !old.contains(at) || at == old.start {
            return Err(CatalogError::Conflict(format!(
                "{at:?} is not inside {}'s range",
                self.id
            )));
        }
        let upper = KeyRange {
            start: at.to_owned(),
            end: old.end.clone(),
        };
        // The new id is not in the map yet, so anything at `path` is debris
        // of an earlier, interrupted split.
        if path.exists() {
            std::fs::remove_dir_all(path)
                .map_err(|e| CatalogError::Corrupt(format!("{}: {e}", path.display())))?;
        }
        let target = Shard::open(new_id, path, upper.clone())?;
        let mut copy = WriteBatch::default();
        let mut remove = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::Start) {
            let (k, v) = item?;
            if catalogue_key_of_row(&k, &v)?.is_some_and(|cat| upper.contains(&cat)) {
                copy.put(&k, &v);
                remove.delete(&k);
            }
        }
        copy.put(
            keys::meta("sequence"),
            self.counter("sequence")?.to_be_bytes(),
        );
        target.db.write_opt(copy, &sync_writes())?;
        install(target)?;
        let mut range = self.range.write().expect("range lock");
        range.end = Some(at.to_owned());
        self.db.write_opt(remove, &sync_writes())?;
        Ok(())
    }
}

/// The catalogue key a database row belongs to (`None` for shard-wide rows:
/// counters and the GC queue, which stay where they are).
fn catalogue_key_of_row(key: &[u8], value: &[u8]) -> Result<Option<String>, CatalogError> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(match key.first() {
        Some(&keys::BUCKET) => Some(bucket_anchor(&text(&key[2..]))),
        Some(&keys::OBJECT) => Some(text(&key[2..])),
        Some(&keys::UPLOAD) => {
            let record: UploadRecord = decode(value)?;
            Some(catalogue_key(&record.bucket, &record.key))
        }
        Some(&keys::NODE_CHUNK) => {
            let owner: ChunkOwner = decode(value)?;
            Some(catalogue_key(&owner.bucket, &owner.key))
        }
        _ => None,
    })
}

fn summary(record: &ObjectRecord) -> ObjectSummary {
    ObjectSummary {
        key: record.key.clone(),
        size: record.manifest.size,
        etag: record.manifest.etag.clone(),
        modified_ms: record.manifest.created_ms,
    }
}

/// One command being applied: reads see committed state, writes collect in
/// a batch.
struct Tx<'a> {
    shard: &'a Shard,
    range: &'a KeyRange,
    batch: WriteBatch,
    now_ms: u64,
    sequence: Option<u64>,
    garbage: Option<u64>,
}

impl Tx<'_> {
    fn apply(&mut self, command: &Command) -> Result<Outcome, CatalogError> {
        match command {
            Command::CreateBucket { name, owner } => self.create_bucket(name, owner),
            Command::DeleteBucket { name } => self.delete_bucket(name),
            Command::CommitObject {
                bucket,
                key,
                manifest,
                precondition,
            } => {
                self.check_bucket(bucket)?;
                validate_object_key(key).map_err(CatalogError::InvalidKey)?;
                self.commit(bucket, key, manifest.clone(), precondition)
            }
            Command::DeleteObject {
                bucket,
                key,
                precondition,
            } => self.delete_object(bucket, key, precondition),
            Command::CreateUpload {
                bucket,
                key,
                template,
            } => {
                self.check_bucket(bucket)?;
                validate_object_key(key).map_err(CatalogError::InvalidKey)?;
                let upload_id = BlobId::random().to_hex();
                let record = UploadRecord {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    upload_id: upload_id.clone(),
                    created_ms: self.now_ms,
                    template: template.clone(),
                    parts: Default::default(),
                };
                self.batch.put(
                    keys::upload(&catalogue_key(bucket, key), &upload_id),
                    encode(&record),
                );
                Ok(Outcome::UploadCreated { upload_id })
            }
            Command::PutPart {
                bucket,
                key,
                upload_id,
                part,
            } => self.put_part(bucket, key, upload_id, part),
            Command::CompleteUpload {
                bucket,
                key,
                upload_id,
                parts,
            } => self.complete_upload(bucket, key, upload_id, parts),
            Command::AbortUpload {
                bucket,
                key,
                upload_id,
            } => {
                let mut upload = self.upload(bucket, key, upload_id)?;
                for part in std::mem::take(&mut upload.parts).into_values() {
                    self.discard_blob(part.blob)?;
                }
                self.batch
                    .delete(keys::upload(&catalogue_key(bucket, key), upload_id));
                Ok(Outcome::Done)
            }
            Command::MoveChunk {
                bucket,
                key,
                blob,
                index,
                from,
                to,
                merkle_root,
            } => self.move_chunk(bucket, key, *blob, *index, from, to, *merkle_root),
            Command::AckGarbage { ids } => {
                for id in ids {
                    self.batch.delete(keys::garbage(*id));
                }
                Ok(Outcome::Done)
            }
        }
    }

    fn next_sequence(&mut self) -> Result<u64, CatalogError> {
        let next = match self.sequence {
            Some(s) => s + 1,
            None => self.shard.counter("sequence")? + 1,
        };
        self.sequence = Some(next);
        Ok(next)
    }

    fn create_bucket(&mut self, name: &str, owner: &str) -> Result<Outcome, CatalogError> {
        validate_bucket_name(name).map_err(CatalogError::InvalidBucketName)?;
        if let Some(existing) = self.shard.get::<BucketRecord>(&keys::bucket(name))? {
            return Err(if existing.owner == owner {
                CatalogError::BucketAlreadyOwnedByYou(name.to_owned())
            } else {
                CatalogError::BucketAlreadyExists(name.to_owned())
            });
        }
        let record = BucketRecord {
            name: name.to_owned(),
            owner: owner.to_owned(),
            created_ms: self.now_ms,
        };
        self.batch.put(keys::bucket(name), encode(&record));
        Ok(Outcome::Done)
    }

    fn delete_bucket(&mut self, name: &str) -> Result<Outcome, CatalogError> {
        if self
            .shard
            .get::<BucketRecord>(&keys::bucket(name))?
            .is_none()
        {
            return Err(CatalogError::NoSuchBucket(name.to_owned()));
        }
        if self.shard.has_content(name)? {
            return Err(CatalogError::BucketNotEmpty(name.to_owned()));
        }
        self.batch.delete(keys::bucket(name));
        Ok(Outcome::Done)
    }

    /// Rejects writes into a missing bucket when this shard holds the
    /// bucket's record; otherwise the client checked it.
    fn check_bucket(&self, bucket: &str) -> Result<(), CatalogError> {
        let anchor = bucket_anchor(bucket);
        if self.range.contains(&anchor)
            && self
                .shard
                .get::<BucketRecord>(&keys::bucket(bucket))?
                .is_none()
        {
            return Err(CatalogError::NoSuchBucket(bucket.to_owned()));
        }
        Ok(())
    }

    fn check_precondition(
        current: Option<&ObjectRecord>,
        precondition: &Precondition,
    ) -> Result<(), CatalogError> {
        match (precondition, current) {
            (Precondition::None, _) | (Precondition::Absent, None) => Ok(()),
            (Precondition::Absent, Some(c)) => Err(CatalogError::PreconditionFailed(format!(
                "object exists at version {}",
                c.version_id
            ))),
            (Precondition::VersionIs(v), Some(c)) if *v == c.version_id => Ok(()),
            (Precondition::VersionIs(v), current) => {
                Err(CatalogError::PreconditionFailed(format!(
                    "expected version {v}, found {}",
                    current.map_or("none", |c| c.version_id.as_str())
                )))
            }
        }
    }

    fn commit(
        &mut self,
        bucket: &str,
        key: &str,
        manifest: ObjectManifest,
        precondition: &Precondition,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let current: Option<ObjectRecord> = self.shard.get(&keys::object(&cat))?;
        Self::check_precondition(current.as_ref(), precondition)?;
        let sequence = self.next_sequence()?;
        let version_id = format!("{sequence:016x}");
        if let Some(old) = current {
            for blob in old.manifest.parts {
                self.discard_blob(blob)?;
            }
        }
        let owner = ChunkOwner {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: Some(version_id.clone()),
            upload_id: None,
        };
        for blob in &manifest.parts {
            self.index_blob(blob, &owner);
        }
        let record = ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version_id.clone(),
            sequence,
            manifest,
        };
        self.batch.put(keys::object(&cat), encode(&record));
        Ok(Outcome::Committed {
            version_id,
            sequence,
        })
    }

    fn delete_object(
        &mut self,
        bucket: &str,
        key: &str,
        precondition: &Precondition,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let current: Option<ObjectRecord> = self.shard.get(&keys::object(&cat))?;
        Self::check_precondition(current.as_ref(), precondition)?;
        let Some(current) = current else {
            return Ok(Outcome::Deleted { existed: false });
        };
        for blob in current.manifest.parts {
            self.discard_blob(blob)?;
        }
        self.batch.delete(keys::object(&cat));
        Ok(Outcome::Deleted { existed: true })
    }

    fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, CatalogError> {
        self.shard
            .get(&keys::upload(&catalogue_key(bucket, key), upload_id))?
            .ok_or_else(|| CatalogError::NoSuchUpload(upload_id.to_owned()))
    }

    fn put_part(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: &PartRecord,
    ) -> Result<Outcome, CatalogError> {
        if !(1..=10_000).contains(&part.part_number) {
            return Err(CatalogError::Malformed(format!(
                "part number {} is outside 1..=10000",
                part.part_number
            )));
        }
        let mut upload = self.upload(bucket, key, upload_id)?;
        if let Some(old) = upload.parts.remove(&part.part_number) {
            self.discard_blob(old.blob)?;
        }
        let owner = ChunkOwner {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: None,
            upload_id: Some(upload_id.to_owned()),
        };
        self.index_blob(&part.blob, &owner);
        upload.parts.insert(part.part_number, part.clone());
        self.batch.put(
            keys::upload(&catalogue_key(bucket, key), upload_id),
            encode(&upload),
        );
        Ok(Outcome::Done)
    }

    fn complete_upload(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Outcome, CatalogError> {
        let mut upload = self.upload(bucket, key, upload_id)?;
        if parts.is_empty() {
            return Err(CatalogError::Malformed(
                "CompleteMultipartUpload names no parts".into(),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(CatalogError::InvalidPartOrder);
        }
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, wanted) in parts.iter().enumerate() {
            let etag = wanted.etag.trim_matches('"');
            let part = upload
                .parts
                .remove(&wanted.part_number)
                .filter(|p| p.etag.eq_ignore_ascii_case(etag))
                .ok_or(CatalogError::InvalidPart {
                    part_number: wanted.part_number,
                })?;
            if i + 1 < parts.len() && part.size < MIN_PART_SIZE {
                return Err(CatalogError::EntityTooSmall {
                    part_number: part.part_number,
                    size: part.size,
                });
            }
            chosen.push(part);
        }
        let mut md5s = Md5::new();
        for part in &chosen {
            let digest = hex::decode(&part.etag)
                .map_err(|_| CatalogError::Corrupt(format!("part ETag {:?}", part.etag)))?;
            md5s.update(&digest);
        }
        for unused in std::mem::take(&mut upload.parts).into_values() {
            self.discard_blob(unused.blob)?;
        }
        let mut manifest = upload.template.clone();
        manifest.size = chosen.iter().map(|p| p.size).sum();
        manifest.etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
        manifest.created_ms = self.now_ms;
        manifest.parts = chosen.into_iter().map(|p| p.blob).collect();
        // The parts' reverse-index entries are rewritten with the new owner.
        let outcome = self.commit(bucket, key, manifest, &Precondition::None)?;
        self.batch
            .delete(keys::upload(&catalogue_key(bucket, key), upload_id));
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    fn move_chunk(
        &mut self,
        bucket: &str,
        key: &str,
        blob: BlobId,
        index: u8,
        from: &NodeId,
        to: &NodeId,
        merkle_root: cairn_core::integrity::MerkleRoot,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let conflict = |why: String| CatalogError::Conflict(why);
        let mut record: ObjectRecord = self
            .shard
            .get(&keys::object(&cat))?
            .ok_or_else(|| conflict(format!("{cat} no longer exists")))?;
        let owner = ChunkOwner {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: Some(record.version_id.clone()),
            upload_id: None,
        };
        let part = record
            .manifest
            .parts
            .iter_mut()
            .find(|p| p.blob == blob)
            .ok_or_else(|| conflict(format!("blob {blob} is no longer part of {cat}")))?;
        let position = part
            .chunks
            .iter()
            .position(|c| c.index == index && c.node == *from)
            .ok_or_else(|| conflict(format!("chunk {blob}/{index} is not on {from}")))?;
        // What stays behind on `from` becomes garbage (deleted once reachable).
        let left_behind = BlobManifest {
            chunks: vec![part.chunks[position].clone()],
            ..part.clone()
        };
        let chunk = &mut part.chunks[position];
        chunk.node = to.clone();
        chunk.state = ChunkState::Stored;
        chunk.merkle_root = merkle_root;
        part.root = root_of_roots(
            &part
                .chunks
                .iter()
                .map(|c| c.merkle_root)
                .collect::<Vec<_>>(),
        );
        self.batch.delete(keys::node_chunk(from, &blob, index));
        self.batch
            .put(keys::node_chunk(to, &blob, index), encode(&owner));
        self.batch.put(keys::object(&cat), encode(&record));
        if from != to {
            self.queue_garbage(left_behind)?;
        }
        Ok(Outcome::Done)
    }

    fn index_blob(&mut self, blob: &BlobManifest, owner: &ChunkOwner) {
        let value = encode(owner);
        for chunk in &blob.chunks {
            self.batch.put(
                keys::node_chunk(&chunk.node, &blob.blob, chunk.index),
                &value,
            );
        }
    }

    /// Drops a blob from the reverse index and queues its chunks for GC.
    fn discard_blob(&mut self, blob: BlobManifest) -> Result<(), CatalogError> {
        for chunk in &blob.chunks {
            self.batch
                .delete(keys::node_chunk(&chunk.node, &blob.blob, chunk.index));
        }
        self.queue_garbage(blob)
    }

    fn queue_garbage(&mut self, blob: BlobManifest) -> Result<(), CatalogError> {
        let id = match self.garbage {
            Some(g) => g + 1,
            None => self.shard.counter("garbage")? + 1,
        };
        self.garbage = Some(id);
        let entry = GarbageEntry {
            id,
            queued_ms: self.now_ms,
            blob,
        };
        self.batch.put(keys::garbage(id), encode(&entry));
        Ok(())
    }
}
