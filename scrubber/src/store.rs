//! The scrubber's own RocksDB: jobs with their checkpoints and results,
//! the repair queue (ordered most-endangered first), repair counters, and
//! which lost nodes were handled. Every write is synced, so a restart
//! resumes where the last acknowledged step left off.
//!
//! Keys: `job/<id:016x>`; `q/<surviving:03>/<seq:016x>` → task and
//! `qi/<blob>/<index:03>` → its queue key (one entry per chunk);
//! `totals`; `lost/<node>`; `counter/<name>`; `unref/<node>/<chunk file
//! name>` → when the orphan sweep first found that chunk unreferenced.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use cairn_core::ids::{BlobId, ChunkId, NodeId};
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{JobRecord, RepairReason, RepairTask, RepairTotals};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("scrubber database: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("scrubber database value at {key}: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

pub struct ScrubStore {
    db: DB,
    /// Serialises read-modify-write sequences (counters, queue moves) and
    /// guards the number of queued tasks (counted once at open, then kept
    /// up to date, so bounding the queue costs nothing per enqueue).
    lock: Mutex<QueueCounts>,
}

/// Queued repair tasks, in all and by reason (for the at-risk metric:
/// every reason but a drain means a blob below k+m healthy chunks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub total: usize,
    pub node_lost: usize,
    pub missing: usize,
    pub corrupt: usize,
    pub drain: usize,
    pub rebalance: usize,
}

impl QueueCounts {
    fn of(&mut self, reason: &RepairReason) -> &mut usize {
        match reason {
            RepairReason::NodeLost => &mut self.node_lost,
            RepairReason::Missing => &mut self.missing,
            RepairReason::Corrupt { .. } => &mut self.corrupt,
            RepairReason::Drain => &mut self.drain,
            RepairReason::Rebalance => &mut self.rebalance,
        }
    }

    fn add(&mut self, reason: &RepairReason) {
        self.total += 1;
        *self.of(reason) += 1;
    }

    fn remove(&mut self, reason: &RepairReason) {
        self.total = self.total.saturating_sub(1);
        let count = self.of(reason);
        *count = count.saturating_sub(1);
    }

    /// `(label, count)` for the `reason` label of the queue gauge.
    pub fn by_reason(&self) -> [(&'static str, usize); 5] {
        [
            ("node_lost", self.node_lost),
            ("missing", self.missing),
            ("corrupt", self.corrupt),
            ("drain", self.drain),
            ("rebalance", self.rebalance),
        ]
    }
}

impl std::fmt::Debug for ScrubStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrubStore").finish_non_exhaustive()
    }
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("serializable")
}

/// A queue entry (`q/…`) as the task it holds.
fn decode_task(key: &[u8], value: &[u8]) -> Result<RepairTask, StoreError> {
    serde_json::from_slice(value).map_err(|source| StoreError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn queue_index_key(blob: &BlobId, index: u8) -> String {
    format!("qi/{}/{index:03}", blob.to_hex())
}

impl ScrubStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path)?;
        let mut queued = QueueCounts::default();
        for item in db.iterator(IteratorMode::From(b"q/", Direction::Forward)) {
            let (key, value) = item?;
            if !key.starts_with(b"q/") {
                break;
            }
            queued.add(&decode_task(&key, &value)?.reason);
        }
        Ok(Self {
            db,
            lock: Mutex::new(queued),
        })
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.db.get(key)? {
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Decode {
                        key: key.to_owned(),
                        source,
                    })
            }
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        Ok(self.db.put_opt(key, encode(value), &synced())?)
    }

    /// Values under `prefix`, in key order, at most `limit`.
    fn scan<T: DeserializeOwned>(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix.as_bytes(), Direction::Forward))
        {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let value = serde_json::from_slice(&value).map_err(|source| StoreError::Decode {
                key: key.clone(),
                source,
            })?;
            out.push((key, value));
        }
        Ok(out)
    }

    fn next_counter(&self, name: &str) -> Result<u64, StoreError> {
        let key = format!("counter/{name}");
        let next = self.get::<u64>(&key)?.unwrap_or(0) + 1;
        self.put(&key, &next)?;
        Ok(next)
    }

    // ---- jobs ----

    pub fn next_job_id(&self) -> Result<u64, StoreError> {
        let _guard = self.lock.lock().expect("store lock");
        self.next_counter("job")
    }

    pub fn save_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.put(&format!("job/{:016x}", job.id), job)
    }

    pub fn job(&self, id: u64) -> Result<Option<JobRecord>, StoreError> {
        self.get(&format!("job/{id:016x}"))
    }

    pub fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self
            .scan("job/", usize::MAX)?
            .into_iter()
            .map(|(_, job)| job)
            .collect())
    }

    // ---- repair queue ----

    /// Queues a chunk unless it is already queued. Returns whether it was
    /// added. `limit` bounds the queue: beyond it nothing is added.
    pub fn enqueue(&self, task: &RepairTask, limit: usize) -> Result<bool, StoreError> {
        let mut queued = self.lock.lock().expect("store lock");
        let index_key = queue_index_key(&task.blob, task.index);
        if queued.total >= limit || self.db.get(&index_key)?.is_some() {
            return Ok(false);
        }
        let seq = self.next_counter("queue")?;
        let key = format!("q/{:03}/{seq:016x}", task.surviving);
        let mut batch = WriteBatch::default();
        batch.put(&key, encode(task));
        batch.put(&index_key, key.as_bytes());
        self.db.write_opt(batch, &synced())?;
        queued.add(&task.reason);
        Ok(true)
    }

    pub fn queue_len(&self) -> Result<usize, StoreError> {
        Ok(self.lock.lock().expect("store lock").total)
    }

    pub fn queue_counts(&self) -> QueueCounts {
        *self.lock.lock().expect("store lock")
    }

    /// Up to `limit` tasks due at `now_ms`, most endangered (fewest
    /// surviving chunks) first, then oldest. Reads the queue in key order
    /// and stops as soon as it has `limit`.
    pub fn due_tasks(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, RepairTask)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(b"q/", Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(b"q/") || out.len() >= limit {
                break;
            }
            let task = decode_task(&key, &value)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if task.not_before_ms <= now_ms {
                out.push((key, task));
            }
        }
        Ok(out)
    }

    /// Removes a task (done, obsolete, or given up).
    pub fn remove_task(&self, key: &str, task: &RepairTask) -> Result<(), StoreError> {
        let mut queued = self.lock.lock().expect("store lock");
        if self.db.get(key)?.is_none() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.delete(key);
        batch.delete(queue_index_key(&task.blob, task.index));
        self.db.write_opt(batch, &synced())?;
        queued.remove(&task.reason);
        Ok(())
    }

    /// Removes every queued task for `reason` (a cancelled rebalance); tasks
    /// being worked on finish. Returns how many were removed.
    pub fn remove_reason(&self, reason: &RepairReason) -> Result<usize, StoreError> {
        let mut queued = self.lock.lock().expect("store lock");
        let mut batch = WriteBatch::default();
        let mut removed = 0;
        for item in self
            .db
            .iterator(IteratorMode::From(b"q/", Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(b"q/") {
                break;
            }
            let task = decode_task(&key, &value)?;
            if &task.reason == reason {
                batch.delete(&key);
                batch.delete(queue_index_key(&task.blob, task.index));
                queued.remove(&task.reason);
                removed += 1;
            }
        }
        self.db.write_opt(batch, &synced())?;
        Ok(removed)
    }

    /// Puts a task back with its attempt count and retry time updated.
    pub fn retry_task(&self, key: &str, task: &RepairTask) -> Result<(), StoreError> {
        self.put(key, task)
    }

    // ---- counters and lost nodes ----

    pub fn totals(&self) -> Result<RepairTotals, StoreError> {
        Ok(self.get("totals")?.unwrap_or_default())
    }

    /// Updates the repair counters atomically (repairs run concurrently).
    pub fn update_totals(&self, f: impl FnOnce(&mut RepairTotals)) -> Result<(), StoreError> {
        let _guard = self.lock.lock().expect("store lock");
        let mut totals = self.totals()?;
        f(&mut totals);
        self.put("totals", &totals)
    }

    pub fn garbage_deleted(&self) -> Result<u64, StoreError> {
        Ok(self.get("garbage_deleted")?.unwrap_or(0))
    }

    pub fn add_garbage_deleted(&self, count: u64) -> Result<(), StoreError> {
        let _guard = self.lock.lock().expect("store lock");
        let total = self.garbage_deleted()? + count;
        self.put("garbage_deleted", &total)
    }

    /// When node `node` was handled as lost (its chunks queued).
    pub fn lost_since(&self, node: &NodeId) -> Result<Option<u64>, StoreError> {
        self.get(&format!("lost/{node}"))
    }

    pub fn set_lost(&self, node: &NodeId, at_ms: Option<u64>) -> Result<(), StoreError> {
        let key = format!("lost/{node}");
        match at_ms {
            Some(at) => self.put(&key, &at),
            None => Ok(self.db.delete_opt(&key, &synced())?),
        }
    }

    pub fn lost_nodes(&self) -> Result<Vec<NodeId>, StoreError> {
        Ok(self
            .scan::<u64>("lost/", usize::MAX)?
            .into_iter()
            .filter_map(|(key, _)| key.strip_prefix("lost/").and_then(|n| n.parse().ok()))
            .collect())
    }

    // ---- unreferenced chunks seen by the orphan sweep ----

    /// When a sweep first found each of `node`'s chunks unreferenced.
    pub fn unreferenced_since(&self, node: &NodeId) -> Result<HashMap<ChunkId, u64>, StoreError> {
        let prefix = format!("unref/{node}/");
        Ok(self
            .scan::<u64>(&prefix, usize::MAX)?
            .into_iter()
            .filter_map(|(key, since)| {
                let name = key.strip_prefix(&prefix)?;
                Some((ChunkId::from_file_name(name)?, since))
            })
            .collect())
    }

    /// Replaces `node`'s sightings with `seen` (one synced batch): a chunk
    /// found referenced, or gone, loses its sighting.
    pub fn set_unreferenced(
        &self,
        node: &NodeId,
        seen: &HashMap<ChunkId, u64>,
    ) -> Result<(), StoreError> {
        let prefix = format!("unref/{node}/");
        let mut batch = WriteBatch::default();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix.as_bytes(), Direction::Forward))
        {
            let (key, _) = item?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            batch.delete(key);
        }
        for (chunk, since) in seen {
            batch.put(format!("{prefix}{}", chunk.file_name()), encode(since));
        }
        Ok(self.db.write_opt(batch, &synced())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RepairReason;

    fn task(surviving: u8, index: u8, blob: BlobId) -> RepairTask {
        RepairTask {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            blob,
            index,
            node: NodeId::new("node-01").expect("id"),
            reason: RepairReason::NodeLost,
            surviving,
            queued_ms: 0,
            attempts: 0,
            not_before_ms: 0,
        }
    }

    #[test]
    fn queue_is_most_endangered_first_deduplicated_bounded_and_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blob = BlobId::random();
        {
            let store = ScrubStore::open(dir.path()).expect("open");
            assert!(store.enqueue(&task(11, 0, blob), 10).expect("enqueue"));
            assert!(store.enqueue(&task(8, 1, blob), 10).expect("enqueue"));
            assert!(store.enqueue(&task(11, 2, blob), 10).expect("enqueue"));
            assert!(!store.enqueue(&task(9, 1, blob), 10).expect("dedupe"));
            assert!(!store.enqueue(&task(11, 3, blob), 3).expect("bounded"));
        }
        let store = ScrubStore::open(dir.path()).expect("reopen");
        let due = store.due_tasks(0, 10).expect("due");
        let order: Vec<u8> = due.iter().map(|(_, t)| t.index).collect();
        assert_eq!(order, vec![1, 0, 2], "fewest survivors first, then FIFO");
        let (key, first) = &due[0];
        store.remove_task(key, first).expect("remove");
        assert_eq!(store.queue_len().expect("len"), 2);
        assert!(
            store
                .enqueue(&task(8, 1, blob), 10)
                .expect("requeue after removal")
        );
    }
}
