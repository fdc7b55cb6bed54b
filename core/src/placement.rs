//! Where the k+m chunks of a blob go.
//!
//! Rules, in order of importance:
//! 1. **Rack safety**: no rack holds more than m chunks of a blob, so losing a
//!    whole rack loses at most m chunks and the blob stays readable.
//! 2. **Even spread**: chunks are spread over racks as evenly as the racks'
//!    eligible nodes allow (water-filling), so that usually a rack failure
//!    *plus* further node failures is survivable (4 racks × 3 nodes, 8+4:
//!    three chunks per rack).
//! 3. **Weighted by free space**: within those limits nodes are ranked by
//!    weighted rendezvous hashing (score = free / −ln(u), u uniform from
//!    blake3(blob ‖ node)), so fuller nodes receive proportionally fewer new
//!    chunks, and the choice is a pure function of the blob id and the node
//!    list: every caller computes the same placement.
//!
//! Only nodes that are `up` and have at least the requested free space are
//! eligible.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::codec::CodecParams;
use crate::ids::{BlobId, NodeId, RackId};

/// What the failure detector believes about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Heartbeating normally.
    Up,
    /// Missed heartbeats recently; not given new chunks.
    Suspect,
    /// Silent for long enough to be considered failed.
    Down,
}

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCandidate {
    pub id: NodeId,
    pub rack: RackId,
    pub capacity: u64,
    pub free: u64,
    pub state: NodeState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "cannot place {needed} chunks: only {eligible} eligible nodes \
         ({down} not up, {full} without {min_free} bytes free); add nodes or free space"
    )]
    NotEnoughNodes {
        needed: usize,
        eligible: usize,
        down: usize,
        full: usize,
        min_free: u64,
    },
    #[error(
        "cannot place {needed} chunks rack-safely (at most {max_per_rack} per rack): \
         eligible nodes per rack are {racks}, which hold at most {placeable}; \
         add nodes in other racks"
    )]
    RackSpread {
        needed: usize,
        max_per_rack: usize,
        racks: String,
        placeable: usize,
    },
    #[error(
        "no replacement for chunk {index}: every eligible node would put more than \
         {max_per_rack} chunks in its rack"
    )]
    NoReplacement { index: usize, max_per_rack: usize },
    #[error("chunk index {index} is outside a placement of {len} chunks")]
    IndexOutOfRange { index: usize, len: usize },
}

/// Chooses `k + m` distinct nodes for a new blob; element i holds chunk i.
pub fn place(
    blob: &BlobId,
    nodes: &[NodeCandidate],
    k: usize,
    m: usize,
    min_free: u64,
) -> Result<Vec<NodeId>, PlacementError> {
    let needed = k + m;
    let eligible: Vec<&NodeCandidate> = nodes.iter().filter(|n| is_eligible(n, min_free)).collect();
    if eligible.len() < needed {
        return Err(not_enough(nodes, needed, eligible.len(), min_free));
    }
    place_among(blob, eligible, needed, m)
}

/// Like [`place`], but when fewer than k+m nodes are eligible it places one
/// chunk on each of them, as long as that is at least `at_least` (the write
/// quorum). Chunk i gets `result[i]`; the unplaced ones are the highest
/// indices (parity), so reads of a degraded object still need no decoding.
/// Rack safety is kept for the chunks placed; until repair places the
/// rest, the blob tolerates fewer losses.
pub fn place_partial(
    blob: &BlobId,
    nodes: &[NodeCandidate],
    k: usize,
    m: usize,
    min_free: u64,
    at_least: usize,
) -> Result<Vec<Option<NodeId>>, PlacementError> {
    let total = k + m;
    let eligible: Vec<&NodeCandidate> = nodes.iter().filter(|n| is_eligible(n, min_free)).collect();
    let needed = eligible.len().min(total);
    if needed < at_least.min(total) {
        return Err(not_enough(nodes, at_least, eligible.len(), min_free));
    }
    let mut placed: Vec<Option<NodeId>> = place_among(blob, eligible, needed, m)?
        .into_iter()
        .map(Some)
        .collect();
    placed.resize(total, None);
    Ok(placed)
}

fn not_enough(
    nodes: &[NodeCandidate],
    needed: usize,
    eligible: usize,
    min_free: u64,
) -> PlacementError {
    PlacementError::NotEnoughNodes {
        needed,
        eligible,
        down: nodes.iter().filter(|n| n.state != NodeState::Up).count(),
        full: nodes
            .iter()
            .filter(|n| n.state == NodeState::Up && n.free < min_free.max(1))
            .count(),
        min_free,
    }
}

/// Water-filling of `needed` chunks over the racks of `eligible` nodes, at
/// most `m` per rack, best-scoring nodes first.
fn place_among(
    blob: &BlobId,
    eligible: Vec<&NodeCandidate>,
    needed: usize,
    m: usize,
) -> Result<Vec<NodeId>, PlacementError> {
    // Each rack's eligible nodes, best score first.
    let mut racks: BTreeMap<&RackId, Vec<(f64, &NodeCandidate)>> = BTreeMap::new();
    for node in eligible {
        racks
            .entry(&node.rack)
            .or_default()
            .push((score(blob, None, node), node));
    }
    for ranked in racks.values_mut() {
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    }

    // Water-filling: the smallest per-rack level that fits all chunks.
    let sizes: Vec<usize> = racks.values().map(Vec::len).collect();
    let fits = |level: usize| sizes.iter().map(|s| (*s).min(level)).sum::<usize>() >= needed;
    let level = (1..=needed).find(|&l| fits(l)).unwrap_or(needed);
    if level > m {
        let mut listing = String::new();
        for (rack, ranked) in &racks {
            let _ = write!(listing, "{}{rack}: {}", sep(&listing), ranked.len());
        }
        return Err(PlacementError::RackSpread {
            needed,
            max_per_rack: m,
            racks: listing,
            placeable: sizes.iter().map(|s| (*s).min(m)).sum(),
        });
    }

    // Every rack gets up to level-1 chunks; the remaining ones go to the racks
    // whose next-best node scores highest.
    let mut take: Vec<usize> = sizes.iter().map(|s| (*s).min(level - 1)).collect();
    let remaining = needed - take.iter().sum::<usize>();
    let mut extra: Vec<(f64, usize)> = racks
        .values()
        .enumerate()
        .filter(|(_, ranked)| ranked.len() >= level)
        .map(|(i, ranked)| (ranked[level - 1].0, i))
        .collect();
    extra.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, rack) in extra.into_iter().take(remaining) {
        take[rack] += 1;
    }

    let mut chosen: Vec<(f64, &NodeCandidate)> = racks
        .values()
        .zip(&take)
        .flat_map(|(ranked, n)| ranked[..*n].iter().copied())
        .collect();
    chosen.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    Ok(chosen.into_iter().map(|(_, n)| n.id.clone()).collect())
}

/// Chooses a node to hold chunk `index` of an existing placement instead of
/// its current node (lost, corrupt or leaving), keeping the rack rule.
///
/// Prefers a node holding no chunk of this blob, in the rack with the fewest
/// of its chunks; when every eligible node already holds one (a small
/// cluster), a node may take a second chunk as long as its rack stays within
/// m — rack safety is never traded away.
pub fn replace(
    blob: &BlobId,
    placement: &[NodeId],
    index: usize,
    nodes: &[NodeCandidate],
    m: usize,
    min_free: u64,
) -> Result<NodeId, PlacementError> {
    replace_near(blob, placement, index, nodes, m, min_free, &[])
}

/// Like [`replace`], but among the nodes that hold no other chunk of the
/// blob, prefers a rack holding more of the chunks `near` (an LRC chunk's
/// group peers: a later local repair of it then reads less across racks).
/// The rack rule is the same.
pub fn replace_near(
    blob: &BlobId,
    placement: &[NodeId],
    index: usize,
    nodes: &[NodeCandidate],
    m: usize,
    min_free: u64,
    near: &[usize],
) -> Result<NodeId, PlacementError> {
    if index >= placement.len() {
        return Err(PlacementError::IndexOutOfRange {
            index,
            len: placement.len(),
        });
    }
    let rack_of: BTreeMap<&NodeId, &RackId> = nodes.iter().map(|n| (&n.id, &n.rack)).collect();
    let survivors: Vec<&NodeId> = placement
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, id)| id)
        .collect();
    let mut per_rack: BTreeMap<&RackId, usize> = BTreeMap::new();
    let mut per_node: BTreeMap<&NodeId, usize> = BTreeMap::new();
    for id in &survivors {
        *per_node.entry(id).or_default() += 1;
        if let Some(rack) = rack_of.get(id) {
            *per_rack.entry(rack).or_default() += 1;
        }
    }

    let mut near_per_rack: BTreeMap<&RackId, usize> = BTreeMap::new();
    for &peer in near.iter().filter(|&&p| p != index) {
        if let Some(rack) = placement.get(peer).and_then(|id| rack_of.get(id)) {
            *near_per_rack.entry(rack).or_default() += 1;
        }
    }
    let best = nodes
        .iter()
        .filter(|n| is_eligible(n, min_free) && n.id != placement[index])
        .filter(|n| per_rack.get(&n.rack).copied().unwrap_or(0) < m)
        .map(|n| {
            let shared = per_node.get(&n.id).copied().unwrap_or(0);
            let rack_load = per_rack.get(&n.rack).copied().unwrap_or(0);
            let apart = near.len() - near_per_rack.get(&n.rack).copied().unwrap_or(0);
            let s = score(blob, Some(index), n);
            ((shared, apart, rack_load), s, n)
        })
        .min_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| b.1.total_cmp(&a.1))
                .then_with(|| a.2.id.cmp(&b.2.id))
        });
    best.map(|(_, _, n)| n.id.clone())
        .ok_or(PlacementError::NoReplacement {
            index,
            max_per_rack: m,
        })
}

/// Places a new blob of `params`' code: [`place_partial`] with at most
/// [`CodecParams::tolerated_losses`] chunks per rack (any rack's loss is
/// survived), then, for an LRC, [`align_groups`].
pub fn place_blob(
    blob: &BlobId,
    nodes: &[NodeCandidate],
    params: &CodecParams,
    min_free: u64,
    at_least: usize,
) -> Result<Vec<Option<NodeId>>, PlacementError> {
    let per_rack = params.tolerated_losses();
    let placed = place_partial(
        blob,
        nodes,
        params.total() - per_rack,
        per_rack,
        min_free,
        at_least,
    )?;
    Ok(align_groups(placed, nodes, params))
}

/// Gives an LRC's chunks to the placed nodes so that each local group sits
/// in as few racks as the per-rack limit allows: the chunks, group by group
/// (data, then its local parity) and then the global parities, fill the
/// racks with the most chosen nodes first. A lost chunk's group peers are
/// then mostly in its own rack or one other, and its local repair reads
/// less across racks. The set of nodes (and so rack safety) is unchanged;
/// unplaced chunks stay unplaced. A Reed-Solomon placement is returned as is.
pub fn align_groups(
    placement: Vec<Option<NodeId>>,
    nodes: &[NodeCandidate],
    params: &CodecParams,
) -> Vec<Option<NodeId>> {
    let Some(lrc) = params.lrc_params() else {
        return placement;
    };
    let rack_of: BTreeMap<&NodeId, &RackId> = nodes.iter().map(|n| (&n.id, &n.rack)).collect();
    // Racks in the order their first node was chosen (nodes the candidates
    // do not list share one unnamed rack).
    let mut racks: Vec<(Option<&RackId>, Vec<NodeId>)> = Vec::new();
    for id in placement.iter().flatten() {
        let rack = rack_of.get(id).copied();
        match racks.iter_mut().find(|(r, _)| *r == rack) {
            Some((_, ids)) => ids.push(id.clone()),
            None => racks.push((rack, vec![id.clone()])),
        }
    }
    racks.sort_by_key(|(_, ids)| std::cmp::Reverse(ids.len()));
    let slots = racks.into_iter().flat_map(|(_, ids)| ids);
    let order = (0..lrc.l)
        .flat_map(|g| lrc.group(g))
        .chain(lrc.k + lrc.l..lrc.n())
        .filter(|&i| placement.get(i).is_some_and(Option::is_some));
    let mut aligned = vec![None; placement.len()];
    for (index, node) in order.zip(slots) {
        aligned[index] = Some(node);
    }
    aligned
}

/// Chunks per rack in a placement (for checks and reports).
pub fn rack_counts<'a>(
    placement: &[NodeId],
    nodes: &'a [NodeCandidate],
) -> BTreeMap<&'a RackId, usize> {
    let mut counts = BTreeMap::new();
    for id in placement {
        if let Some(node) = nodes.iter().find(|n| &n.id == id) {
            *counts.entry(&node.rack).or_insert(0) += 1;
        }
    }
    counts
}

fn is_eligible(node: &NodeCandidate, min_free: u64) -> bool {
    node.state == NodeState::Up && node.free >= min_free.max(1)
}

/// Weighted rendezvous score: higher wins. `salt` distinguishes replacement
/// choices for different chunks of one blob.
fn score(blob: &BlobId, salt: Option<usize>, node: &NodeCandidate) -> f64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(blob.as_bytes());
    if let Some(salt) = salt {
        hasher.update(&(salt as u64).to_le_bytes());
    }
    hasher.update(node.id.as_str().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    // 53 uniform bits mapped into the open interval (0, 1).
    let unit = ((u64::from_le_bytes(first) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    node.free as f64 / -unit.ln()
}

fn sep(s: &str) -> &'static str {
    if s.is_empty() { "" } else { ", " }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// Nodes named `r{rack}n{i}` for the given rack sizes, all up with 100 GiB
    /// free.
    fn topology(racks: &[usize]) -> Vec<NodeCandidate> {
        racks
            .iter()
            .enumerate()
            .flat_map(|(r, &count)| {
                (0..count).map(move |i| NodeCandidate {
                    id: NodeId::new(format!("r{r}n{i}")).expect("id"),
                    rack: RackId::new(format!("rack-{r}")).expect("rack"),
                    capacity: 100 * GIB,
                    free: 100 * GIB,
                    state: NodeState::Up,
                })
            })
            .collect()
    }

    fn blob(i: u64) -> BlobId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        BlobId::from_bytes(*blake3::hash(&bytes).as_bytes().first_chunk().expect("16"))
    }

    /// Places 200 blobs; checks distinctness and the rack rule and returns the
    /// sorted per-rack counts of the first placement.
    fn check_places(nodes: &[NodeCandidate], k: usize, m: usize, per_rack: &[usize]) {
        for i in 0..200 {
            let placement = place(&blob(i), nodes, k, m, 1).expect("placement");
            assert_eq!(placement.len(), k + m);
            let mut distinct = placement.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), k + m, "nodes repeat: {placement:?}");
            let mut counts: Vec<usize> = rack_counts(&placement, nodes).into_values().collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            assert_eq!(counts, per_rack, "blob {i}: {placement:?}");
        }
    }

    #[test]
    fn partial_placement_uses_every_eligible_node_and_leaves_parity_unplaced() {
        let mut nodes = topology(&[3, 3, 3, 3]);
        nodes[0].state = NodeState::Down;
        nodes[4].state = NodeState::Suspect;
        assert!(place(&blob(1), &nodes, 8, 4, 1).is_err());
        for i in 0..50 {
            let placed = place_partial(&blob(i), &nodes, 8, 4, 1, 9).expect("10 nodes up");
            assert_eq!(placed.len(), 12);
            assert!(placed[..10].iter().all(Option::is_some), "{placed:?}");
            assert!(placed[10..].iter().all(Option::is_none), "{placed:?}");
            let ids: Vec<NodeId> = placed.into_iter().flatten().collect();
            let mut distinct = ids.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 10);
            assert!(rack_counts(&ids, &nodes).values().all(|&n| n <= 4));
        }
        // Enough nodes: the same as `place`.
        let healthy = topology(&[3, 3, 3, 3]);
        let full: Vec<Option<NodeId>> = place(&blob(7), &healthy, 8, 4, 1)
            .expect("placement")
            .into_iter()
            .map(Some)
            .collect();
        assert_eq!(
            place_partial(&blob(7), &healthy, 8, 4, 1, 9).expect("placement"),
            full
        );
        // Below the quorum: refused.
        nodes[1].state = NodeState::Down;
        nodes[2].state = NodeState::Down;
        assert!(matches!(
            place_partial(&blob(1), &nodes, 8, 4, 1, 9),
            Err(PlacementError::NotEnoughNodes { .. })
        ));
    }

    #[test]
    fn rack_rule_and_even_spread_across_topologies() {
        // (rack sizes, k, m, chunks per rack, most loaded first)
        let cases: &[(&[usize], usize, usize, &[usize])] = &[
            (&[3, 3, 3, 3], 8, 4, &[3, 3, 3, 3]),
            (&[4, 4, 4, 4], 8, 4, &[3, 3, 3, 3]),
            (&[4, 4, 4], 8, 4, &[4, 4, 4]),
            (&[5, 5, 5], 8, 4, &[4, 4, 4]),
            (&[2, 2, 2, 2, 2, 2], 8, 4, &[2, 2, 2, 2, 2, 2]),
            (&[3, 3, 3, 3, 3], 8, 4, &[3, 3, 2, 2, 2]),
            (&[3, 3], 2, 4, &[3, 3]),
            (&[5, 4, 4, 2], 8, 4, &[4, 3, 3, 2]),
            (&[6, 2, 1, 1], 4, 2, &[2, 2, 1, 1]),
            (&[9, 2, 2], 4, 4, &[4, 2, 2]),
        ];
        for (racks, k, m, expected) in cases {
            check_places(&topology(racks), *k, *m, expected);
        }
    }

    #[test]
    fn refuses_when_racks_cannot_hold_the_chunks_safely() {
        // Two racks of six: 8+4 would need six chunks in a rack (> m = 4).
        let err = place(&blob(1), &topology(&[6, 6]), 8, 4, 1).expect_err("two racks");
        assert_eq!(
            err.to_string(),
            "cannot place 12 chunks rack-safely (at most 4 per rack): eligible nodes per \
             rack are rack-0: 6, rack-1: 6, which hold at most 8; add nodes in other racks"
        );
        // Uneven: one big rack cannot make up for small ones.
        assert!(matches!(
            place(&blob(1), &topology(&[6, 3, 2, 1]), 8, 4, 1),
            Err(PlacementError::RackSpread { placeable: 10, .. })
        ));
    }

    #[test]
    fn refuses_when_too_few_nodes_are_up_or_have_space() {
        let mut nodes = topology(&[3, 3, 3, 3]);
        nodes[0].state = NodeState::Down;
        nodes[5].free = 10;
        let err = place(&blob(1), &nodes, 8, 4, 1024).expect_err("11 nodes");
        assert_eq!(
            err,
            PlacementError::NotEnoughNodes {
                needed: 12,
                eligible: 10,
                down: 1,
                full: 1,
                min_free: 1024
            }
        );
        assert!(err.to_string().contains("only 10 eligible nodes"));
    }

    #[test]
    fn skips_full_suspect_and_down_nodes() {
        let mut nodes = topology(&[4, 4, 4, 4]);
        nodes[0].free = 0;
        nodes[5].state = NodeState::Suspect;
        nodes[10].state = NodeState::Down;
        let excluded = [&nodes[0].id, &nodes[5].id, &nodes[10].id];
        for i in 0..100 {
            let placement = place(&blob(i), &nodes, 8, 4, 1).expect("placement");
            assert!(placement.iter().all(|id| !excluded.contains(&id)));
        }
    }

    #[test]
    fn is_deterministic_per_blob_and_varies_between_blobs() {
        let nodes = topology(&[4, 4, 4, 4]);
        let a = place(&blob(7), &nodes, 8, 4, 1).expect("a");
        let mut shuffled = nodes.clone();
        shuffled.reverse();
        assert_eq!(place(&blob(7), &shuffled, 8, 4, 1).expect("again"), a);
        let distinct: std::collections::BTreeSet<Vec<NodeId>> = (0..50)
            .map(|i| place(&blob(i), &nodes, 8, 4, 1).expect("p"))
            .collect();
        assert!(
            distinct.len() > 40,
            "only {} distinct placements",
            distinct.len()
        );
    }

    #[test]
    fn spreads_new_chunks_by_free_space() {
        // 4 racks × 4 nodes; in every rack node 0 has 8x the free space of the
        // others. 12 chunks take three of four nodes per rack.
        let mut nodes = topology(&[4, 4, 4, 4]);
        for node in nodes.iter_mut() {
            if node.id.as_str().ends_with("n0") {
                node.free *= 8;
            }
        }
        let mut picks: BTreeMap<NodeId, usize> = BTreeMap::new();
        for i in 0..2000 {
            for id in place(&blob(i), &nodes, 8, 4, 1).expect("placement") {
                *picks.entry(id).or_default() += 1;
            }
        }
        for (id, count) in &picks {
            if id.as_str().ends_with("n0") {
                assert!(*count > 1900, "{id} roomy but picked {count}/2000");
            } else {
                assert!((1200..1500).contains(count), "{id} picked {count}/2000");
            }
        }
    }

    #[test]
    fn replacement_prefers_a_fresh_node_in_the_emptiest_rack() {
        let nodes = topology(&[4, 4, 4, 4]);
        for i in 0..100 {
            let placement = place(&blob(i), &nodes, 8, 4, 1).expect("placement");
            let lost = (i % 12) as usize;
            let new = replace(&blob(i), &placement, lost, &nodes, 4, 1).expect("replacement");
            assert!(!placement.contains(&new), "{new} already holds a chunk");
            let mut repaired = placement.clone();
            repaired[lost] = new;
            let counts = rack_counts(&repaired, &nodes);
            assert!(counts.values().all(|c| *c == 3), "{counts:?}");
        }
    }

    #[test]
    fn replacement_on_a_full_cluster_shares_a_node_but_keeps_the_rack_rule() {
        // 12 nodes for 12 chunks: after a loss there is no unused node.
        let mut nodes = topology(&[3, 3, 3, 3]);
        let placement = place(&blob(3), &nodes, 8, 4, 1).expect("placement");
        let dead = nodes
            .iter()
            .position(|n| n.id == placement[0])
            .expect("node");
        nodes[dead].state = NodeState::Down;
        let new = replace(&blob(3), &placement, 0, &nodes, 4, 1).expect("replacement");
        assert_ne!(new, placement[0]);
        let mut repaired = placement.clone();
        repaired[0] = new;
        assert!(rack_counts(&repaired, &nodes).values().all(|c| *c <= 4));
    }

    #[test]
    fn replacement_refuses_to_break_the_rack_rule() {
        // 2+1 over three one-node racks: with one rack gone, any replacement
        // would put two chunks in one rack (m = 1).
        let mut nodes = topology(&[1, 1, 1]);
        let placement = place(&blob(1), &nodes, 2, 1, 1).expect("placement");
        let dead = nodes
            .iter()
            .position(|n| n.id == placement[1])
            .expect("node");
        nodes[dead].state = NodeState::Down;
        assert_eq!(
            replace(&blob(1), &placement, 1, &nodes, 1, 1),
            Err(PlacementError::NoReplacement {
                index: 1,
                max_per_rack: 1
            })
        );
        assert!(matches!(
            replace(&blob(1), &placement, 3, &nodes, 1, 1),
            Err(PlacementError::IndexOutOfRange { .. })
        ));
    }

    #[test]
    fn lrc_blobs_keep_a_rack_loss_survivable_and_their_groups_in_few_racks() {
        let params = CodecParams::lrc(12, 2, 2, 1 << 20).expect("lrc");
        let lrc = params.lrc_params().expect("lrc");
        let nodes = topology(&[3, 3, 3, 3, 3, 3]);
        let rack_of: BTreeMap<&NodeId, &RackId> = nodes.iter().map(|n| (&n.id, &n.rack)).collect();
        let codec = crate::codec::ErasureCodec::new(params).expect("codec");
        for i in 0..100 {
            let placed: Vec<NodeId> = place_blob(&blob(i), &nodes, &params, 1, 16)
                .expect("18 nodes in 6 racks")
                .into_iter()
                .map(|n| n.expect("all placed"))
                .collect();
            let distinct: std::collections::BTreeSet<&NodeId> = placed.iter().collect();
            assert_eq!(distinct.len(), 16);
            // Losing any one rack leaves a decodable blob.
            for rack in rack_of.values() {
                let present: Vec<bool> = placed.iter().map(|n| rack_of[n] != *rack).collect();
                assert!(
                    codec.is_decodable(&present),
                    "blob {i}: losing {rack} is fatal"
                );
            }
            // Each group of 7 chunks in 3 racks: the fewest at 3 per rack.
            for g in 0..lrc.l {
                let racks: std::collections::BTreeSet<&RackId> =
                    lrc.group(g).iter().map(|&c| rack_of[&placed[c]]).collect();
                assert_eq!(racks.len(), 3, "blob {i} group {g}: {racks:?}");
            }
        }
        // Four racks cannot hold 16 chunks at 3 per rack.
        assert!(matches!(
            place_blob(&blob(1), &topology(&[4, 4, 4, 4]), &params, 1, 16),
            Err(PlacementError::RackSpread { .. })
        ));
        // Reed-Solomon placements are what `place` gives.
        let rs = CodecParams::DEFAULT;
        let plain = place(&blob(3), &topology(&[3, 3, 3, 3]), 8, 4, 1).expect("rs");
        let via: Vec<NodeId> = place_blob(&blob(3), &topology(&[3, 3, 3, 3]), &rs, 1, 12)
            .expect("rs")
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(via, plain);
    }

    #[test]
    fn a_replacement_goes_near_its_group_when_the_rack_rule_allows() {
        let nodes = topology(&[4, 4, 4, 4, 4, 4]);
        let params = CodecParams::lrc(12, 2, 2, 1 << 20).expect("lrc");
        let lrc = params.lrc_params().expect("lrc");
        let placed: Vec<NodeId> = place_blob(&blob(9), &nodes, &params, 1, 16)
            .expect("placement")
            .into_iter()
            .flatten()
            .collect();
        let rack_of: BTreeMap<&NodeId, &RackId> = nodes.iter().map(|n| (&n.id, &n.rack)).collect();
        let peers = lrc.group_peers(0).expect("data chunk");
        let replacement = replace_near(
            &blob(9),
            &placed,
            0,
            &nodes,
            params.tolerated_losses(),
            1,
            &peers,
        )
        .expect("replacement");
        let near = |node: &NodeId| {
            peers
                .iter()
                .filter(|&&p| rack_of[&placed[p]] == rack_of[node])
                .count()
        };
        let best = nodes
            .iter()
            .filter(|n| !placed.contains(&n.id))
            .filter(|n| {
                placed
                    .iter()
                    .enumerate()
                    .filter(|(i, id)| *i != 0 && rack_of[*id] == &n.rack)
                    .count()
                    < params.tolerated_losses()
            })
            .map(|n| near(&n.id))
            .max()
            .expect("a candidate");
        assert_eq!(near(&replacement), best);
    }
}
