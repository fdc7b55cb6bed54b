//! Checking one chunk where it lives: the node re-hashes it from its disk
//! and returns the Merkle root (32 bytes cross the network, not the data).
//! Only on a mismatch are the leaves fetched, to name the corrupt blocks.

use cairn_core::manifest::{BlobManifest, ChunkDescriptor, ChunkState};
use cairn_meta_api::model::NodeRecord;

use crate::context::Context;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkHealth {
    Healthy,
    /// These blocks fail their hash (or the chunk's root differs from the
    /// manifest's: then every block is suspect).
    Corrupt(Vec<u64>),
    /// Recorded missing, or its node does not have it.
    Missing,
    /// Its node did not answer.
    Unreachable(String),
}

/// Checks chunk `desc` of `blob` on its node.
pub async fn check_chunk(
    ctx: &Context,
    nodes: &[NodeRecord],
    blob: &BlobManifest,
    desc: &ChunkDescriptor,
) -> ChunkHealth {
    if desc.state == ChunkState::Missing {
        return ChunkHealth::Missing;
    }
    let Some(client) = ctx.client(nodes, &desc.node) else {
        return ChunkHealth::Unreachable(format!("node {} is not registered", desc.node));
    };
    let chunk = blob.chunk_id(desc.index);
    let report = match client.verify(&chunk, false).await {
        Ok(report) => report,
        Err(err) if err.is_not_found() => return ChunkHealth::Missing,
        Err(err) => return ChunkHealth::Unreachable(err.to_string()),
    };
    if report.merkle_root == desc.merkle_root
        && report.corrupt_blocks.is_empty()
        && report.trailer_intact
    {
        return ChunkHealth::Healthy;
    }
    // Mismatch: ask for the leaves to pinpoint the blocks.
    let detailed = match client.verify(&chunk, true).await {
        Ok(detailed) => detailed,
        Err(err) => return ChunkHealth::Unreachable(err.to_string()),
    };
    let blocks = if detailed.corrupt_blocks.is_empty() {
        (0..detailed.blocks).collect()
    } else {
        detailed.corrupt_blocks
    };
    ChunkHealth::Corrupt(blocks)
}
