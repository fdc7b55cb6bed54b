//! Prometheus metrics of one gateway (its own registry, so several gateways
//! can run in one test process).

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::blob_reader::ReadStats;

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    registry: Registry,
    /// S3 operations by name and HTTP status.
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    /// Object bytes received (PUT, UploadPart, copy destination).
    pub bytes_in: IntCounter,
    /// Object bytes sent (GET bodies).
    pub bytes_out: IntCounter,
    /// Blob reads that had to read around a failed chunk.
    pub degraded_reads: IntCounter,
    /// Blob reads that hedged a slow chunk.
    pub hedged_reads: IntCounter,
    /// Stripes decoded from parity.
    pub reconstructions: IntCounter,
    /// PUTs acknowledged with chunks recorded missing (owed to repair).
    pub degraded_writes: IntCounter,
    /// Nodes left out of placement after a failed chunk write.
    pub write_penalties: IntCounter,
    pub read_penalties: IntCounter,
    pub avoided_chunk_reads: IntCounter,
    /// Objects stored in their manifest, and reads served from one.
    pub inline_writes: IntCounter,
    pub inline_reads: IntCounter,
    /// Inline bodies that failed their hash (never served).
    pub corrupt_inline: IntCounter,
    /// Chunks that sent a block not matching its hash (read around).
    pub corrupt_chunk_reads: IntCounter,
    /// Encrypted versions written (`seal`) and opened (`open`), by mode.
    pub encryption: IntCounterVec,
    /// Reads refused because an SSE-C key was missing or wrong.
    pub sse_key_refusals: IntCounter,
    /// Access keys looked up in the catalogue (cache misses), by result:
    /// `found`, `unknown`, `error`.
    pub user_lookups: IntCounterVec,
    /// Chunks that served a read, by path: `local` (the node's file on this
    /// host, short-circuit) or `http`.
    pub chunk_reads: IntCounterVec,
}

impl GatewayMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "cairn_gateway_requests_total",
                "S3 requests by operation and HTTP status",
            ),
            &["operation", "status"],
        )
        .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "cairn_gateway_request_duration_seconds",
                "S3 request latency until the response head (GET bodies stream after)",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 18).expect("buckets")),
            &["operation"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let encryption = IntCounterVec::new(
            Opts::new(
                "cairn_gateway_encryption_total",
                "Encrypted versions sealed (written) and opened (read), by mode (sse_c, sse_s3)",
            ),
            &["op", "mode"],
        )
        .expect("valid metric");
        let metrics = Self {
            bytes_in: counter("cairn_gateway_bytes_in_total", "Object bytes received"),
            bytes_out: counter("cairn_gateway_bytes_out_total", "Object bytes sent"),
            degraded_reads: counter(
                "cairn_gateway_degraded_reads_total",
                "Blob reads that read around a failed, missing or corrupt chunk",
            ),
            hedged_reads: counter(
                "cairn_gateway_hedged_reads_total",
                "Blob reads that hedged a slow chunk with another",
            ),
            reconstructions: counter(
                "cairn_gateway_reconstructed_stripes_total",
                "Stripes decoded from parity on read",
            ),
            degraded_writes: counter(
                "cairn_gateway_degraded_writes_total",
                "Blobs acknowledged with chunks recorded missing",
            ),
            write_penalties: counter(
                "cairn_gateway_write_penalties_total",
                "Nodes left out of placement for a while after a failed chunk write",
            ),
            read_penalties: counter(
                "cairn_gateway_read_penalties_total",
                "Nodes avoided for a while after consecutive stalled or failed block reads",
            ),
            avoided_chunk_reads: counter(
                "cairn_gateway_avoided_chunks_total",
                "Chunks a read passed over because their node was avoided",
            ),
            inline_writes: counter(
                "cairn_gateway_inline_writes_total",
                "Objects stored inline in their manifest instead of as chunks",
            ),
            inline_reads: counter(
                "cairn_gateway_inline_reads_total",
                "Reads served from an inline body",
            ),
            corrupt_inline: counter(
                "cairn_gateway_corrupt_inline_total",
                "Inline bodies that failed their hash on read (refused, never served)",
            ),
            corrupt_chunk_reads: counter(
                "cairn_gateway_corrupt_chunks_total",
                "Chunks whose blocks failed the gateway's hash check on read (read around, never served)",
            ),
            sse_key_refusals: counter(
                "cairn_gateway_sse_key_refusals_total",
                "Requests refused because an SSE-C key was missing or did not match",
            ),
            user_lookups: IntCounterVec::new(
                Opts::new(
                    "cairn_gateway_user_lookups_total",
                    "Access keys looked up in the catalogue's user table (cache misses), by result",
                ),
                &["result"],
            )
            .expect("metric"),
            chunk_reads: IntCounterVec::new(
                Opts::new(
                    "cairn_gateway_chunk_reads_total",
                    "Chunks that served blob reads, by path: local (short-circuit read of the node's file on this host) or http",
                ),
                &["path"],
            )
            .expect("metric"),
            registry,
            requests,
            request_seconds,
            encryption,
        };
        for collector in [
            Box::new(metrics.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.request_seconds.clone()),
            Box::new(metrics.bytes_in.clone()),
            Box::new(metrics.bytes_out.clone()),
            Box::new(metrics.degraded_reads.clone()),
            Box::new(metrics.hedged_reads.clone()),
            Box::new(metrics.reconstructions.clone()),
            Box::new(metrics.degraded_writes.clone()),
            Box::new(metrics.write_penalties.clone()),
            Box::new(metrics.read_penalties.clone()),
            Box::new(metrics.avoided_chunk_reads.clone()),
            Box::new(metrics.inline_writes.clone()),
            Box::new(metrics.inline_reads.clone()),
            Box::new(metrics.corrupt_inline.clone()),
            Box::new(metrics.corrupt_chunk_reads.clone()),
            Box::new(metrics.encryption.clone()),
            Box::new(metrics.sse_key_refusals.clone()),
            Box::new(metrics.user_lookups.clone()),
            Box::new(metrics.chunk_reads.clone()),
        ] {
            metrics.registry.register(collector).expect("unique metric");
        }
        metrics
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Accounts for what one blob read had to do.
    pub fn observe_read(&self, stats: &ReadStats) {
        if !stats.failed_chunks.is_empty() || stats.degraded_stripes > 0 {
            self.degraded_reads.inc();
        }
        if stats.hedged_stripes > 0 {
            self.hedged_reads.inc();
        }
        self.reconstructions.inc_by(stats.degraded_stripes);
        self.avoided_chunk_reads
            .inc_by(stats.avoided_chunks.len() as u64);
        self.corrupt_chunk_reads
            .inc_by(stats.corrupt_chunks.len() as u64);
        let local = stats.local_chunks.len() as u64;
        let served = stats.served_chunks.len() as u64;
        if local > 0 {
            self.chunk_reads.with_label_values(&["local"]).inc_by(local);
        }
        if served > local {
            self.chunk_reads
                .with_label_values(&["http"])
                .inc_by(served - local);
        }
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}
