//! The failure detector, run by whichever replica leads the cluster group.
//!
//! It needs a clock, so it is not part of the replicated state: the leader
//! remembers when it last heard from each node and proposes state changes
//! (`Transition`s) that the cluster group applies only if the node is still
//! in the state the verdict started from. A replica that becomes leader
//! starts every node's silence from that moment, as a restarted service
//! did before: a node is never declared down because leadership moved.

use std::collections::HashMap;
use std::time::Instant;

use cairn_core::ids::NodeId;
use cairn_service::now_ms;

use super::Shared;
use crate::liveness::{DetectorConfig, Liveness};
use crate::raft::{Proposal, Reply};

pub(super) struct Detector {
    config: DetectorConfig,
    /// The term in which `heard` was started (a new term starts afresh).
    term: Option<u64>,
    heard: HashMap<NodeId, Instant>,
}

impl Detector {
    pub(super) fn new(config: DetectorConfig) -> Self {
        Self {
            config,
            term: None,
            heard: HashMap::new(),
        }
    }

    /// A heartbeat reached this leader.
    pub(super) fn heard(&mut self, node: &NodeId, now: Instant) {
        self.heard.insert(node.clone(), now);
    }
}

impl Shared {
    pub(super) fn heard_from(&self, node: &NodeId) {
        self.detector
            .lock()
            .expect("detector")
            .heard(node, tokio::time::Instant::now().into_std());
    }

    /// One round of the detector, when this replica leads the cluster
    /// group.
    pub(super) async fn detector_tick(&self) {
        let Ok((group, state)) = self.cluster_leader() else {
            self.detector.lock().expect("detector").term = None;
            return;
        };
        let term = group.raft.metrics().borrow().current_term;
        let nodes = match state.nodes() {
            Ok(nodes) => nodes,
            Err(err) => {
                tracing::error!(%err, "failure detector cannot read the registry");
                return;
            }
        };
        let now = tokio::time::Instant::now().into_std();
        let verdicts: Vec<Proposal> = {
            let mut detector = self.detector.lock().expect("detector");
            if detector.term != Some(term) {
                // New leadership: every node's silence starts now.
                detector.term = Some(term);
                detector.heard.clear();
            }
            let config = detector.config;
            nodes
                .iter()
                .filter_map(|record| {
                    let heard = *detector.heard.entry(record.id.clone()).or_insert(now);
                    let mut liveness = Liveness::restored(record.state, heard);
                    liveness
                        .tick(now, &config)
                        .map(|change| Proposal::Transition {
                            node: record.id.clone(),
                            from: change.from,
                            to: change.to,
                            now_ms: now_ms(),
                        })
                })
                .collect()
        };
        for verdict in verdicts {
            match group.write(verdict).await {
                Ok(Reply::Events { events }) => {
                    for event in events {
                        self.metrics
                            .node_transitions
                            .with_label_values(&[crate::metrics::state_label(event.to)])
                            .inc();
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err.body.message, "failure detector verdict not committed")
                }
            }
        }
    }
}
