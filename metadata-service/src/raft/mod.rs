//! Replication: every catalogue shard and the cluster state is a Raft
//! group (openraft 0.9), replicated on a few metadata processes.
//!
//! A group keeps everything in one RocksDB (`<data_dir>/groups/<group>`):
//! the state machine's rows in the default column family (exactly the rows
//! an unreplicated shard had), the log in `raft_log`, and the vote, the
//! applied position, the membership and the last snapshot in `raft_state`. Log appends are
//! written with a synced WAL before they are acknowledged; applying an
//! entry writes its rows and the applied position in one batch, so a crash
//! never applies an entry twice or half. The WAL is synced before the log
//! is purged, so state that the purged entries produced is durable first.
//!
//! [`Proposal`] is the log entry: a catalogue [`Command`] with the request
//! id that makes a retried commit apply once and the leader's clock, or a
//! cluster change (heartbeat, node state transition, new shard map), or a
//! shard's own lifecycle (its first range, a split). Applying is
//! deterministic: nothing reads a clock or draws a random number there.
//!
//! Modules: [`log_store`] (the log and the vote), [`state_machine`] (apply,
//! snapshots), [`network`] (RPCs to the other replicas over the internal
//! HTTP client), [`group`] (one running group and its read/write entry
//! points).

// openraft's traits return its `StorageError` (over 200 bytes); the
// helpers that build it return it too.
#![allow(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type its traits require"
)]

pub mod group;
pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use cairn_core::ids::{BlobId, NodeId};
use cairn_core::placement::NodeState;
use cairn_meta_api::model::{Command, NodeEvent, NodeRecord, Outcome};
use cairn_meta_api::shard_map::{ShardId, ShardMap};
use cairn_meta_api::users::{UserChange, UserRecord};
use cairn_node_api::wire::NodeStatus;
use cairn_service::ErrorCode;
use rocksdb::{DB, Options};
use serde::{Deserialize, Serialize};

pub use group::Group;

openraft::declare_raft_types!(
    /// Cairn's Raft types: replicas are numbered, addressed by URL.
    pub TypeConfig:
        D = Proposal,
        R = Reply,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type ReplicaId = u64;
pub type StorageError = openraft::StorageError<ReplicaId>;

/// Column family of the log (index, big-endian → entry as JSON).
pub const LOG_CF: &str = "raft_log";
/// Column family of the vote, the purge point, the applied position and
/// the membership.
pub const RAFT_CF: &str = "raft_state";

/// One entry of a group's log. An on-disk format (docs/formats.md): fields
/// are only ever added.
///
/// Externally tagged: an internally tagged enum cannot carry the map's
/// integer-keyed replica table through serde's buffering.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proposal {
    /// A catalogue command for a shard group.
    Catalogue {
        /// Retries of one client request carry one id; the shard answers a
        /// repeated id with the first answer instead of applying again.
        request_id: String,
        /// The leader's clock when it proposed (record timestamps).
        now_ms: u64,
        /// An id drawn by the leader for what the command creates (a
        /// multipart upload id), so that every replica creates the same.
        fresh_id: BlobId,
        /// Boxed: commands are the largest proposals by far (same JSON).
        command: Box<Command>,
    },
    /// A shard group's first entry: the range it owns.
    InitShard { start: String, end: Option<String> },
    /// Moves the rows at or above `at` into a new shard group `child` on
    /// the same replicas.
    Split { at: String, child: ShardId },
    /// The cluster group's first entry: the initial shard map.
    InitCluster { map: ShardMap },
    /// A node's heartbeat (registers it, brings it back up).
    Heartbeat { status: NodeStatus, now_ms: u64 },
    /// The failure detector's verdict; applies only if the node is still in
    /// state `from` (a heartbeat may have come in between).
    Transition {
        node: NodeId,
        from: NodeState,
        to: NodeState,
        now_ms: u64,
    },
    /// A newer shard map (after a split).
    PublishMap { map: ShardMap },
    /// Creates or deletes an S3 user or one of its access keys.
    User { change: UserChange, now_ms: u64 },
    /// An operator's (or, to retire it, the scrubber's) change to a node's
    /// lifecycle: drain, cancel, retire, remove.
    Lifecycle {
        node: NodeId,
        change: cairn_meta_api::model::LifecycleChange,
        now_ms: u64,
    },
}

/// What applying a [`Proposal`] answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Outcome {
        outcome: Outcome,
    },
    Node {
        record: NodeRecord,
    },
    Events {
        events: Vec<NodeEvent>,
    },
    Map {
        map: ShardMap,
    },
    /// A user after the change (`None`: deleted).
    User {
        record: Option<UserRecord>,
    },
    Done,
    /// The command was refused (a precondition, a missing bucket, a key
    /// outside the shard): the same answer on every replica.
    Rejected {
        status: u16,
        code: ErrorCode,
        message: String,
    },
}

/// Opens (creating if missing) a group's database with its column families.
pub fn open_db(path: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    DB::open_cf(&options, path, [LOG_CF, RAFT_CF]).map(Arc::new)
}

/// openraft's settings for a metadata group. Heartbeats and elections are
/// slower than openraft's defaults (50 ms, 150–300 ms): a process hosts
/// several groups and each RPC is an HTTP request, and on two cores that
/// CPU is taken from the catalogue. openraft's followers also refuse votes
/// while their old leader's lease runs, so replacing a dead leader takes
/// up to about two election timeouts.
/// openraft's followers refuse votes for this long after the last heartbeat
/// they accepted (its leader lease); [`group::READ_LEASE`] is derived from it.
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 1200;

pub fn raft_config(cluster: &str) -> openraft::Config {
    openraft::Config {
        cluster_name: cluster.to_owned(),
        heartbeat_interval: 200,
        election_timeout_min: 600,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        install_snapshot_timeout: 10_000,
        max_payload_entries: 256,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        ..Default::default()
    }
}
