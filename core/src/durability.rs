//! The probability that a stripe is unreadable, from the brief's model.
//!
//! Racks fail independently with probability `q_rack`, nodes independently
//! with `q_node`. A chunk is unavailable when its rack or its node fails:
//! `q_rack + q_node(1 − q_rack)`, but chunks in one rack fail *together* when
//! the rack does, so the count of lost chunks is computed exactly by
//! convolving, rack by rack, "whole rack lost" with a binomial of node losses
//! inside a surviving rack. A stripe is unreadable when more than m of its
//! k+m chunks are lost.

use crate::codec::{CodecParams, ErasureCodec};
use crate::ids::{BlobId, NodeId};
use crate::placement::{NodeCandidate, PlacementError, place_blob, rack_counts};

/// Failure probabilities over the period of interest (e.g. until repair).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureModel {
    pub q_rack: f64,
    pub q_node: f64,
}

impl FailureModel {
    /// The brief's seed: a node fails with 1%, a rack with 0.1%, within one
    /// repair window (`cairn durability`'s defaults, the console's model).
    pub const SEED: Self = Self {
        q_rack: 0.001,
        q_node: 0.01,
    };
}

/// Probability that more than `m` chunks of a stripe are lost, given how many
/// chunks each rack holds (`chunks_per_rack` sums to k+m; a node holding two
/// chunks of one stripe is not modelled).
pub fn stripe_loss_probability(chunks_per_rack: &[usize], m: usize, model: FailureModel) -> f64 {
    // lost[j] = probability that exactly j chunks are lost so far.
    let mut lost = vec![1.0];
    for &chunks in chunks_per_rack {
        let mut rack = binomial(chunks, model.q_node)
            .into_iter()
            .map(|p| p * (1.0 - model.q_rack))
            .collect::<Vec<_>>();
        rack[chunks] += model.q_rack;
        lost = convolve(&lost, &rack);
    }
    lost.iter().skip(m + 1).sum()
}

/// Probability that one chunk is unavailable: `q_r + q_n(1 − q_r)`.
pub fn chunk_unavailability(model: FailureModel) -> f64 {
    model.q_rack + model.q_node * (1.0 - model.q_rack)
}

fn binomial(n: usize, p: f64) -> Vec<f64> {
    (0..=n)
        .map(|j| choose(n, j) * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32))
        .collect()
}

fn choose(n: usize, j: usize) -> f64 {
    (0..j).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

/// One way of storing bytes and what it survives on a topology: what
/// `cairn durability` prints and the console's durability page shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassReport {
    pub name: String,
    /// Stored bytes per data byte.
    pub overhead: f64,
    /// Copies or chunks, and how many racks they span.
    pub pieces: usize,
    pub racks: usize,
    /// Pieces that may be lost with the data still readable (every
    /// pattern of this many; an LRC also survives some larger ones).
    pub losses_readable: usize,
    /// Pieces that may be lost with the data still on some disk.
    pub losses_kept: usize,
    /// Whole racks that may be lost with the data still readable.
    pub racks_readable: usize,
    /// Probability, under the model, that the data is unreadable / gone
    /// (for an LRC an upper bound: every pattern beyond `losses_readable`
    /// is counted as a loss).
    pub p_unreadable: f64,
    pub p_lost: f64,
    /// Chunks read to rebuild one lost chunk, averaged over which chunk is
    /// lost (the repair read amplification: k for Reed-Solomon).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_reads: Option<f64>,
    /// The share of those reads that cross racks, the rebuilt chunk staying
    /// in the lost one's rack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_rack_share: Option<f64>,
}

impl ClassReport {
    /// A k+m code as placement lays `blob` out on `candidates`.
    pub fn coded(
        name: String,
        blob: &BlobId,
        candidates: &[NodeCandidate],
        k: usize,
        m: usize,
        model: FailureModel,
    ) -> Result<Self, PlacementError> {
        let params = CodecParams {
            k,
            m,
            block_size: 1,
            local_groups: 0,
        };
        Self::for_code(name, blob, candidates, &params, model)
    }

    /// A code (Reed-Solomon or LRC) as placement lays `blob` out on
    /// `candidates`, with what repairing one chunk of it reads.
    pub fn for_code(
        name: String,
        blob: &BlobId,
        candidates: &[NodeCandidate],
        params: &CodecParams,
        model: FailureModel,
    ) -> Result<Self, PlacementError> {
        let total = params.total();
        let placement: Vec<NodeId> = place_blob(blob, candidates, params, 1, total)?
            .into_iter()
            .flatten()
            .collect();
        let per_rack: Vec<usize> = rack_counts(&placement, candidates).into_values().collect();
        let tolerated = params.tolerated_losses();
        let p = stripe_loss_probability(&per_rack, tolerated, model);
        let (repair_reads, cross_rack_share) = repair_cost(params, &placement, candidates);
        Ok(Self {
            name,
            overhead: total as f64 / params.k as f64,
            pieces: total,
            racks: per_rack.len(),
            losses_readable: tolerated,
            losses_kept: tolerated,
            racks_readable: racks_tolerated(&per_rack, tolerated),
            p_unreadable: p,
            p_lost: p,
            repair_reads: Some(repair_reads),
            cross_rack_share: Some(cross_rack_share),
        })
    }
}

/// Mean chunks read per single-chunk repair, and the share of them in
/// another rack than the lost chunk's, over every chunk of `placement`
/// (the read sets the scrubber chooses: `ErasureCodec::read_set`).
fn repair_cost(
    params: &CodecParams,
    placement: &[NodeId],
    candidates: &[NodeCandidate],
) -> (f64, f64) {
    let Ok(codec) = ErasureCodec::new(*params) else {
        return (params.k as f64, 0.0);
    };
    let rack = |id: &NodeId| candidates.iter().find(|n| &n.id == id).map(|n| &n.rack);
    let (mut reads, mut crossing) = (0usize, 0usize);
    for lost in 0..placement.len() {
        let mut available = vec![true; placement.len()];
        available[lost] = false;
        let set = codec.read_set(lost, &available).unwrap_or_default();
        reads += set.len();
        crossing += set
            .iter()
            .filter(|&&i| rack(&placement[i]) != rack(&placement[lost]))
            .count();
    }
    let n = placement.len().max(1) as f64;
    (reads as f64 / n, crossing as f64 / reads.max(1) as f64)
}

/// Whole racks whose loss leaves at most `tolerated` pieces lost: the
/// largest racks go first.
pub fn racks_tolerated(per_rack: &[usize], tolerated: usize) -> usize {
    let mut sorted = per_rack.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut lost = 0;
    let mut racks = 0;
    for count in sorted {
        if lost + count > tolerated {
            break;
        }
        lost += count;
        racks += 1;
    }
    racks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 + 1e-9 * b.abs()
    }

    fn check(racks: &[usize], m: usize, q_rack: f64, q_node: f64, expected: f64) {
        let got = stripe_loss_probability(racks, m, FailureModel { q_rack, q_node });
        assert!(
            close(got, expected),
            "{racks:?} m={m} q_r={q_rack} q_n={q_node}: got {got:e}, expected {expected:e}"
        );
    }

    #[test]
    fn matches_hand_computed_values() {
        // 1+1 in two racks of one node: lost when both chunks are gone.
        let q = 0.01 + 0.02 * (1.0 - 0.01);
        check(&[1, 1], 1, 0.01, 0.02, q * q);

        // 8+4, 4 racks × 3 chunks, only racks fail: unreadable iff ≥ 2 racks
        // fail. P = 1 − (1−q)^4 − 4q(1−q)^3.
        let q: f64 = 0.001;
        check(
            &[3, 3, 3, 3],
            4,
            q,
            0.0,
            1.0 - (1.0 - q).powi(4) - 4.0 * q * (1.0 - q).powi(3),
        );

        // 8+4, only nodes fail: binomial tail P(X ≥ 5), X ~ Bin(12, p).
        let p: f64 = 0.01;
        let tail: f64 = (5..=12)
            .map(|j: usize| choose(12, j) * p.powi(j as i32) * (1.0 - p).powi(12 - j as i32))
            .sum();
        check(&[3, 3, 3, 3], 4, 0.0, p, tail);

        // 2+1 with all three chunks in one rack: the rack alone loses it.
        // P = q_r + (1−q_r)·P(≥2 of 3 nodes fail).
        let (qr, qn) = (0.01, 0.1);
        let nodes = 3.0 * qn * qn * (1.0 - qn) + qn * qn * qn;
        check(&[3], 1, qr, qn, qr + (1.0 - qr) * nodes);
    }

    #[test]
    fn rack_aware_placement_beats_piling_chunks_into_one_rack() {
        let model = FailureModel {
            q_rack: 1e-3,
            q_node: 1e-2,
        };
        let spread = stripe_loss_probability(&[3, 3, 3, 3], 4, model);
        let lopsided = stripe_loss_probability(&[6, 2, 2, 2], 4, model);
        assert!(spread * 20.0 < lopsided, "{spread:e} vs {lopsided:e}");
    }

    #[test]
    fn chunk_unavailability_is_the_briefs_formula() {
        let model = FailureModel {
            q_rack: 0.1,
            q_node: 0.2,
        };
        assert!(close(chunk_unavailability(model), 0.1 + 0.2 * 0.9));
    }

    #[test]
    fn whole_racks_are_tolerated_while_their_pieces_fit_the_losses() {
        assert_eq!(racks_tolerated(&[3, 3, 3, 3], 4), 1);
        assert_eq!(racks_tolerated(&[2, 2, 2, 2, 2, 2], 4), 2);
        assert_eq!(racks_tolerated(&[1, 1, 1], 1), 1);
        assert_eq!(racks_tolerated(&[1, 1, 1], 2), 2);
        assert_eq!(racks_tolerated(&[5, 1], 4), 0);
    }

    #[test]
    fn an_lrc_repairs_from_its_group_and_reads_less_across_racks() {
        use crate::ids::RackId;
        use crate::placement::NodeState;
        let nodes: Vec<NodeCandidate> = (0..18)
            .map(|i| NodeCandidate {
                id: NodeId::new(format!("n{i:02}")).expect("id"),
                rack: RackId::new(format!("rack-{}", i / 3)).expect("rack"),
                capacity: 1 << 40,
                free: 1 << 40,
                state: NodeState::Up,
            })
            .collect();
        let blob = BlobId::from_bytes([7; 16]);
        let lrc = CodecParams::lrc(12, 2, 2, 1 << 20).expect("lrc");
        let rs = CodecParams::new(12, 4, 1 << 20).expect("rs");
        let l = ClassReport::for_code("lrc".into(), &blob, &nodes, &lrc, FailureModel::SEED)
            .expect("lrc placed");
        let r = ClassReport::for_code("rs".into(), &blob, &nodes, &rs, FailureModel::SEED)
            .expect("rs placed");
        // 14 of 16 chunks rebuild from their 6 group peers, the 2 global
        // parities from 12: (14 × 6 + 2 × 12) / 16.
        assert_eq!(l.repair_reads, Some(6.75));
        assert_eq!(r.repair_reads, Some(12.0));
        assert!(l.cross_rack_share < r.cross_rack_share, "{l:?} {r:?}");
        assert_eq!((l.losses_readable, l.racks_readable), (3, 1));
        assert!((l.overhead - 4.0 / 3.0).abs() < 1e-12);
    }
}
