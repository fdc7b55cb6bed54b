//! Whole-cluster scenarios on [`TestCluster`]: S3 requests through the real
//! gateway while nodes hang, stop, rot and come back.

use bytes::Bytes;
use cairn_cli::bench::Payload;
use cairn_core::ids::ChunkId;
use cairn_core::placement::NodeState;
use cairn_tests::TestCluster;

fn payload(len: usize, seed: u8) -> (Payload, [u8; 32]) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let hash = *blake3::hash(&bytes).as_bytes();
    (
        Payload {
            pieces: vec![Bytes::from(bytes)],
            len: len as u64,
        },
        hash,
    )
}

/// The object's only blob, as the catalogue has it.
async fn blob_of(
    cluster: &TestCluster,
    bucket: &str,
    key: &str,
) -> cairn_core::manifest::BlobManifest {
    let record = cluster
        .meta
        .get_object(bucket, key)
        .await
        .expect("catalogue")
        .expect("object exists");
    record.manifest.parts[0].clone()
}

/// The chunks of the object's only blob.
async fn chunks(
    cluster: &TestCluster,
    bucket: &str,
    key: &str,
) -> Vec<cairn_core::manifest::ChunkDescriptor> {
    blob_of(cluster, bucket, key).await.chunks
}

/// Which test node holds chunk `index` of the object's only blob.
async fn holder(cluster: &TestCluster, bucket: &str, key: &str, index: u8) -> (usize, ChunkId) {
    let blob = blob_of(cluster, bucket, key).await;
    let node = &blob.chunks[index as usize].node;
    let i = cluster
        .nodes
        .iter()
        .position(|n| &n.id == node)
        .expect("a test node");
    (i, blob.chunk_id(index))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stay_exact_through_a_hung_node_a_stopped_node_and_a_corrupt_block() {
    let mut cluster = TestCluster::start(6, 3).await;
    assert_eq!((cluster.spec.k, cluster.spec.m), (4, 2));
    let s3 = cluster.s3();
    s3.ensure_bucket("photos").await.expect("bucket");
    let size = 3 * 1024 * 1024 + 17;
    let (body, hash) = payload(size, 7);
    s3.put("photos", "cat.jpg", body).await.expect("put");
    let read = async |cluster: &TestCluster| {
        let (len, got) = cluster
            .s3()
            .get_hashed("photos", "cat.jpg")
            .await
            .expect("get");
        assert_eq!((len, got), (size as u64, hash));
    };
    read(&cluster).await;

    // A hung node: its API accepts and goes silent while it heartbeats on.
    let (hung, _) = holder(&cluster, "photos", "cat.jpg", 0).await;
    let hedged = cluster
        .gateway_metric("cairn_gateway_hedged_reads_total")
        .await;
    cluster.hang(hung);
    read(&cluster).await;
    assert!(
        cluster
            .gateway_metric("cairn_gateway_hedged_reads_total")
            .await
            > hedged,
        "the read went around the hung node"
    );
    assert_eq!(cluster.state(hung).await, Some(NodeState::Up));
    cluster.unhang(hung);

    // A stopped node: gone, and then seen down.
    let (stopped, _) = holder(&cluster, "photos", "cat.jpg", 1).await;
    cluster.stop(stopped).await;
    read(&cluster).await;
    cluster.wait_for_state(stopped, NodeState::Down).await;

    // A rotten block on a third node is never served.
    let (rotten, chunk) = holder(&cluster, "photos", "cat.jpg", 2).await;
    cluster.corrupt(rotten, &chunk, 0);
    let degraded = cluster
        .gateway_metric("cairn_gateway_degraded_reads_total")
        .await;
    read(&cluster).await;
    assert!(
        cluster
            .gateway_metric("cairn_gateway_degraded_reads_total")
            .await
            > degraded,
        "the rotten block was read around"
    );

    // The stopped node comes back at the same address with its data.
    cluster.restart(stopped).await;
    cluster.wait_for_state(stopped, NodeState::Up).await;
    read(&cluster).await;
    cluster.shutdown().await;
}

/// A node that takes a chunk stream and goes silent (a hung disk behind a
/// live process) costs a PUT `write_stall_after`, not a transport timeout:
/// its chunk is abandoned and recorded `Missing` because the write quorum
/// holds without it, the object reads back exact, the next PUT leaves the
/// node out, and once the node answers again a scrub has the chunk
/// repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_completes_around_a_hung_node_and_records_its_chunk_missing() {
    let cluster = TestCluster::start(6, 3).await;
    let s3 = cluster.s3();
    s3.ensure_bucket("stall").await.expect("bucket");
    // With 4+2 on 6 nodes every node holds a chunk of every blob.
    let hung = 0;
    cluster.hang(hung);
    // A small object: each chunk fits in the socket buffers, so the stream
    // "completes" and the node's answer is what never comes. Without a
    // write deadline of its own the PUT waited the generic 30 s for it; the
    // bound here is a liveness check, far above `write_stall_after` (2 s).
    let size = 64 * 1024 + 5;
    let (body, hash) = payload(size, 3);
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        s3.put("stall", "around", body),
    )
    .await
    .expect("the PUT does not wait out the hung node")
    .expect("the PUT completes around the hung node");
    for chunk in chunks(&cluster, "stall", "around").await {
        let expected = if chunk.node == cluster.nodes[hung].id {
            cairn_core::manifest::ChunkState::Missing
        } else {
            cairn_core::manifest::ChunkState::Stored
        };
        assert_eq!(
            chunk.state, expected,
            "chunk {} on {}",
            chunk.index, chunk.node
        );
    }
    let (len, got) = s3.get_hashed("stall", "around").await.expect("get");
    assert_eq!((len, got), (size as u64, hash));

    // The failed write put the node in the penalty box: the next PUT does
    // not even try it (the failure detector still has it up).
    let (body, _) = payload(size, 4);
    s3.put("stall", "next", body).await.expect("second PUT");
    let placed: Vec<_> = chunks(&cluster, "stall", "next")
        .await
        .into_iter()
        .map(|c| c.node)
        .collect();
    assert!(
        !placed.contains(&cluster.nodes[hung].id),
        "a node whose write just failed was given a chunk: {placed:?}"
    );
    assert_eq!(cluster.state(hung).await, Some(NodeState::Up));
    assert!(
        cluster
            .gateway_metric("cairn_gateway_write_penalties_total")
            .await
            >= 1.0
    );

    // The node answers again; a scrub finds the missing chunk and repair
    // stores it, so the blob is whole again.
    cluster.unhang(hung);
    let scrubber = cairn_scrubber_api::ScrubberClient::new(&cluster.scrubber_url, &cluster.secret);
    scrubber
        .create_job(&cairn_scrubber_api::model::JobSpec::default())
        .await
        .expect("scrub job");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = chunks(&cluster, "stall", "around").await;
        if now
            .iter()
            .all(|c| c.state == cairn_core::manifest::ChunkState::Stored)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the missing chunk was not repaired: {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (len, got) = s3.get_hashed("stall", "around").await.expect("get");
    assert_eq!((len, got), (size as u64, hash));
    cluster.shutdown().await;
}
