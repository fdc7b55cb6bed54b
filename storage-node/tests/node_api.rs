//! The storage node's HTTP API, against real servers on ephemeral ports
//! with real temp directories (and, for crash tests, a real process).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::ids::{BlobId, ChunkId, NodeId, RackId};
use cairn_core::integrity::{diff_leaves, hash_block, merkle_root};
use cairn_node_api::local::{self, LocalError};
use cairn_node_api::{LocalNode, NodeClient, NodeError, frame_blocks};
use cairn_service::ErrorCode;
use cairn_storage_node::{NodeConfig, StorageNode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const SECRET: &str = "test-cluster-secret";

fn secret() -> cairn_service::ClusterSecret {
    cairn_service::ClusterSecret::new(SECRET).expect("secret")
}

struct TestNode {
    addr: SocketAddr,
    client: NodeClient,
    /// The same node, block reads through its local-read socket.
    local: NodeClient,
    data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestNode {
    async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, true).await
    }

    async fn start_with(data_dir: &Path, direct_io: bool) -> Self {
        Self::start_configured(data_dir, |config| config.direct_io = direct_io).await
    }

    async fn start_configured(data_dir: &Path, configure: impl FnOnce(&mut NodeConfig)) -> Self {
        let mut config = NodeConfig::new(
            NodeId::new("node-t").expect("id"),
            RackId::new("rack-t").expect("rack"),
            data_dir.to_owned(),
        );
        configure(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let node = StorageNode::open(config, secret(), listener).expect("open node");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.run(async {
            let _ = stopped.await;
        }));
        let client = NodeClient::standalone(&format!("http://{addr}"), &secret());
        Self {
            addr,
            local: client.clone().with_local(LocalNode::new(
                &data_dir.join(local::SOCKET_NAME),
                secret(),
                Duration::from_secs(3),
            )),
            client,
            data_dir: data_dir.to_owned(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Graceful stop; the data directory stays.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("serve");
        }
    }

    fn chunk_file(&self, chunk: &ChunkId) -> PathBuf {
        self.data_dir
            .join("chunks")
            .join(&chunk.blob.to_hex()[..2])
            .join(chunk.file_name())
    }
}

fn blocks(count: usize, block_size: usize, last: usize, seed: u8) -> Vec<Bytes> {
    (0..count)
        .map(|i| {
            let len = if i + 1 == count { last } else { block_size };
            Bytes::from(
                (0..len)
                    .map(|j| {
                        (j as u8)
                            .wrapping_mul(31)
                            .wrapping_add(i as u8)
                            .wrapping_add(seed)
                    })
                    .collect::<Vec<u8>>(),
            )
        })
        .collect()
}

fn chunk(index: u8) -> ChunkId {
    ChunkId::new(BlobId::random(), index)
}

/// Files under `chunks/` whose names mark unfinished writes.
fn temp_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(dirs) = std::fs::read_dir(data_dir.join("chunks")) else {
        return found;
    };
    for dir in dirs.flatten() {
        if let Ok(entries) = std::fs::read_dir(dir.path()) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    found.push(entry.path());
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn chunk_round_trip_head_list_status_and_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(3);
    let data = blocks(5, 1000, 300, 1);
    let put = node.client.put_chunk(&id, 1000, &data).await.expect("put");
    let hashes: Vec<_> = data.iter().map(|b| hash_block(b)).collect();
    assert_eq!(put.blocks, 5);
    assert_eq!(put.data_len, 4300);
    assert_eq!(put.merkle_root, merkle_root(&hashes));

    assert_eq!(
        node.client.read_blocks(&id, None).await.expect("read"),
        data
    );
    let info = node.client.head(&id).await.expect("head").expect("exists");
    assert_eq!(
        (info.blocks, info.data_len, info.block_size),
        (5, 4300, 1000)
    );
    assert_eq!(info.merkle_root, put.merkle_root);

    let page = node.client.list(None, 100).await.expect("list");
    assert_eq!(page.chunks.len(), 1);
    assert_eq!(page.chunks[0].chunk, id);
    let status = node.client.status().await.expect("status");
    assert_eq!(status.chunk_count, 1);
    assert_eq!(status.used_bytes, page.chunks[0].file_bytes);
    assert_eq!(status.used_bytes, 64 + 4300 + 5 * 32 + 72);

    assert!(node.client.delete(&id).await.expect("delete"));
    assert!(!node.client.delete(&id).await.expect("second delete"));
    assert_eq!(node.client.head(&id).await.expect("head"), None);
    let err = node.client.read_blocks(&id, None).await.expect_err("gone");
    assert!(err.is_not_found(), "{err}");
    assert_eq!(node.client.status().await.expect("status").used_bytes, 0);
    node.stop().await;
}

/// Large chunks are written with direct I/O behind a page-sized header;
/// small ones keep the 64-byte header. Both read back exactly, a flipped
/// byte in a directly written block is still caught, and a node with
/// direct I/O off writes the compact layout.
#[tokio::test]
async fn direct_io_layout_round_trips_and_stays_verified() {
    const BLOCK: usize = 64 * 1024;
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    for direct in [true, false] {
        let dir = tmp.path().join(format!("direct-{direct}"));
        let node = TestNode::start_with(&dir, direct).await;
        let big = chunk(1);
        let data = blocks(5, BLOCK, 1234, 7);
        node.client
            .put_chunk(&big, BLOCK as u32, &data)
            .await
            .expect("put large chunk");
        let small = chunk(2);
        let small_data = blocks(1, BLOCK, 100, 8);
        node.client
            .put_chunk(&small, BLOCK as u32, &small_data)
            .await
            .expect("put small chunk");
        assert_eq!(
            node.client.read_blocks(&big, None).await.expect("read"),
            data
        );
        assert_eq!(
            node.client.read_blocks(&small, None).await.expect("read"),
            small_data
        );

        let header_len = |id: &ChunkId| {
            let bytes = std::fs::read(node.chunk_file(id)).expect("chunk file");
            (
                u16::from_le_bytes([bytes[10], bytes[11]]) as usize,
                bytes.len(),
            )
        };
        let data_len = 4 * BLOCK + 1234;
        // The target dir is on a disk file system, which takes O_DIRECT.
        let expected_header = if direct { 4096 } else { 64 };
        assert_eq!(
            header_len(&big),
            (expected_header, expected_header + data_len + 5 * 32 + 72),
            "direct_io = {direct}"
        );
        assert_eq!(header_len(&small), (64, 64 + 100 + 32 + 72));
        let status = node.client.status().await.expect("status");
        assert_eq!(
            status.used_bytes,
            (expected_header + data_len + 5 * 32 + 72 + 64 + 100 + 32 + 72) as u64
        );

        // Flip one byte of block 2 on disk: the receiver refuses that block.
        let path = node.chunk_file(&big);
        let mut file = std::fs::read(&path).expect("read chunk file");
        file[expected_header + 2 * BLOCK + 10] ^= 0x40;
        std::fs::write(&path, &file).expect("write chunk file");
        let err = node
            .client
            .read_blocks(&big, Some(2..3))
            .await
            .expect_err("corrupt block refused");
        assert!(
            matches!(err, NodeError::HashMismatch { block: 2, .. }),
            "{err}"
        );
        assert_eq!(
            node.client
                .read_blocks(&big, Some(3..5))
                .await
                .expect("others"),
            data[3..5].to_vec()
        );
        node.stop().await;
    }
}

#[tokio::test]
async fn empty_chunk_and_single_byte_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let empty = chunk(0);
    let put = node
        .client
        .put_chunk(&empty, 4096, &[])
        .await
        .expect("put empty");
    assert_eq!((put.blocks, put.data_len), (0, 0));
    assert!(
        node.client
            .read_blocks(&empty, None)
            .await
            .expect("read")
            .is_empty()
    );
    let one = chunk(1);
    let data = vec![Bytes::from_static(b"x")];
    node.client
        .put_chunk(&one, 4096, &data)
        .await
        .expect("put one");
    assert_eq!(
        node.client.read_blocks(&one, None).await.expect("read"),
        data
    );
    node.stop().await;
}

#[tokio::test]
async fn ranged_reads_return_exactly_the_requested_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(0);
    let data = blocks(6, 512, 100, 2);
    node.client.put_chunk(&id, 512, &data).await.expect("put");
    for (start, end) in [(0, 1), (2, 4), (5, 6), (0, 6), (3, 3)] {
        let got = node
            .client
            .read_blocks(&id, Some(start..end))
            .await
            .expect("range");
        assert_eq!(got, data[start as usize..end as usize], "{start}..{end}");
    }
    let err = node
        .client
        .read_blocks(&id, Some(4..7))
        .await
        .expect_err("past end");
    assert!(err.status() == Some(416), "{err}");
    node.stop().await;
}

#[tokio::test]
async fn a_flipped_byte_on_disk_is_refused_by_the_receiver_and_verify_pinpoints_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(7);
    let data = blocks(6, 1024, 1024, 3);
    let put = node.client.put_chunk(&id, 1024, &data).await.expect("put");
    let clean = node.client.verify(&id, true).await.expect("verify");
    assert_eq!(clean.merkle_root, put.merkle_root);
    assert!(clean.corrupt_blocks.is_empty() && clean.trailer_intact);

    // Flip one byte in block 3 (the header is 64 bytes).
    let path = node.chunk_file(&id);
    let mut bytes = std::fs::read(&path).expect("read chunk file");
    bytes[64 + 3 * 1024 + 500] ^= 0x20;
    std::fs::write(&path, &bytes).expect("write chunk file");

    // The node sends blocks with their stored hashes without re-hashing
    // them (one hash per trust boundary): the receiver's check refuses the
    // flipped block. A full read yields blocks 0..3, then an error naming
    // block 3.
    let mut stream = node.client.get_blocks(&id, None).await.expect("get");
    for expected in 0..3 {
        let (index, block) = stream
            .next_block()
            .await
            .expect("intact block")
            .expect("some");
        assert_eq!((index, &block), (expected, &data[expected as usize]));
    }
    let err = stream.next_block().await.expect_err("corrupt block");
    assert_eq!(err.corrupt_block(), Some(3), "{err}");

    // A read of just the corrupt block yields no data either.
    let err = node
        .client
        .read_blocks(&id, Some(3..4))
        .await
        .expect_err("corrupt");
    assert!(
        matches!(err, NodeError::HashMismatch { block: 3, .. }),
        "{err}"
    );
    // Other blocks are still served.
    assert_eq!(
        node.client.read_blocks(&id, Some(4..6)).await.expect("ok"),
        data[4..6]
    );

    let report = node.client.verify(&id, true).await.expect("verify");
    assert_eq!(report.corrupt_blocks, vec![3]);
    assert_ne!(report.merkle_root, put.merkle_root);
    let leaves = report.leaves.expect("leaves");
    assert_eq!(
        diff_leaves(&clean.leaves.expect("leaves"), &leaves),
        vec![3]
    );
    assert!(report.trailer_intact);
    // Only verify (the scrubber's check of data at rest) counts it on the
    // node; the reads above were refused by the receiver.
    let metrics = node.client.metrics().await.expect("metrics");
    assert!(
        metrics.contains("cairn_node_corrupt_blocks_total 1"),
        "{metrics}"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_damaged_hash_table_is_reported_and_verify_still_computes_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(2);
    let data = blocks(3, 256, 256, 4);
    let put = node.client.put_chunk(&id, 256, &data).await.expect("put");
    let path = node.chunk_file(&id);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[64 + 3 * 256 + 40] ^= 1; // inside the hash of block 1
    std::fs::write(&path, &bytes).expect("write");
    let err = node
        .client
        .read_blocks(&id, None)
        .await
        .expect_err("untrusted");
    assert!(
        err.status() == Some(500) && err.code() == Some(ErrorCode::CorruptChunk),
        "{err}"
    );
    let report = node.client.verify(&id, false).await.expect("verify");
    assert!(!report.trailer_intact);
    assert_eq!(
        report.merkle_root, put.merkle_root,
        "blocks themselves are intact"
    );
    node.stop().await;
}

#[tokio::test]
async fn every_route_requires_the_cluster_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(0);
    node.client
        .put_chunk(&id, 16, &blocks(1, 16, 16, 0))
        .await
        .expect("put");
    let http = reqwest::Client::new();
    let base = format!("http://{}", node.addr);
    let chunk_url = format!("{base}/chunks/{}/{}", id.blob, id.index);
    let routes = [
        (reqwest::Method::GET, chunk_url.clone()),
        (reqwest::Method::PUT, format!("{chunk_url}?block_size=16")),
        (reqwest::Method::HEAD, chunk_url.clone()),
        (reqwest::Method::DELETE, chunk_url.clone()),
        (reqwest::Method::GET, format!("{chunk_url}/verify")),
        (reqwest::Method::GET, format!("{base}/chunks")),
        (reqwest::Method::GET, format!("{base}/health")),
        (reqwest::Method::GET, format!("{base}/status")),
        (reqwest::Method::GET, format!("{base}/metrics")),
    ];
    for (method, url) in routes {
        let anonymous = http
            .request(method.clone(), &url)
            .send()
            .await
            .expect("send");
        assert_eq!(anonymous.status(), 401, "{method} {url} without secret");
        let wrong = http
            .request(method.clone(), &url)
            .header("x-cairn-secret", "not-the-secret")
            .send()
            .await
            .expect("send");
        assert_eq!(wrong.status(), 403, "{method} {url} with a wrong secret");
    }
    let bearer = http
        .get(format!("{base}/health"))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("send");
    assert_eq!(bearer.status(), 200);
    // Nothing was deleted by the rejected DELETE.
    assert!(node.client.head(&id).await.expect("head").is_some());
    node.stop().await;
}

#[tokio::test]
async fn invalid_ids_are_rejected_and_never_touch_the_file_system() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let http = reqwest::Client::new();
    for path in [
        "/chunks/..%2F..%2Fetc%2Fpasswd/0",
        "/chunks/ABCDEF0123456789ABCDEF0123456789/0",
        "/chunks/0123456789abcdef0123456789abcdef/256",
        "/chunks/0123456789abcdef0123456789abcdef/-1",
        "/chunks?after=nonsense",
    ] {
        let response = http
            .get(format!("http://{}{path}", node.addr))
            .header("x-cairn-secret", SECRET)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 400, "{path}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_block_that_does_not_match_its_declared_hash_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(1);
    let data = blocks(3, 64, 64, 5);
    // Over HTTP the node hashes blocks as they arrive; written through the
    // local socket, it reads them back and hashes them before sealing.
    for client in [&node.client, &node.local] {
        let (mut frames, _) = frame_blocks(&data);
        // frames: [head0, data0, head1, data1, ...]; swap in different bytes.
        frames[3] = Bytes::from(vec![0u8; 64]);
        let stream = futures_util::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>));
        let err = client
            .put_chunk_stream(&id, 64, stream)
            .await
            .expect_err("bad digest");
        assert!(
            err.status() == Some(400)
                && err.code() == Some(ErrorCode::BadDigest)
                && err.corrupt_block() == Some(1),
            "local: {}: {err}",
            client.is_local()
        );
        assert_eq!(node.client.head(&id).await.expect("head"), None);
        assert!(temp_files(dir.path()).is_empty());
    }
    node.stop().await;
}

#[tokio::test]
async fn a_stream_without_its_end_frame_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(1);
    for client in [&node.client, &node.local] {
        let (mut frames, _) = frame_blocks(&blocks(3, 64, 64, 6));
        frames.pop();
        let stream = futures_util::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>));
        let err = client
            .put_chunk_stream(&id, 64, stream)
            .await
            .expect_err("no end");
        if client.is_local() {
            // The writer itself sees the frames end early and never seals.
            assert!(err.to_string().contains("end frame"), "{err}");
        } else {
            assert!(
                err.status() == Some(400) && err.code() == Some(ErrorCode::InvalidStream),
                "{err}"
            );
        }
        assert_eq!(node.client.head(&id).await.expect("head"), None);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !temp_files(dir.path()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(temp_files(dir.path()).is_empty(), "temp file left behind");
    node.stop().await;
}

#[tokio::test]
async fn a_writer_killed_mid_put_leaves_no_chunk_and_no_temp_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(4);
    let (frames, _) = frame_blocks(&blocks(8, 4096, 4096, 7));
    let body: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let addr = node.addr;
    let data_dir = dir.path().to_owned();
    let saw_temp_file = tokio::task::spawn_blocking(move || {
        // Send about half of the body, then vanish like a killed process.
        let socket = put_half_a_chunk(addr, &id, &body);
        // The node is mid-write: an unfinished temp file exists.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut saw = false;
        while !saw && Instant::now() < deadline {
            saw = !temp_files(&data_dir).is_empty();
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(socket);
        saw
    })
    .await
    .expect("writer");
    assert!(saw_temp_file, "the node never started writing the chunk");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !temp_files(dir.path()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(temp_files(dir.path()).is_empty(), "temp file left behind");
    assert_eq!(node.client.head(&id).await.expect("head"), None);
    assert_eq!(node.client.status().await.expect("status").chunk_count, 0);
    node.stop().await;
}

#[tokio::test]
async fn restart_keeps_chunks_and_clears_unfinished_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let ids: Vec<ChunkId> = (0..4).map(chunk).collect();
    let data = blocks(3, 777, 5, 8);
    for id in &ids {
        node.client.put_chunk(id, 777, &data).await.expect("put");
    }
    let leftover = node.chunk_file(&ids[0]).with_file_name(".tmp-deadbeef");
    node.stop().await;
    std::fs::write(&leftover, b"half a chunk").expect("simulate crash debris");

    let node = TestNode::start(dir.path()).await;
    assert!(!leftover.exists(), "temp file survived a restart");
    for id in &ids {
        assert_eq!(node.client.read_blocks(id, None).await.expect("read"), data);
    }
    assert_eq!(node.client.status().await.expect("status").chunk_count, 4);
    node.stop().await;
}

/// Every fan-out directory exists once the store opens, so no chunk write
/// makes one; a directory removed by hand is made again by the next write
/// that needs it.
#[tokio::test]
async fn fan_out_directories_exist_from_the_start_and_come_back_if_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let mut made: Vec<String> = std::fs::read_dir(dir.path().join("chunks"))
        .expect("chunks/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    let expected: Vec<String> = (0..=u8::MAX).map(|b| format!("{b:02x}")).collect();
    assert_eq!(made, expected);

    let id = chunk(1);
    let fan_out = node.chunk_file(&id).parent().expect("parent").to_owned();
    std::fs::remove_dir(&fan_out).expect("remove an empty fan-out directory");
    let data = blocks(2, 512, 100, 4);
    node.client
        .put_chunk(&id, 512, &data)
        .await
        .expect("put into a removed fan-out directory");
    assert_eq!(
        node.client.read_blocks(&id, None).await.expect("read"),
        data
    );
    node.stop().await;
}

#[tokio::test]
async fn overwriting_a_chunk_replaces_it_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(0);
    node.client
        .put_chunk(&id, 100, &blocks(4, 100, 100, 1))
        .await
        .expect("first");
    let second = blocks(2, 100, 50, 9);
    node.client
        .put_chunk(&id, 100, &second)
        .await
        .expect("second");
    assert_eq!(
        node.client.read_blocks(&id, None).await.expect("read"),
        second
    );
    let status = node.client.status().await.expect("status");
    assert_eq!(status.chunk_count, 1);
    assert_eq!(status.used_bytes, 64 + 150 + 2 * 32 + 72);
    node.stop().await;
}

#[tokio::test]
async fn listing_pages_through_every_chunk_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let mut ids: Vec<ChunkId> = (0..25u8).map(|i| chunk(i % 12)).collect();
    for id in &ids {
        node.client
            .put_chunk(id, 8, &blocks(1, 8, 8, 0))
            .await
            .expect("put");
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = node.client.list(after.as_ref(), 10).await.expect("list");
        pages += 1;
        seen.extend(page.chunks.iter().map(|c| c.chunk));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    node.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_and_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(0);
    node.client
        .put_chunk(&id, 1000, &blocks(2, 1000, 1000, 0))
        .await
        .expect("put");
    node.client.read_blocks(&id, None).await.expect("read");
    let text = node.client.metrics().await.expect("metrics");
    assert!(
        text.contains("cairn_node_chunk_bytes_in_total 2000"),
        "{text}"
    );
    assert!(
        text.contains("cairn_node_chunk_bytes_out_total 2000"),
        "{text}"
    );
    assert!(
        text.contains(r#"cairn_node_requests_total{method="PUT",route="/chunks/{blob}/{index}",status="201"} 1"#),
        "{text}"
    );
    assert!(text.contains("cairn_node_chunks 1"), "{text}");
    node.stop().await;
}

/// A real `cairn-node` process: SIGKILL right after acknowledged writes,
/// restart, and every acknowledged chunk is there.
#[tokio::test]
async fn a_sigkilled_node_process_keeps_every_acknowledged_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids: Vec<ChunkId> = (0..10).map(chunk).collect();
    let data = blocks(4, 4096, 1000, 11);

    let (mut child, client) = spawn_node(dir.path());
    for id in &ids {
        client.put_chunk(id, 4096, &data).await.expect("put");
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let (mut child, client) = spawn_node(dir.path());
    for id in &ids {
        assert_eq!(client.read_blocks(id, None).await.expect("read"), data);
        assert!(
            client
                .verify(id, false)
                .await
                .expect("verify")
                .corrupt_blocks
                .is_empty()
        );
    }
    // SIGTERM stops it gracefully.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful exit, got {status}");
}

fn spawn_node(data_dir: &Path) -> (std::process::Child, NodeClient) {
    let addr_file = data_dir.join("addr");
    let _ = std::fs::remove_file(&addr_file);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-node"))
        .args([
            "--id",
            "node-p",
            "--rack",
            "rack-p",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--addr-file")
        .arg(&addr_file)
        .env("CAIRN_CLUSTER_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn cairn-node");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Ok(mut file) = std::fs::File::open(&addr_file) {
            let mut text = String::new();
            if file.read_to_string(&mut text).is_ok() && !text.is_empty() {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "cairn-node did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        child,
        NodeClient::standalone(&format!("http://{addr}"), &secret()),
    )
}

/// Garbage collection deletes a chunk only if its file was last written
/// before the chunk became garbage: a chunk written again since (repair put
/// it back on this node) is kept, with `conflict`.
#[tokio::test]
async fn a_conditional_delete_keeps_a_chunk_written_after_the_cutoff() {
    use cairn_node_api::Deletion;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(4);
    let before_write = cairn_service::now_ms().saturating_sub(5_000);
    node.client
        .put_chunk(&id, 1000, &blocks(2, 1000, 10, 4))
        .await
        .expect("put");
    assert_eq!(
        node.client
            .delete_unless_modified_after(&id, before_write)
            .await
            .expect("delete"),
        Deletion::WrittenSince
    );
    assert!(node.client.head(&id).await.expect("head").is_some(), "kept");
    let after_write = cairn_service::now_ms() + 1_000;
    assert_eq!(
        node.client
            .delete_unless_modified_after(&id, after_write)
            .await
            .expect("delete"),
        Deletion::Deleted
    );
    assert_eq!(
        node.client
            .delete_unless_modified_after(&id, after_write)
            .await
            .expect("delete"),
        Deletion::Absent
    );
    assert_eq!(node.client.status().await.expect("status").used_bytes, 0);
    node.stop().await;
}

/// A real `cairn-node` process SIGKILLed in the middle of a chunk write:
/// the crash leaves its temp file, which no listing or read ever shows, and
/// the restarted node removes it before it serves.
#[tokio::test]
async fn a_node_process_killed_mid_write_shows_no_partial_chunk_and_cleans_up_on_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = chunk(6);
    let (mut child, client) = spawn_node(dir.path());
    let addr = client_addr(dir.path());
    let (frames, _) = frame_blocks(&blocks(8, 4096, 4096, 9));
    let body: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let socket = put_half_a_chunk(addr, &id, &body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while temp_files(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "the node never started writing");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Mid-write, the chunk is invisible.
    assert_eq!(client.head(&id).await.expect("head"), None);
    assert!(client.list(None, 10).await.expect("list").chunks.is_empty());
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    drop(socket);
    assert_eq!(
        temp_files(dir.path()).len(),
        1,
        "the crash left its temp file"
    );

    let (mut child, client) = spawn_node(dir.path());
    assert!(temp_files(dir.path()).is_empty(), "removed at start");
    assert_eq!(client.head(&id).await.expect("head"), None);
    assert!(client.list(None, 10).await.expect("list").chunks.is_empty());
    assert_eq!(client.status().await.expect("status").chunk_count, 0);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Starts a chunk PUT over a raw connection and sends half of `body`: the
/// node is left mid-write for as long as the socket lives.
fn put_half_a_chunk(addr: SocketAddr, id: &ChunkId, body: &[u8]) -> TcpStream {
    let mut socket = TcpStream::connect(addr).expect("connect");
    write!(
        socket,
        "PUT /chunks/{}/{}?block_size=4096 HTTP/1.1\r\nhost: node\r\nx-cairn-secret: {SECRET}\r\ncontent-length: {}\r\n\r\n",
        id.blob,
        id.index,
        body.len()
    )
    .expect("head");
    socket
        .write_all(&body[..body.len() / 2])
        .expect("half body");
    socket.flush().expect("flush");
    socket
}

/// The address `spawn_node` wrote for the node in `data_dir`.
fn client_addr(data_dir: &Path) -> SocketAddr {
    std::fs::read_to_string(data_dir.join("addr"))
        .expect("addr file")
        .trim()
        .parse()
        .expect("socket address")
}

#[tokio::test]
async fn short_circuit_reads_equal_http_reads_and_the_receiver_catches_a_flipped_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(4);
    let data = blocks(6, 1024, 300, 9);
    node.client.put_chunk(&id, 1024, &data).await.expect("put");

    let stream = node.local.get_blocks(&id, None).await.expect("get");
    assert!(stream.is_local(), "{stream:?}");
    for (start, end) in [(0, 6), (0, 1), (2, 4), (5, 6), (3, 3)] {
        let got = node
            .local
            .read_blocks(&id, Some(start..end))
            .await
            .expect("range");
        assert_eq!(got, data[start as usize..end as usize], "{start}..{end}");
    }
    let err = node
        .local
        .read_blocks(&id, Some(4..7))
        .await
        .expect_err("past end");
    assert_eq!(err.status(), Some(416), "{err}");
    let err = node
        .local
        .read_blocks(&chunk(4), None)
        .await
        .expect_err("absent");
    assert!(err.is_not_found(), "{err}");

    // A flipped byte in block 3: the node hands over the file and the
    // stored hashes, and the reader's own hash refuses the block.
    let path = node.chunk_file(&id);
    let mut bytes = std::fs::read(&path).expect("read chunk file");
    bytes[64 + 3 * 1024 + 7] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write chunk file");
    let mut stream = node.local.get_blocks(&id, None).await.expect("get");
    for expected in 0..3 {
        let (index, block) = stream.next_block().await.expect("intact").expect("some");
        assert_eq!((index, &block), (expected, &data[expected as usize]));
    }
    let err = stream.next_block().await.expect_err("corrupt block");
    assert!(
        matches!(err, NodeError::HashMismatch { block: 3, .. }),
        "{err}"
    );
    assert_eq!(
        node.local.read_blocks(&id, Some(4..6)).await.expect("ok"),
        data[4..6]
    );

    let metrics = node.client.metrics().await.expect("metrics");
    assert!(
        metrics.contains("cairn_node_local_reads_total{result=\"granted\"} 8"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_node_local_reads_total{result=\"refused\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_node_local_reads_total{result=\"not_found\"} 1"),
        "{metrics}"
    );
    node.stop().await;
}

#[tokio::test]
async fn the_local_read_socket_is_private_requires_the_secret_and_goes_with_the_node() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(1);
    let data = blocks(2, 512, 512, 1);
    node.client.put_chunk(&id, 512, &data).await.expect("put");

    let socket = dir.path().join(local::SOCKET_NAME);
    let meta = std::fs::metadata(&socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let status = node.client.status().await.expect("status");
    let endpoint = status.local.expect("registered endpoint");
    assert_eq!(endpoint.host, local::host_identity());
    assert_eq!(
        Path::new(&endpoint.socket),
        std::path::absolute(&socket).expect("absolute path")
    );

    let stranger = LocalNode::new(
        &socket,
        cairn_service::ClusterSecret::new("another-cluster").expect("secret"),
        Duration::from_secs(3),
    );
    match stranger.open(&id, None).await {
        Err(LocalError::Failed(err)) => {
            assert_eq!(err.status(), Some(401), "{err}");
            assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{err}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Stopped, the node removes its socket; a client given it falls back
    // to HTTP when the socket is gone (here: to a node on another port).
    node.stop().await;
    assert!(!socket.exists(), "socket left behind");
    let node = TestNode::start_configured(dir.path(), |config| config.short_circuit = false).await;
    assert!(!socket.exists(), "short_circuit = false binds no socket");
    assert_eq!(node.client.status().await.expect("status").local, None);
    let mut stream = node.local.get_blocks(&id, None).await.expect("fallback");
    assert!(!stream.is_local());
    assert_eq!(
        stream.next_block().await.expect("block").expect("some").1,
        data[0]
    );
    node.stop().await;
}

#[tokio::test]
async fn short_circuit_writes_store_exactly_what_an_http_put_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    for (count, block_size, last) in [
        (5, 4096, 100),
        (1, 1 << 20, 1 << 20),
        (1, 512, 7),
        (0, 512, 0),
    ] {
        let data = blocks(count, block_size, last, 11);
        let (over_http, local) = (chunk(0), chunk(1));
        let a = node
            .client
            .put_chunk(&over_http, block_size as u32, &data)
            .await
            .expect("http put");
        let b = node
            .local
            .put_chunk(&local, block_size as u32, &data)
            .await
            .expect("local put");
        assert_eq!(
            (a.blocks, a.data_len, a.merkle_root),
            (b.blocks, b.data_len, b.merkle_root)
        );
        assert_eq!(
            node.client.read_blocks(&local, None).await.expect("read"),
            data
        );
        let report = node.client.verify(&local, false).await.expect("verify");
        assert!(report.corrupt_blocks.is_empty() && report.trailer_intact);
        assert_eq!(report.merkle_root, a.merkle_root);
        // Same layout but the header: a local write never uses direct I/O.
        let http_len = std::fs::metadata(node.chunk_file(&over_http))
            .expect("http chunk file")
            .len();
        let local_len = std::fs::metadata(node.chunk_file(&local))
            .expect("local chunk file")
            .len();
        assert!(local_len <= http_len, "{local_len} > {http_len}");
    }
    assert!(temp_files(dir.path()).is_empty());
    let metrics = node.client.metrics().await.expect("metrics");
    assert!(
        metrics.contains("cairn_node_local_writes_total{result=\"sealed\"} 4"),
        "{metrics}"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_short_circuit_writer_that_stops_before_the_seal_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let id = chunk(2);
    let (frames, _) = frame_blocks(&blocks(4, 4096, 4096, 3));
    // Two frames (one block), then the producer hangs: the writer is
    // abandoned mid-chunk, like a gateway whose client went away.
    let first_block =
        futures_util::stream::iter(frames.into_iter().take(2).map(Ok::<_, std::io::Error>));
    let stream = futures_util::StreamExt::chain(first_block, futures_util::stream::pending());
    let client = node.local.clone();
    let writer = tokio::spawn(async move { client.put_chunk_stream(&id, 4096, stream).await });
    // The node created the chunk's temporary file for the writer…
    let deadline = Instant::now() + Duration::from_secs(5);
    while temp_files(dir.path()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !temp_files(dir.path()).is_empty(),
        "the node never created the chunk"
    );
    // …and drops it once the writer goes away before the seal.
    writer.abort();
    assert!(
        writer.await.is_err_and(|e| e.is_cancelled()),
        "the write cannot have finished"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !temp_files(dir.path()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(temp_files(dir.path()).is_empty(), "temp file left behind");
    assert_eq!(node.client.head(&id).await.expect("head"), None);
    assert_eq!(node.client.status().await.expect("status").chunk_count, 0);
    node.stop().await;
}
