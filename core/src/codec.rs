//! Reed-Solomon erasure coding of stripes.
//!
//! A [`StripeBuffer`] owns one contiguous allocation of `(k+m) × block_size`
//! bytes that is reused for every stripe of a blob: callers read request bytes
//! straight into its data region, [`ErasureCodec::encode`] writes the parity
//! blocks in place, and readers reconstruct in place. No stripe allocates, and
//! no byte is copied between the network buffer and the coder.
//!
//! Erasure codes repair *erasures*: the codec must be told which blocks are
//! missing. Corruption is found by comparing blake3 block hashes with the
//! expected ones ([`ErasureCodec::restore`]); a corrupt block is then treated
//! as missing, and every rebuilt block is re-hashed before it is trusted, so
//! too many losses give an error, never wrong data.

use reed_solomon_erasure::galois_8::ReedSolomon;
use serde::{Deserialize, Serialize};

use crate::integrity::{BlockHash, hash_block};
use crate::layout::block_len_for;

/// Largest block the codec accepts (a stripe buffer is `(k+m)` of them).
pub const MAX_BLOCK_SIZE: usize = 16 << 20;

/// The erasure code of a blob: k data blocks, m parity blocks per stripe, and
/// the block size of full stripes. Recorded in every manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodecParams {
    pub k: usize,
    pub m: usize,
    pub block_size: usize,
}

impl CodecParams {
    /// Cairn's default: 8+4 (1.5× overhead, survives any 4 losses) with
    /// 256 KiB blocks (see docs/placement.md, "Default block size").
    pub const DEFAULT: Self = Self {
        k: 8,
        m: 4,
        block_size: 256 * 1024,
    };

    pub fn new(k: usize, m: usize, block_size: usize) -> Result<Self, CodecError> {
        let params = Self { k, m, block_size };
        params.validate()?;
        Ok(params)
    }

    pub fn validate(&self) -> Result<(), CodecError> {
        if self.k == 0 || self.m == 0 || self.k + self.m > 256 {
            return Err(CodecError::InvalidParams(format!(
                "need 1 <= k, 1 <= m and k + m <= 256, got k={} m={}",
                self.k, self.m
            )));
        }
        if self.block_size == 0 || self.block_size > MAX_BLOCK_SIZE {
            return Err(CodecError::InvalidParams(format!(
                "block size must be 1..={MAX_BLOCK_SIZE} bytes, got {}",
                self.block_size
            )));
        }
        Ok(())
    }

    /// k + m: the number of chunks (and nodes) per blob.
    pub fn total(&self) -> usize {
        self.k + self.m
    }

    /// Data bytes in a full stripe.
    pub fn stripe_capacity(&self) -> usize {
        self.k * self.block_size
    }
}

impl Default for CodecParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("invalid codec parameters: {0}")]
    InvalidParams(String),
    #[error("stripe length {len} is outside 1..={capacity}")]
    StripeLength { len: usize, capacity: usize },
    #[error("{available} intact blocks of a stripe are left but {needed} are needed")]
    TooFewBlocks { available: usize, needed: usize },
    #[error("rebuilt block {block} does not match its expected hash")]
    RebuiltMismatch { block: usize },
    #[error("expected {expected} block flags or hashes, got {got}")]
    WrongBlockCount { expected: usize, got: usize },
    #[error("erasure coder failed: {0}")]
    Coder(String),
}

/// What [`ErasureCodec::restore`] did to a stripe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Blocks that were present but failed their hash.
    pub corrupt: Vec<usize>,
    /// Blocks rebuilt from the others (missing and corrupt ones).
    pub rebuilt: Vec<usize>,
}

/// Reusable buffer for one stripe: k data blocks followed by m parity blocks,
/// contiguous, with a stride equal to the current stripe's block length.
#[derive(Debug, Clone)]
pub struct StripeBuffer {
    k: usize,
    m: usize,
    /// The longest block this buffer holds (the codec's block size, or less
    /// for a buffer made for short stripes).
    max_block_len: usize,
    buf: Vec<u8>,
    data_len: usize,
    block_len: usize,
}

impl StripeBuffer {
    pub fn new(params: &CodecParams) -> Self {
        Self::for_stripes_up_to(params, params.k * params.block_size)
    }

    /// A buffer for stripes of at most `max_data_len` bytes: blocks are
    /// packed at the stripe's own block length, so a small blob's reader
    /// need not allocate (and zero) a whole stripe of full blocks, which
    /// for 8+4 with 256 KiB blocks is 3 MiB per GET.
    pub fn for_stripes_up_to(params: &CodecParams, max_data_len: usize) -> Self {
        let full = params.k * params.block_size;
        let max_block = block_len_for(max_data_len.clamp(1, full), params.k, params.block_size);
        Self {
            k: params.k,
            m: params.m,
            max_block_len: max_block,
            buf: vec![0; params.total() * max_block],
            data_len: 0,
            block_len: 0,
        }
    }

    /// Data bytes the largest stripe this buffer takes holds.
    pub fn capacity(&self) -> usize {
        self.k * self.max_block_len
    }

    /// The whole data region, to be filled directly (e.g. from a socket).
    /// Follow with [`StripeBuffer::set_data_len`].
    pub fn fill_region(&mut self) -> &mut [u8] {
        let capacity = self.capacity();
        &mut self.buf[..capacity]
    }

    /// Declares that the first `len` bytes of [`StripeBuffer::fill_region`]
    /// hold this stripe's data, and zeroes the padding of a short stripe.
    pub fn set_data_len(&mut self, len: usize) -> Result<(), CodecError> {
        self.set_geometry(len)?;
        let padded = self.k * self.block_len;
        self.buf[len..padded].fill(0);
        Ok(())
    }

    /// Copies `data` in as this stripe's data.
    pub fn fill_from(&mut self, data: &[u8]) -> Result<(), CodecError> {
        if data.len() > self.capacity() {
            return Err(self.length_error(data.len()));
        }
        self.buf[..data.len()].copy_from_slice(data);
        self.set_data_len(data.len())
    }

    /// Prepares the buffer to receive the blocks of a stripe holding `len`
    /// data bytes (for reading and reconstruction); contents are unspecified.
    pub fn prepare(&mut self, len: usize) -> Result<(), CodecError> {
        self.set_geometry(len)
    }

    fn set_geometry(&mut self, len: usize) -> Result<(), CodecError> {
        if len == 0 || len > self.capacity() {
            return Err(self.length_error(len));
        }
        self.data_len = len;
        self.block_len = block_len_for(len, self.k, self.max_block_len);
        Ok(())
    }

    fn length_error(&self, len: usize) -> CodecError {
        CodecError::StripeLength {
            len,
            capacity: self.capacity(),
        }
    }

    /// The stripe's data, without padding.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.data_len]
    }

    /// The stripe's data, to be transformed in place before it is encoded
    /// (e.g. encrypted: parity is then computed over what is stored).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.data_len]
    }

    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// Length of each block of the current stripe.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    pub fn block_count(&self) -> usize {
        self.k + self.m
    }

    pub fn block(&self, index: usize) -> &[u8] {
        let start = index * self.block_len;
        &self.buf[start..start + self.block_len]
    }

    pub fn block_mut(&mut self, index: usize) -> &mut [u8] {
        let start = index * self.block_len;
        &mut self.buf[start..start + self.block_len]
    }

    /// blake3 of every block, in order.
    pub fn block_hashes(&self) -> Vec<BlockHash> {
        (0..self.block_count())
            .map(|i| hash_block(self.block(i)))
            .collect()
    }

    fn blocks_mut(&mut self) -> Vec<&mut [u8]> {
        let used = self.block_count() * self.block_len;
        self.buf[..used].chunks_exact_mut(self.block_len).collect()
    }
}

/// A Reed-Solomon coder for one (k, m). Cheap to share: build once per
/// parameter set and reuse (it caches decode matrices).
#[derive(Debug)]
pub struct ErasureCodec {
    params: CodecParams,
    rs: ReedSolomon,
}

impl ErasureCodec {
    pub fn new(params: CodecParams) -> Result<Self, CodecError> {
        params.validate()?;
        let rs = ReedSolomon::new(params.k, params.m)
            .map_err(|err| CodecError::InvalidParams(format!("{err:?}")))?;
        Ok(Self { params, rs })
    }

    pub fn params(&self) -> &CodecParams {
        &self.params
    }

    /// A stripe buffer sized for this codec.
    pub fn stripe_buffer(&self) -> StripeBuffer {
        StripeBuffer::new(&self.params)
    }

    /// A stripe buffer for stripes of at most `max_data_len` bytes (a
    /// small blob's reads).
    pub fn stripe_buffer_up_to(&self, max_data_len: usize) -> StripeBuffer {
        StripeBuffer::for_stripes_up_to(&self.params, max_data_len)
    }

    /// Computes the m parity blocks of the stripe in place.
    pub fn encode(&self, stripe: &mut StripeBuffer) -> Result<(), CodecError> {
        self.check_buffer(stripe)?;
        let mut blocks = stripe.blocks_mut();
        self.rs.encode(&mut blocks).map_err(coder_error)
    }

    /// Whether this code is plain replication: with one data block, every
    /// row of the systematic Reed-Solomon matrix is `[1]`, so each parity
    /// block *is* the data block (tested against the coder). A writer may
    /// then send the data block as every chunk without encoding, and hash
    /// it once; readers and repair decode such chunks like any others.
    pub fn is_replication(&self) -> bool {
        self.params.k == 1
    }

    /// Whether the parity blocks are consistent with the data blocks.
    pub fn verify(&self, stripe: &mut StripeBuffer) -> Result<bool, CodecError> {
        self.check_buffer(stripe)?;
        let blocks = stripe.blocks_mut();
        self.rs.verify(&blocks).map_err(coder_error)
    }

    /// Rebuilds the blocks whose `present` flag is false from the others. With
    /// `data_only`, parity blocks are left as they are (enough for a read).
    pub fn reconstruct(
        &self,
        stripe: &mut StripeBuffer,
        present: &[bool],
        data_only: bool,
    ) -> Result<(), CodecError> {
        self.check_buffer(stripe)?;
        check_count(present.len(), self.params.total())?;
        let available = present.iter().filter(|p| **p).count();
        if available < self.params.k {
            return Err(CodecError::TooFewBlocks {
                available,
                needed: self.params.k,
            });
        }
        if available == present.len() {
            return Ok(());
        }
        let mut blocks: Vec<(&mut [u8], bool)> = stripe
            .blocks_mut()
            .into_iter()
            .zip(present.iter().copied())
            .collect();
        let result = if data_only {
            self.rs.reconstruct_data(&mut blocks)
        } else {
            self.rs.reconstruct(&mut blocks)
        };
        result.map_err(coder_error)
    }

    /// Checks every present block against its expected hash, rebuilds the
    /// missing and corrupt ones, and re-checks what it rebuilt. On success
    /// every block (or every data block, with `data_only`) is intact.
    pub fn restore(
        &self,
        stripe: &mut StripeBuffer,
        present: &[bool],
        expected: &[BlockHash],
        data_only: bool,
    ) -> Result<RestoreReport, CodecError> {
        let total = self.params.total();
        check_count(present.len(), total)?;
        check_count(expected.len(), total)?;
        let mut report = RestoreReport::default();
        let mut intact = present.to_vec();
        for (i, ok) in intact.iter_mut().enumerate() {
            if *ok && hash_block(stripe.block(i)) != expected[i] {
                *ok = false;
                report.corrupt.push(i);
            }
        }
        self.reconstruct(stripe, &intact, data_only)?;
        let wanted = if data_only { self.params.k } else { total };
        for (i, was_intact) in intact.iter().enumerate().take(wanted) {
            if !was_intact {
                if hash_block(stripe.block(i)) != expected[i] {
                    return Err(CodecError::RebuiltMismatch { block: i });
                }
                report.rebuilt.push(i);
            }
        }
        Ok(report)
    }

    fn check_buffer(&self, stripe: &StripeBuffer) -> Result<(), CodecError> {
        if stripe.k != self.params.k || stripe.m != self.params.m {
            return Err(CodecError::InvalidParams(format!(
                "stripe buffer is {}+{}, codec is {}+{}",
                stripe.k, stripe.m, self.params.k, self.params.m
            )));
        }
        if stripe.block_len == 0 {
            return Err(stripe.length_error(0));
        }
        Ok(())
    }
}

fn check_count(got: usize, expected: usize) -> Result<(), CodecError> {
    if got == expected {
        Ok(())
    } else {
        Err(CodecError::WrongBlockCount { expected, got })
    }
}

fn coder_error(err: reed_solomon_erasure::Error) -> CodecError {
    CodecError::Coder(format!("{err:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec(k: usize, m: usize, block_size: usize) -> ErasureCodec {
        ErasureCodec::new(CodecParams::new(k, m, block_size).expect("params")).expect("codec")
    }

    #[test]
    fn rejects_invalid_parameters() {
        for (k, m, bs) in [(0, 4, 64), (8, 0, 64), (200, 57, 64), (8, 4, 0)] {
            assert!(CodecParams::new(k, m, bs).is_err(), "{k}+{m}/{bs} accepted");
        }
        assert!(CodecParams::new(1, 255, 1).is_ok());
    }

    #[test]
    fn one_data_block_codes_are_replication() {
        for m in [1, 2, 3, 5] {
            let codec = codec(1, m, 64);
            assert!(codec.is_replication());
            let mut stripe = codec.stripe_buffer();
            let data: Vec<u8> = (0..50u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
            stripe.fill_from(&data).expect("fill");
            codec.encode(&mut stripe).expect("encode");
            for parity in 1..=m {
                assert_eq!(
                    stripe.block(parity),
                    stripe.block(0),
                    "1+{m}: parity {parity}"
                );
            }
        }
        assert!(!codec(2, 1, 64).is_replication());
    }

    #[test]
    fn empty_stripe_is_an_error() {
        let codec = codec(4, 2, 16);
        let mut stripe = codec.stripe_buffer();
        assert!(stripe.fill_from(&[]).is_err());
        assert!(codec.encode(&mut stripe).is_err(), "never-filled buffer");
    }

    #[test]
    fn full_stripe_data_is_not_moved_by_encoding() {
        let codec = codec(4, 2, 8);
        let mut stripe = codec.stripe_buffer();
        let data: Vec<u8> = (0..32).collect();
        stripe.fill_region().copy_from_slice(&data);
        stripe.set_data_len(32).expect("len");
        codec.encode(&mut stripe).expect("encode");
        assert_eq!(stripe.data(), &data[..]);
        assert_eq!(stripe.block(1), &data[8..16]);
        assert!(codec.verify(&mut stripe).expect("verify"));
    }

    #[test]
    fn short_stripe_uses_short_blocks_and_zero_padding() {
        let codec = codec(4, 2, 100);
        let mut stripe = codec.stripe_buffer();
        stripe.fill_region().fill(0xAA); // stale bytes from a previous stripe
        stripe.fill_from(&[1, 2, 3, 4, 5]).expect("fill");
        assert_eq!(stripe.block_len(), 2);
        assert_eq!(stripe.block(2), &[5, 0]);
        assert_eq!(stripe.block(3), &[0, 0]);
        codec.encode(&mut stripe).expect("encode");
        assert!(codec.verify(&mut stripe).expect("verify"));
    }

    /// One case: a stripe of `len` random bytes, some blocks erased (zeroed
    /// and flagged missing) and some corrupted (one byte flipped, still
    /// flagged present).
    fn round_trip(
        k: usize,
        m: usize,
        block_size: usize,
        data: &[u8],
        erased: &[usize],
        corrupted: &[usize],
    ) -> Result<RestoreReport, CodecError> {
        let codec = codec(k, m, block_size);
        let mut stripe = codec.stripe_buffer();
        stripe.fill_from(data)?;
        codec.encode(&mut stripe)?;
        let expected = stripe.block_hashes();
        let mut present = vec![true; k + m];
        for &i in erased {
            stripe.block_mut(i).fill(0);
            present[i] = false;
        }
        for &i in corrupted {
            stripe.block_mut(i)[0] ^= 0x5A;
        }
        let report = codec.restore(&mut stripe, &present, &expected, false)?;
        assert_eq!(stripe.data(), data, "restored data differs");
        assert_eq!(stripe.block_hashes(), expected, "restored blocks differ");
        Ok(report)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn up_to_m_lost_or_corrupt_blocks_round_trip(
            (k, m) in prop_oneof![Just((8usize, 4usize)), Just((4, 2)), Just((1, 1)), (1usize..12, 1usize..6)],
            block_size in prop_oneof![Just(1usize), Just(7), Just(64), 1usize..300],
            seed in any::<u64>(),
            len_pick in any::<prop::sample::Index>(),
            damage in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..=6),
        ) {
            let capacity = k * block_size;
            // Lengths that matter: 1 byte, one short of a full stripe, exactly
            // full, and anything in between.
            let len = match len_pick.index(4) {
                0 => 1,
                1 => capacity.saturating_sub(1).max(1),
                2 => capacity,
                _ => 1 + (seed as usize % capacity),
            };
            let data: Vec<u8> = (0..len).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 13) as u8).collect();
            let mut erased = Vec::new();
            let mut corrupted = Vec::new();
            for (pick, erase) in damage.iter().take(m) {
                let i = pick.index(k + m);
                if erased.contains(&i) || corrupted.contains(&i) { continue; }
                if *erase { erased.push(i) } else { corrupted.push(i) }
            }
            let report = round_trip(k, m, block_size, &data, &erased, &corrupted)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut corrupt = corrupted.clone();
            corrupt.sort_unstable();
            prop_assert_eq!(report.corrupt, corrupt);
        }

        #[test]
        fn more_than_m_losses_are_an_error_never_wrong_data(
            (k, m) in prop_oneof![Just((8usize, 4usize)), Just((4, 2)), (1usize..10, 1usize..5)],
            block_size in 1usize..200,
            seed in any::<u64>(),
            extra in 1usize..4,
            corrupt_instead in any::<bool>(),
        ) {
            let len = 1 + (seed as usize % (k * block_size));
            let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u64).wrapping_mul(31) as u8).collect();
            let lost: Vec<usize> = (0..(m + extra).min(k + m)).collect();
            let (erased, corrupted) = if corrupt_instead { (vec![], lost) } else { (lost, vec![]) };
            let result = round_trip(k, m, block_size, &data, &erased, &corrupted);
            prop_assert!(matches!(result, Err(CodecError::TooFewBlocks { .. })), "{:?}", result);
        }
    }

    #[test]
    fn reconstruct_data_only_leaves_parity_alone() {
        let codec = codec(4, 2, 16);
        let mut stripe = codec.stripe_buffer();
        let data: Vec<u8> = (0..64).map(|i| i as u8 * 3).collect();
        stripe.fill_from(&data).expect("fill");
        codec.encode(&mut stripe).expect("encode");
        let expected = stripe.block_hashes();
        stripe.block_mut(1).fill(0);
        stripe.block_mut(5).fill(0);
        let present = [true, false, true, true, true, false];
        let report = codec
            .restore(&mut stripe, &present, &expected, true)
            .expect("restore");
        assert_eq!(report.rebuilt, vec![1]);
        assert_eq!(stripe.data(), &data[..]);
    }

    #[test]
    fn a_buffer_for_short_stripes_is_small_and_reconstructs_them() {
        let params = CodecParams::new(8, 4, 256 * 1024).expect("params");
        let codec = ErasureCodec::new(params).expect("codec");
        let mut small = codec.stripe_buffer_up_to(4096);
        assert_eq!(small.capacity(), 4096);
        let data: Vec<u8> = (0..4000u32).map(|i| (i * 7) as u8).collect();
        small.fill_from(&data).expect("fits");
        codec.encode(&mut small).expect("encode");
        let mut present = vec![true; 12];
        for lost in [0, 3, 9, 11] {
            small.block_mut(lost).fill(0);
            present[lost] = false;
        }
        codec
            .reconstruct(&mut small, &present, true)
            .expect("reconstruct");
        assert_eq!(small.data(), &data[..]);
        assert!(
            small.fill_from(&vec![0; 4097]).is_err(),
            "longer than it was made for"
        );
        assert_eq!(
            codec.stripe_buffer_up_to(usize::MAX).capacity(),
            8 * 256 * 1024
        );
    }
}
