//! The console's last hour: every [`SAMPLE_EVERY`] the gateway samples its
//! own request metrics and the scrubber's repair counters, and keeps rates
//! (not counters) in a ring, so the traffic and repair charts need no
//! Prometheus server.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use cairn_scrubber_api::model::RepairStatus;
use prometheus::HistogramVec;
use serde::Serialize;

use crate::metrics::GatewayMetrics;

pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// One hour of samples.
const KEPT: usize = 720;

/// The operations the traffic page charts: reads and writes of bodies.
const READS: &[&str] = &["GetObject"];
const WRITES: &[&str] = &["PutObject", "UploadPart", "CopyObject", "UploadPartCopy"];

/// What happened between two samples.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Sample {
    pub at_ms: u64,
    pub get_per_sec: f64,
    pub put_per_sec: f64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
    /// Latency to the response head, over this interval (none: no request).
    pub get_p50_ms: Option<f64>,
    pub get_p99_ms: Option<f64>,
    pub put_p50_ms: Option<f64>,
    pub put_p99_ms: Option<f64>,
    /// The repair queue at the sample, and what it did since the last one
    /// (none: the scrubber did not answer or is not configured).
    pub repair: Option<RepairSample>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct RepairSample {
    pub queued: u64,
    pub in_progress: u64,
    pub chunks_per_sec: f64,
    pub bytes_read_per_sec: f64,
    pub bytes_rebuilt_per_sec: f64,
    pub cross_rack_bytes_per_sec: f64,
}

/// Cumulative values read at one instant.
#[derive(Debug, Clone, Default)]
struct Reading {
    at_ms: u64,
    gets: u64,
    puts: u64,
    bytes_in: u64,
    bytes_out: u64,
    get_buckets: Vec<(f64, u64)>,
    put_buckets: Vec<(f64, u64)>,
    repair: Option<RepairStatus>,
}

#[derive(Debug, Default)]
pub(crate) struct History {
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    last: Option<Reading>,
    samples: VecDeque<Sample>,
}

impl History {
    /// Reads the counters now and records the rates since the last call.
    pub(crate) fn record(
        &self,
        metrics: &GatewayMetrics,
        repair: Option<RepairStatus>,
        now_ms: u64,
    ) {
        let reading = Reading {
            at_ms: now_ms,
            gets: requests(metrics, READS),
            puts: requests(metrics, WRITES),
            bytes_in: metrics.bytes_in.get(),
            bytes_out: metrics.bytes_out.get(),
            get_buckets: buckets(&metrics.request_seconds, READS),
            put_buckets: buckets(&metrics.request_seconds, WRITES),
            repair,
        };
        let mut ring = self.inner.lock().expect("history lock");
        if let Some(last) = ring.last.take()
            && reading.at_ms > last.at_ms
        {
            let sample = rates(&last, &reading);
            if ring.samples.len() == KEPT {
                ring.samples.pop_front();
            }
            ring.samples.push_back(sample);
        }
        ring.last = Some(reading);
    }

    /// Oldest first.
    pub(crate) fn samples(&self) -> Vec<Sample> {
        let ring = self.inner.lock().expect("history lock");
        ring.samples.iter().cloned().collect()
    }
}

fn rates(before: &Reading, now: &Reading) -> Sample {
    let secs = (now.at_ms - before.at_ms) as f64 / 1000.0;
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let get = delta(&before.get_buckets, &now.get_buckets);
    let put = delta(&before.put_buckets, &now.put_buckets);
    let repair = match (&before.repair, &now.repair) {
        (Some(a), Some(b)) => Some(RepairSample {
            queued: b.queued,
            in_progress: b.in_progress,
            chunks_per_sec: rate(a.repaired_chunks, b.repaired_chunks),
            bytes_read_per_sec: rate(a.bytes_read, b.bytes_read),
            bytes_rebuilt_per_sec: rate(a.bytes_rebuilt, b.bytes_rebuilt),
            cross_rack_bytes_per_sec: rate(a.cross_rack_bytes, b.cross_rack_bytes),
        }),
        (None, Some(b)) => Some(RepairSample {
            queued: b.queued,
            in_progress: b.in_progress,
            ..RepairSample::default()
        }),
        _ => None,
    };
    Sample {
        at_ms: now.at_ms,
        get_per_sec: rate(before.gets, now.gets),
        put_per_sec: rate(before.puts, now.puts),
        bytes_in_per_sec: rate(before.bytes_in, now.bytes_in),
        bytes_out_per_sec: rate(before.bytes_out, now.bytes_out),
        get_p50_ms: quantile(&get, 0.5),
        get_p99_ms: quantile(&get, 0.99),
        put_p50_ms: quantile(&put, 0.5),
        put_p99_ms: quantile(&put, 0.99),
        repair,
    }
}

/// Requests of `operations` so far (every request is observed once by the
/// latency histogram).
fn requests(metrics: &GatewayMetrics, operations: &[&str]) -> u64 {
    operations
        .iter()
        .filter_map(|op| {
            metrics
                .request_seconds
                .get_metric_with_label_values(&[op])
                .ok()
        })
        .map(|histogram| histogram.get_sample_count())
        .sum()
}

/// `(upper bound in seconds, cumulative count)` of the operations' latency
/// histograms, summed.
fn buckets(histograms: &HistogramVec, operations: &[&str]) -> Vec<(f64, u64)> {
    let mut summed: Vec<(f64, u64)> = Vec::new();
    for operation in operations {
        let Ok(histogram) = histograms.get_metric_with_label_values(&[operation]) else {
            continue;
        };
        let proto = prometheus::core::Metric::metric(&histogram);
        for (i, bucket) in proto.get_histogram().get_bucket().iter().enumerate() {
            match summed.get_mut(i) {
                Some(slot) => slot.1 += bucket.cumulative_count(),
                None => summed.push((bucket.upper_bound(), bucket.cumulative_count())),
            }
        }
    }
    summed
}

/// The interval's histogram: `now − before`, bucket by bucket.
fn delta(before: &[(f64, u64)], now: &[(f64, u64)]) -> Vec<(f64, u64)> {
    now.iter()
        .enumerate()
        .map(|(i, (bound, count))| {
            let earlier = before.get(i).map_or(0, |b| b.1);
            (*bound, count.saturating_sub(earlier))
        })
        .collect()
}

/// The `q` quantile in milliseconds, interpolated inside its bucket as
/// Prometheus's `histogram_quantile` does; above the last bound, the last
/// bound.
fn quantile(cumulative: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(bound, count) in cumulative {
        if count as f64 >= rank {
            let in_bucket = (count - lower.1) as f64;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some((lower.0 + (bound - lower.0) * fraction) * 1000.0);
        }
        lower = (bound, count);
    }
    Some(lower.0 * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_prometheus() {
        // 100 requests: 50 under 1 ms, 40 in (1, 2] ms, 10 in (2, 4] ms.
        let histogram = [(0.001, 50), (0.002, 90), (0.004, 100)];
        assert_eq!(quantile(&histogram, 0.5), Some(1.0));
        let p99 = quantile(&histogram, 0.99).expect("requests");
        assert!((p99 - 3.8).abs() < 1e-9, "{p99}");
        assert_eq!(quantile(&[(0.001, 0)], 0.5), None);
    }

    #[test]
    fn samples_are_rates_of_the_interval_and_the_ring_keeps_an_hour() {
        let metrics = GatewayMetrics::new();
        let history = History::default();
        history.record(&metrics, None, 1_000);
        for _ in 0..10 {
            metrics
                .requests
                .with_label_values(&["GetObject", "200"])
                .inc();
            metrics
                .request_seconds
                .with_label_values(&["GetObject"])
                .observe(0.003);
        }
        metrics.bytes_out.inc_by(5_000);
        history.record(&metrics, None, 6_000);
        let samples = history.samples();
        assert_eq!(samples.len(), 1);
        assert!((samples[0].get_per_sec - 2.0).abs() < 1e-9);
        assert!((samples[0].bytes_out_per_sec - 1000.0).abs() < 1e-9);
        assert_eq!(samples[0].put_per_sec, 0.0);
        assert!(
            samples[0]
                .get_p99_ms
                .is_some_and(|ms| ms > 2.0 && ms <= 4.0)
        );
        assert_eq!(samples[0].put_p99_ms, None);
        for i in 0..(KEPT as u64 + 5) {
            history.record(&metrics, None, 7_000 + i * 5_000);
        }
        assert_eq!(history.samples().len(), KEPT);
    }
}
