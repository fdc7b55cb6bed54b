//! The data path through the real services, minus S3: nodes registered with
//! the metadata service, placement picking rack-safe targets from the
//! registry, a blob written with the gateway's writer, its manifest
//! committed, and read back through the catalogue, also with a node stopped.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::codec::{CodecParams, ErasureCodec};
use cairn_core::ids::{BlobId, NodeId};
use cairn_core::manifest::ObjectManifest;
use cairn_core::placement::{NodeState, rack_counts};
use cairn_gateway::blob_reader::read_blob;
use cairn_gateway::blob_writer::write_blob;
use cairn_gateway::placement::{LocalNodes, sources_for_blob, targets_for_new_blob};
use cairn_meta_api::model::Precondition;
use cairn_service::{HttpClient, Timeouts};
use cairn_tests::TestCluster;
use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_commit_and_get_through_registry_placement_and_catalogue() {
    let mut cluster = TestCluster::start(6, 3).await;
    let meta = &cluster.meta;
    let nodes = meta.nodes().await.expect("nodes");
    assert!(nodes.iter().all(|n| n.state == NodeState::Up));

    let params = CodecParams::new(4, 2, 4096).expect("params");
    let codec = Arc::new(ErasureCodec::new(params).expect("codec"));
    let http = HttpClient::new(cluster.secret.clone(), Timeouts::INTERNAL);
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
    let blob = BlobId::random();
    let targets: Vec<_> = targets_for_new_blob(&blob, &nodes, &params, 1, 6, &http, None)
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
        inline: None,
        tags: Default::default(),
        encryption: None,
        checksum: None,
        owner: None,
        acl: None,
    };
    meta.commit_object("photos", "2024/cat.jpg", manifest, Precondition::None)
        .await
        .expect("commit");

    // Read back through the catalogue, healthy and with one node stopped,
    // over HTTP and by short-circuit reads of the (in-process, so same-host)
    // nodes' files.
    let pool = LocalNodes::new(cluster.secret.clone(), Duration::from_secs(3));
    for (stopped, local) in [
        (None, false),
        (None, true),
        (Some(0usize), true),
        (Some(0), false),
    ] {
        if let Some(i) = stopped
            && local
        {
            cluster.stop(i).await;
        }
        let record = cluster
            .meta
            .get_object("photos", "2024/cat.jpg")
            .await
            .expect("get")
            .expect("exists");
        let blob_manifest = record.manifest.parts[0].clone();
        let nodes = cluster.meta.nodes().await.expect("nodes");
        let sources = sources_for_blob(&blob_manifest, &nodes, &http, local.then_some(&pool));
        assert_eq!(
            sources.iter().filter(|s| s.client.is_local()).count(),
            if local { blob_manifest.chunks.len() } else { 0 },
            "every node registered its local-read socket"
        );
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
        assert_eq!(got, bytes, "stopped node: {stopped:?}, local: {local}");
        assert_eq!(record.manifest.etag, hex::encode(md5_of(&bytes)));
    }
    cluster.shutdown().await;
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(bytes).into()
}

/// S3 refuses SSE-C keys over plain HTTP (the key would be disclosed), and
/// so does a gateway that serves S3 without TLS, unless its config says
/// `sse_c_over_plain_http` (a loopback dev cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_keys_over_plain_http_are_refused() {
    use md5::Digest as _;
    let cluster = TestCluster::start(6, 3).await;
    let key = [7u8; 32];
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let response = reqwest::Client::new()
        .put(format!("{}/some-bucket/secret.txt", cluster.s3_url))
        .header("x-amz-server-side-encryption-customer-algorithm", "AES256")
        .header("x-amz-server-side-encryption-customer-key", b64(&key))
        .header(
            "x-amz-server-side-encryption-customer-key-md5",
            b64(&md5::Md5::digest(key)),
        )
        .body("plaintext")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body = response.text().await.expect("body");
    assert!(body.contains("<Code>InvalidRequest</Code>"), "{body}");
    assert!(body.contains("secure connection"), "{body}");
}
