//! What this gateway has seen of each node's requests, as opposed to what
//! its heartbeats say. A node can heartbeat on while its disk hangs; the
//! failure detector then keeps it `up`, but its chunk writes stall and its
//! block reads stall or fail. Such outcomes put the node in a penalty box
//! for [`PENALTY`] (a circuit breaker): new blobs are placed around it and
//! reads prefer its blobs' other chunks, so one hung disk costs a few
//! requests a stall deadline or a hedge instead of costing every request.
//!
//! A failed write penalises at once (it cost the PUT `write_stall_after`).
//! Reads are judged by [`READ_TROUBLE_LIMIT`] consecutive bad outcomes
//! (outrun by a hedge, unreachable, a server error) with no block served
//! in between: on a busy machine a healthy node is sometimes outrun, and
//! avoiding it would turn cheap reads into decoding ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_core::ids::NodeId;
use cairn_core::placement::NodeState;
use cairn_meta_api::model::NodeRecord;

/// How long a node that failed or stalled a request is avoided.
pub const PENALTY: Duration = Duration::from_secs(30);

/// Bad read outcomes in a row (no block served in between) that penalise.
pub const READ_TROUBLE_LIMIT: u32 = 3;

/// Why a node was penalised (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A chunk write stalled or failed.
    Write,
    /// A block read stalled (outrun by a hedge) or the node failed it.
    Read,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Read => "read",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Penalty {
    until: Instant,
    since_ms: u64,
}

#[derive(Debug, Default)]
pub struct NodeHealth {
    /// Nodes avoided, until when, and since when (wall clock, ms).
    penalised: Mutex<HashMap<NodeId, Penalty>>,
    /// Bad read outcomes in a row, per node.
    read_trouble: Mutex<HashMap<NodeId, u32>>,
}

impl NodeHealth {
    /// Avoids `node` for [`PENALTY`] from now; true if it was not avoided
    /// already.
    pub fn penalise(&self, node: &NodeId, outcome: Outcome) -> bool {
        let penalty = Penalty {
            until: Instant::now() + PENALTY,
            since_ms: cairn_service::now_ms(),
        };
        let previous = self
            .penalised
            .lock()
            .expect("penalties")
            .insert(node.clone(), penalty);
        let fresh = previous.is_none_or(|p| p.until <= Instant::now());
        if fresh {
            tracing::warn!(%node, outcome = outcome.label(), "node failed or stalled a request; avoided for a while");
        }
        fresh
    }

    /// Records how a read of one of `node`'s chunks went; true if this bad
    /// outcome made the node penalised.
    pub fn record_read(&self, node: &NodeId, served: bool) -> bool {
        let mut trouble = self.read_trouble.lock().expect("read trouble");
        if served {
            trouble.remove(node);
            return false;
        }
        let count = trouble.entry(node.clone()).or_default();
        *count += 1;
        if *count < READ_TROUBLE_LIMIT {
            return false;
        }
        trouble.remove(node);
        drop(trouble);
        self.penalise(node, Outcome::Read)
    }

    pub fn is_penalised(&self, node: &NodeId) -> bool {
        self.penalised
            .lock()
            .expect("penalties")
            .get(node)
            .is_some_and(|p| p.until > Instant::now())
    }

    /// The registry as placement should see it: a penalised node that the
    /// detector has `up` counts as `suspect`. A node the detector saw come
    /// back up after its penalty began (it was down: a restart, a healed
    /// partition) is forgiven: it is a new process or a new path.
    pub fn placeable(&self, nodes: &[NodeRecord]) -> Vec<NodeRecord> {
        let now = Instant::now();
        let mut penalised = self.penalised.lock().expect("penalties");
        penalised.retain(|id, p| {
            let came_back = nodes
                .iter()
                .any(|n| &n.id == id && n.state == NodeState::Up && n.state_since_ms > p.since_ms);
            p.until > now && !came_back
        });
        nodes
            .iter()
            .cloned()
            .map(|mut node| {
                if penalised.contains_key(&node.id) && node.state == NodeState::Up {
                    node.state = NodeState::Suspect;
                }
                node
            })
            .collect()
    }

    /// Nodes avoided right now (a gauge).
    pub fn penalised_count(&self) -> usize {
        let now = Instant::now();
        self.penalised
            .lock()
            .expect("penalties")
            .values()
            .filter(|p| p.until > now)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, state: NodeState) -> NodeRecord {
        NodeRecord {
            id: NodeId::new(id).expect("id"),
            rack: cairn_core::ids::RackId::new("r1").expect("rack"),
            address: String::new(),
            state,
            capacity_bytes: 0,
            used_bytes: 0,
            free_bytes: 0,
            chunk_count: 0,
            last_heartbeat_ms: 0,
            state_since_ms: 0,
            lifecycle: Default::default(),
            local: None,
        }
    }

    #[test]
    fn a_penalised_up_node_is_placed_as_suspect_and_others_are_untouched() {
        let health = NodeHealth::default();
        let a = NodeId::new("a").expect("id");
        assert!(health.penalise(&a, Outcome::Read));
        assert!(!health.penalise(&a, Outcome::Write), "already avoided");
        assert!(health.is_penalised(&a));
        let placed = health.placeable(&[node("a", NodeState::Up), node("b", NodeState::Up)]);
        assert_eq!(placed[0].state, NodeState::Suspect);
        assert_eq!(placed[1].state, NodeState::Up);
        assert_eq!(health.penalised_count(), 1);
    }

    #[test]
    fn a_node_seen_coming_back_up_after_its_penalty_is_forgiven() {
        let health = NodeHealth::default();
        let a = NodeId::new("a").expect("id");
        health.penalise(&a, Outcome::Write);
        let mut back = node("a", NodeState::Up);
        back.state_since_ms = cairn_service::now_ms() + 1;
        assert_eq!(health.placeable(&[back])[0].state, NodeState::Up);
        assert!(!health.is_penalised(&a));
    }

    #[test]
    fn reads_penalise_after_consecutive_trouble_and_a_served_block_forgives() {
        let health = NodeHealth::default();
        let n = NodeId::new("n").expect("id");
        for _ in 0..READ_TROUBLE_LIMIT - 1 {
            assert!(!health.record_read(&n, false));
        }
        assert!(
            !health.record_read(&n, true),
            "served: the count starts over"
        );
        for _ in 0..READ_TROUBLE_LIMIT - 1 {
            assert!(!health.record_read(&n, false));
        }
        assert!(!health.is_penalised(&n));
        assert!(health.record_read(&n, false));
        assert!(health.is_penalised(&n));
    }
}
