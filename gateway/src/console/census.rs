//! The at-risk census: how many blobs have how many healthy chunks right
//! now. Counted from the catalogue's reverse index (every chunk of every
//! blob, by node) against the nodes' liveness, so it needs no walk of the
//! manifests: one read of each node's index entries, and one manifest per
//! code width the gateway does not know (to learn its k).

use std::collections::{BTreeMap, HashMap};

use cairn_core::ids::BlobId;
use cairn_core::placement::NodeState;
use cairn_meta_api::MetaClient;
use cairn_meta_api::client::MetaError;
use cairn_meta_api::model::{ChunkOwner, NodeRecord};
use futures_util::future::try_join_all;
use serde::Serialize;

/// Manifests read at most to learn the k of a width the gateway does not
/// write.
const MANIFESTS_PER_WIDTH: usize = 3;

/// What a code of some width needs: k chunks at the very least, and it
/// survives every pattern of `tolerated` losses (m, or r+1 for an LRC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Shape {
    pub k: usize,
    pub tolerated: usize,
}

/// One row of the histogram: blobs of `width` chunks with `healthy` of
/// them on nodes that are up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HealthRow {
    pub width: usize,
    /// The code's needs (none: no manifest of this width was found).
    pub shape: Option<Shape>,
    pub healthy: usize,
    pub blobs: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Census {
    pub taken_ms: u64,
    /// Blobs with chunks (inline objects have none: they live in the
    /// catalogue's replicas).
    pub blobs: u64,
    /// Blobs with a chunk on a node that is not up.
    pub at_risk: u64,
    /// Blobs with fewer than k chunks on nodes that are up (certainly
    /// unreadable now).
    pub unreadable: u64,
    /// Widest first, then most healthy first.
    pub rows: Vec<HealthRow>,
    /// Chunks the catalogue places on each node (a lost node's count falls
    /// as repair moves its chunks).
    pub chunks_per_node: BTreeMap<String, u64>,
}

/// A census and what it cost, for deciding when to take the next one.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub census: std::sync::Arc<Census>,
    pub at: std::time::Instant,
    pub took: std::time::Duration,
}

impl Taken {
    /// Fresh for at least `floor`, and for ten times what it took to take:
    /// a census of a large catalogue (one read of every node's reverse
    /// index) is repeated at most a tenth of the time.
    pub(crate) fn is_fresh(&self, floor: std::time::Duration) -> bool {
        self.at.elapsed() < floor.max(self.took * 10)
    }
}

#[derive(Debug)]
struct BlobTally {
    width: usize,
    healthy: usize,
    owner: ChunkOwner,
}

/// Counts every blob's healthy chunks. `known` maps a width to the shape
/// of the code this gateway writes with that many chunks (other widths
/// are learnt from a manifest; two codes of one width, e.g. RS(12,4) and
/// LRC(12,2,2), are told apart only by the gateway's choice).
pub(crate) async fn take(
    meta: &MetaClient,
    nodes: &[NodeRecord],
    known: &HashMap<usize, Shape>,
    now_ms: u64,
) -> Result<Census, MetaError> {
    let indexes = try_join_all(nodes.iter().map(|node| meta.chunks_on_node(&node.id))).await?;
    let mut blobs: HashMap<BlobId, BlobTally> = HashMap::new();
    let mut chunks_per_node = BTreeMap::new();
    for (node, chunks) in nodes.iter().zip(indexes) {
        let up = node.state == NodeState::Up;
        chunks_per_node.insert(node.id.to_string(), chunks.len() as u64);
        for chunk in chunks {
            let tally = blobs.entry(chunk.blob).or_insert_with(|| BlobTally {
                width: 0,
                healthy: 0,
                owner: chunk.owner.clone(),
            });
            tally.width += 1;
            tally.healthy += usize::from(up);
        }
    }
    let mut widths = known.clone();
    // Manifests read per unknown width, at most: a width whose blobs are
    // all uploads' parts or gone stays unknown rather than cost a read each.
    let mut tries: HashMap<usize, usize> = HashMap::new();
    for tally in blobs.values() {
        let tried = tries.entry(tally.width).or_default();
        if widths.contains_key(&tally.width) || *tried >= MANIFESTS_PER_WIDTH {
            continue;
        }
        *tried += 1;
        if let Some(shape) = shape_of(meta, tally).await? {
            widths.insert(tally.width, shape);
        }
    }
    let mut counts: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    let mut census = Census {
        taken_ms: now_ms,
        blobs: blobs.len() as u64,
        chunks_per_node,
        ..Census::default()
    };
    for tally in blobs.values() {
        *counts.entry((tally.width, tally.healthy)).or_default() += 1;
        if tally.healthy < tally.width {
            census.at_risk += 1;
        }
        if widths
            .get(&tally.width)
            .is_some_and(|shape| tally.healthy < shape.k)
        {
            census.unreadable += 1;
        }
    }
    census.rows = counts
        .into_iter()
        .rev()
        .map(|((width, healthy), blobs)| HealthRow {
            width,
            shape: widths.get(&width).copied(),
            healthy,
            blobs,
        })
        .collect();
    Ok(census)
}

/// The shape of a blob of a width this gateway does not write (a bucket's
/// class, an older configuration's code), from its manifest; `None` when it
/// is gone or an upload's part.
async fn shape_of(meta: &MetaClient, tally: &BlobTally) -> Result<Option<Shape>, MetaError> {
    let owner = &tally.owner;
    if owner.upload_id.is_some() {
        return Ok(None);
    }
    let record = meta
        .get_version(&owner.bucket, &owner.key, owner.version_id.as_deref())
        .await?;
    Ok(record.and_then(|r| {
        r.manifest
            .parts
            .iter()
            .find(|p| p.chunks.len() == tally.width)
            .map(|p| Shape {
                k: p.codec.k,
                tolerated: p.codec.tolerated_losses(),
            })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_slow_census_is_repeated_less_often() {
        let taken = |took_ms: u64, ago_ms: u64| Taken {
            census: std::sync::Arc::new(Census::default()),
            at: Instant::now() - Duration::from_millis(ago_ms),
            took: Duration::from_millis(took_ms),
        };
        let floor = Duration::from_secs(3);
        assert!(taken(10, 2_000).is_fresh(floor));
        assert!(!taken(10, 3_500).is_fresh(floor));
        // Took 2 s: fresh for 20 s.
        assert!(taken(2_000, 15_000).is_fresh(floor));
        assert!(!taken(2_000, 21_000).is_fresh(floor));
    }
}
