//! A group's state machine: the shard (or cluster state) database, changed
//! only by applying committed [`Proposal`]s, and its snapshots.
//!
//! Applying an entry writes the entry's rows and the new applied position in
//! one batch. That batch is not synced on its own: the entry is already
//! durable in the log, so after a crash the entry is applied again from the
//! log, and the WAL is synced before the log is purged.
//!
//! A snapshot is every state row read at one RocksDB snapshot, with the
//! applied position and membership read at the same point; it is kept in
//! the group's `raft_state` column family for a replica that falls behind
//! the purged log, and installing one replaces every state row in one
//! synced batch.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use rocksdb::{DB, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use super::{Proposal, RAFT_CF, ReplicaId, Reply, StorageError, TypeConfig};
use crate::shard::CatalogError;

type Membership = StoredMembership<ReplicaId, openraft::BasicNode>;

const APPLIED: &[u8] = b"applied";
const MEMBERSHIP: &[u8] = b"membership";

/// What a group replicates: a shard or the cluster state.
pub trait Machine: Send + Sync + 'static {
    fn db(&self) -> &Arc<DB>;

    /// Applies one proposal. `finish` adds the applied position to the
    /// batch; the machine writes both in one batch and only then updates
    /// anything it keeps in memory. Refusals are [`Reply::Rejected`];
    /// `Err` is a storage failure, which stops the group.
    fn apply(
        &self,
        proposal: &Proposal,
        finish: &dyn Fn(&mut WriteBatch),
    ) -> Result<Reply, CatalogError>;

    /// Every state row was replaced (a snapshot was installed): reload what
    /// is kept in memory.
    fn reload(&self) -> Result<(), CatalogError>;
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_snapshot(None, AnyError::error(e.to_string())).into()
}

fn raft_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(RAFT_CF).expect("the raft_state column family")
}

/// Adds the applied position (and a new membership) to a batch.
fn record_applied(
    db: &DB,
    batch: &mut WriteBatch,
    applied: &LogId<ReplicaId>,
    membership: Option<&Membership>,
) {
    let cf = raft_cf(db);
    batch.put_cf(
        cf,
        APPLIED,
        serde_json::to_vec(applied).expect("serializes"),
    );
    if let Some(membership) = membership {
        batch.put_cf(
            cf,
            MEMBERSHIP,
            serde_json::to_vec(membership).expect("serializes"),
        );
    }
}

fn read_applied(
    db: &DB,
    read: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error>,
) -> Result<(Option<LogId<ReplicaId>>, Membership), StorageError> {
    let _ = db;
    let applied = read(APPLIED)
        .map_err(sm_err)?
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .map_err(sm_err)?;
    let membership = read(MEMBERSHIP)
        .map_err(sm_err)?
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .map_err(sm_err)?
        .unwrap_or_default();
    Ok((applied, membership))
}

#[derive(Debug)]
pub struct StateMachineStore<M: Machine> {
    machine: Arc<M>,
}

impl<M: Machine> StateMachineStore<M> {
    pub fn new(machine: Arc<M>) -> Self {
        Self { machine }
    }
}

/// Applies committed entries in order, off the reactor.
fn apply_entries<M: Machine>(
    machine: &M,
    entries: Vec<Entry<TypeConfig>>,
) -> Result<Vec<Reply>, StorageError> {
    let db = machine.db().clone();
    let mut replies = Vec::with_capacity(entries.len());
    for entry in entries {
        let log_id = entry.log_id;
        match entry.payload {
            EntryPayload::Blank => {
                let mut batch = WriteBatch::default();
                record_applied(&db, &mut batch, &log_id, None);
                db.write(batch).map_err(sm_err)?;
                replies.push(Reply::Done);
            }
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(log_id), membership);
                let mut batch = WriteBatch::default();
                record_applied(&db, &mut batch, &log_id, Some(&stored));
                db.write(batch).map_err(sm_err)?;
                replies.push(Reply::Done);
            }
            EntryPayload::Normal(proposal) => {
                let finish = |batch: &mut WriteBatch| record_applied(&db, batch, &log_id, None);
                let reply = machine.apply(&proposal, &finish).map_err(|e| {
                    tracing::error!(error = %e, index = log_id.index, "applying a committed entry failed");
                    StorageError::from(StorageIOError::apply(log_id, AnyError::error(e.to_string())))
                })?;
                replies.push(reply);
            }
        }
    }
    Ok(replies)
}

impl<M: Machine> RaftStateMachine<TypeConfig> for StateMachineStore<M> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<ReplicaId>>, Membership), StorageError> {
        let db = self.machine.db();
        read_applied(db, |key| db.get_cf(raft_cf(db), key))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let machine = self.machine.clone();
        tokio::task::spawn_blocking(move || apply_entries(&*machine, entries))
            .await
            .map_err(sm_err)?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.machine.db().clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<ReplicaId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let rows = decode_rows(&data).map_err(snap_err)?;
        let machine = self.machine.clone();
        let meta2 = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let db = machine.db();
            let mut batch = WriteBatch::default();
            for item in db.iterator(IteratorMode::Start) {
                let (key, _) = item.map_err(sm_err)?;
                batch.delete(key);
            }
            for (key, value) in &rows {
                batch.put(key, value);
            }
            let cf = raft_cf(db);
            match &meta2.last_log_id {
                Some(applied) => batch.put_cf(
                    cf,
                    APPLIED,
                    serde_json::to_vec(applied).expect("serializes"),
                ),
                None => batch.delete_cf(cf, APPLIED),
            }
            batch.put_cf(
                cf,
                MEMBERSHIP,
                serde_json::to_vec(&meta2.last_membership).expect("serializes"),
            );
            let mut synced = WriteOptions::default();
            synced.set_sync(true);
            db.write_opt(batch, &synced).map_err(sm_err)?;
            machine.reload().map_err(sm_err)?;
            save_snapshot(db, &meta2, &data).map_err(sm_err)?;
            tracing::info!(applied = ?meta2.last_log_id, rows = rows.len(), "installed a snapshot");
            Ok(())
        })
        .await
        .map_err(sm_err)?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let db = self.machine.db().clone();
        tokio::task::spawn_blocking(move || load_snapshot(&db))
            .await
            .map_err(snap_err)?
    }
}

/// Builds a snapshot from a consistent RocksDB snapshot of the database.
#[derive(Debug)]
pub struct SnapshotBuilder {
    db: Arc<DB>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<Snapshot<TypeConfig>, StorageError> {
            let point = db.snapshot();
            let mut rows = Vec::new();
            for item in point.iterator(IteratorMode::Start) {
                let (key, value) = item.map_err(snap_err)?;
                encode_row(&mut rows, &key, &value);
            }
            let cf = raft_cf(&db);
            let (applied, membership) = read_applied(&db, |key| {
                let mut options = ReadOptions::default();
                options.set_snapshot(&point);
                db.get_cf_opt(cf, key, &options)
            })?;
            let meta = SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
                snapshot_id: format!(
                    "{}-{}",
                    applied.map_or(0, |l| l.index),
                    rand::random::<u32>()
                ),
            };
            save_snapshot(&db, &meta, &rows).map_err(sm_err)?;
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(rows)),
            })
        })
        .await
        .map_err(snap_err)?
    }
}

/// The applied index and a blake3 digest of every state row, read at one
/// RocksDB snapshot (so the two agree): replicas at the same applied index
/// must have the same digest.
pub fn digest(db: &DB) -> Result<(Option<u64>, String, u64), String> {
    let point = db.snapshot();
    let mut hasher = blake3::Hasher::new();
    let mut rows = 0u64;
    for item in point.iterator(IteratorMode::Start) {
        let (key, value) = item.map_err(|e| e.to_string())?;
        let mut framed = Vec::with_capacity(key.len() + value.len() + 8);
        encode_row(&mut framed, &key, &value);
        hasher.update(&framed);
        rows += 1;
    }
    let cf = raft_cf(db);
    let (applied, _) = read_applied(db, |key| {
        let mut options = ReadOptions::default();
        options.set_snapshot(&point);
        db.get_cf_opt(cf, key, &options)
    })
    .map_err(|e| e.to_string())?;
    Ok((
        applied.map(|l| l.index),
        hasher.finalize().to_hex().to_string(),
        rows,
    ))
}

fn encode_row(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Snapshot data: rows as `[u32 key length][key][u32 value length][value]`.
fn decode_rows(mut data: &[u8]) -> Result<Rows, String> {
    let mut rows = Vec::new();
    let take = |data: &mut &[u8]| -> Result<Vec<u8>, String> {
        if data.len() < 4 {
            return Err("truncated snapshot".into());
        }
        let len = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
        if data.len() < 4 + len {
            return Err("truncated snapshot".into());
        }
        let value = data[4..4 + len].to_vec();
        *data = &data[4 + len..];
        Ok(value)
    };
    while !data.is_empty() {
        let key = take(&mut data)?;
        let value = take(&mut data)?;
        rows.push((key, value));
    }
    Ok(rows)
}

/// The current snapshot lives in the group's `raft_state` column family
/// under this key, as `[u32 meta length][meta JSON][rows]`, written with a
/// synced WAL.
const SNAPSHOT: &[u8] = b"snapshot";

fn save_snapshot(
    db: &DB,
    meta: &SnapshotMeta<ReplicaId, openraft::BasicNode>,
    rows: &[u8],
) -> Result<(), rocksdb::Error> {
    let meta = serde_json::to_vec(meta).expect("serializes");
    let mut value = Vec::with_capacity(4 + meta.len() + rows.len());
    value.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    value.extend_from_slice(&meta);
    value.extend_from_slice(rows);
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    db.put_cf_opt(raft_cf(db), SNAPSHOT, value, &synced)
}

fn load_snapshot(db: &DB) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
    let Some(bytes) = db.get_cf(raft_cf(db), SNAPSHOT).map_err(snap_err)? else {
        return Ok(None);
    };
    if bytes.len() < 4 {
        return Err(snap_err("truncated snapshot"));
    }
    let len = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let meta_end = 4 + len;
    if bytes.len() < meta_end {
        return Err(snap_err("truncated snapshot"));
    }
    let meta = serde_json::from_slice(&bytes[4..meta_end]).map_err(snap_err)?;
    Ok(Some(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(bytes[meta_end..].to_vec())),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_rows_round_trip_and_truncation_is_an_error() {
        let mut data = Vec::new();
        encode_row(&mut data, b"b\0bucket", b"{}");
        encode_row(&mut data, b"", b"");
        encode_row(&mut data, b"o\0b/k", &[0xff; 300]);
        let rows = decode_rows(&data).expect("decode");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].1.len(), 300);
        assert!(decode_rows(&data[..data.len() - 1]).is_err());
        assert!(decode_rows(&data[..2]).is_err());
    }
}
