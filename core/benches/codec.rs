//! Per-byte stages of the data path, each next to its reference:
//! - `encode/*` and `rebuild*/*`: Cairn's `ErasureCodec` on a reused
//!   `StripeBuffer` (`cairn`) against `reed-solomon-erasure` called directly on
//!   separately allocated shards (`crate`). Cairn's path must stay within 90%
//!   of the crate's own throughput.
//! - `blake3`, `merkle`, `md5`, `memcpy`: the other per-byte costs.
//!
//! Throughput is in data bytes (k × block size for coding). Run with
//! `cargo bench -p cairn-core --bench codec`; see BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use cairn_core::codec::{CodecParams, ErasureCodec};
use cairn_core::integrity::{BlockHash, hash_block, merkle_root};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use md5::Digest;
use reed_solomon_erasure::galois_8::ReedSolomon;

const KIB: usize = 1024;
const CODES: [(usize, usize); 2] = [(8, 4), (4, 2)];
const BLOCK_SIZES: [usize; 3] = [64 * KIB, 256 * KIB, 1024 * KIB];

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 + (i >> 9)) as u8).collect()
}

fn label(k: usize, m: usize, block: usize) -> String {
    format!("{k}+{m}/{}KiB", block / KIB)
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (k, m) in CODES {
        for block in BLOCK_SIZES {
            group.throughput(Throughput::Bytes((k * block) as u64));
            let name = label(k, m, block);
            let codec =
                ErasureCodec::new(CodecParams::new(k, m, block).expect("params")).expect("codec");
            let mut stripe = codec.stripe_buffer();
            stripe.fill_from(&pattern(k * block)).expect("fill");
            group.bench_function(BenchmarkId::new("cairn", &name), |b| {
                b.iter(|| codec.encode(black_box(&mut stripe)).expect("encode"))
            });
            let rs = ReedSolomon::new(k, m).expect("rs");
            let mut shards: Vec<Vec<u8>> = (0..k + m)
                .map(|i| pattern(block + i)[i..].to_vec())
                .collect();
            group.bench_function(BenchmarkId::new("crate", &name), |b| {
                b.iter(|| rs.encode(black_box(&mut shards)).expect("encode"))
            });
        }
    }
    group.finish();
}

fn rebuild(c: &mut Criterion) {
    for lost in [1usize, 2] {
        let mut group = c.benchmark_group(format!("rebuild{lost}"));
        for (k, m) in CODES {
            for block in BLOCK_SIZES {
                group.throughput(Throughput::Bytes((k * block) as u64));
                let name = label(k, m, block);
                let codec = ErasureCodec::new(CodecParams::new(k, m, block).expect("params"))
                    .expect("codec");
                let mut stripe = codec.stripe_buffer();
                stripe.fill_from(&pattern(k * block)).expect("fill");
                codec.encode(&mut stripe).expect("encode");
                let mut present = vec![true; k + m];
                present[..lost].fill(false);
                group.bench_function(BenchmarkId::new("cairn", &name), |b| {
                    b.iter(|| {
                        codec
                            .reconstruct(black_box(&mut stripe), &present, true)
                            .expect("rebuild")
                    })
                });
                let rs = ReedSolomon::new(k, m).expect("rs");
                let mut shards: Vec<Vec<u8>> =
                    (0..k + m).map(|i| stripe.block(i).to_vec()).collect();
                group.bench_function(BenchmarkId::new("crate", &name), |b| {
                    b.iter(|| {
                        let mut view: Vec<(&mut [u8], bool)> = shards
                            .iter_mut()
                            .enumerate()
                            .map(|(i, s)| (s.as_mut_slice(), i >= lost))
                            .collect();
                        rs.reconstruct_data(black_box(&mut view)).expect("rebuild")
                    })
                });
            }
        }
        group.finish();
    }
}

fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("blake3");
    for block in BLOCK_SIZES {
        let data = pattern(block);
        group.throughput(Throughput::Bytes(block as u64));
        group.bench_function(format!("{}KiB", block / KIB), |b| {
            b.iter(|| hash_block(black_box(&data)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("merkle");
    for leaves in [128usize, 4096] {
        let hashes: Vec<BlockHash> = (0..leaves).map(|i| hash_block(&i.to_le_bytes())).collect();
        group.throughput(Throughput::Elements(leaves as u64));
        group.bench_function(format!("{leaves}-leaves"), |b| {
            b.iter(|| merkle_root(black_box(&hashes)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("md5");
    let data = pattern(1024 * KIB);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("1MiB", |b| b.iter(|| md5::Md5::digest(black_box(&data))));
    group.finish();

    let mut group = c.benchmark_group("memcpy");
    let mut target = vec![0u8; data.len()];
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("1MiB", |b| {
        b.iter(|| target.copy_from_slice(black_box(&data)))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = encode, rebuild, hashing
}
criterion_main!(benches);
