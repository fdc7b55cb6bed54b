//! The read path against real storage nodes: healthy, degraded, corrupt.

mod common;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::codec::{CodecParams, ErasureCodec};
use cairn_core::ids::{BlobId, ChunkId};
use cairn_core::manifest::BlobManifest;
use cairn_gateway::blob_reader::{ReadError, read_blob};
use cairn_gateway::blob_writer::{ChunkTarget, write_blob};
use common::{Nodes, body, data, start_nodes};
use futures_util::StreamExt;

fn codec() -> Arc<ErasureCodec> {
    Arc::new(ErasureCodec::new(CodecParams::new(4, 2, 1024).expect("params")).expect("codec"))
}

async fn put(nodes: &Nodes, bytes: &[u8]) -> BlobManifest {
    write_blob(
        codec(),
        BlobId::random(),
        nodes.targets.clone(),
        body(bytes),
        6,
    )
    .await
    .expect("write")
    .manifest
}

async fn get(
    manifest: &BlobManifest,
    sources: &[ChunkTarget],
    range: Range<u64>,
) -> Result<Vec<u8>, ReadError> {
    let mut stream = read_blob(
        codec(),
        manifest.clone(),
        sources.to_vec(),
        range,
        Duration::from_millis(100),
    )?;
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

/// Ranges around block and stripe edges (stripe = 4 KiB of data here).
fn ranges(size: u64) -> Vec<Range<u64>> {
    let mut out = vec![0..size, 0..0, 0..1, size.saturating_sub(1)..size];
    for (a, b) in [
        (1000, 1030),
        (1020, 1030),
        (4090, 4100),
        (100, 9000),
        (5000, 13000),
    ] {
        if b <= size {
            out.push(a..b);
        }
    }
    out
}

#[tokio::test]
async fn healthy_reads_return_exactly_the_requested_bytes() {
    let nodes = start_nodes(6).await;
    for size in [1usize, 4097, 100_000] {
        let bytes = data(size, 3);
        let manifest = put(&nodes, &bytes).await;
        for range in ranges(size as u64) {
            let got = get(&manifest, &nodes.targets, range.clone())
                .await
                .expect("read");
            assert_eq!(
                got,
                &bytes[range.start as usize..range.end as usize],
                "size {size} range {range:?}"
            );
        }
    }
}

#[tokio::test]
async fn any_two_dead_nodes_are_read_around() {
    let nodes = start_nodes(6).await;
    let bytes = data(100_000, 5);
    let manifest = put(&nodes, &bytes).await;
    for dead in [(0, 1), (0, 5), (2, 3), (4, 5)] {
        let mut degraded = Nodes {
            targets: nodes.targets.clone(),
            dirs: Vec::new(),
        };
        degraded.kill(dead.0);
        degraded.kill(dead.1);
        for range in ranges(100_000) {
            let got = get(&manifest, &degraded.targets, range.clone())
                .await
                .expect("degraded read");
            assert_eq!(
                got,
                &bytes[range.start as usize..range.end as usize],
                "dead {dead:?} range {range:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_corrupt_block_on_disk_is_reconstructed_not_served() {
    let nodes = start_nodes(6).await;
    let bytes = data(40_000, 9);
    let manifest = put(&nodes, &bytes).await;
    // Flip a byte in block 3 of data chunk 1 (header is 64 bytes).
    let path = nodes.chunk_file(1, &ChunkId::new(manifest.blob, 1));
    let mut file = std::fs::read(&path).expect("chunk file");
    file[64 + 3 * 1024 + 10] ^= 0xFF;
    std::fs::write(&path, file).expect("write");
    assert_eq!(
        get(&manifest, &nodes.targets, 0..40_000)
            .await
            .expect("read"),
        bytes
    );
    // A range inside the corrupt block alone.
    let range = 3 * 4096 + 1024..3 * 4096 + 1100;
    assert_eq!(
        get(&manifest, &nodes.targets, range.clone())
            .await
            .expect("read"),
        &bytes[range.start as usize..range.end as usize]
    );
}

#[tokio::test]
async fn more_than_m_failures_are_an_error_never_wrong_data() {
    let mut nodes = start_nodes(6).await;
    let bytes = data(20_000, 11);
    let manifest = put(&nodes, &bytes).await;
    nodes.kill(0);
    nodes.kill(3);
    nodes.kill(5);
    let err = get(&manifest, &nodes.targets, 0..20_000)
        .await
        .expect_err("3 of 6 lost");
    assert!(matches!(err, ReadError::Unrecoverable { .. }), "{err}");
}

#[tokio::test]
async fn a_degraded_write_reads_back_from_its_stored_chunks() {
    let mut nodes = start_nodes(6).await;
    nodes.kill(2);
    let bytes = data(30_000, 13);
    let written = write_blob(
        codec(),
        BlobId::random(),
        nodes.targets.clone(),
        body(&bytes),
        5,
    )
    .await
    .expect("write with one node down");
    assert_eq!(
        get(&written.manifest, &nodes.targets, 0..30_000)
            .await
            .expect("read"),
        bytes
    );
}

#[tokio::test]
async fn a_range_past_the_end_is_refused() {
    let nodes = start_nodes(6).await;
    let manifest = put(&nodes, &data(100, 1)).await;
    assert!(matches!(
        get(&manifest, &nodes.targets, 50..101).await,
        Err(ReadError::Range { .. })
    ));
}

#[tokio::test]
async fn a_hung_node_is_hedged_around() {
    let mut nodes = start_nodes(6).await;
    let bytes = data(60_000, 17);
    let manifest = put(&nodes, &bytes).await;
    nodes.hang(1).await; // a data chunk: every full read needs it on the healthy path
    for range in [0..60_000, 1024..1100, 20_000..30_000] {
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            get(&manifest, &nodes.targets, range.clone()),
        );
        let got = read
            .await
            .expect("hedging keeps a hung node from stalling the read")
            .expect("read");
        assert_eq!(
            got,
            &bytes[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
}
