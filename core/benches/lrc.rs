//! LRC against Reed-Solomon at equal storage overhead (16 blocks for 12 of
//! data: LRC(12,2,2) and RS(12,4)), per stripe of 256 KiB blocks:
//! - `lrc/encode`: all parities of a stripe;
//! - `lrc/repair1`: one lost data block — LRC reads its group (6 blocks),
//!   RS reads 12;
//! - `lrc/repair2`: two lost data blocks of one group — LRC must decode
//!   globally (reads 12), as RS does.
//!
//! Throughput is data bytes of the stripe (k × block). Run with
//! `cargo bench -p cairn-core --bench lrc`; see BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use cairn_core::lrc::{Lrc, LrcParams};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reed_solomon_erasure::galois_8::ReedSolomon;

const BLOCK: usize = 256 * 1024;
const LRC: LrcParams = LrcParams { k: 12, l: 2, r: 2 };

fn pattern(len: usize, salt: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 131 + (i >> 9) + salt * 7) as u8)
        .collect()
}

fn stripe() -> (Lrc, Vec<Vec<u8>>) {
    let lrc = Lrc::new(LRC).expect("lrc");
    let data: Vec<Vec<u8>> = (0..LRC.k).map(|i| pattern(BLOCK, i)).collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity = vec![vec![0u8; BLOCK]; LRC.l + LRC.r];
    let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
    lrc.encode(&refs, &mut outs).expect("encode");
    (lrc, data.into_iter().chain(parity).collect())
}

fn rs_shards() -> (ReedSolomon, Vec<Vec<u8>>) {
    let rs = ReedSolomon::new(12, 4).expect("rs");
    let mut shards: Vec<Vec<u8>> = (0..16).map(|i| pattern(BLOCK, i)).collect();
    rs.encode(&mut shards).expect("encode");
    (rs, shards)
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("lrc");
    group.throughput(Throughput::Bytes((LRC.k * BLOCK) as u64));

    let (lrc, blocks) = stripe();
    let data: Vec<&[u8]> = blocks[..LRC.k].iter().map(Vec::as_slice).collect();
    let mut parity = vec![vec![0u8; BLOCK]; LRC.l + LRC.r];
    group.bench_function(BenchmarkId::new("encode", "LRC(12,2,2)"), |b| {
        b.iter(|| {
            let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            lrc.encode(black_box(&data), &mut outs).expect("encode")
        })
    });
    let (rs, mut shards) = rs_shards();
    group.bench_function(BenchmarkId::new("encode", "RS(12,4)"), |b| {
        b.iter(|| rs.encode(black_box(&mut shards)).expect("encode"))
    });

    // Each side is handed only the blocks it reads (a repair fetches those
    // and no others): LRC its read set, RS any 12 survivors.
    for (name, lost) in [("repair1", vec![0usize]), ("repair2", vec![0usize, 1])] {
        let available: Vec<bool> = (0..LRC.n()).map(|i| !lost.contains(&i)).collect();
        let reads = lrc
            .read_set(lost[lost.len() - 1], &available)
            .expect("decodable");
        let given: Vec<Option<&[u8]>> = (0..LRC.n())
            .map(|i| reads.contains(&i).then(|| blocks[i].as_slice()))
            .collect();
        let target = lost[lost.len() - 1];
        group.bench_function(
            BenchmarkId::new(name, format!("LRC(12,2,2) reads {}", reads.len())),
            |b| b.iter(|| lrc.rebuild(target, black_box(&given)).expect("repair")),
        );
        let survivors: Vec<usize> = (0..16).filter(|i| !lost.contains(i)).take(12).collect();
        group.bench_function(BenchmarkId::new(name, "RS(12,4) reads 12"), |b| {
            b.iter(|| {
                // In place, as the codec bench's `crate` side: the lost
                // shards' buffers are overwritten.
                let mut view: Vec<(&mut [u8], bool)> = shards
                    .iter_mut()
                    .enumerate()
                    .map(|(i, s)| (s.as_mut_slice(), survivors.contains(&i)))
                    .collect();
                rs.reconstruct_data(black_box(&mut view)).expect("repair")
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = lrc;
    config = config();
    targets = benches
}
criterion_main!(lrc);
