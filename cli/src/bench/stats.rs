//! Throughput and latency percentiles of a load run.

use serde::Serialize;

use super::Op;

/// One operation as measured.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub op: Op,
    pub micros: u64,
    /// Bytes moved (0 for a failed operation).
    pub bytes: u64,
    pub ok: bool,
    /// False when a GET returned other bytes than were PUT.
    pub verified: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpStats {
    /// Successful operations.
    pub ops: u64,
    /// Failed operations, wrong data included.
    pub errors: u64,
    /// GETs whose bytes differed from what was PUT.
    pub verify_failures: u64,
    pub bytes: u64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    /// Of successful operations, in milliseconds.
    pub latency_ms: Latency,
}

/// The value below which `q` of the sorted samples fall (nearest rank).
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl OpStats {
    pub fn of(samples: &[&Sample], seconds: f64) -> Self {
        let mut latencies: Vec<u64> = samples.iter().filter(|s| s.ok).map(|s| s.micros).collect();
        latencies.sort_unstable();
        let ok = latencies.len() as u64;
        let bytes: u64 = samples.iter().map(|s| s.bytes).sum();
        let ms = |q: f64| percentile(&latencies, q) as f64 / 1000.0;
        let seconds = seconds.max(1e-9);
        Self {
            ops: ok,
            errors: samples.len() as u64 - ok,
            verify_failures: samples.iter().filter(|s| !s.verified).count() as u64,
            bytes,
            ops_per_sec: ok as f64 / seconds,
            mb_per_sec: bytes as f64 / seconds / 1e6,
            latency_ms: Latency {
                p50: ms(0.50),
                p90: ms(0.90),
                p99: ms(0.99),
                p999: ms(0.999),
                max: latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&values, 0.5), 500);
        assert_eq!(percentile(&values, 0.99), 990);
        assert_eq!(percentile(&values, 0.999), 999);
        assert_eq!(percentile(&[7], 0.999), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn wrong_data_is_an_error_not_throughput() {
        let good = Sample {
            op: Op::Get,
            micros: 1000,
            bytes: 100,
            ok: true,
            verified: true,
        };
        let bad = Sample {
            op: Op::Get,
            micros: 10,
            bytes: 0,
            ok: false,
            verified: false,
        };
        let stats = OpStats::of(&[&good, &bad], 1.0);
        assert_eq!(
            (stats.ops, stats.errors, stats.verify_failures, stats.bytes),
            (1, 1, 1, 100)
        );
        assert_eq!(stats.latency_ms.p50, 1.0);
    }
}
