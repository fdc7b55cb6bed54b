//! `cairn bench repair`: fill a `cairn dev` cluster, SIGKILL a node, and
//! time the rebuild: repair throughput, bytes read and rebuilt, read
//! amplification, and what clients feel (GET latency before and during
//! repair).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_core::codec::StorageClass;
use cairn_meta_api::MetaClient;
use cairn_meta_api::model::BucketSetting;
use cairn_scrubber_api::ScrubberClient;
use cairn_service::ClusterSecret;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use serde::Serialize;

use super::client::{S3Client, S3Target};
use super::stats::{Latency, percentile};
use crate::cluster_file::ClusterFile;
use crate::units::format_duration;

#[derive(Debug, Clone)]
pub struct RepairBenchSpec {
    pub fill_bytes: u64,
    pub object_size: u64,
    pub node: String,
    pub baseline: Duration,
    pub timeout: Duration,
    /// The storage class of the bucket filled (none: the gateway's code).
    pub class: Option<StorageClass>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairBenchReport {
    /// The code of the data set's blobs.
    pub class: String,
    pub node: String,
    pub objects: u64,
    pub filled_bytes: u64,
    /// From the kill to the node's chunks being queued (failure detection
    /// plus the grace period).
    pub detection_secs: f64,
    /// From the chunks being queued to the last one rebuilt.
    pub repair_secs: f64,
    pub chunks_repaired: u64,
    pub bytes_read: u64,
    pub bytes_rebuilt: u64,
    pub cross_rack_bytes: u64,
    pub read_amplification: f64,
    pub rebuild_mb_per_sec: f64,
    pub get_latency_before_ms: Latency,
    pub get_latency_during_ms: Latency,
    pub get_errors: u64,
}

fn latency(mut micros: Vec<u64>) -> Latency {
    micros.sort_unstable();
    let ms = |q: f64| percentile(&micros, q) as f64 / 1000.0;
    Latency {
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
        p999: ms(0.999),
        max: micros.last().copied().unwrap_or(0) as f64 / 1000.0,
    }
}

/// GETs random objects one after another until `stop`, verifying each;
/// returns the latencies and the number of failures.
async fn probe(
    client: S3Client,
    bucket: String,
    objects: Arc<Vec<(String, [u8; 32])>>,
    stop: Arc<AtomicBool>,
) -> (Vec<u64>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    while !stop.load(Ordering::Relaxed) {
        let (key, hash) = &objects[rand::rng().random_range(0..objects.len())];
        let began = Instant::now();
        match client.get_hashed(&bucket, key).await {
            Ok((_, got)) if &got == hash => latencies.push(began.elapsed().as_micros() as u64),
            _ => errors += 1,
        }
    }
    (latencies, errors)
}

/// Anything that stops the benchmark (it reports, it does not recover).
pub type RepairBenchError = Box<dyn std::error::Error + Send + Sync>;

pub async fn run(
    cluster: &ClusterFile,
    spec: RepairBenchSpec,
) -> Result<RepairBenchReport, RepairBenchError> {
    let target = S3Target {
        endpoint: cluster.s3_endpoint.clone(),
        access_key: cluster.access_key.clone(),
        secret_key: cluster.secret_key.clone(),
        region: cluster.region.clone(),
        tls: cluster
            .tls
            .as_ref()
            .map(|t| cairn_service::tls::client_trusting(&t.ca))
            .transpose()?,
    };
    let client = S3Client::new(target);
    let scrubber = ScrubberClient::new(
        &cluster.scrubber_endpoint,
        &ClusterSecret::new(&cluster.cluster_secret)?
            .with_tls(cairn_service::tls::load(cluster.tls.as_ref())?),
    );
    let victim_id: cairn_core::ids::NodeId = spec.node.parse()?;
    let victim = cluster
        .nodes
        .iter()
        .find(|n| n.id == spec.node)
        .ok_or_else(|| format!("no node {} in the cluster file", spec.node))?;
    let secret = ClusterSecret::new(&cluster.cluster_secret)?
        .with_tls(cairn_service::tls::load(cluster.tls.as_ref())?);
    let bucket = match spec.class {
        Some(class) => format!(
            "repair-bench-{}",
            class
                .to_string()
                .to_ascii_lowercase()
                .replace(['(', ')'], "")
                .replace(',', "-")
        ),
        None => "repair-bench".to_owned(),
    };
    client.ensure_bucket(&bucket).await?;
    let class = match spec.class {
        Some(class) => {
            let meta = MetaClient::connect(&cluster.admin_endpoint, &secret).await?;
            meta.set_bucket_setting(&bucket, BucketSetting::StorageClass { class: Some(class) })
                .await?;
            // The gateway reads a bucket's class at most 2 s old.
            tokio::time::sleep(Duration::from_millis(2100)).await;
            class.to_string()
        }
        None => format!("RS({},{})", cluster.k, cluster.m),
    };

    // Fill.
    let count = spec.fill_bytes.div_ceil(spec.object_size.max(1));
    let progress = ProgressBar::new(count);
    progress.set_style(
        ProgressStyle::with_template(
            "filling [{bar:30}] {pos}/{len} objects {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let payloads = super::Payloads::new(spec.object_size);
    let mut objects = Vec::with_capacity(count as usize);
    let tag: u32 = rand::rng().random();
    for batch in (0..count).collect::<Vec<_>>().chunks(4) {
        let puts = batch.iter().map(|&i| {
            let (data, hash) = payloads.make(i);
            let key = format!("{tag:08x}/{i:06}");
            let client = client.clone();
            let bucket = bucket.clone();
            async move { client.put(&bucket, &key, data).await.map(|()| (key, hash)) }
        });
        for result in futures_util::future::join_all(puts).await {
            objects.push(result?);
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let objects = Arc::new(objects);

    // Baseline client latency.
    let stop = Arc::new(AtomicBool::new(false));
    let baseline = tokio::spawn(probe(
        client.clone(),
        bucket.clone(),
        objects.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(spec.baseline).await;
    stop.store(true, Ordering::Relaxed);
    let (before, mut get_errors) = baseline.await?;

    // Kill, then watch the repair with clients reading.
    let start_status = scrubber.repair_status().await?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let killed = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(probe(
        client.clone(),
        bucket.clone(),
        objects.clone(),
        stop.clone(),
    ));
    let progress = ProgressBar::new(count);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} repair [{bar:30}] {pos}/{len} chunks {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut first_repair: Option<Instant> = None;
    let end_status = loop {
        let status = scrubber.repair_status().await?;
        let repaired = status.repaired_chunks - start_status.repaired_chunks;
        if (repaired > 0 || status.queued + status.in_progress > 0) && first_repair.is_none() {
            first_repair = Some(Instant::now());
        }
        progress.set_length(repaired + status.queued + status.in_progress);
        progress.set_position(repaired);
        progress.set_message(format!("queued {}", status.queued));
        // Done once the node is declared lost, its chunks were queued and
        // the queue is empty again (with more nodes than chunks per blob,
        // not every object has a chunk on it).
        if status.lost_nodes.contains(&victim_id)
            && repaired > 0
            && status.queued + status.in_progress == 0
        {
            break status;
        }
        if killed.elapsed() >= spec.timeout {
            return Err(format!(
                "repair did not finish within {}",
                format_duration(spec.timeout)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let finished = Instant::now();
    progress.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let (during_latencies, errors) = during.await?;
    get_errors += errors;

    let first = first_repair.unwrap_or(finished);
    // This class's repairs only: a node also holds other buckets' chunks.
    let of_class = |status: &cairn_scrubber_api::model::RepairStatus| {
        status.by_class.get(&class).cloned().unwrap_or_default()
    };
    let (before_class, after_class) = (of_class(&start_status), of_class(&end_status));
    let bytes_rebuilt = after_class.bytes_rebuilt - before_class.bytes_rebuilt;
    let bytes_read = after_class.bytes_read - before_class.bytes_read;
    let repair_secs = finished.duration_since(first).as_secs_f64();
    Ok(RepairBenchReport {
        class: class.clone(),
        node: spec.node,
        objects: count,
        filled_bytes: count * spec.object_size,
        detection_secs: first.duration_since(killed).as_secs_f64(),
        repair_secs,
        chunks_repaired: after_class.repaired_chunks - before_class.repaired_chunks,
        bytes_read,
        bytes_rebuilt,
        cross_rack_bytes: after_class.cross_rack_bytes - before_class.cross_rack_bytes,
        read_amplification: if bytes_rebuilt == 0 {
            0.0
        } else {
            bytes_read as f64 / bytes_rebuilt as f64
        },
        rebuild_mb_per_sec: bytes_rebuilt as f64 / repair_secs.max(1e-3) / 1e6,
        get_latency_before_ms: latency(before),
        get_latency_during_ms: latency(during_latencies),
        get_errors,
    })
}

pub fn render(r: &RepairBenchReport) -> String {
    format!(
        "{}: killed {} ({} objects, {:.1} MiB of data)\n\
         detected + grace: {}   rebuild: {}   {} chunks, {:.1} MB/s rebuilt\n\
         read {:.1} MiB, rebuilt {:.1} MiB, read amplification {:.3}, cross-rack {:.1} MiB\n\
         GET latency ms  before: p50 {:.1} p99 {:.1}   during repair: p50 {:.1} p99 {:.1}   errors {}",
        r.class,
        r.node,
        r.objects,
        r.filled_bytes as f64 / 1048576.0,
        format_duration(Duration::from_secs_f64(r.detection_secs)),
        format_duration(Duration::from_secs_f64(r.repair_secs)),
        r.chunks_repaired,
        r.rebuild_mb_per_sec,
        r.bytes_read as f64 / 1048576.0,
        r.bytes_rebuilt as f64 / 1048576.0,
        r.read_amplification,
        r.cross_rack_bytes as f64 / 1048576.0,
        r.get_latency_before_ms.p50,
        r.get_latency_before_ms.p99,
        r.get_latency_during_ms.p50,
        r.get_latency_during_ms.p99,
        r.get_errors
    )
}
