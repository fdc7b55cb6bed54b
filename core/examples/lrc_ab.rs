//! Interleaved A/B of LRC(12,2,2) against RS(12,4) (equal overhead: 16
//! blocks for 12 of data) through the codec the data path uses
//! (`ErasureCodec`), 256 KiB blocks: encoding a stripe, and repairing one
//! lost block the way the scrubber does (`read_set`, then `rebuild_block`).
//! Rounds of each side alternate and the median per-round ratio is kept, as
//! in `codec_ab`, so the VM's drift cancels.
//!
//! `cargo run --release -p cairn-core --example lrc_ab`

use std::hint::black_box;

use cairn_core::codec::{CodecParams, ErasureCodec, StripeBuffer};

const BLOCK: usize = 256 << 10;

#[path = "support/ab.rs"]
mod ab;

/// Median µs per call of each side and the median per-round ratio (RS ÷ LRC).
fn compare(lrc: &mut dyn FnMut(), rs: &mut dyn FnMut()) -> (f64, f64, f64) {
    let (mut a_times, mut b_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for (a, b) in ab::alternate(lrc, rs) {
        a_times.push(a * 1e6);
        b_times.push(b * 1e6);
        ratios.push(b / a);
    }
    (
        ab::median(&mut a_times),
        ab::median(&mut b_times),
        ab::median(&mut ratios),
    )
}

fn coded(params: CodecParams) -> (ErasureCodec, StripeBuffer) {
    let codec = ErasureCodec::new(params).expect("codec");
    let mut stripe = codec.stripe_buffer();
    let data: Vec<u8> = (0..params.stripe_capacity())
        .map(|i| (i * 131 + (i >> 9)) as u8)
        .collect();
    stripe.fill_from(&data).expect("fill");
    codec.encode(&mut stripe).expect("encode");
    (codec, stripe)
}

/// Which blocks a repair of `lost` reads (all others available).
fn read_mask(codec: &ErasureCodec, lost: usize) -> Vec<bool> {
    let total = codec.params().total();
    let mut available = vec![true; total];
    available[lost] = false;
    let set = codec.read_set(lost, &available).expect("decodable");
    (0..total).map(|i| set.contains(&i)).collect()
}

fn main() {
    let (lrc, mut lrc_stripe) = coded(CodecParams::lrc(12, 2, 2, BLOCK).expect("lrc"));
    let (rs, mut rs_stripe) = coded(CodecParams::new(12, 4, BLOCK).expect("rs"));
    println!(
        "| case (256 KiB blocks) | LRC(12,2,2) µs | RS(12,4) µs | median RS ÷ LRC | blocks read LRC / RS |"
    );
    println!("| --- | ---: | ---: | ---: | --- |");
    let (a, b, r) = compare(
        &mut || lrc.encode(black_box(&mut lrc_stripe)).expect("encode"),
        &mut || rs.encode(black_box(&mut rs_stripe)).expect("encode"),
    );
    println!("| encode a stripe | {a:.0} | {b:.0} | {r:.2} | – |");
    // A data block (its group), a local parity (its group), a global
    // parity (k blocks either way).
    for (name, lost_lrc, lost_rs) in [
        ("repair a data block", 3, 3),
        ("repair a local parity / a parity", 12, 12),
        ("repair a global parity / a parity", 15, 15),
    ] {
        let lrc_mask = read_mask(&lrc, lost_lrc);
        let rs_mask = read_mask(&rs, lost_rs);
        let reads = |m: &[bool]| m.iter().filter(|x| **x).count();
        let (a, b, r) = compare(
            &mut || {
                lrc.rebuild_block(black_box(&mut lrc_stripe), &lrc_mask, lost_lrc)
                    .expect("rebuild")
            },
            &mut || {
                rs.rebuild_block(black_box(&mut rs_stripe), &rs_mask, lost_rs)
                    .expect("rebuild")
            },
        );
        println!(
            "| {name} | {a:.0} | {b:.0} | {r:.2} | {} / {} |",
            reads(&lrc_mask),
            reads(&rs_mask)
        );
    }
}
