//! JSON bodies of the storage-node HTTP API (see docs/apis.md, "Storage
//! node API"). These are wire formats: fields are only ever added.

use cairn_core::ids::{ChunkId, NodeId, RackId};
use cairn_core::integrity::{BlockHash, MerkleRoot};
use serde::{Deserialize, Serialize};

/// Reply to a successful chunk PUT: what the node made durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutChunkResponse {
    pub chunk: ChunkId,
    pub blocks: u64,
    pub data_len: u64,
    pub merkle_root: MerkleRoot,
}

/// A chunk as described by its file's header and trailer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    pub chunk: ChunkId,
    pub block_size: u32,
    pub blocks: u64,
    pub data_len: u64,
    /// The root stored when the chunk was written (not recomputed).
    pub merkle_root: MerkleRoot,
}

/// One entry of a chunk listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkListEntry {
    pub chunk: ChunkId,
    /// File size on disk, header and trailer included.
    pub file_bytes: u64,
    /// Last modification, milliseconds since the Unix epoch (for GC grace).
    pub modified_ms: u64,
}

/// A page of the chunk listing, in (blob, index) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkListPage {
    pub chunks: Vec<ChunkListEntry>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<ChunkId>,
}

/// The node's own check of a chunk, computed from its disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub chunk: ChunkId,
    pub blocks: u64,
    pub data_len: u64,
    /// Merkle root over the blake3 of every block as read now.
    pub merkle_root: MerkleRoot,
    /// Blocks whose bytes no longer match the hash stored when written.
    pub corrupt_blocks: Vec<u64>,
    /// False when the stored hash table or footer is itself damaged.
    pub trailer_intact: bool,
    /// Every block's hash as read now, when asked for (`?leaves=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaves: Option<Vec<BlockHash>>,
}

/// What a node tells the cluster about itself: the payload of registration
/// and heartbeats with the metadata service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub rack: RackId,
    /// Address other services use to reach the node's API.
    pub address: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub chunk_count: u64,
    pub version: String,
    /// Where services on the node's host may read its chunk files directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<crate::local::LocalEndpoint>,
}
