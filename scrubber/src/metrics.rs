//! Prometheus metrics of the scrubber.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct ScrubberMetrics {
    registry: Registry,
    pub chunks_verified: IntCounterVec,
    pub bytes_verified: IntCounter,
    pub repaired_chunks: IntCounter,
    pub repair_failures: IntCounter,
    pub repair_bytes_read: IntCounter,
    pub repair_bytes_rebuilt: IntCounter,
    pub repair_cross_rack_bytes: IntCounter,
    pub repair_queue: IntGauge,
    /// Queued chunks by reason: all but `drain` are blobs at risk.
    pub repair_queue_by_reason: IntGaugeVec,
    pub repairs_in_progress: IntGauge,
    pub garbage_deleted: IntCounter,
    pub garbage_spared: IntCounterVec,
    /// Orphan sweeps' durations: a sweep lists every chunk, so this grows
    /// with the data stored (and paces the sweeps, `gc::SWEEP_MAX_DUTY`).
    pub gc_sweep_seconds: Histogram,
    pub gc_sweep_chunks: IntCounter,
    pub lifecycle: IntCounterVec,
}

impl ScrubberMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let metrics = Self {
            chunks_verified: IntCounterVec::new(
                Opts::new(
                    "cairn_scrub_chunks_total",
                    "Chunks verified by scrub jobs, by outcome",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            bytes_verified: counter(
                "cairn_scrub_bytes_verified_total",
                "Chunk bytes verified on nodes by scrub jobs",
            ),
            repaired_chunks: counter("cairn_repair_chunks_total", "Chunks rebuilt"),
            repair_failures: counter("cairn_repair_failures_total", "Repair attempts that failed"),
            repair_bytes_read: counter(
                "cairn_repair_bytes_read_total",
                "Bytes read from surviving chunks by repair",
            ),
            repair_bytes_rebuilt: counter(
                "cairn_repair_bytes_rebuilt_total",
                "Bytes of chunks rebuilt and written",
            ),
            repair_cross_rack_bytes: counter(
                "cairn_repair_cross_rack_bytes_total",
                "Repair bytes read from a rack other than the rebuilt chunk's",
            ),
            repair_queue: gauge("cairn_repair_queue", "Chunks waiting for repair"),
            repair_queue_by_reason: IntGaugeVec::new(
                Opts::new(
                    "cairn_repair_queue_chunks",
                    "Chunks waiting for repair by reason (node_lost, missing, corrupt: their blobs \
                     have fewer than k+m healthy chunks; drain: healthy, being moved)",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            repairs_in_progress: gauge("cairn_repair_in_progress", "Chunks being rebuilt"),
            garbage_deleted: counter(
                "cairn_gc_chunks_deleted_total",
                "Unreferenced chunks deleted",
            ),
            gc_sweep_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "cairn_gc_sweep_seconds",
                    "Duration of orphan sweeps (every node's chunk list against the reverse index)",
                )
                .buckets(prometheus::exponential_buckets(0.01, 4.0, 9).expect("valid buckets")),
            )
            .expect("valid metric"),
            gc_sweep_chunks: counter(
                "cairn_gc_sweep_chunks_listed_total",
                "Chunks listed on nodes by orphan sweeps",
            ),
            lifecycle: IntCounterVec::new(
                Opts::new(
                    "cairn_lifecycle_actions_total",
                    "Lifecycle actions, by action (expire_current, expire_noncurrent, remove_delete_marker, abort_upload, locked)",
                ),
                &["action"],
            )
            .expect("valid metric"),
            garbage_spared: IntCounterVec::new(
                Opts::new(
                    "cairn_gc_chunks_spared_total",
                    "Garbage chunks kept at the last check, by reason (referenced again, written since)",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.chunks_verified.clone()),
            Box::new(metrics.bytes_verified.clone()),
            Box::new(metrics.repaired_chunks.clone()),
            Box::new(metrics.repair_failures.clone()),
            Box::new(metrics.repair_bytes_read.clone()),
            Box::new(metrics.repair_bytes_rebuilt.clone()),
            Box::new(metrics.repair_cross_rack_bytes.clone()),
            Box::new(metrics.repair_queue.clone()),
            Box::new(metrics.repair_queue_by_reason.clone()),
            Box::new(metrics.repairs_in_progress.clone()),
            Box::new(metrics.garbage_deleted.clone()),
            Box::new(metrics.garbage_spared.clone()),
            Box::new(metrics.gc_sweep_seconds.clone()),
            Box::new(metrics.gc_sweep_chunks.clone()),
            Box::new(metrics.lifecycle.clone()),
        ];
        for collector in collectors {
            metrics.registry.register(collector).expect("unique metric");
        }
        // Every series exists from the start (at 0), so that alerts on
        // `increase()` and sums over reasons see them before the first event.
        for outcome in ["healthy", "corrupt", "missing", "unreachable"] {
            metrics.chunks_verified.with_label_values(&[outcome]);
        }
        for (reason, _) in crate::store::QueueCounts::default().by_reason() {
            metrics.repair_queue_by_reason.with_label_values(&[reason]);
        }
        metrics
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for ScrubberMetrics {
    fn default() -> Self {
        Self::new()
    }
}
