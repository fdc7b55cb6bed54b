//! `cairn scrub …`, `cairn repair status` and `cairn inspect`: the
//! scrubber's admin API and a manifest, for people (tables, progress bars)
//! and scripts (`--json`).

use std::time::Duration;

use cairn_cli::table;
use cairn_cli::units::{format_ms, format_secs};
use cairn_meta_api::MetaClient;
use cairn_scrubber_api::ScrubberClient;
use cairn_scrubber_api::model::{JobKind, JobRecord, JobRun, JobState, RepairStatus};
use cairn_service::now_ms;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{RepairCommand, ScrubCommand};

const POLL: Duration = Duration::from_millis(250);

pub(crate) async fn scrub(client: &ScrubberClient, command: ScrubCommand) -> anyhow::Result<()> {
    match command {
        ScrubCommand::Start { job, wait } => {
            let record = client.create_job(&job.spec(None)).await?;
            println!("scrub job {} started", record.id);
            if wait {
                let done = watch_job(client, record.id).await?;
                print_job(&done);
            }
        }
        ScrubCommand::Schedule { every, job } => {
            let record = client.create_job(&job.spec(Some(every))).await?;
            println!(
                "scrub job {} scheduled every {} (first run now)",
                record.id,
                format_secs(record.spec.every_secs.unwrap_or_default())
            );
        }
        ScrubCommand::Jobs { json } => {
            let jobs = client.jobs().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                let rows: Vec<Vec<String>> = jobs.iter().map(job_row).collect();
                println!(
                    "{}",
                    table::render(
                        &[
                            "ID", "STATE", "SCOPE", "EVERY", "RATE", "RUNS", "OBJECTS", "CORRUPT",
                            "MISSING", "REPAIRS"
                        ],
                        &rows
                    )
                );
            }
        }
        ScrubCommand::Show { id, json, watch } => {
            let job = if watch {
                watch_job(client, id).await?
            } else {
                client.job(id).await?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job);
            }
        }
        ScrubCommand::Cancel { id } => {
            let job = client.cancel(id).await?;
            println!("scrub job {} is {}", job.id, state_name(job.state));
        }
    }
    Ok(())
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "pending",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Cancelled => "cancelled",
    }
}

fn scope(job: &JobRecord) -> String {
    let what = match job.spec.kind {
        JobKind::Scrub => "",
        JobKind::Lifecycle => "lifecycle: ",
    };
    let scope = match (&job.spec.scope.bucket, &job.spec.scope.prefix) {
        (None, _) => "(all buckets)".into(),
        (Some(bucket), None) => bucket.clone(),
        (Some(bucket), Some(prefix)) => format!("{bucket}/{prefix}"),
    };
    format!("{what}{scope}")
}

fn job_row(job: &JobRecord) -> Vec<String> {
    let run = job.current.as_ref().or(job.last.as_ref());
    let results = run.map(|r| r.results.clone()).unwrap_or_default();
    vec![
        job.id.to_string(),
        state_name(job.state).into(),
        scope(job),
        job.spec.every_secs.map_or("once".into(), format_secs),
        if job.spec.rate_bytes_per_sec == 0 {
            "unlimited".into()
        } else {
            format!("{}/s", table::bytes(job.spec.rate_bytes_per_sec))
        },
        job.runs.to_string(),
        results.objects_checked.to_string(),
        results.chunks_corrupt.to_string(),
        results.chunks_missing.to_string(),
        results.repairs_queued.to_string(),
    ]
}

fn print_job(job: &JobRecord) {
    println!(
        "job {}: {} — scope {}, {} run(s){}",
        job.id,
        state_name(job.state),
        scope(job),
        job.runs,
        job.spec
            .every_secs
            .map_or(String::new(), |s| format!(", every {}", format_secs(s)))
    );
    for (label, run) in [("current run", &job.current), ("last run", &job.last)] {
        let Some(run) = run else { continue };
        print_run(label, run);
    }
}

fn print_run(label: &str, run: &JobRun) {
    let r = &run.results;
    println!(
        "  {label}: {} of ~{} objects, {} verified in {} (resumed {}x)",
        r.objects_checked,
        run.objects_total,
        table::bytes(r.bytes_checked),
        format_ms(run.duration_ms(now_ms())),
        run.resumed
    );
    println!(
        "    chunks: {} healthy, {} corrupt, {} missing, {} unreachable; {} repairs queued",
        r.chunks_healthy,
        r.chunks_corrupt,
        r.chunks_missing,
        r.chunks_unreachable,
        r.repairs_queued
    );
    for finding in &r.corrupt {
        println!(
            "    corrupt  {}/{}  blob {} chunk {} on {}  blocks {:?}",
            finding.bucket, finding.key, finding.blob, finding.index, finding.node, finding.blocks
        );
    }
    for finding in &r.missing {
        println!(
            "    missing  {}/{}  blob {} chunk {} on {}",
            finding.bucket, finding.key, finding.blob, finding.index, finding.node
        );
    }
    if r.inline_checked > 0 {
        println!(
            "    inline objects: {} checked, {} corrupt",
            r.inline_checked,
            r.inline_corrupt.len()
        );
    }
    for object in &r.inline_corrupt {
        println!("    corrupt  {object}  inline body (in the catalogue; not rebuildable)");
    }
    let l = &r.lifecycle;
    if *l != Default::default() {
        println!(
            "    lifecycle: {} current and {} noncurrent versions expired, {} delete markers removed, {} uploads aborted, {} refused (locked)",
            l.expired_current,
            l.expired_noncurrent,
            l.removed_delete_markers,
            l.aborted_uploads,
            l.locked
        );
    }
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len.max(1));
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Follows a job with a progress bar (objects, verify rate, ETA) until its
/// run ends; returns the job as it ended.
async fn watch_job(client: &ScrubberClient, id: u64) -> anyhow::Result<JobRecord> {
    let progress = bar(
        1,
        "{spinner} scrub {prefix} [{bar:30}] {pos}/{len} objects  {msg}  ETA {eta}",
    );
    progress.set_prefix(id.to_string());
    let runs_before = client.job(id).await?.runs;
    loop {
        let job = client.job(id).await?;
        if let Some(run) = &job.current {
            progress.set_length(run.objects_total.max(run.results.objects_checked).max(1));
            progress.set_position(run.results.objects_checked);
            let secs = run.duration_ms(now_ms()) as f64 / 1000.0;
            let rate = if secs > 0.0 {
                run.results.bytes_checked as f64 / secs
            } else {
                0.0
            };
            progress.set_message(format!(
                "{}/s, {} corrupt, {} missing",
                table::bytes(rate as u64),
                run.results.chunks_corrupt,
                run.results.chunks_missing
            ));
        }
        let finished =
            job.runs > runs_before || matches!(job.state, JobState::Done | JobState::Cancelled);
        if finished && job.current.is_none() {
            progress.finish_and_clear();
            return Ok(job);
        }
        progress.tick();
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) async fn repair(client: &ScrubberClient, command: RepairCommand) -> anyhow::Result<()> {
    let RepairCommand::Status { json, watch } = command;
    if watch {
        watch_repairs(client).await?;
    }
    let status = client.repair_status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_repair(&status);
    }
    Ok(())
}

fn print_repair(s: &RepairStatus) {
    println!(
        "queued {}   in progress {}   repaired {}   failed {}   obsolete {}",
        s.queued, s.in_progress, s.repaired_chunks, s.failures, s.obsolete
    );
    println!(
        "read {}   rebuilt {}   read amplification {:.3}   cross-rack {}   time {}",
        table::bytes(s.bytes_read),
        table::bytes(s.bytes_rebuilt),
        s.read_amplification,
        table::bytes(s.cross_rack_bytes),
        format_ms(s.repair_ms)
    );
    if !s.lost_nodes.is_empty() {
        let lost: Vec<String> = s.lost_nodes.iter().map(ToString::to_string).collect();
        println!("lost nodes (chunks rebuilt elsewhere): {}", lost.join(", "));
    }
    println!("garbage chunks deleted: {}", s.garbage_deleted);
    if !s.by_class.is_empty() {
        let rows: Vec<Vec<String>> = s
            .by_class
            .iter()
            .map(|(class, t)| {
                vec![
                    class.clone(),
                    t.repaired_chunks.to_string(),
                    table::bytes(t.bytes_read),
                    table::bytes(t.bytes_rebuilt),
                    format!("{:.3}", t.read_amplification()),
                    table::bytes(t.cross_rack_bytes),
                ]
            })
            .collect();
        println!(
            "{}",
            table::render(
                &[
                    "CLASS",
                    "REPAIRED",
                    "READ",
                    "REBUILT",
                    "AMPLIFICATION",
                    "CROSS-RACK"
                ],
                &rows
            )
        );
    }
}

/// A progress bar over the repair queue (repaired of repaired + waiting)
/// until it is empty.
async fn watch_repairs(client: &ScrubberClient) -> anyhow::Result<()> {
    let first = client.repair_status().await?;
    let base = first.repaired_chunks;
    let progress = bar(
        1,
        "{spinner} repair [{bar:30}] {pos}/{len} chunks  {msg}  ETA {eta}",
    );
    loop {
        let s = client.repair_status().await?;
        let done = s.repaired_chunks - base;
        progress.set_length(done + s.queued + s.in_progress);
        progress.set_position(done);
        progress.set_message(format!(
            "read {}, rebuilt {}, amplification {:.2}",
            table::bytes(s.bytes_read),
            table::bytes(s.bytes_rebuilt),
            s.read_amplification
        ));
        if s.queued + s.in_progress == 0 {
            progress.finish_and_clear();
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `cairn bucket class`: shows or sets the code of a bucket's new
/// erasure-coded blobs.
pub(crate) async fn bucket_class(
    client: &MetaClient,
    bucket: &str,
    class: Option<cairn_core::codec::StorageClass>,
    default: bool,
) -> anyhow::Result<()> {
    use cairn_meta_api::model::BucketSetting;
    let record = client
        .head_bucket(bucket)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no bucket {bucket}"))?;
    if class.is_none() && !default {
        match record.storage_class {
            Some(class) => println!("{bucket}: {class}"),
            None => println!("{bucket}: the gateway's default code"),
        }
        return Ok(());
    }
    if let Some(class) = class {
        let params = class.codec(1)?;
        let mut candidates: Vec<_> = client
            .nodes()
            .await?
            .iter()
            .map(|n| n.candidate())
            .collect();
        for candidate in &mut candidates {
            candidate.state = cairn_core::placement::NodeState::Up;
            candidate.free = candidate.free.max(1);
        }
        cairn_core::placement::place_blob(
            &cairn_core::ids::BlobId::random(),
            &candidates,
            &params,
            1,
            params.total(),
        )
        .map_err(|err| anyhow::anyhow!("{class} cannot be placed on these nodes: {err}"))?;
    }
    client
        .set_bucket_setting(bucket, BucketSetting::StorageClass { class })
        .await?;
    match class {
        Some(class) => println!(
            "{bucket}: new erasure-coded blobs in {class} (survives any {} lost chunks, repairs a chunk from {}); existing blobs keep their code",
            class.codec(1)?.tolerated_losses(),
            class.codec(1)?.local_repair_reads()
        ),
        None => println!("{bucket}: new erasure-coded blobs in the gateway's default code"),
    }
    Ok(())
}

pub(crate) async fn inspect(
    client: &MetaClient,
    object: &str,
    version: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let (bucket, key) = object
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("expected bucket/key, got {object:?}"))?;
    let record = match version {
        None => client.get_object(bucket, key).await?,
        Some(id) => client.get_version(bucket, key, Some(id)).await?,
    }
    .ok_or_else(|| match version {
        None => anyhow::anyhow!("no object {bucket}/{key}"),
        Some(id) => anyhow::anyhow!("no version {id} of {bucket}/{key}"),
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&record)?);
        return Ok(());
    }
    if record.delete_marker {
        println!(
            "{bucket}/{key}: version {} is a delete marker",
            record.version_id
        );
        return Ok(());
    }
    let m = &record.manifest;
    println!(
        "{bucket}/{key}: {} bytes, etag {}, version {}, {} part(s), root {}",
        m.size,
        m.etag,
        record.version_id,
        m.parts.len(),
        m.integrity_root().to_hex()
    );
    if let Some(encryption) = &m.encryption {
        use cairn_core::manifest::EncryptionMode;
        println!(
            "encrypted at rest: {} (AES-256-CTR; chunks and inline bytes are ciphertext)",
            match &encryption.mode {
                EncryptionMode::CustomerKey { .. } => "SSE-C, the customer's key".to_owned(),
                EncryptionMode::ClusterKey { key_id } => format!("SSE-S3, master key {key_id}"),
            }
        );
    }
    if let Some(inline) = &m.inline {
        println!(
            "stored inline in the catalogue: {} bytes, blake3 {}, {}",
            inline.data.len(),
            inline.hash.to_hex(),
            match inline.verified() {
                Ok(_) => "intact",
                Err(_) => "CORRUPT (does not match its hash)",
            }
        );
    }
    for (i, part) in m.parts.iter().enumerate() {
        println!(
            "part {} blob {} ({} bytes, {})",
            i + 1,
            part.blob,
            part.size,
            part.codec
        );
        let rows: Vec<Vec<String>> = part
            .chunks
            .iter()
            .map(|c| {
                vec![
                    c.index.to_string(),
                    c.node.to_string(),
                    format!("{:?}", c.state).to_lowercase(),
                    c.merkle_root.to_hex()[..16].to_owned(),
                ]
            })
            .collect();
        println!(
            "{}",
            table::render(&["CHUNK", "NODE", "STATE", "ROOT"], &rows)
        );
    }
    Ok(())
}

/// `cairn meta status`: every replica's view of its groups. An unreachable
/// replica is a row of its own, not an error: that is what an operator
/// replacing one needs to see.
pub(crate) async fn meta_status(client: &MetaClient, json: bool) -> anyhow::Result<()> {
    let statuses = client.statuses().await;
    if json {
        let value: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(id, url, status)| match status {
                Ok(status) => serde_json::json!({"replica": id, "url": url, "status": status}),
                Err(err) => {
                    serde_json::json!({"replica": id, "url": url, "error": err.to_string()})
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    for (id, url, status) in &statuses {
        match status {
            Ok(status) => {
                for group in &status.groups {
                    let role = match group.leader {
                        Some(leader) if leader == *id => "leader".to_owned(),
                        Some(leader) => format!("follower of {leader}"),
                        None => "no leader".to_owned(),
                    };
                    let lag = group
                        .lag
                        .iter()
                        .filter(|(replica, _)| **replica != *id)
                        .map(|(replica, lag)| {
                            format!(
                                "{replica}:{}",
                                lag.map_or("?".to_owned(), |l| l.to_string())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    rows.push(vec![
                        id.to_string(),
                        group.group.clone(),
                        role,
                        group.term.to_string(),
                        group.last_log_index.map_or("-".into(), |i| i.to_string()),
                        group.applied_index.map_or("-".into(), |i| i.to_string()),
                        lag,
                    ]);
                }
            }
            Err(err) => rows.push(vec![
                id.to_string(),
                "-".into(),
                format!("unreachable at {url}: {err}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
    }
    println!(
        "{}",
        table::render(
            &[
                "REPLICA",
                "GROUP",
                "ROLE",
                "TERM",
                "LAST LOG",
                "APPLIED",
                "LAG (leader only)"
            ],
            &rows
        )
    );
    Ok(())
}

/// `cairn meta verify`: every replica's digest of every group.
pub(crate) async fn meta_verify(client: &MetaClient) -> anyhow::Result<()> {
    let verdicts = client.verify(25).await?;
    let mut rows = Vec::new();
    let mut diverged = Vec::new();
    for verdict in &verdicts {
        if verdict.diverged() {
            diverged.push(verdict.group.to_string());
        }
        for (replica, digest) in &verdict.digests {
            rows.push(match digest {
                Ok(d) => vec![
                    verdict.group.to_string(),
                    replica.to_string(),
                    d.applied_index.map_or("-".into(), |i| i.to_string()),
                    d.rows.to_string(),
                    d.digest[..16].to_owned(),
                ],
                Err(err) => vec![
                    verdict.group.to_string(),
                    replica.to_string(),
                    "-".into(),
                    "-".into(),
                    format!("unavailable: {err}"),
                ],
            });
        }
    }
    println!(
        "{}",
        table::render(&["GROUP", "REPLICA", "APPLIED", "ROWS", "DIGEST"], &rows)
    );
    if !diverged.is_empty() {
        anyhow::bail!("replicas diverged in {}", diverged.join(", "));
    }
    let unsettled: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.settled())
        .map(|v| v.group.to_string())
        .collect();
    if unsettled.is_empty() {
        println!("every group: all replicas equal");
    } else {
        println!(
            "no divergence; still moving or unreachable (compared where indexes met): {}",
            unsettled.join(", ")
        );
    }
    Ok(())
}
