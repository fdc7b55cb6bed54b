//! Interleaved A/B comparison of Cairn's codec path against
//! `reed-solomon-erasure` called directly. On a small shared machine two
//! separate criterion runs drift by ±20%; alternating short rounds of each
//! side and taking the median of the per-round ratios cancels that drift.
//!
//! `cargo run --release -p cairn-core --example codec_ab`

use std::hint::black_box;

use cairn_core::codec::{CodecParams, ErasureCodec};
use reed_solomon_erasure::galois_8::ReedSolomon;

#[path = "support/ab.rs"]
mod ab;

/// Median GB/s of each side and the median per-round ratio (Cairn / crate).
fn compare(bytes: usize, cairn: &mut dyn FnMut(), krate: &mut dyn FnMut()) -> (f64, f64, f64) {
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for (a, b) in ab::alternate(cairn, krate) {
        ours.push(bytes as f64 / a / 1e9);
        theirs.push(bytes as f64 / b / 1e9);
        ratios.push(b / a);
    }
    (
        ab::median(&mut ours),
        ab::median(&mut theirs),
        ab::median(&mut ratios),
    )
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 + (i >> 9)) as u8).collect()
}

fn main() {
    println!("| stage | case | Cairn GB/s | crate GB/s | median Cairn/crate |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for (k, m) in [(8usize, 4usize), (4, 2)] {
        for block in [64 << 10, 256 << 10, 1 << 20] {
            let case = format!("{k}+{m}/{}KiB", block >> 10);
            let bytes = k * block;
            let codec =
                ErasureCodec::new(CodecParams::new(k, m, block).expect("params")).expect("codec");
            let rs = ReedSolomon::new(k, m).expect("rs");
            let mut stripe = codec.stripe_buffer();
            stripe.fill_from(&pattern(bytes)).expect("fill");
            let mut shards: Vec<Vec<u8>> = (0..k + m)
                .map(|i| pattern(block + i)[i..].to_vec())
                .collect();

            let (a, b, r) = compare(
                bytes,
                &mut || codec.encode(black_box(&mut stripe)).expect("encode"),
                &mut || rs.encode(black_box(&mut shards)).expect("encode"),
            );
            println!("| encode | {case} | {a:.2} | {b:.2} | {r:.3} |");

            codec.encode(&mut stripe).expect("encode");
            let mut shards: Vec<Vec<u8>> = (0..k + m).map(|i| stripe.block(i).to_vec()).collect();
            for lost in [1usize, 2] {
                let mut present = vec![true; k + m];
                present[..lost].fill(false);
                let (a, b, r) = compare(
                    bytes,
                    &mut || {
                        codec
                            .reconstruct(black_box(&mut stripe), &present, true)
                            .expect("rebuild")
                    },
                    &mut || {
                        let mut view: Vec<(&mut [u8], bool)> = shards
                            .iter_mut()
                            .enumerate()
                            .map(|(i, s)| (s.as_mut_slice(), i >= lost))
                            .collect();
                        rs.reconstruct_data(black_box(&mut view)).expect("rebuild")
                    },
                );
                println!("| rebuild{lost} | {case} | {a:.2} | {b:.2} | {r:.3} |");
            }
        }
    }
}
