//! Scrub jobs, findings, repair tasks and counters. These are both the
//! scrubber's RocksDB values and its admin API bodies (JSON): fields are
//! only ever added, with `#[serde(default)]`.

use cairn_core::ids::{BlobId, NodeId};
use serde::{Deserialize, Serialize};

/// What a scrub job covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubScope {
    /// One bucket (none: every bucket).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Key prefix within the bucket.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// How to run a scrub job: body of `POST /scrub/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// What the job does with each object version it walks.
    #[serde(default)]
    pub kind: JobKind,
    #[serde(default)]
    pub scope: ScrubScope,
    /// Chunk bytes verified per second (0: unlimited).
    #[serde(default)]
    pub rate_bytes_per_sec: u64,
    /// Bytes that may be verified at once above the rate.
    #[serde(default)]
    pub burst_bytes: Option<u64>,
    /// Run again this long after each run ends (none: once).
    #[serde(default)]
    pub every_secs: Option<u64>,
    /// Higher runs first when several jobs are due.
    #[serde(default)]
    pub priority: u8,
}

impl JobSpec {
    /// The burst: as asked, else one second of rate (at least 1 MiB).
    pub fn burst(&self) -> u64 {
        self.burst_bytes
            .unwrap_or(self.rate_bytes_per_sec)
            .max(1 << 20)
    }
}

/// A scrub verifies every chunk; a lifecycle job carries out the buckets'
/// lifecycle rules (the scrubber keeps one, scheduled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    #[default]
    Scrub,
    Lifecycle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its (next) run.
    Pending,
    Running,
    /// A one-off job that finished.
    Done,
    Cancelled,
}

/// Where a running job is: the next object to verify is the first after
/// (`bucket`, `after_key`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub bucket: String,
    /// The last key verified (none: start of the bucket).
    pub after_key: Option<String>,
}

/// A chunk that is not as the manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkFinding {
    pub bucket: String,
    pub key: String,
    pub blob: BlobId,
    pub index: u8,
    pub node: NodeId,
    /// Corrupt block numbers (corrupt chunks only).
    #[serde(default)]
    pub blocks: Vec<u64>,
}

/// Findings kept per run (counts are exact; lists stop here).
pub const MAX_FINDINGS: usize = 1000;

/// What one run of a job found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResults {
    pub objects_checked: u64,
    /// Chunk data verified on the nodes (what the rate limit meters).
    pub bytes_checked: u64,
    pub chunks_healthy: u64,
    pub chunks_corrupt: u64,
    pub chunks_missing: u64,
    /// Chunks whose node did not answer (not repaired by the scrub: the
    /// failure detector decides when a node is lost).
    pub chunks_unreachable: u64,
    pub repairs_queued: u64,
    /// Inline objects whose body was checked against its hash, and those
    /// that failed (the gateway refuses to serve them; their only copies
    /// are the catalogue's, so the scrub reports them and cannot rebuild).
    #[serde(default)]
    pub inline_checked: u64,
    #[serde(default)]
    pub inline_corrupt: Vec<String>,
    #[serde(default)]
    pub corrupt: Vec<ChunkFinding>,
    #[serde(default)]
    pub missing: Vec<ChunkFinding>,
    /// What a lifecycle run did.
    #[serde(default)]
    pub lifecycle: LifecycleCounts,
}

/// What a lifecycle run expired, removed and aborted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleCounts {
    /// Current versions expired (a delete marker added, or deleted in an
    /// unversioned bucket).
    pub expired_current: u64,
    pub expired_noncurrent: u64,
    pub removed_delete_markers: u64,
    pub aborted_uploads: u64,
    /// Expirations the catalogue refused: the version is locked.
    pub locked: u64,
}

/// One run of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    pub started_ms: u64,
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// Objects in scope when the run started (for progress and ETA).
    pub objects_total: u64,
    #[serde(default)]
    pub cursor: Option<Cursor>,
    /// Times this run was resumed from its checkpoint after a restart.
    #[serde(default)]
    pub resumed: u32,
    pub results: JobResults,
}

impl JobRun {
    pub fn duration_ms(&self, now_ms: u64) -> u64 {
        self.finished_ms
            .unwrap_or(now_ms)
            .saturating_sub(self.started_ms)
    }
}

/// A scrub job as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub spec: JobSpec,
    pub state: JobState,
    pub created_ms: u64,
    /// When it runs next (pending jobs).
    pub next_run_ms: u64,
    /// Completed runs.
    pub runs: u64,
    /// The run in progress.
    #[serde(default)]
    pub current: Option<JobRun>,
    /// The last completed run.
    #[serde(default)]
    pub last: Option<JobRun>,
}

/// Why a chunk is queued for repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RepairReason {
    /// Its node has been down for longer than the grace period.
    NodeLost,
    /// Recorded missing at write time, or not found on its node.
    Missing,
    /// Blocks that fail their hash.
    Corrupt { blocks: Vec<u64> },
    /// Its node is being drained (`cairn node drain`): healthy, but moved
    /// to another node before the node is retired.
    Drain,
    /// Its node holds more than its share (`cairn rebalance`): healthy,
    /// moved to a node below the cluster's mean use.
    Rebalance,
}

/// What `POST /rebalance` queued.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RebalancePlan {
    /// Bytes used ÷ bytes offered over the active nodes: each node's target.
    pub mean_use: f64,
    /// Chunks queued to move, and their bytes.
    pub moves: u64,
    pub bytes: u64,
    /// Per node above its target: the bytes queued to leave it.
    pub from: std::collections::BTreeMap<String, u64>,
}

/// A rebalance in progress: moves still queued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceStatus {
    pub queued: u64,
}

/// One chunk to rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairTask {
    pub bucket: String,
    pub key: String,
    /// The object version holding the blob (`None`: the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub blob: BlobId,
    pub index: u8,
    /// Where the chunk is recorded now (it is rebuilt elsewhere or in place).
    pub node: NodeId,
    pub reason: RepairReason,
    /// Healthy chunks of the blob when queued: fewer runs first.
    pub surviving: u8,
    pub queued_ms: u64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub not_before_ms: u64,
}

/// What one repair cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairCost {
    pub bytes_read: u64,
    pub bytes_rebuilt: u64,
    pub cross_rack_bytes: u64,
    pub millis: u64,
    /// The blob's code (`RS(8,4)`, `LRC(12,2,2)`): costs are also kept per
    /// class.
    #[serde(default)]
    pub class: Option<String>,
}

/// Repair counters of one storage class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassRepairTotals {
    pub repaired_chunks: u64,
    pub bytes_read: u64,
    pub bytes_rebuilt: u64,
    pub cross_rack_bytes: u64,
}

impl ClassRepairTotals {
    /// Bytes read ÷ bytes rebuilt; 0 before any repair.
    pub fn read_amplification(&self) -> f64 {
        if self.bytes_rebuilt == 0 {
            0.0
        } else {
            self.bytes_read as f64 / self.bytes_rebuilt as f64
        }
    }
}

/// Repair counters since the scrubber's data dir was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairTotals {
    pub repaired_chunks: u64,
    pub failures: u64,
    /// Tasks dropped because the object changed or disappeared first.
    #[serde(default)]
    pub obsolete: u64,
    pub bytes_read: u64,
    pub bytes_rebuilt: u64,
    pub cross_rack_bytes: u64,
    pub repair_ms: u64,
    /// The same, per storage class.
    #[serde(default)]
    pub by_class: std::collections::BTreeMap<String, ClassRepairTotals>,
}

impl RepairTotals {
    pub fn add(&mut self, cost: &RepairCost) {
        self.repaired_chunks += 1;
        self.bytes_read += cost.bytes_read;
        self.bytes_rebuilt += cost.bytes_rebuilt;
        self.cross_rack_bytes += cost.cross_rack_bytes;
        self.repair_ms += cost.millis;
        if let Some(class) = &cost.class {
            let totals = self.by_class.entry(class.clone()).or_default();
            totals.repaired_chunks += 1;
            totals.bytes_read += cost.bytes_read;
            totals.bytes_rebuilt += cost.bytes_rebuilt;
            totals.cross_rack_bytes += cost.cross_rack_bytes;
        }
    }

    /// Bytes read ÷ bytes rebuilt (k for Reed-Solomon); 0 before any repair.
    pub fn read_amplification(&self) -> f64 {
        if self.bytes_rebuilt == 0 {
            0.0
        } else {
            self.bytes_read as f64 / self.bytes_rebuilt as f64
        }
    }
}

/// Body of `GET /repair/status` (`cairn repair status --json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepairStatus {
    pub queued: u64,
    pub in_progress: u64,
    pub repaired_chunks: u64,
    pub failures: u64,
    pub obsolete: u64,
    pub bytes_read: u64,
    pub bytes_rebuilt: u64,
    pub read_amplification: f64,
    pub cross_rack_bytes: u64,
    pub repair_ms: u64,
    /// Nodes down past the grace period whose chunks were queued.
    pub lost_nodes: Vec<NodeId>,
    /// Garbage chunks deleted (unreferenced after overwrites, deletes,
    /// moves and failed uploads).
    pub garbage_deleted: u64,
    /// Queued tasks (in progress included) by reason: `node_lost`,
    /// `missing`, `corrupt`, `drain`, `rebalance`.
    #[serde(default)]
    pub queued_by_reason: std::collections::BTreeMap<String, u64>,
    /// Repairs per storage class (`RS(8,4)`, `LRC(12,2,2)`, `RS(1,2)` for
    /// copies): what each class's repairs read.
    #[serde(default)]
    pub by_class: std::collections::BTreeMap<String, ClassRepairTotals>,
}
