//! Membership, failure detection, and crash durability with a real
//! process (replication across processes: tests/replication.rs).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_core::ids::{NodeId, RackId};
use cairn_core::placement::NodeState;
use cairn_meta_api::MetaClient;
use cairn_meta_api::config::DetectorConfig;
use cairn_meta_api::model::Precondition;
use common::{eventually, manifest, primary, primary_with, secret, spawn_meta};

async fn state_of(client: &MetaClient, id: &str) -> Option<NodeState> {
    client
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .find(|n| n.id.as_str() == id)
        .map(|n| n.state)
}

#[tokio::test]
async fn a_silent_node_goes_suspect_then_down_and_comes_back_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let detector = DetectorConfig {
        suspect_after: Duration::from_millis(600),
        down_after: Duration::from_millis(1500),
    };
    let (process, client) = primary_with(dir.path(), &[], detector).await;
    let record = client
        .heartbeat(&common::node_status("n1"))
        .await
        .expect("register");
    assert_eq!((record.state, record.capacity_bytes), (NodeState::Up, 1000));
    // A second node heartbeats every 50 ms (12x margin) until told to stop,
    // and must stay up throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let steady = tokio::spawn({
        let client = MetaClient::connect(&process.url, &secret())
            .await
            .expect("connect");
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                client
                    .heartbeat(&common::node_status("n2"))
                    .await
                    .expect("heartbeat");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    eventually("n1 suspect", Duration::from_secs(10), || async {
        state_of(&client, "n1").await == Some(NodeState::Suspect)
    })
    .await;
    eventually("n1 down", Duration::from_secs(10), || async {
        state_of(&client, "n1").await == Some(NodeState::Down)
    })
    .await;
    assert_eq!(state_of(&client, "n2").await, Some(NodeState::Up));
    client
        .heartbeat(&common::node_status("n1"))
        .await
        .expect("back");
    assert_eq!(state_of(&client, "n1").await, Some(NodeState::Up));
    stop.store(true, Ordering::Relaxed);
    steady.await.expect("steady");

    let n1_events: Vec<(Option<NodeState>, NodeState)> = client
        .events(0)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.node.as_str() == "n1")
        .map(|e| (e.from, e.to))
        .take(4) // n1 is silent again afterwards and may fail once more
        .collect();
    assert_eq!(
        n1_events,
        vec![
            (None, NodeState::Up),
            (Some(NodeState::Up), NodeState::Suspect),
            (Some(NodeState::Suspect), NodeState::Down),
            (Some(NodeState::Down), NodeState::Up),
        ]
    );
    let all = client.events(0).await.expect("events");
    let later = client.events(all[1].sequence).await.expect("events");
    assert_eq!(
        later.len(),
        all.len() - 2,
        "the feed resumes after a sequence"
    );
    process.stop().await;
}

#[tokio::test]
async fn registry_and_events_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    client
        .heartbeat(&common::node_status("n1"))
        .await
        .expect("register");
    process.stop().await;
    let (process, client) = primary(dir.path(), &[]).await;
    assert_eq!(state_of(&client, "n1").await, Some(NodeState::Up));
    assert_eq!(client.events(0).await.expect("events").len(), 1);
    process.stop().await;
}

#[tokio::test]
async fn every_route_requires_the_cluster_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, _client) = primary(dir.path(), &[]).await;
    let http = reqwest::Client::new();
    for path in [
        "/cluster/shard-map",
        "/cluster/nodes",
        "/shards/0/buckets",
        "/metrics",
        "/health",
    ] {
        let response = http
            .get(format!("{}{path}", process.url))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 401, "{path}");
        let response = http
            .get(format!("{}{path}", process.url))
            .header("x-cairn-secret", "wrong")
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 403, "{path}");
    }
    process.stop().await;
}

/// Raft messages this replica must not act on are refused before openraft
/// sees them: one addressed to another replica id (a stale address), and
/// one whose sender claims this replica's own id (another cluster sharing
/// the secret). The replica keeps leading and committing.
#[tokio::test]
async fn misdirected_raft_messages_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    let http = reqwest::Client::new();
    let vote = |term: u64, candidate: u64| {
        serde_json::to_vec(&openraft::raft::VoteRequest::<u64>::new(
            openraft::Vote::new(term, candidate),
            None,
        ))
        .expect("json")
    };
    let send = |to: u64, body: Vec<u8>| {
        http.post(format!("{}/raft/cluster/vote?to={to}", process.url))
            .header("x-cairn-secret", common::SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Meant for replica 2, delivered to replica 1.
    let response = send(2, vote(99, 2)).await.expect("send");
    assert_eq!(response.status(), 409);
    let text = response.text().await.expect("body");
    assert!(text.contains("for replica 2 reached replica 1"), "{text}");
    // A stranger calling itself replica 1, at a higher term.
    let response = send(1, vote(99, 1)).await.expect("send");
    assert_eq!(response.status(), 409);
    let text = response.text().await.expect("body");
    assert!(text.contains("from replica 1 reached replica 1"), "{text}");
    // A well-formed message still reaches openraft (and is answered by it):
    // a stale vote from replica 2 at term 0 is not granted, but it is a 200.
    let response = send(1, vote(0, 2)).await.expect("send");
    assert_eq!(response.status(), 200);
    // Neither refusal disturbed the replica: it still commits.
    client
        .create_bucket("after-misdirected", "owner")
        .await
        .expect("commit after the refusals");
    let statuses = client.statuses().await;
    let status = statuses[0].2.as_ref().expect("status");
    assert!(
        status
            .groups
            .iter()
            .all(|g| g.leader == Some(status.replica_id)),
        "the replica still leads every group"
    );
    process.stop().await;
}

/// A real `cairn-meta` process is SIGKILLed right after acknowledging
/// commits; after a restart every acknowledged commit is there.
#[tokio::test]
async fn a_sigkilled_metadata_process_keeps_every_acknowledged_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("meta.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ninitial_splits = [\"m\"]\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    // The test holds the socket for the whole test and hands it to each
    // process: the persisted shard map names the process by URL, so the
    // restarted one must listen at the same address, and nobody can take
    // it in between.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let (mut child, url) = spawn_meta_kept(&config, dir.path(), &socket);
    let client = MetaClient::connect(&url, &secret()).await.expect("connect");
    client
        .create_bucket("durable", "ann")
        .await
        .expect("bucket");
    client.create_bucket("other", "ann").await.expect("bucket");
    const N: u64 = 200;
    for i in 0..N {
        let bucket = if i % 2 == 0 { "durable" } else { "other" };
        client
            .commit_object(
                bucket,
                &format!("key-{i:04}"),
                manifest(i, &format!("etag-{i}")),
                Precondition::None,
            )
            .await
            .expect("commit");
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let (mut child, url) = spawn_meta_kept(&config, dir.path(), &socket);
    let client = MetaClient::connect(&url, &secret()).await.expect("connect");
    for i in 0..N {
        let bucket = if i % 2 == 0 { "durable" } else { "other" };
        let record = client
            .get_object(bucket, &format!("key-{i:04}"))
            .await
            .expect("get")
            .expect("acknowledged commit survived SIGKILL");
        assert_eq!(record.manifest.etag, format!("etag-{i}"));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
}

/// Starts `cairn-meta` on `socket`, which the test keeps.
fn spawn_meta_kept(
    config: &Path,
    dir: &Path,
    socket: &std::net::TcpListener,
) -> (std::process::Child, String) {
    let child = spawn_meta(config, &dir.join("addr"), Some(socket));
    let url = format!("http://{}", socket.local_addr().expect("addr"));
    (child, url)
}

#[tokio::test]
async fn a_storage_node_registers_and_heartbeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let detector = DetectorConfig {
        suspect_after: Duration::from_millis(400),
        down_after: Duration::from_secs(30),
    };
    let (process, client) = primary_with(dir.path(), &[], detector).await;
    let node_dir = tempfile::tempdir().expect("tempdir");
    let mut config = cairn_storage_node::NodeConfig::new(
        NodeId::new("node-7").expect("id"),
        RackId::new("rack-3").expect("rack"),
        node_dir.path().to_owned(),
    );
    config.metadata_url = Some(process.url.clone());
    config.heartbeat_interval_ms = 50;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let node = cairn_storage_node::StorageNode::open(config, secret(), listener).expect("node");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(node.run(async {
        let _ = stopped.await;
    }));
    eventually("registration", Duration::from_secs(5), || async {
        state_of(&client, "node-7").await == Some(NodeState::Up)
    })
    .await;
    let record = client
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .find(|n| n.id.as_str() == "node-7")
        .expect("registered");
    assert_eq!(record.rack.as_str(), "rack-3");
    assert_eq!(record.address, format!("http://{addr}"));
    assert!(record.capacity_bytes > 0);
    let _ = stop.send(());
    task.await.expect("join").expect("serve");
    eventually(
        "suspect after the node stops",
        Duration::from_secs(5),
        || async { state_of(&client, "node-7").await == Some(NodeState::Suspect) },
    )
    .await;
    process.stop().await;
}
