//! Prometheus metrics of a metadata process (own registry per process).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use cairn_core::placement::NodeState;

use cairn_meta_api::model::NodeRecord;

/// Metric label of a node state.
pub fn state_label(state: NodeState) -> &'static str {
    match state {
        NodeState::Up => "up",
        NodeState::Suspect => "suspect",
        NodeState::Down => "down",
    }
}
use crate::shard::Shard;

#[derive(Debug, Clone)]
pub struct MetaMetrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub commands: IntCounterVec,
    pub commit_seconds: Histogram,
    pub splits: IntCounter,
    pub node_transitions: IntCounterVec,
    pub shard_reads: IntCounterVec,
    /// Read barriers by how leadership was confirmed (lease or quorum).
    pub read_barriers: IntCounterVec,
    shard_keys: IntGaugeVec,
    shard_bytes: IntGaugeVec,
    nodes_by_state: IntGaugeVec,
}

impl MetaMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "cairn_meta_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "cairn_meta_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(prometheus::exponential_buckets(0.0002, 2.0, 16).expect("buckets")),
            &["route"],
        )
        .expect("valid metric");
        let commands = IntCounterVec::new(
            Opts::new(
                "cairn_meta_commands_total",
                "Commands applied, by type, shard and result",
            ),
            &["command", "shard", "result"],
        )
        .expect("valid metric");
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "cairn_meta_commit_seconds",
                "Time to commit and apply a catalogue command (a majority of replicas has it durably)",
            )
            .buckets(prometheus::exponential_buckets(0.0002, 2.0, 16).expect("buckets")),
        )
        .expect("valid metric");
        let splits = IntCounter::new("cairn_meta_shard_splits_total", "Online shard splits")
            .expect("valid metric");
        let node_transitions = IntCounterVec::new(
            Opts::new(
                "cairn_meta_node_transitions_total",
                "Node state changes by new state",
            ),
            &["to"],
        )
        .expect("valid metric");
        let shard_reads = IntCounterVec::new(
            Opts::new(
                "cairn_meta_shard_reads_total",
                "Read operations by type and shard",
            ),
            &["op", "shard"],
        )
        .expect("valid metric");
        let read_barriers = IntCounterVec::new(
            Opts::new(
                "cairn_meta_read_barriers_total",
                "Linearizable read barriers by how leadership was confirmed: within the read lease, or by a quorum round",
            ),
            &["how"],
        )
        .expect("valid metric");
        let shard_keys = IntGaugeVec::new(
            Opts::new(
                "cairn_meta_shard_keys_estimate",
                "RocksDB's estimate of keys per shard",
            ),
            &["shard"],
        )
        .expect("valid metric");
        let shard_bytes = IntGaugeVec::new(
            Opts::new(
                "cairn_meta_shard_bytes_estimate",
                "RocksDB's estimate of live bytes per shard",
            ),
            &["shard"],
        )
        .expect("valid metric");
        let nodes_by_state = IntGaugeVec::new(
            Opts::new("cairn_meta_nodes", "Registered storage nodes by state"),
            &["state"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(commands.clone()),
            Box::new(commit_seconds.clone()),
            Box::new(splits.clone()),
            Box::new(node_transitions.clone()),
            Box::new(shard_reads.clone()),
            Box::new(read_barriers.clone()),
            Box::new(shard_keys.clone()),
            Box::new(shard_bytes.clone()),
            Box::new(nodes_by_state.clone()),
        ] {
            registry.register(metric).expect("unique metric names");
        }
        Self {
            registry,
            requests,
            request_seconds,
            commands,
            commit_seconds,
            splits,
            node_transitions,
            shard_reads,
            read_barriers,
            shard_keys,
            shard_bytes,
            nodes_by_state,
        }
    }

    pub fn observe_shard(&self, shard: &Shard) {
        let label = shard.id().0.to_string();
        if let Some(keys) = shard.estimated_keys() {
            self.shard_keys
                .with_label_values(&[&label])
                .set(keys as i64);
        }
        if let Some(bytes) = shard.estimated_bytes() {
            self.shard_bytes
                .with_label_values(&[&label])
                .set(bytes as i64);
        }
    }

    pub fn observe_nodes(&self, nodes: &[NodeRecord]) {
        for state in [NodeState::Up, NodeState::Suspect, NodeState::Down] {
            let count = nodes.iter().filter(|n| n.state == state).count();
            self.nodes_by_state
                .with_label_values(&[state_label(state)])
                .set(count as i64);
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for MetaMetrics {
    fn default() -> Self {
        Self::new()
    }
}
