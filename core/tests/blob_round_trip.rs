//! Whole blobs through layout and codec, as the gateway and scrubber use
//! them: cut into stripes, encode, store each chunk as its blocks, lose or
//! corrupt up to m chunks, read back.

use cairn_core::codec::{CodecError, CodecParams, ErasureCodec};
use cairn_core::integrity::{BlockHash, hash_block, merkle_root};
use cairn_core::layout::BlobLayout;
use proptest::prelude::*;

/// chunks[i][s] = block i of stripe s; hashes alongside.
struct Encoded {
    chunks: Vec<Vec<Vec<u8>>>,
    hashes: Vec<Vec<BlockHash>>,
}

fn encode(codec: &ErasureCodec, data: &[u8]) -> Encoded {
    let params = codec.params();
    let layout = BlobLayout::new(data.len() as u64, params.k, params.block_size);
    let mut stripe = codec.stripe_buffer();
    let mut chunks = vec![Vec::new(); params.total()];
    let mut hashes = vec![Vec::new(); params.total()];
    for s in 0..layout.stripe_count() {
        let start = layout.stripe_offset(s) as usize;
        let len = layout.stripe_data_len(s);
        stripe.fill_from(&data[start..start + len]).expect("fill");
        codec.encode(&mut stripe).expect("encode");
        assert_eq!(stripe.block_len(), layout.block_len(s));
        for i in 0..params.total() {
            chunks[i].push(stripe.block(i).to_vec());
            hashes[i].push(hash_block(stripe.block(i)));
        }
    }
    Encoded { chunks, hashes }
}

/// Reads the blob back with some chunks unavailable.
fn decode(
    codec: &ErasureCodec,
    encoded: &Encoded,
    size: u64,
    available: &[bool],
) -> Result<Vec<u8>, CodecError> {
    let params = codec.params();
    let layout = BlobLayout::new(size, params.k, params.block_size);
    let mut stripe = codec.stripe_buffer();
    let mut out = Vec::with_capacity(size as usize);
    for s in 0..layout.stripe_count() {
        stripe.prepare(layout.stripe_data_len(s))?;
        let mut expected = Vec::new();
        for (i, present) in available.iter().enumerate() {
            expected.push(encoded.hashes[i][s as usize]);
            if *present {
                stripe
                    .block_mut(i)
                    .copy_from_slice(&encoded.chunks[i][s as usize]);
            }
        }
        codec.restore(&mut stripe, available, &expected, true)?;
        out.extend_from_slice(stripe.data());
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn blobs_survive_up_to_m_lost_chunks(
        (k, m, block_size) in prop_oneof![Just((8usize, 4usize, 64usize)), Just((4, 2, 100)), Just((3, 1, 1))],
        size_seed in any::<prop::sample::Index>(),
        seed in any::<u64>(),
        lost in prop::collection::btree_set(0usize..12, 0..=4),
    ) {
        let codec = ErasureCodec::new(CodecParams::new(k, m, block_size).expect("params")).expect("codec");
        let stripe = k * block_size;
        let size = {
            let picks = [0, 1, stripe - 1, stripe, stripe + 1, 3 * stripe, 3 * stripe + 1];
            let i = size_seed.index(picks.len() + 1);
            if i < picks.len() { picks[i] } else { (seed % (5 * stripe as u64)) as usize }
        };
        let data: Vec<u8> = (0..size).map(|i| (seed ^ (i as u64).wrapping_mul(0x9E37_79B9)) as u8).collect();
        let encoded = encode(&codec, &data);
        let layout = BlobLayout::new(size as u64, k, block_size);
        for chunk in &encoded.chunks {
            prop_assert_eq!(chunk.iter().map(Vec::len).sum::<usize>() as u64, layout.chunk_len());
        }
        let mut available = vec![true; k + m];
        let lost: Vec<usize> = lost.into_iter().filter(|i| *i < k + m).collect();
        for &i in &lost { available[i] = false; }
        let result = decode(&codec, &encoded, size as u64, &available);
        if lost.len() <= m || size == 0 {
            prop_assert_eq!(result.expect("decodable"), data);
        } else {
            let too_few = matches!(result, Err(CodecError::TooFewBlocks { .. }));
            prop_assert!(too_few, "expected an error, got {:?}", result.map(|d| d.len()));
        }
    }
}

#[test]
fn chunk_roots_detect_a_flipped_byte_in_a_stored_block() {
    let codec = ErasureCodec::new(CodecParams::new(4, 2, 16).expect("params")).expect("codec");
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    let mut encoded = encode(&codec, &data);
    let before = merkle_root(&encoded.hashes[5]);
    encoded.chunks[5][3][2] ^= 0x40;
    let now: Vec<BlockHash> = encoded.chunks[5].iter().map(|b| hash_block(b)).collect();
    assert_ne!(merkle_root(&now), before);
    assert_eq!(
        cairn_core::integrity::diff_leaves(&encoded.hashes[5], &now),
        vec![3]
    );
}
