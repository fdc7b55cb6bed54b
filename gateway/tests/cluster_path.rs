//! The data path through the real services, minus S3: nodes register with
//! the metadata service, placement picks rack-safe targets from the
//! registry, the blob is written, its manifest committed, and read back
//! through the catalogue — also with a node stopped.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::codec::{CodecParams, ErasureCodec};
use cairn_core::ids::{BlobId, NodeId, RackId};
use cairn_core::manifest::ObjectManifest;
use cairn_core::placement::{NodeState, rack_counts};
use cairn_gateway::blob_reader::read_blob;
use cairn_gateway::blob_writer::write_blob;
use cairn_gateway::placement::{sources_for_blob, targets_for_new_blob};
use cairn_metadata_service::liveness::DetectorConfig;
use cairn_metadata_service::model::Precondition;
use cairn_metadata_service::shard_map::ShardMap;
use cairn_metadata_service::{MetaClient, MetaOptions, MetaServer, Role};
use cairn_storage_node::{ClusterSecret, NodeConfig, StorageNode};
use futures_util::StreamExt;

const SECRET: &str = "cluster-path-secret";

#[tokio::test]
async fn put_commit_and_get_through_registry_placement_and_catalogue() {
    let root = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let meta_url = format!("http://{}", listener.local_addr().expect("addr"));
    let options = MetaOptions {
        data_dir: root.path().join("meta"),
        advertise_url: meta_url.clone(),
        role: Role::Primary {
            initial_map: ShardMap::with_splits(&["m"], &[&meta_url]).expect("map"),
        },
        detector: DetectorConfig::LOCAL,
    };
    let server = MetaServer::open(options, SECRET, listener)
        .await
        .expect("meta");
    tokio::spawn(server.run(std::future::pending()));
    let meta = MetaClient::connect(&meta_url, SECRET)
        .await
        .expect("connect");

    // Six nodes in three racks register themselves.
    let mut stops = Vec::new();
    for i in 0..6 {
        let mut config = NodeConfig::new(
            NodeId::new(format!("node-{i}")).expect("id"),
            RackId::new(format!("rack-{}", i % 3)).expect("rack"),
            root.path().join(format!("node-{i}")),
        );
        config.metadata_url = Some(meta_url.clone());
        config.heartbeat_interval_ms = 50;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let node = StorageNode::open(
            config,
            ClusterSecret::new(SECRET).expect("secret"),
            listener,
        )
        .expect("node");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(node.run(async {
            let _ = stopped.await;
        }));
        stops.push(stop);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let nodes = loop {
        let nodes = meta.nodes().await.expect("nodes");
        if nodes.iter().filter(|n| n.state == NodeState::Up).count() == 6 {
            break nodes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes did not register"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let params = CodecParams::new(4, 2, 4096).expect("params");
    let codec = Arc::new(ErasureCodec::new(params).expect("codec"));
    let http = reqwest::Client::new();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
    let blob = BlobId::random();
    let targets: Vec<_> = targets_for_new_blob(&blob, &nodes, &params, 1, 6, &http, SECRET)
        .expect("placement")
        .into_iter()
        .map(|t| t.expect("every chunk placed in a healthy cluster"))
        .collect();
    let candidates: Vec<_> = nodes.iter().map(|n| n.candidate()).collect();
    let placed: Vec<NodeId> = targets.iter().map(|t| t.node.clone()).collect();
    assert!(
        rack_counts(&placed, &candidates).values().all(|c| *c <= 2),
        "rack rule"
    );
    let body = futures_util::stream::iter(
        bytes
            .chunks(10_000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let written = write_blob(codec.clone(), blob, targets, body, 6)
        .await
        .expect("write");

    meta.create_bucket("photos", "ann").await.expect("bucket");
    let manifest = ObjectManifest {
        size: written.manifest.size,
        etag: hex::encode(written.md5),
        content_type: Some("image/jpeg".into()),
        headers: Default::default(),
        user_metadata: Default::default(),
        created_ms: 0,
        parts: vec![written.manifest],
    };
    meta.commit_object("photos", "2024/cat.jpg", manifest, Precondition::None)
        .await
        .expect("commit");

    // Read back through the catalogue, healthy and with one node stopped.
    for stopped in [None, Some(0usize)] {
        if let Some(i) = stopped {
            let _ = std::mem::replace(&mut stops[i], tokio::sync::oneshot::channel().0).send(());
        }
        let record = meta
            .get_object("photos", "2024/cat.jpg")
            .await
            .expect("get")
            .expect("exists");
        let blob_manifest = record.manifest.parts[0].clone();
        let nodes = meta.nodes().await.expect("nodes");
        let sources = sources_for_blob(&blob_manifest, &nodes, &http, SECRET);
        let mut stream = read_blob(
            codec.clone(),
            blob_manifest,
            sources,
            0..200_000,
            Duration::from_millis(100),
        )
        .expect("read");
        let mut got = Vec::new();
        while let Some(piece) = stream.next().await {
            got.extend_from_slice(&piece.expect("piece"));
        }
        assert_eq!(got, bytes, "stopped node: {stopped:?}");
        assert_eq!(record.manifest.etag, hex::encode(md5_of(&bytes)));
    }
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(bytes).into()
}
