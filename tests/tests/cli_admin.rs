//! The `cairn` binary against a real metadata service. The binary is the
//! one `cargo test` built next to this test (`target/<profile>/cairn`; the
//! cli crate's own integration test makes cargo build it).

use std::process::Command;

use cairn_core::ids::{NodeId, RackId};
use cairn_meta_api::MetaClient;
use cairn_meta_api::config::DetectorConfig;
use cairn_meta_api::shard_map::ShardMap;
use cairn_metadata_service::{MetaOptions, MetaServer};
use cairn_node_api::wire::NodeStatus;

const SECRET: &str = "cli-test-secret";

/// `target/<profile>/cairn`, next to this test's `deps/` directory.
fn cairn_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let binary = dir.join("cairn");
    assert!(
        binary.is_file(),
        "{} missing: run `cargo test --workspace` (it builds the cairn binary)",
        binary.display()
    );
    binary
}

fn secret() -> cairn_service::ClusterSecret {
    cairn_service::ClusterSecret::new(SECRET).expect("secret")
}

async fn cairn(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(cairn_binary());
    command
        .args(args)
        .env("CAIRN_META_URL", url)
        .env("CAIRN_CLUSTER_SECRET", SECRET);
    tokio::task::spawn_blocking(move || command.output().expect("run cairn"))
        .await
        .expect("join")
}

#[tokio::test]
async fn nodes_shards_events_and_split() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let options = MetaOptions::single(dir.path().to_owned(), &url, &[], DetectorConfig::LOCAL);
    let server = MetaServer::open(options, secret(), listener)
        .await
        .expect("open");
    tokio::spawn(server.run(std::future::pending()));
    let client = MetaClient::connect(&url, &secret()).await.expect("connect");
    client
        .heartbeat(&NodeStatus {
            id: NodeId::new("node-1").expect("id"),
            rack: RackId::new("rack-a").expect("rack"),
            address: "http://127.0.0.1:1".into(),
            capacity_bytes: 3 << 30,
            used_bytes: 1 << 20,
            free_bytes: 2 << 30,
            chunk_count: 4,
            version: "t".into(),
            local: None,
        })
        .await
        .expect("heartbeat");

    let out = cairn(&url, &["nodes"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("node-1") && text.contains("rack-a") && text.contains("up"),
        "{text}"
    );
    assert!(
        text.contains("1.0 MiB") && text.contains("3.0 GiB"),
        "{text}"
    );

    let out = cairn(&url, &["nodes", "--json"]).await;
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(nodes[0]["state"], "up");

    let out = cairn(&url, &["split", "photos/2024/"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cairn(&url, &["shards", "--json"]).await;
    let map: ShardMap = serde_json::from_slice(&out.stdout).expect("map json");
    assert_eq!(map.shards.len(), 3, "split at the prefix and its successor");
    assert_eq!(map.route("photos/2024/x").start, "photos/2024/");

    let out = cairn(&url, &["events", "--json"]).await;
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(events[0]["node"], "node-1");

    let out = Command::new(cairn_binary())
        .args(["nodes"])
        .env("CAIRN_META_URL", &url)
        .env_remove("CAIRN_CLUSTER_SECRET")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster secret"));
}
