//! How a blob's bytes map onto stripes and blocks.
//!
//! A blob of `data_len` bytes is cut into stripes of `k × block_size` bytes;
//! only the last stripe may be shorter. A full stripe has blocks of
//! `block_size` bytes. The short tail stripe uses blocks of
//! `ceil(tail / k)` bytes instead, so a 1-byte object costs k+m one-byte
//! blocks rather than k+m full blocks of zeros. Padding inside the tail stripe
//! (at most k−1 bytes) is zero and never leaves the codec: readers are given
//! exactly `data_len` bytes.
//!
//! Consequently every chunk of a blob has the same length, and all its blocks
//! are `block_size` bytes except perhaps the last.

use std::ops::Range;

/// The stripe geometry of one blob (an object version or a multipart part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLayout {
    pub data_len: u64,
    pub k: usize,
    pub block_size: usize,
}

/// The part of one stripe that a byte range touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSlice {
    pub stripe: u64,
    /// Byte range within the stripe's data (`0..stripe_data_len`).
    pub within: Range<usize>,
    /// Data blocks (`0..k`) that hold those bytes.
    pub data_blocks: Range<usize>,
}

impl BlobLayout {
    pub fn new(data_len: u64, k: usize, block_size: usize) -> Self {
        assert!(k > 0 && block_size > 0, "k and block_size must be positive");
        Self {
            data_len,
            k,
            block_size,
        }
    }

    /// Data bytes in a full stripe.
    pub fn stripe_capacity(&self) -> u64 {
        (self.k * self.block_size) as u64
    }

    pub fn stripe_count(&self) -> u64 {
        self.data_len.div_ceil(self.stripe_capacity())
    }

    /// Offset of the stripe's first byte in the blob.
    pub fn stripe_offset(&self, stripe: u64) -> u64 {
        stripe * self.stripe_capacity()
    }

    /// Data bytes held by one stripe (the tail may be short).
    pub fn stripe_data_len(&self, stripe: u64) -> usize {
        debug_assert!(stripe < self.stripe_count());
        let remaining = self.data_len - self.stripe_offset(stripe);
        remaining.min(self.stripe_capacity()) as usize
    }

    /// Length of every block (data and parity) of one stripe.
    pub fn block_len(&self, stripe: u64) -> usize {
        block_len_for(self.stripe_data_len(stripe), self.k, self.block_size)
    }

    /// Length of each chunk: the sum of the block lengths of all stripes.
    pub fn chunk_len(&self) -> u64 {
        match self.stripe_count() {
            0 => 0,
            n => (n - 1) * self.block_size as u64 + self.block_len(n - 1) as u64,
        }
    }

    /// The stripes (and the data blocks within them) that hold `range`.
    /// `range` must lie within `0..data_len`.
    pub fn slices(&self, range: Range<u64>) -> Vec<StripeSlice> {
        assert!(range.end <= self.data_len, "range past end of blob");
        if range.is_empty() {
            return Vec::new();
        }
        let cap = self.stripe_capacity();
        let first = range.start / cap;
        let last = (range.end - 1) / cap;
        (first..=last)
            .map(|stripe| {
                let offset = self.stripe_offset(stripe);
                let start = (range.start.max(offset) - offset) as usize;
                let end = (range.end.min(offset + cap) - offset) as usize;
                let block = self.block_len(stripe);
                StripeSlice {
                    stripe,
                    within: start..end,
                    data_blocks: start / block..end.div_ceil(block),
                }
            })
            .collect()
    }
}

/// Block length for a stripe holding `stripe_data_len` bytes.
pub fn block_len_for(stripe_data_len: usize, k: usize, block_size: usize) -> usize {
    stripe_data_len.div_ceil(k).min(block_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(data_len: u64, stripes: u64, tail_block: usize, chunk_len: u64) {
        let layout = BlobLayout::new(data_len, 4, 100);
        assert_eq!(layout.stripe_count(), stripes, "stripes of {data_len}");
        if stripes > 0 {
            assert_eq!(
                layout.block_len(stripes - 1),
                tail_block,
                "tail of {data_len}"
            );
        }
        assert_eq!(layout.chunk_len(), chunk_len, "chunk length of {data_len}");
    }

    #[test]
    fn geometry_for_lengths_around_stripe_boundaries() {
        // k = 4, block_size = 100: a full stripe holds 400 bytes.
        check(0, 0, 0, 0);
        check(1, 1, 1, 1);
        check(5, 1, 2, 2);
        check(399, 1, 100, 100);
        check(400, 1, 100, 100);
        check(401, 2, 1, 101);
        check(1200, 3, 100, 300);
    }

    #[test]
    fn slices_pick_only_the_blocks_a_range_touches() {
        let layout = BlobLayout::new(1000, 4, 100);
        assert_eq!(
            layout.slices(0..1),
            vec![StripeSlice {
                stripe: 0,
                within: 0..1,
                data_blocks: 0..1
            }]
        );
        assert_eq!(
            layout.slices(350..450),
            vec![
                StripeSlice {
                    stripe: 0,
                    within: 350..400,
                    data_blocks: 3..4
                },
                StripeSlice {
                    stripe: 1,
                    within: 0..50,
                    data_blocks: 0..1
                },
            ]
        );
        // The tail stripe holds 200 bytes in blocks of 50.
        assert_eq!(
            layout.slices(820..1000),
            vec![StripeSlice {
                stripe: 2,
                within: 20..200,
                data_blocks: 0..4
            }]
        );
        assert!(layout.slices(10..10).is_empty());
    }
}
