//! Memory of the data path: writes a generated blob (default 2 GiB) to 12
//! in-process storage nodes (8+4, 256 KiB blocks), reads it back streaming,
//! and reports peak RSS. Memory must stay bounded by stripe buffers and
//! queues, not by the object size.
//!
//! `cargo run --release -p cairn-gateway --example put_rss -- [GiB]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::codec::{CodecParams, ErasureCodec};
use cairn_core::ids::BlobId;
use cairn_gateway::blob_reader::{DEFAULT_HEDGE_AFTER, read_blob};
use cairn_gateway::blob_writer::write_blob;
use futures_util::StreamExt;
use md5::Digest;

// The same in-process nodes the data-path tests use.
#[path = "../tests/common/mod.rs"]
mod common;

const PIECE: usize = 1 << 20;

/// (current RSS, peak RSS) in MiB, from /proc/self/status.
fn rss_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Deterministic, incompressible-looking bytes without storing them.
fn piece(index: u64) -> Bytes {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(PIECE);
    while out.len() < PIECE {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(out)
}

#[tokio::main]
async fn main() {
    let gib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2);
    let pieces = gib * 1024;
    // The nodes keep their temp dirs alive for the whole run.
    let nodes = common::start_nodes(12).await;
    let targets = nodes.targets.clone();
    let codec = Arc::new(ErasureCodec::new(CodecParams::DEFAULT).expect("codec"));
    let (start_rss, _) = rss_mib();
    println!("{gib} GiB blob, 8+4, 256 KiB blocks; RSS before: {start_rss} MiB");

    // Sample memory while the write runs.
    let sampler = tokio::spawn(async {
        let mut samples = Vec::new();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            samples.push(rss_mib().0);
            if samples.len() % 10 == 0 {
                println!("  RSS now {} MiB", rss_mib().0);
            }
        }
    });
    let mut expected = md5::Md5::new();
    let body_pieces: Vec<u64> = (0..pieces).collect();
    let body = futures_util::stream::iter(body_pieces).map(|i| Ok::<_, std::io::Error>(piece(i)));
    for i in 0..pieces {
        expected.update(piece(i));
    }
    let expected: [u8; 16] = expected.finalize().into();
    let started = Instant::now();
    let blob = BlobId::random();
    let written = write_blob(codec.clone(), blob, targets.clone(), Box::pin(body), 12)
        .await
        .expect("write");
    let put_secs = started.elapsed().as_secs_f64();
    let (_, peak_put) = rss_mib();
    assert_eq!(written.md5, expected, "MD5 of what was written");
    println!(
        "PUT  {gib} GiB in {put_secs:.1} s ({:.0} MB/s), peak RSS {peak_put} MiB",
        (gib << 30) as f64 / put_secs / 1e6
    );

    let started = Instant::now();
    let mut stream = read_blob(
        codec,
        written.manifest.clone(),
        targets,
        0..written.manifest.size,
        DEFAULT_HEDGE_AFTER,
    )
    .expect("read");
    let mut got = md5::Md5::new();
    while let Some(piece) = stream.next().await {
        got.update(piece.expect("piece"));
    }
    let get_secs = started.elapsed().as_secs_f64();
    let (_, peak_all) = rss_mib();
    sampler.abort();
    assert_eq!(
        <[u8; 16]>::from(got.finalize()),
        expected,
        "MD5 of what was read"
    );
    println!(
        "GET  {gib} GiB in {get_secs:.1} s ({:.0} MB/s), peak RSS over the whole run {peak_all} MiB",
        (gib << 30) as f64 / get_secs / 1e6
    );
}
