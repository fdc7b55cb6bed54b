//! One shard: a RocksDB holding a key range of the catalogue, changed only by
//! applying [`Command`]s.
//!
//! Concurrency: commands are applied one at a time under the shard's write
//! lock (read-check-write is then a compare-and-swap), and each command is
//! one `WriteBatch` written with a synced WAL before it is acknowledged.
//! Reads hold the range lock for reading, so a split that moves keys away
//! cannot make a read miss them: the read either finishes first, or it sees
//! the new range and is told `WrongShard`.
//!
//! The shard is cut along its seams: this module holds the database, its
//! range and the entry point for commands; [`read`] the queries (S3 listing
//! among them), [`apply`] the command interpreter, [`replicated`] the shard
//! as a Raft state machine (request-id deduplication, its first range, the
//! split into a child group).

mod apply;
mod read;
mod replicated;

pub(crate) use replicated::refusal;

use apply::Tx;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use cairn_core::ids::BlobId;
use cairn_meta_api::model::{ChunkOwner, Command, Outcome, UploadRecord};
use cairn_meta_api::shard_map::ShardId;
use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::{self, bucket_anchor, catalogue_key};

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
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    InvalidBucketState(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no version {version_id} of {key}")]
    NoSuchVersion { key: String, version_id: String },
    #[error("key {key:?} is not in {shard}'s range")]
    WrongShard { shard: ShardId, key: String },
    #[error("conflict: {0}")]
    Conflict(String),
    /// A cluster record (user, access key) that does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("storage: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// The key range a shard currently owns. Part of the shard's state (a
/// row), set by its first log entry and shrunk by splits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct KeyRange {
    pub start: String,
    pub end: Option<String>,
}

impl KeyRange {
    pub fn contains(&self, key: &str) -> bool {
        key >= self.start.as_str() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// The range of a shard whose first entry has not been applied yet: it
    /// owns nothing, so every request is told `wrong_shard`.
    pub fn nothing() -> Self {
        Self {
            start: String::new(),
            end: Some(String::new()),
        }
    }
}

pub struct Shard {
    id: ShardId,
    db: Arc<DB>,
    /// The group's directory; a split creates its child next to it.
    home: PathBuf,
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
    /// Opens (creating if missing) a shard's database outside Raft, owning
    /// `range` (tests and tools).
    pub fn open(id: ShardId, path: &Path, range: KeyRange) -> Result<Self, CatalogError> {
        let db = crate::raft::open_db(path)?;
        db.put_opt(keys::meta(RANGE), encode(&range), &sync_writes())?;
        Self::replica(id, path, db)
    }

    /// A shard replica on its group's open database; its range is the one
    /// its applied entries set (none yet: [`KeyRange::nothing`]).
    pub fn replica(id: ShardId, path: &Path, db: Arc<DB>) -> Result<Self, CatalogError> {
        let range = match db.get(keys::meta(RANGE))? {
            Some(bytes) => decode(&bytes)?,
            None => KeyRange::nothing(),
        };
        let shard = Self {
            id,
            db,
            home: path.to_owned(),
            range: RwLock::new(range),
            write: Mutex::new(()),
        };
        shard.drop_rows_outside_range()?;
        Ok(shard)
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// A crash between publishing a split and deleting the moved rows
    /// leaves rows this shard no longer owns; they are removed on open, so
    /// that a shard's database only ever holds its own range.
    fn drop_rows_outside_range(&self) -> Result<(), CatalogError> {
        let range = self.range();
        let mut stale = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::Start) {
            let (key, value) = item?;
            if catalogue_key_of_row(&key, &value).is_some_and(|cat| !range.contains(&cat)) {
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

    /// Applies one command atomically and durably (synced WAL), outside
    /// Raft (tests and tools; the service applies through its group).
    pub fn apply(&self, command: &Command, now_ms: u64) -> Result<Outcome, CatalogError> {
        let _write = self.write.lock().expect("write lock");
        let range = self.range.read().expect("range lock");
        let (outcome, batch) = self.execute(&range, command, now_ms, BlobId::random())?;
        self.db.write_opt(batch, &sync_writes())?;
        Ok(outcome)
    }

    /// Runs one command against committed state; its writes come back as
    /// one batch for the caller to write. Deterministic: the time and the
    /// id of anything created are arguments.
    fn execute(
        &self,
        range: &KeyRange,
        command: &Command,
        now_ms: u64,
        fresh_id: BlobId,
    ) -> Result<(Outcome, WriteBatch), CatalogError> {
        if let Some(key) = command.routing_key() {
            self.check_owns(range, &key)?;
        }
        let mut tx = Tx {
            shard: self,
            range,
            batch: WriteBatch::default(),
            now_ms,
            fresh_id,
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
        Ok((outcome, batch))
    }
}

/// The `m` row holding the shard's range.
const RANGE: &str = "range";

/// The catalogue key a database row belongs to (`None` for shard-wide rows:
/// counters and the GC queue, which stay where they are).
///
/// A row that cannot be read (a key too short for its namespace, a record
/// that does not parse) is reported and treated as shard-wide: it stays
/// where it is, and opening or splitting the shard goes on instead of
/// failing on it at every start.
fn catalogue_key_of_row(key: &[u8], value: &[u8]) -> Option<String> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let unreadable = |why: &str| {
        tracing::error!(key = %String::from_utf8_lossy(key), why, "unreadable catalogue row skipped");
        None
    };
    let rest = || key.get(2..);
    match key.first() {
        Some(&keys::BUCKET) => match rest() {
            Some(name) => Some(bucket_anchor(&text(name))),
            None => unreadable("bucket key too short"),
        },
        Some(&keys::OBJECT) => match rest() {
            Some(cat) => Some(text(cat)),
            None => unreadable("object key too short"),
        },
        Some(&keys::VERSION) => match keys::catalogue_key_of_version(key) {
            Some(cat) => Some(cat.to_owned()),
            None => unreadable("version key too short"),
        },
        Some(&keys::UPLOAD) => match decode::<UploadRecord>(value) {
            Ok(record) => Some(catalogue_key(&record.bucket, &record.key)),
            Err(err) => unreadable(&err.to_string()),
        },
        Some(&keys::NODE_CHUNK) => match decode::<ChunkOwner>(value) {
            Ok(owner) => Some(catalogue_key(&owner.bucket, &owner.key)),
            Err(err) => unreadable(&err.to_string()),
        },
        _ => None,
    }
}
