//! `cairn bench`: an S3 load generator in the spirit of MinIO's warp. It
//! speaks plain S3 (SigV4, path style) to any endpoint, so Cairn and other
//! stores are measured with the same tool. Every GET is checked against
//! the blake3 of what was PUT: a fast wrong answer counts as an error, not
//! as throughput.

pub mod client;
pub mod repair;
pub mod sigv4;
pub mod stages;
pub mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use serde::Serialize;

use self::client::{S3Client, S3Target};
use self::stats::{OpStats, Sample};

/// Which operations a run issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Put,
    Get,
    /// 60% GET, 30% PUT, 10% DELETE over a shared pool of objects.
    Mixed,
    List,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Put,
    Get,
    Delete,
    List,
}

/// A load run.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub workload: Workload,
    pub object_size: u64,
    pub concurrency: usize,
    pub duration: Duration,
    /// Stop after this many operations instead (or first).
    pub count: Option<u64>,
    /// Objects prepared before GET, LIST and mixed runs; DELETE deletes
    /// this many (default: `count`, else 4 × concurrency).
    pub objects: Option<u64>,
    pub bucket: String,
    pub prefix: String,
    /// Leave the objects behind.
    pub keep: bool,
    pub progress: bool,
}

/// What a run measured (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub endpoint: String,
    pub workload: Workload,
    pub object_size: u64,
    pub concurrency: usize,
    pub seconds: f64,
    pub total: OpStats,
    pub by_op: Vec<(Op, OpStats)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot prepare the bucket: {0}")]
    Setup(#[from] client::S3Failure),
    #[error(
        "preparing the objects to read failed: none of {0} PUTs succeeded (the first failures are printed above)"
    )]
    Preparation(u64),
}

/// Object contents: one random buffer shared by every object, each
/// object's last 8 bytes made unique, so that every object differs and none
/// is compressible. Making a payload is O(1) and copies nothing: the body is
/// slices of the shared buffer, and its blake3 continues a hasher that has
/// already absorbed the shared part. So the client's own CPU goes to moving
/// bytes, not to preparing them, and a large object's PUT is not preceded
/// by a pause the wall clock would charge to the store.
pub(crate) struct Payloads {
    base: Bytes,
    /// blake3 state after `base[..shared]`.
    shared_hash: blake3::Hasher,
    /// Bytes common to every object (all but the unique tail).
    shared: usize,
}

/// A PUT body: zero-copy pieces and their total length.
#[derive(Debug)]
pub struct Payload {
    pub pieces: Vec<Bytes>,
    pub len: u64,
}

/// Piece size of a payload: large enough that per-piece overhead vanishes.
const PAYLOAD_PIECE: usize = 1 << 20;

impl Payloads {
    pub(crate) fn new(size: u64) -> Self {
        let mut base = vec![0u8; size as usize];
        rand::rng().fill(&mut base[..]);
        let shared = base.len().saturating_sub(8);
        let mut shared_hash = blake3::Hasher::new();
        shared_hash.update(&base[..shared]);
        Self {
            base: base.into(),
            shared_hash,
            shared,
        }
    }

    pub(crate) fn make(&self, id: u64) -> (Payload, [u8; 32]) {
        let tail_len = self.base.len() - self.shared;
        let tail = Bytes::copy_from_slice(&id.to_le_bytes()[..tail_len]);
        let hash = *self.shared_hash.clone().update(&tail).finalize().as_bytes();
        let mut pieces: Vec<Bytes> = (0..self.shared)
            .step_by(PAYLOAD_PIECE)
            .map(|at| self.base.slice(at..(at + PAYLOAD_PIECE).min(self.shared)))
            .collect();
        pieces.push(tail);
        let payload = Payload {
            pieces,
            len: self.base.len() as u64,
        };
        (payload, hash)
    }
}

/// Objects that exist, with what they must read back as.
#[derive(Default)]
struct Pool {
    objects: Mutex<HashMap<String, (u64, [u8; 32])>>,
}

impl Pool {
    fn insert(&self, key: String, len: u64, hash: [u8; 32]) {
        self.objects
            .lock()
            .expect("pool lock")
            .insert(key, (len, hash));
    }

    fn random(&self) -> Option<(String, u64, [u8; 32])> {
        let objects = self.objects.lock().expect("pool lock");
        if objects.is_empty() {
            return None;
        }
        let at = rand::rng().random_range(0..objects.len());
        objects
            .iter()
            .nth(at)
            .map(|(k, (len, hash))| (k.clone(), *len, *hash))
    }

    fn is_empty(&self) -> bool {
        self.objects.lock().expect("pool lock").is_empty()
    }

    fn take_random(&self) -> Option<String> {
        let mut objects = self.objects.lock().expect("pool lock");
        let key = objects.keys().next().cloned()?;
        objects.remove(&key);
        Some(key)
    }

    fn keys(&self) -> Vec<String> {
        self.objects
            .lock()
            .expect("pool lock")
            .keys()
            .cloned()
            .collect()
    }
}

fn bar(progress: bool, len: Option<u64>, template: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Runs a load and reports it.
pub async fn run(target: S3Target, spec: BenchSpec) -> Result<BenchReport, BenchError> {
    let client = S3Client::new(target.clone());
    client.ensure_bucket(&spec.bucket).await?;
    let payloads = Arc::new(Payloads::new(spec.object_size));
    let pool = Arc::new(Pool::default());
    let next_id = Arc::new(AtomicU64::new(0));
    let run_tag: u32 = rand::rng().random();

    // Preparation (not measured).
    let prepare = match spec.workload {
        Workload::Put => 0,
        Workload::Delete => spec
            .objects
            .or(spec.count)
            .unwrap_or(4 * spec.concurrency as u64),
        _ => spec
            .objects
            .unwrap_or((4 * spec.concurrency as u64).max(16)),
    };
    if prepare > 0 {
        let progress = bar(
            spec.progress,
            Some(prepare),
            "preparing [{bar:30}] {pos}/{len} objects",
        );
        let todo = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..spec.concurrency.max(1))
            .map(|_| {
                let (client, payloads, pool, next_id, todo, progress, spec) = (
                    client.clone(),
                    payloads.clone(),
                    pool.clone(),
                    next_id.clone(),
                    todo.clone(),
                    progress.clone(),
                    spec.clone(),
                );
                tokio::spawn(async move {
                    while todo.fetch_add(1, Ordering::Relaxed) < prepare {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let key = format!("{}{run_tag:08x}/{id:08}", spec.prefix);
                        let (data, hash) = payloads.make(id);
                        let len = data.len;
                        let put = client.put(&spec.bucket, &key, data).await;
                        if reported(put, "preparing PUT", &key) {
                            pool.insert(key, len, hash);
                        }
                        progress.inc(1);
                    }
                })
            })
            .collect();
        futures_util::future::join_all(workers).await;
        progress.finish_and_clear();
        // A read workload with nothing to read would measure nothing and
        // look like an idle store.
        if pool.is_empty() {
            return Err(BenchError::Preparation(prepare));
        }
    }

    // The measured phase.
    let progress = bar(
        spec.progress,
        spec.count,
        "{spinner} {elapsed_precise} [{bar:30}] {pos} ops  {msg}",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let done_bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + spec.duration;
    let workers: Vec<_> = (0..spec.concurrency.max(1))
        .map(|_| {
            let (client, payloads, pool, next_id, spec, stop, issued, done_bytes, progress) = (
                client.clone(),
                payloads.clone(),
                pool.clone(),
                next_id.clone(),
                spec.clone(),
                stop.clone(),
                issued.clone(),
                done_bytes.clone(),
                progress.clone(),
            );
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                        break;
                    }
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if spec.count.is_some_and(|count| n >= count) {
                        break;
                    }
                    let op = match spec.workload {
                        Workload::Put => Op::Put,
                        Workload::Get => Op::Get,
                        Workload::List => Op::List,
                        Workload::Delete => Op::Delete,
                        Workload::Mixed => match rand::rng().random_range(0..10) {
                            0..=5 => Op::Get,
                            6..=8 => Op::Put,
                            _ => Op::Delete,
                        },
                    };
                    let began = Instant::now();
                    let (ok, verified, bytes) = match op {
                        Op::Put => {
                            // O(1): no copy, no hashing of the shared part.
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            let key = format!("{}{run_tag:08x}/{id:08}", spec.prefix);
                            let (data, hash) = payloads.make(id);
                            let len = data.len;
                            let ok =
                                reported(client.put(&spec.bucket, &key, data).await, "PUT", &key);
                            if ok {
                                pool.insert(key, len, hash);
                            }
                            (ok, true, len)
                        }
                        Op::Get => match pool.random() {
                            Some((key, len, hash)) => {
                                match client.get_hashed(&spec.bucket, &key).await {
                                    Ok((got_len, got_hash)) => {
                                        let right = got_len == len && got_hash == hash;
                                        (right, right, got_len)
                                    }
                                    Err(err) => {
                                        reported::<()>(Err(err), "GET", &key);
                                        (false, true, 0)
                                    }
                                }
                            }
                            None => {
                                stop.store(true, Ordering::Relaxed);
                                continue;
                            }
                        },
                        Op::Delete => match pool.take_random() {
                            Some(key) => (
                                reported(client.delete(&spec.bucket, &key).await, "DELETE", &key),
                                true,
                                0,
                            ),
                            None => {
                                if spec.workload == Workload::Delete {
                                    stop.store(true, Ordering::Relaxed);
                                }
                                continue;
                            }
                        },
                        Op::List => {
                            let prefix = format!("{}{run_tag:08x}/", spec.prefix);
                            (
                                reported(
                                    client.list(&spec.bucket, &prefix, 1000).await,
                                    "LIST",
                                    &prefix,
                                ),
                                true,
                                0,
                            )
                        }
                    };
                    samples.push(Sample {
                        op,
                        micros: began.elapsed().as_micros() as u64,
                        bytes: if ok { bytes } else { 0 },
                        ok,
                        verified,
                    });
                    if ok {
                        done_bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    progress.inc(1);
                }
                samples
            })
        })
        .collect();
    let ticker = {
        let (progress, done_bytes) = (progress.clone(), done_bytes.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                progress.set_message(format!(
                    "{:.1} MB/s, {:.0} ops/s",
                    done_bytes.load(Ordering::Relaxed) as f64 / secs / 1e6,
                    progress.position() as f64 / secs
                ));
            }
        })
    };
    let mut samples = Vec::new();
    for worker in workers {
        if let Ok(mut part) = worker.await {
            samples.append(&mut part);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    ticker.abort();
    progress.finish_and_clear();

    if !spec.keep {
        let keys = pool.keys();
        let cleanup = bar(
            spec.progress,
            Some(keys.len() as u64),
            "cleaning up [{bar:30}] {pos}/{len}",
        );
        for chunk in keys.chunks(spec.concurrency.max(1)) {
            let deletes = chunk.iter().map(|key| client.delete(&spec.bucket, key));
            futures_util::future::join_all(deletes).await;
            cleanup.inc(chunk.len() as u64);
        }
        cleanup.finish_and_clear();
    }

    let mut by_op: Vec<(Op, OpStats)> = [Op::Put, Op::Get, Op::Delete, Op::List]
        .into_iter()
        .filter_map(|op| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.op == op).collect();
            (!mine.is_empty()).then(|| (op, OpStats::of(&mine, seconds)))
        })
        .collect();
    by_op.sort_by_key(|(op, _)| format!("{op:?}"));
    let all: Vec<&Sample> = samples.iter().collect();
    Ok(BenchReport {
        endpoint: target.endpoint,
        workload: spec.workload,
        object_size: spec.object_size,
        concurrency: spec.concurrency,
        seconds,
        total: OpStats::of(&all, seconds),
        by_op,
    })
}

/// The report as a table.
pub fn render(report: &BenchReport) -> String {
    let mut rows = Vec::new();
    for (op, stats) in report
        .by_op
        .iter()
        .map(|(op, s)| (format!("{op:?}").to_uppercase(), s))
        .chain(std::iter::once(("TOTAL".to_owned(), &report.total)))
    {
        rows.push(vec![
            op,
            stats.ops.to_string(),
            stats.errors.to_string(),
            stats.verify_failures.to_string(),
            format!("{:.1}", stats.ops_per_sec),
            format!("{:.1}", stats.mb_per_sec),
            format!("{:.2}", stats.latency_ms.p50),
            format!("{:.2}", stats.latency_ms.p90),
            format!("{:.2}", stats.latency_ms.p99),
            format!("{:.2}", stats.latency_ms.p999),
            format!("{:.2}", stats.latency_ms.max),
        ]);
    }
    format!(
        "{} against {}: {} B objects, concurrency {}, {}\n{}",
        format!("{:?}", report.workload).to_lowercase(),
        report.endpoint,
        report.object_size,
        report.concurrency,
        crate::units::format_duration(std::time::Duration::from_secs_f64(report.seconds)),
        crate::table::render(
            &[
                "OP", "OPS", "ERRORS", "BAD DATA", "OPS/S", "MB/S", "P50 MS", "P90 MS", "P99 MS",
                "P99.9 MS", "MAX MS"
            ],
            &rows
        )
    )
}

/// Failures printed to stderr per run: enough to say why a run had errors
/// without flooding the terminal when a store is down.
const REPORTED_FAILURES: usize = 5;

/// Whether an operation succeeded; the first few failures are printed
/// (the counts alone cannot tell a timeout from a 503).
fn reported<T>(result: Result<T, client::S3Failure>, op: &str, key: &str) -> bool {
    static PRINTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match result {
        Ok(_) => true,
        Err(err) => {
            if PRINTED.fetch_add(1, Ordering::Relaxed) < REPORTED_FAILURES {
                eprintln!("bench: {op} {key} failed: {err}");
            }
            false
        }
    }
}

#[cfg(test)]
mod payload_tests {
    use super::*;

    /// The O(1) hash (a cloned hasher over the shared part, then the tail)
    /// is the blake3 of the bytes actually sent, and objects differ.
    #[test]
    fn payload_hash_is_the_hash_of_its_pieces() {
        for size in [0u64, 3, 8, 9, (2 << 20) + 5] {
            let payloads = Payloads::new(size);
            let mut seen = Vec::new();
            for id in [1u64, 2] {
                let (payload, hash) = payloads.make(id);
                let bytes: Vec<u8> = payload.pieces.concat();
                assert_eq!(bytes.len() as u64, size);
                assert_eq!(payload.len, size);
                assert_eq!(*blake3::hash(&bytes).as_bytes(), hash, "size {size}");
                seen.push(bytes);
            }
            if size > 0 {
                assert_ne!(seen[0], seen[1], "size {size}");
            }
        }
    }
}
