//! The scrubber against a real metadata service (in-process, RocksDB in a
//! temp dir): the admin API, a scheduled job running on its interval, and
//! jobs, results and counters surviving a scrubber restart. The
//! cluster-level tests (killed nodes, flipped bytes, repair) are in
//! tests/s3/test_scrub_repair.py.

use std::time::{Duration, Instant};

use cairn_meta_api::config::DetectorConfig;
use cairn_metadata_service::{MetaOptions, MetaServer};
use cairn_scrubber::Scrubber;
use cairn_scrubber::config::ScrubberConfig;
use cairn_scrubber::model::{JobKind, JobSpec, JobState, ScrubScope};
use cairn_scrubber_api::ScrubberClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const SECRET: &str = "scrubber-test-secret";

fn secret() -> cairn_service::ClusterSecret {
    cairn_service::ClusterSecret::new(SECRET).expect("secret")
}

async fn start_meta(dir: &std::path::Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let options = MetaOptions::single(dir.to_owned(), &url, &["m"], DetectorConfig::LOCAL);
    let server = MetaServer::open(options, secret(), listener)
        .await
        .expect("meta");
    tokio::spawn(server.run(std::future::pending()));
    url
}

struct Running {
    client: ScrubberClient,
    /// The scrubber's shared state: every background task holds a clone.
    ctx: std::sync::Arc<cairn_scrubber::context::Context>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_scrubber(meta_url: &str, dir: &std::path::Path) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = ScrubberConfig::new(meta_url, dir.to_owned());
    config.poll_interval_ms = 50;
    let scrubber = Scrubber::open(config, secret(), listener)
        .await
        .expect("scrubber");
    let ctx = scrubber.context().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(scrubber.run(async {
        let _ = stopped.await;
    }));
    Running {
        client: ScrubberClient::new(&url, &secret()),
        ctx,
        stop,
        task,
    }
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn scheduled_jobs_run_on_their_interval_and_survive_a_restart() {
    let meta_dir = tempfile::tempdir().expect("tempdir");
    let scrub_dir = tempfile::tempdir().expect("tempdir");
    let meta_url = start_meta(meta_dir.path()).await;
    let meta = cairn_meta_api::MetaClient::connect(&meta_url, &secret())
        .await
        .expect("meta client");
    meta.create_bucket("photos", "ann").await.expect("bucket");

    let running = start_scrubber(&meta_url, scrub_dir.path()).await;
    let client = running.client.clone();
    let scheduled = client
        .create_job(&JobSpec {
            scope: ScrubScope {
                bucket: Some("photos".into()),
                prefix: None,
            },
            every_secs: Some(1),
            ..Default::default()
        })
        .await
        .expect("create");
    let once = client
        .create_job(&JobSpec::default())
        .await
        .expect("create");
    wait_for("two runs of the scheduled job", async || {
        client.job(scheduled.id).await.expect("job").runs >= 2
    })
    .await;
    let job = client.job(scheduled.id).await.expect("job");
    assert_eq!(
        job.state,
        JobState::Pending,
        "a scheduled job waits for its next run"
    );
    let last = job.last.expect("a finished run");
    assert!(last.finished_ms.expect("finished") >= last.started_ms);
    assert_eq!(
        client.job(once.id).await.expect("job").state,
        JobState::Done
    );
    assert!(client.job(999).await.is_err(), "unknown jobs are 404");

    // Restart: the jobs and their results are still there, and the
    // schedule goes on.
    let _ = running.stop.send(());
    running.task.await.expect("join").expect("serve");
    // The store stays open while anything holds the context.
    drop(running.ctx);
    let restarted = start_scrubber(&meta_url, scrub_dir.path()).await;
    let client = restarted.client.clone();
    let after = client.job(scheduled.id).await.expect("job after restart");
    assert!(
        after.runs >= job.runs,
        "runs lost: {} < {}",
        after.runs,
        job.runs
    );
    // Two scrub jobs, and the one lifecycle job the scrubber keeps
    // (not created again by the restart).
    let kinds: Vec<JobKind> = client
        .jobs()
        .await
        .expect("jobs")
        .iter()
        .map(|j| j.spec.kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == JobKind::Scrub).count(), 2);
    assert_eq!(
        kinds.iter().filter(|k| **k == JobKind::Lifecycle).count(),
        1
    );
    wait_for("another run after the restart", async || {
        client.job(scheduled.id).await.expect("job").runs > after.runs
    })
    .await;

    // Cancel stops the schedule.
    let cancelled = client.cancel(scheduled.id).await.expect("cancel");
    assert_eq!(cancelled.state, JobState::Cancelled);
    let status = client.repair_status().await.expect("repair status");
    assert_eq!((status.queued, status.repaired_chunks), (0, 0));
}

/// A node that accepts connections and never answers: the garbage
/// collector's orphan sweep blocks listing it (up to the client's request
/// deadline, far longer than the drain deadline).
async fn hung_node() -> (String, tokio::sync::watch::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (count_tx, count_rx) = tokio::sync::watch::channel(0usize);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count_tx.send_modify(|n| *n += 1);
            held.push(socket);
        }
    });
    (url, count_rx)
}

#[tokio::test]
async fn shutdown_mid_iteration_returns_within_the_drain_deadline_and_leaves_no_task() {
    let meta_dir = tempfile::tempdir().expect("tempdir");
    let scrub_dir = tempfile::tempdir().expect("tempdir");
    let meta_url = start_meta(meta_dir.path()).await;
    let meta = cairn_meta_api::MetaClient::connect(&meta_url, &secret())
        .await
        .expect("meta client");
    let (hung_url, accepted) = hung_node().await;
    meta.heartbeat(&cairn_node_api::wire::NodeStatus {
        id: cairn_core::ids::NodeId::new("node-hung").expect("id"),
        rack: cairn_core::ids::RackId::new("rack-1").expect("rack"),
        address: hung_url,
        capacity_bytes: 1 << 30,
        used_bytes: 0,
        free_bytes: 1 << 30,
        chunk_count: 0,
        version: "test".into(),
        local: None,
    })
    .await
    .expect("register the hung node");

    let Running {
        ctx, stop, task, ..
    } = start_scrubber(&meta_url, scrub_dir.path()).await;
    // The sweep is inside its call to the hung node: mid-iteration.
    let mut accepted = accepted;
    tokio::time::timeout(Duration::from_secs(30), accepted.wait_for(|n| *n >= 1))
        .await
        .expect("the orphan sweep reached the hung node")
        .expect("watch");

    let started = Instant::now();
    let _ = stop.send(());
    task.await.expect("join").expect("serve");
    let took = started.elapsed();
    assert!(
        took < cairn_service::tasks::DRAIN_DEADLINE + Duration::from_secs(2),
        "run returned after {took:?}"
    );
    // Every background task held the context; only this test's handle is
    // left, so no task outlived the service.
    assert_eq!(
        std::sync::Arc::strong_count(&ctx),
        1,
        "a background task still holds the scrubber's context"
    );
}
