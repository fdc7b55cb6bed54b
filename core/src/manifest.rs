//! Manifest types: where the chunks of a stored blob live and how to check
//! them. Persisted by the metadata service and sent to gateways and the
//! scrubber, so these are wire/storage formats: fields are only ever added
//! (with `#[serde(default)]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::CodecParams;
use crate::ids::{BlobId, ChunkId, NodeId};
use crate::integrity::{MerkleRoot, root_of_roots};
use crate::layout::BlobLayout;

/// Node recorded for a chunk that no node could take when it was written
/// (fewer than k+m nodes up): always [`ChunkState::Missing`], for repair to
/// place.
pub const UNPLACED_NODE: &str = "unplaced";

/// Whether a chunk was made durable where the placement says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkState {
    /// Written and acknowledged by its node.
    Stored,
    /// Not written (the node failed during a degraded PUT): repair owes it.
    Missing,
}

/// One chunk of a blob: its node, and the Merkle root of its blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDescriptor {
    pub index: u8,
    pub node: NodeId,
    pub state: ChunkState,
    pub merkle_root: MerkleRoot,
}

/// One erasure-coded blob: a whole object version, or one multipart part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobManifest {
    pub blob: BlobId,
    /// Data bytes (before coding).
    pub size: u64,
    pub codec: CodecParams,
    /// Exactly k+m entries, in chunk index order.
    pub chunks: Vec<ChunkDescriptor>,
    /// Merkle root over the chunk roots.
    pub root: MerkleRoot,
}

impl BlobManifest {
    pub fn layout(&self) -> BlobLayout {
        BlobLayout::new(self.size, self.codec.k, self.codec.block_size)
    }

    pub fn chunk_id(&self, index: u8) -> ChunkId {
        ChunkId::new(self.blob, index)
    }

    /// Recomputes the root of roots from the chunk descriptors.
    pub fn computed_root(&self) -> MerkleRoot {
        let roots: Vec<MerkleRoot> = self.chunks.iter().map(|c| c.merkle_root).collect();
        root_of_roots(&roots)
    }

    /// Chunks recorded as stored.
    pub fn stored_chunks(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| c.state == ChunkState::Stored)
            .count()
    }
}

/// What a client sees as one object version, and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectManifest {
    pub size: u64,
    /// S3 ETag without quotes: hex MD5, or `md5-of-part-md5s-N`.
    pub etag: String,
    pub content_type: Option<String>,
    /// Standard headers kept verbatim (cache-control, content-disposition,
    /// content-encoding, expires, …), lowercase names.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` values, keyed without the prefix.
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
    pub created_ms: u64,
    /// One blob for a single PUT, one per part for a multipart upload, in
    /// object order.
    pub parts: Vec<BlobManifest>,
}

impl ObjectManifest {
    /// The object's integrity root: over its parts' roots.
    pub fn integrity_root(&self) -> MerkleRoot {
        match self.parts.as_slice() {
            [only] => only.root,
            parts => root_of_roots(&parts.iter().map(|p| p.root).collect::<Vec<_>>()),
        }
    }
}
