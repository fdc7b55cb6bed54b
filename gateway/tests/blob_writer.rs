//! The write path against real storage nodes on ephemeral ports.

use std::sync::Arc;

use bytes::Bytes;
use cairn_core::codec::{CodecParams, ErasureCodec};
use cairn_core::ids::{BlobId, ChunkId};
use cairn_core::layout::BlobLayout;
use cairn_core::manifest::ChunkState;
use cairn_gateway::blob_writer::{ChunkTarget, WriteError, write_blob};
use md5::Digest;

mod common;

use common::{body, data, start_nodes};

/// Reads the data chunks back and reassembles the blob.
async fn read_back(
    codec: &ErasureCodec,
    targets: &[ChunkTarget],
    blob: BlobId,
    size: u64,
) -> Vec<u8> {
    let params = codec.params();
    let layout = BlobLayout::new(size, params.k, params.block_size);
    let mut chunks = Vec::new();
    for (index, target) in targets.iter().enumerate().take(params.k) {
        chunks.push(
            target
                .client
                .read_blocks(&ChunkId::new(blob, index as u8), None)
                .await
                .expect("read chunk"),
        );
    }
    let mut out = Vec::new();
    for stripe in 0..layout.stripe_count() {
        let mut stripe_bytes = Vec::new();
        for chunk in &chunks {
            stripe_bytes.extend_from_slice(&chunk[stripe as usize]);
        }
        stripe_bytes.truncate(layout.stripe_data_len(stripe));
        out.extend(stripe_bytes);
    }
    out
}

#[tokio::test]
async fn blobs_of_every_shape_are_written_to_all_chunks_and_read_back() {
    let nodes = start_nodes(6).await;
    let codec =
        Arc::new(ErasureCodec::new(CodecParams::new(4, 2, 1024).expect("params")).expect("codec"));
    for size in [0usize, 1, 4095, 4096, 4097, 100_000] {
        let bytes = data(size, size as u64);
        let blob = BlobId::random();
        let written = write_blob(codec.clone(), blob, nodes.targets.clone(), body(&bytes), 6)
            .await
            .expect("write");
        assert_eq!(written.manifest.size, size as u64);
        assert_eq!(
            written.md5,
            <[u8; 16]>::from(md5::Md5::digest(&bytes)),
            "size {size}"
        );
        assert!(
            written
                .manifest
                .chunks
                .iter()
                .all(|c| c.state == ChunkState::Stored)
        );
        assert_eq!(written.manifest.root, written.manifest.computed_root());
        for (chunk, target) in written.manifest.chunks.iter().zip(&nodes.targets) {
            let report = target
                .client
                .verify(&ChunkId::new(blob, chunk.index), false)
                .await
                .expect("verify");
            assert_eq!(
                report.merkle_root, chunk.merkle_root,
                "size {size} chunk {}",
                chunk.index
            );
        }
        assert_eq!(
            read_back(&codec, &nodes.targets, blob, size as u64).await,
            bytes,
            "size {size}"
        );
    }
}

#[tokio::test]
async fn a_dead_node_is_recorded_missing_when_the_quorum_is_met() {
    let mut nodes = start_nodes(6).await;
    nodes.kill(5);
    let codec =
        Arc::new(ErasureCodec::new(CodecParams::new(4, 2, 1024).expect("params")).expect("codec"));
    let bytes = data(50_000, 7);

    let blob = BlobId::random();
    let written = write_blob(codec.clone(), blob, nodes.targets.clone(), body(&bytes), 5)
        .await
        .expect("quorum of 5 met");
    let states: Vec<ChunkState> = written.manifest.chunks.iter().map(|c| c.state).collect();
    assert_eq!(states[..5], [ChunkState::Stored; 5]);
    assert_eq!(states[5], ChunkState::Missing);
    assert_eq!(read_back(&codec, &nodes.targets, blob, 50_000).await, bytes);

    let blob = BlobId::random();
    let err = write_blob(codec.clone(), blob, nodes.targets.clone(), body(&bytes), 6)
        .await
        .expect_err("quorum of 6 not met");
    assert!(
        matches!(
            err,
            WriteError::Quorum {
                stored: 5,
                total: 6,
                quorum: 6
            }
        ),
        "{err}"
    );
    for target in &nodes.targets[..5] {
        for index in 0..6 {
            let chunk = ChunkId::new(blob, index);
            assert!(
                target.client.head(&chunk).await.expect("head").is_none(),
                "failed write left {chunk}"
            );
        }
    }
}

#[tokio::test]
async fn a_body_that_fails_midway_stores_nothing() {
    let nodes = start_nodes(6).await;
    let codec =
        Arc::new(ErasureCodec::new(CodecParams::new(4, 2, 1024).expect("params")).expect("codec"));
    let mut pieces: Vec<Result<Bytes, std::io::Error>> =
        (0..20).map(|i| Ok(Bytes::from(data(3000, i)))).collect();
    pieces.push(Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "client went away",
    )));
    let blob = BlobId::random();
    let err = write_blob(
        codec,
        blob,
        nodes.targets.clone(),
        futures_util::stream::iter(pieces),
        5,
    )
    .await
    .expect_err("body failed");
    assert!(matches!(err, WriteError::Body(_)), "{err}");
    for target in &nodes.targets {
        for index in 0..6 {
            let chunk = ChunkId::new(blob, index);
            assert!(
                target.client.head(&chunk).await.expect("head").is_none(),
                "partial chunk {chunk} stored"
            );
        }
    }
}
