//! Prometheus metrics of one storage node. Each node owns its registry, so
//! several nodes can run in one test process.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct NodeMetrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub corrupt_blocks: IntCounter,
    pub verifications: IntCounterVec,
    pub fsync_seconds: Histogram,
    pub used_bytes: IntGauge,
    pub capacity_bytes: IntGauge,
    pub free_bytes: IntGauge,
    pub chunks: IntGauge,
    pub local_reads: IntCounterVec,
    pub local_writes: IntCounterVec,
}

impl NodeMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "cairn_node_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "cairn_node_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("buckets")),
            &["route", "method"],
        )
        .expect("valid metric");
        let bytes_in = IntCounter::new("cairn_node_chunk_bytes_in_total", "Block bytes received")
            .expect("valid metric");
        let bytes_out = IntCounter::new("cairn_node_chunk_bytes_out_total", "Block bytes sent")
            .expect("valid metric");
        let corrupt_blocks = IntCounter::new(
            "cairn_node_corrupt_blocks_total",
            "Blocks found not to match their hash by verify (reads send the stored hash and the receiver checks it)",
        )
        .expect("valid metric");
        let verifications = IntCounterVec::new(
            Opts::new(
                "cairn_node_verifications_total",
                "Chunk verifications by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let fsync_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "cairn_node_chunk_commit_seconds",
                "Time to seal a chunk: trailer, fsync, rename, directory fsync",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16).expect("buckets")),
        )
        .expect("valid metric");
        let used_bytes = IntGauge::new("cairn_node_used_bytes", "Bytes of chunk files on disk")
            .expect("valid metric");
        let capacity_bytes = IntGauge::new(
            "cairn_node_capacity_bytes",
            "Bytes this node offers (capacity_bytes, else its file system's size)",
        )
        .expect("valid metric");
        let free_bytes = IntGauge::new(
            "cairn_node_free_bytes",
            "Bytes still free for chunks (capacity minus used, at most what the file system has)",
        )
        .expect("valid metric");
        let chunks =
            IntGauge::new("cairn_node_chunks", "Chunk files on disk").expect("valid metric");
        let local_reads = IntCounterVec::new(
            Opts::new(
                "cairn_node_local_reads_total",
                "Short-circuit read requests on the local-read socket by result (granted: a chunk descriptor was handed to a caller on this host)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let local_writes = IntCounterVec::new(
            Opts::new(
                "cairn_node_local_writes_total",
                "Short-circuit chunk writes on the local socket by result (sealed: a chunk a caller on this host wrote was checked and stored)",
            ),
            &["result"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(bytes_in.clone()),
            Box::new(bytes_out.clone()),
            Box::new(corrupt_blocks.clone()),
            Box::new(verifications.clone()),
            Box::new(fsync_seconds.clone()),
            Box::new(used_bytes.clone()),
            Box::new(capacity_bytes.clone()),
            Box::new(free_bytes.clone()),
            Box::new(chunks.clone()),
            Box::new(local_reads.clone()),
            Box::new(local_writes.clone()),
        ] {
            registry.register(metric).expect("unique metric names");
        }
        Self {
            registry,
            requests,
            request_seconds,
            bytes_in,
            bytes_out,
            corrupt_blocks,
            verifications,
            fsync_seconds,
            used_bytes,
            capacity_bytes,
            free_bytes,
            chunks,
            local_reads,
            local_writes,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}
