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

/// With short-circuit on (the gateway on the nodes' host), chunks are
/// written into and read from the nodes' files through their local sockets:
/// every size class round-trips, a rotten block is caught by the gateway's
/// own hash and read around, and a stopped node (its socket gone) is read
/// around too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_circuit_reads_and_writes_stay_exact_through_a_rotten_block_and_a_stopped_node() {
    let mut spec = cairn_tests::ClusterSpec::new(6, 3);
    spec.short_circuit = true;
    let mut cluster = TestCluster::start_with(spec).await;
    let s3 = cluster.s3();
    s3.ensure_bucket("local").await.expect("bucket");
    let objects = [
        ("inline", 1_000),
        ("copies", 300_000),
        ("striped", 3 * 1024 * 1024 + 5),
    ];
    let mut hashes = Vec::new();
    for (i, (key, size)) in objects.iter().enumerate() {
        let (body, hash) = payload(*size, i as u8);
        s3.put("local", key, body).await.expect("put");
        hashes.push((*key, *size as u64, hash));
    }
    let read_all = async |cluster: &TestCluster| {
        for (key, size, hash) in &hashes {
            let got = cluster.s3().get_hashed("local", key).await.expect("get");
            assert_eq!(got, (*size, *hash), "{key}");
        }
    };
    read_all(&cluster).await;
    let local = "cairn_gateway_chunk_reads_total{path=\"local\"}";
    assert!(cluster.gateway_metric(local).await >= 1.0 + 4.0);
    assert_eq!(
        cluster
            .gateway_metric("cairn_gateway_chunk_reads_total{path=\"http\"}")
            .await,
        0.0
    );

    let (rotten, chunk) = holder(&cluster, "local", "striped", 0).await;
    cluster.corrupt(rotten, &chunk, 0);
    let corrupt = cluster
        .gateway_metric("cairn_gateway_corrupt_chunks_total")
        .await;
    read_all(&cluster).await;
    assert!(
        cluster
            .gateway_metric("cairn_gateway_corrupt_chunks_total")
            .await
            > corrupt,
        "the gateway's hash refused the rotten block it read itself"
    );

    let (stopped, _) = holder(&cluster, "local", "striped", 1).await;
    cluster.stop(stopped).await;
    read_all(&cluster).await;
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
    let mut spec = cairn_tests::ClusterSpec::new(6, 3);
    spec.replicated_max = 0;
    let cluster = TestCluster::start_with(spec).await;
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

/// The orphan sweep runs every 50 ms while the catalogue's shards split
/// under it: nothing a manifest references is deleted, while a planted
/// orphan is (the sweep was really running). Three layers stand between a
/// split and a wrong deletion: each shard read checks the range the
/// caller's map expects, a chunk is deleted only after being seen
/// unreferenced for the whole grace period (a stale snapshot is corrected
/// by the next sweep), and the last check before a delete asks every shard
/// again. Removing the first and the last still passes here, because the
/// second holds on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_racing_shard_splits_deletes_nothing_referenced() {
    use std::time::{Duration, Instant};
    let mut spec = cairn_tests::ClusterSpec::new(6, 3);
    // Short, but longer than one small PUT (chunks are written before the
    // manifest commits; a PUT is younger than the grace period).
    spec.gc_grace = Duration::from_secs(2);
    spec.gc_sweep_interval = Duration::from_millis(50);
    let cluster = TestCluster::start_with(spec).await;
    let s3 = cluster.s3();
    s3.ensure_bucket("race").await.expect("bucket");
    let mut objects = Vec::new();
    for i in 0..24u8 {
        let key = format!("{i:02}/object");
        // Above the inline threshold: this test is about chunks.
        let (body, hash) = payload(40 * 1024 + usize::from(i), i);
        s3.put("race", &key, body).await.expect("put");
        objects.push((key, hash));
    }

    // An orphan: object 0's chunk 0 copied onto the node holding chunk 1,
    // where no manifest places it.
    let (source_node, chunk) = holder(&cluster, "race", "00/object", 0).await;
    let (orphan_node, _) = holder(&cluster, "race", "00/object", 1).await;
    let orphan = cluster.chunk_file(orphan_node, &chunk);
    std::fs::create_dir_all(orphan.parent().expect("fan-out dir")).expect("mkdir");
    std::fs::copy(cluster.chunk_file(source_node, &chunk), &orphan).expect("plant orphan");

    // Splits while the sweeps run: each moves index rows to a new shard.
    for i in (2..24).step_by(4) {
        cluster
            .meta
            .split(&format!("race/{i:02}/"))
            .await
            .expect("split");
    }
    let map = cluster.meta.refresh_map().await.expect("map");
    assert!(map.shards.len() > 6, "{} shards", map.shards.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    while orphan.exists() {
        assert!(
            Instant::now() < deadline,
            "the planted orphan was never swept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // More sweeps after the last split, each over every node.
    tokio::time::sleep(Duration::from_secs(1)).await;

    for (key, hash) in &objects {
        for c in chunks(&cluster, "race", key).await {
            let i = cluster
                .nodes
                .iter()
                .position(|n| n.id == c.node)
                .expect("a test node");
            let id = blob_of(&cluster, "race", key).await.chunk_id(c.index);
            assert!(
                cluster.chunk_file(i, &id).exists(),
                "referenced chunk {id} of {key} on {} was deleted",
                c.node
            );
        }
        let (_, got) = s3.get_hashed("race", key).await.expect("get");
        assert_eq!(&got, hash, "{key}");
    }
    assert!(cluster.chunk_file(source_node, &chunk).exists());
    cluster.shutdown().await;
}

/// A node that hangs in the middle of a GET's stream (it served the first
/// stripes) is replaced at the next stripe's hedge deadline, and the GET
/// completes byte-exact. After a few such reads the gateway avoids the node
/// (it heartbeats on, so the detector keeps it up): later GETs pass over its
/// chunk from the start, and new PUTs are placed around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_stream_that_stalls_midway_is_replaced_and_the_node_avoided() {
    use futures_util::StreamExt;
    let cluster = TestCluster::start(6, 3).await;
    let s3 = cluster.s3();
    s3.ensure_bucket("midway").await.expect("bucket");
    // Large enough that the gateway is still fetching stripes when the
    // client has read its first MiB (buffers hold a few MiB).
    let size = 48 * 1024 * 1024 + 3;
    let (body, hash) = payload(size, 9);
    s3.put("midway", "big", body).await.expect("put");
    let (stalled, _) = holder(&cluster, "midway", "big", 1).await;
    let hedged = cluster
        .gateway_metric("cairn_gateway_hedged_reads_total")
        .await;

    let response = s3.get("midway", "big").await.expect("get");
    let mut stream = response.bytes_stream();
    let mut hasher = blake3::Hasher::new();
    let mut len = 0usize;
    while len < 1024 * 1024 {
        let piece = stream.next().await.expect("more").expect("piece");
        len += piece.len();
        hasher.update(&piece);
    }
    cluster.hang(stalled);
    while let Some(piece) = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
        .await
        .expect("the GET went on around the stalled stream")
    {
        let piece = piece.expect("piece");
        len += piece.len();
        hasher.update(&piece);
    }
    assert_eq!((len, *hasher.finalize().as_bytes()), (size, hash));
    assert!(
        cluster
            .gateway_metric("cairn_gateway_hedged_reads_total")
            .await
            > hedged,
        "the stalled stream was replaced by a hedge"
    );

    // Consecutive stalls get the node avoided: then a GET passes over its
    // chunk from the start, and a PUT is placed around it.
    let mut reads = 0;
    while cluster
        .gateway_metric("cairn_gateway_read_penalties_total")
        .await
        < 1.0
    {
        reads += 1;
        assert!(reads <= 10, "the stalling node was never avoided");
        let (len, got) = s3.get_hashed("midway", "big").await.expect("get");
        assert_eq!((len, got), (size as u64, hash));
    }
    let avoided = cluster
        .gateway_metric("cairn_gateway_avoided_chunks_total")
        .await;
    let (len, got) = s3.get_hashed("midway", "big").await.expect("get");
    assert_eq!((len, got), (size as u64, hash));
    assert!(
        cluster
            .gateway_metric("cairn_gateway_avoided_chunks_total")
            .await
            > avoided,
        "the avoided node's chunk was passed over"
    );
    let small = 256 * 1024;
    let (body, _) = payload(small, 11);
    s3.put("midway", "placed", body).await.expect("put");
    assert!(
        !chunks(&cluster, "midway", "placed")
            .await
            .iter()
            .any(|c| c.node == cluster.nodes[stalled].id),
        "a PUT was placed on the avoided node"
    );
    assert_eq!(cluster.state(stalled).await, Some(NodeState::Up));
    cluster.unhang(stalled);
    cluster.shutdown().await;
}

/// A client that stops sending in the middle of a PUT body gets S3's
/// `RequestTimeout` once it has been silent for `client_idle_timeout`,
/// nothing becomes visible, and no node keeps a chunk or a temp file of it:
/// a stalled upload cannot hold chunk streams open forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_body_gets_request_timeout_and_leaves_nothing() {
    use std::time::Duration;
    let mut spec = cairn_tests::ClusterSpec::new(6, 3);
    spec.client_idle_timeout = Duration::from_secs(1);
    let cluster = TestCluster::start_with(spec).await;
    let s3 = cluster.s3();
    s3.ensure_bucket("stalled").await.expect("bucket");
    let first = Bytes::from(vec![7u8; 1024 * 1024]);
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(first)]),
        futures_util::stream::pending(),
    );
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        s3.put_body(
            "stalled",
            "never",
            8 * 1024 * 1024,
            reqwest::Body::wrap_stream(body),
        ),
    )
    .await
    .expect("the gateway answered the stalled upload");
    match result {
        Err(cairn_cli::bench::client::S3Failure::Status { status, body }) => {
            assert_eq!(status.as_u16(), 400, "{body}");
            assert!(body.contains("RequestTimeout"), "{body}");
        }
        other => panic!("expected RequestTimeout, got {other:?}"),
    }
    match s3.get_hashed("stalled", "never").await {
        Err(cairn_cli::bench::client::S3Failure::Status { status, .. }) => {
            assert_eq!(status.as_u16(), 404)
        }
        other => panic!("the object must not exist: {other:?}"),
    }
    let leftovers = || {
        cluster
            .nodes
            .iter()
            .flat_map(|n| {
                walk(&n.dir.join("chunks"))
                    .into_iter()
                    .filter(|p| p.is_file())
            })
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !leftovers().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left on the nodes: {:?}",
            leftovers()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.shutdown().await;
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
    }
    out
}

/// The failure detector counts a heartbeat when it arrives; its answer
/// waits for a catalogue commit, which a busy disk can hold for seconds. A
/// node whose answers all come 1 s late, longer than the 600 ms of silence
/// after which the detector calls it suspect, keeps heartbeating at its
/// rate and stays up (a node that waited for each answer went suspect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stays_up_while_its_heartbeats_are_answered_late() {
    let mut cluster = TestCluster::start(6, 3).await;
    let late = std::time::Duration::from_secs(1);
    assert!(late > cluster.spec.detector.suspect_after);
    cluster.delay_metadata_answers(0, late).await;
    cluster.wait_for_state(0, NodeState::Up).await;
    let until = tokio::time::Instant::now() + 4 * late;
    while tokio::time::Instant::now() < until {
        assert_eq!(
            cluster.state(0).await,
            Some(NodeState::Up),
            "{} left up while its heartbeats' answers were late",
            cluster.nodes[0].id
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}
