//! The shard as a Raft state machine: what applying each [`Proposal`] does
//! to the shard's rows.
//!
//! - A catalogue command is applied once per request id: the reply is kept
//!   (`r` rows, with a time index in `t` rows, pruned after
//!   [`REPLY_RETENTION`]) and a retry gets the kept reply, so a commit whose
//!   answer was lost is not applied twice.
//! - The first entry sets the shard's range.
//! - A split moves the rows at or above its point into a child database
//!   (the kept replies are copied to both halves)
//!   next to this one, which every replica creates identically from the
//!   same state at the same log position, and which then runs as a group
//!   of its own on the same replicas.

use std::path::Path;

use cairn_core::ids::BlobId;
use cairn_meta_api::model::Command;
use cairn_meta_api::shard_map::{GroupId, ShardId};
use cairn_service::ApiError;
use rocksdb::{IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::{
    CatalogError, KeyRange, RANGE, Shard, catalogue_key_of_row, decode, encode, sync_writes,
};
use crate::keys;
use crate::raft::state_machine::Machine;
use crate::raft::{Proposal, Reply};

/// How long a reply is kept for retries of its request.
pub(crate) const REPLY_RETENTION_MS: u64 = 10 * 60 * 1000;
/// Expired replies removed per applied command (pruning is spread out).
const PRUNE_PER_APPLY: usize = 64;

const REPLY: u8 = b'r';
const REPLY_TIME: u8 = b't';

#[derive(Serialize, Deserialize)]
struct KeptReply {
    at_ms: u64,
    reply: Reply,
}

/// The reply a refused command gets on every replica (storage failures are
/// not refusals: they stop the group).
pub(crate) fn refusal(err: CatalogError) -> Result<Reply, CatalogError> {
    if matches!(err, CatalogError::Storage(_) | CatalogError::Corrupt(_)) {
        return Err(err);
    }
    let api = ApiError::from(err);
    Ok(Reply::Rejected {
        status: api.status.as_u16(),
        code: api.body.code,
        message: api.body.message,
    })
}

fn reply_time_key(at_ms: u64, request_id: &str) -> Vec<u8> {
    let mut rest = at_ms.to_be_bytes().to_vec();
    rest.extend_from_slice(request_id.as_bytes());
    keys::namespaced(REPLY_TIME, &rest)
}

impl Shard {
    fn write_with(
        &self,
        mut batch: WriteBatch,
        finish: &dyn Fn(&mut WriteBatch),
    ) -> Result<(), CatalogError> {
        finish(&mut batch);
        self.db.write(batch)?;
        Ok(())
    }

    fn apply_catalogue(
        &self,
        request_id: &str,
        now_ms: u64,
        fresh_id: BlobId,
        command: &Command,
        finish: &dyn Fn(&mut WriteBatch),
    ) -> Result<Reply, CatalogError> {
        let _write = self.write.lock().expect("write lock");
        let reply_key = keys::namespaced(REPLY, request_id.as_bytes());
        if let Some(kept) = self.get::<KeptReply>(&reply_key)? {
            self.write_with(WriteBatch::default(), finish)?;
            return Ok(kept.reply);
        }
        let range = self.range.read().expect("range lock");
        let (reply, mut batch) = match self.execute(&range, command, now_ms, fresh_id) {
            Ok((outcome, batch)) => (Reply::Outcome { outcome }, batch),
            Err(err) => (refusal(err)?, WriteBatch::default()),
        };
        batch.put(
            &reply_key,
            encode(&KeptReply {
                at_ms: now_ms,
                reply: reply.clone(),
            }),
        );
        batch.put(reply_time_key(now_ms, request_id), []);
        self.prune_replies(&mut batch, now_ms)?;
        self.write_with(batch, finish)?;
        Ok(reply)
    }

    /// Drops replies older than the retention (by the entries' own clock,
    /// so every replica drops the same).
    fn prune_replies(&self, batch: &mut WriteBatch, now_ms: u64) -> Result<(), CatalogError> {
        let horizon = now_ms.saturating_sub(REPLY_RETENTION_MS);
        let start = keys::namespaced(REPLY_TIME, &[]);
        for item in self
            .db
            .iterator(IteratorMode::From(&start, rocksdb::Direction::Forward))
            .take(PRUNE_PER_APPLY)
        {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(start.as_slice()) else {
                break;
            };
            let Some((at, request_id)) = rest.split_first_chunk::<8>() else {
                break;
            };
            if u64::from_be_bytes(*at) >= horizon {
                break;
            }
            batch.delete(&key);
            batch.delete(keys::namespaced(REPLY, request_id));
        }
        Ok(())
    }

    fn init_range(
        &self,
        range: KeyRange,
        finish: &dyn Fn(&mut WriteBatch),
    ) -> Result<Reply, CatalogError> {
        let _write = self.write.lock().expect("write lock");
        let mut batch = WriteBatch::default();
        let initialised = self.db.get(keys::meta(RANGE))?.is_some();
        if !initialised {
            batch.put(keys::meta(RANGE), encode(&range));
        }
        self.write_with(batch, finish)?;
        if !initialised {
            *self.range.write().expect("range lock") = range;
        }
        Ok(Reply::Done)
    }

    /// Moves every row at or above catalogue key `at` into the child
    /// shard's database and shrinks this shard's range to end at `at`.
    ///
    /// The child is built in `<child>.split`, synced, and renamed into
    /// place, so a child directory that exists is complete. A crash after
    /// the rename but before this shard's batch re-applies the entry: the
    /// child exists (and may already serve), so only this shard's half is
    /// redone; both halves come from the same state at the same position.
    fn split_child(
        &self,
        at: &str,
        child: ShardId,
        finish: &dyn Fn(&mut WriteBatch),
    ) -> Result<Reply, CatalogError> {
        let _write = self.write.lock().expect("write lock");
        let marker = keys::meta(&format!("child-{}", child.0));
        if let Some(recorded) = self.get::<String>(&marker)? {
            self.write_with(WriteBatch::default(), finish)?;
            return if recorded == at {
                Ok(Reply::Done)
            } else {
                refusal(CatalogError::Conflict(format!(
                    "{child} was already split off at {recorded:?}"
                )))
            };
        }
        let old = self.range();
        if !old.contains(at) || at == old.start {
            self.write_with(WriteBatch::default(), finish)?;
            return refusal(CatalogError::Conflict(format!(
                "{at:?} is not inside {}'s range",
                self.id
            )));
        }
        let upper = KeyRange {
            start: at.to_owned(),
            end: old.end.clone(),
        };
        let lower = KeyRange {
            start: old.start.clone(),
            end: Some(at.to_owned()),
        };
        let child_dir = self.home.with_file_name(GroupId::Shard(child).to_string());
        let mut remove = WriteBatch::default();
        let mut copy = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::Start) {
            let (k, v) = item?;
            if catalogue_key_of_row(&k, &v).is_some_and(|cat| upper.contains(&cat)) {
                copy.put(&k, &v);
                remove.delete(&k);
            } else if matches!(k.first(), Some(&REPLY | &REPLY_TIME)) {
                // Both halves keep the kept replies: a retry of a command
                // acknowledged before the split may land on either.
                copy.put(&k, &v);
            }
        }
        if !child_dir.exists() {
            copy.put(
                keys::meta("sequence"),
                self.counter("sequence")?.to_be_bytes(),
            );
            copy.put(keys::meta(RANGE), encode(&upper));
            build_child(&child_dir, copy)?;
        }
        remove.put(keys::meta(RANGE), encode(&lower));
        remove.put(&marker, encode(&at.to_owned()));
        let mut range = self.range.write().expect("range lock");
        self.write_with(remove, finish)?;
        *range = lower;
        tracing::info!(shard = %self.id, %child, at, "shard split applied");
        Ok(Reply::Done)
    }
}

fn build_child(dir: &Path, rows: WriteBatch) -> Result<(), CatalogError> {
    let io = |e: std::io::Error| CatalogError::Corrupt(format!("{}: {e}", dir.display()));
    let building = dir.with_extension("split");
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(io)?;
    }
    {
        let db = crate::raft::open_db(&building)?;
        db.write_opt(rows, &sync_writes())?;
        db.flush_wal(true)?;
    }
    std::fs::rename(&building, dir).map_err(io)?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

impl Machine for Shard {
    fn db(&self) -> &std::sync::Arc<rocksdb::DB> {
        &self.db
    }

    fn apply(
        &self,
        proposal: &Proposal,
        finish: &dyn Fn(&mut WriteBatch),
    ) -> Result<Reply, CatalogError> {
        match proposal {
            Proposal::Catalogue {
                request_id,
                now_ms,
                fresh_id,
                command,
            } => self.apply_catalogue(request_id, *now_ms, *fresh_id, command, finish),
            Proposal::InitShard { start, end } => self.init_range(
                KeyRange {
                    start: start.clone(),
                    end: end.clone(),
                },
                finish,
            ),
            Proposal::Split { at, child } => self.split_child(at, *child, finish),
            other => {
                tracing::error!(?other, shard = %self.id, "a cluster proposal in a shard's log");
                self.write_with(WriteBatch::default(), finish)?;
                refusal(CatalogError::Malformed("not a shard proposal".to_owned()))
            }
        }
    }

    fn reload(&self) -> Result<(), CatalogError> {
        let range = match self.db.get(keys::meta(RANGE))? {
            Some(bytes) => decode(&bytes)?,
            None => KeyRange::nothing(),
        };
        *self.range.write().expect("range lock") = range;
        Ok(())
    }
}
