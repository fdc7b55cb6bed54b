//! A group's Raft log and vote, in its database's `raft_log` and
//! `raft_state` column families. Every write that Raft must not lose (an
//! append, the vote, a truncation) is written with a synced WAL before it
//! is acknowledged, off the async reactor.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, LogState, RaftLogReader, StorageIOError, Vote};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use super::{LOG_CF, RAFT_CF, ReplicaId, StorageError, TypeConfig};

const VOTE: &[u8] = b"vote";
const PURGED: &[u8] = b"purged";
const COMMITTED: &[u8] = b"committed";

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

/// The log of one group. Cheap to clone (it is a handle on the database).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn log_cf(&self) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(LOG_CF)
            .expect("the raft_log column family")
    }

    fn state_cf(&self) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(RAFT_CF)
            .expect("the raft_state column family")
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        self.db
            .get_cf(self.state_cf(), key)
            .map_err(read_err)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(read_err))
            .transpose()
    }

    /// Runs a write off the reactor: a synced write blocks for a disk flush.
    async fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.write_opt(batch, &synced()))
            .await
            .map_err(|e| write_err(std::io::Error::other(e.to_string())))?
            .map_err(write_err)
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, StorageError> {
        match self.db.iterator_cf(self.log_cf(), IteratorMode::End).next() {
            Some(item) => {
                let (_, value) = item.map_err(read_err)?;
                Ok(Some(serde_json::from_slice(&value).map_err(read_err)?))
            }
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(
            self.log_cf(),
            IteratorMode::From(&index_key(start), Direction::Forward),
        ) {
            let (key, value) = item.map_err(read_err)?;
            let index = u64::from_be_bytes(
                key.as_ref()
                    .try_into()
                    .map_err(|_| read_err(std::io::Error::other("bad log key")))?,
            );
            if !range.contains(&index) {
                break;
            }
            entries.push(serde_json::from_slice(&value).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId<ReplicaId>> = self.get_json(PURGED)?;
        let last_log_id = self.last_entry()?.map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<ReplicaId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.state_cf(),
            VOTE,
            serde_json::to_vec(vote).expect("a vote serializes"),
        );
        self.write(batch)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e.to_string())).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<ReplicaId>>, StorageError> {
        self.get_json(VOTE)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<ReplicaId>>,
    ) -> Result<(), StorageError> {
        // Not synced: losing it only means re-learning it from the leader.
        self.db
            .put_cf(
                self.state_cf(),
                COMMITTED,
                serde_json::to_vec(&committed).expect("a log id serializes"),
            )
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<ReplicaId>>, StorageError> {
        Ok(self
            .get_json::<Option<LogId<ReplicaId>>>(COMMITTED)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        // One batch and one fsync for everything openraft hands over at
        // once: this is where appends are batched.
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                self.log_cf(),
                index_key(entry.log_id.index),
                serde_json::to_vec(&entry).expect("an entry serializes"),
            );
        }
        let result = self.write(batch).await;
        callback.log_io_completed(
            result
                .as_ref()
                .map(drop)
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        result
    }

    async fn truncate(&mut self, log_id: LogId<ReplicaId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.log_cf(), index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(self.log_cf(), index_key(u64::MAX));
        self.write(batch).await
    }

    async fn purge(&mut self, log_id: LogId<ReplicaId>) -> Result<(), StorageError> {
        // Entries applied without a sync of their own become durable here,
        // before the log that could replay them goes.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush_wal(true))
            .await
            .map_err(|e| write_err(std::io::Error::other(e.to_string())))?
            .map_err(write_err)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.state_cf(),
            PURGED,
            serde_json::to_vec(&log_id).expect("a log id serializes"),
        );
        batch.delete_range_cf(self.log_cf(), index_key(0), index_key(log_id.index + 1));
        self.write(batch).await
    }
}
