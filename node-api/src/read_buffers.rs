//! Reused buffers for blocks read from chunk files on this host
//! (short-circuit reads).
//!
//! Why: a 1 MiB GET reads its block into a new megabyte buffer, and the
//! allocator hands such buffers back to the kernel when they are freed, so
//! every GET page-faulted a fresh megabyte in (the kernel zeroing each
//! page) and unmapped it again: 5% of the machine in a 1 MiB GET ×16
//! profile (BENCHMARKS.md), on a VM where fresh pages cost about 3× more
//! to fill than reused ones. A block read here lands in a buffer an
//! earlier read gave back; the [`Bytes`] handed on returns it when the last
//! clone is dropped (its bytes are on the client's socket).
//!
//! Buffers are kept by size class (powers of two from [`POOLED_MIN`]) and
//! up to [`KEPT_BYTES`] in all; smaller blocks are cheap to allocate and
//! are not pooled. A reused buffer is always filled to the block's length
//! before anyone sees it (`pread` of the whole extent) and the [`Bytes`]
//! show only the block's length, so no bytes of an earlier block can show.

use std::sync::Mutex;

use bytes::Bytes;

/// Blocks shorter than this are allocated as usual.
pub const POOLED_MIN: usize = 64 << 10;
/// Largest block size pooled (larger ones are allocated as usual).
const POOLED_MAX: usize = 16 << 20;
/// Bytes of idle buffers kept at most, over all size classes.
pub const KEPT_BYTES: usize = 64 << 20;

const CLASSES: usize = (POOLED_MAX / POOLED_MIN).trailing_zeros() as usize + 1;

struct Pool {
    /// Idle buffers per size class (class c holds `POOLED_MIN << c` bytes).
    free: [Vec<Vec<u8>>; CLASSES],
    kept: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: [const { Vec::new() }; CLASSES],
    kept: 0,
});

/// The size class of a `len`-byte block, if pooled.
fn class_of(len: usize) -> Option<usize> {
    if !(POOLED_MIN..=POOLED_MAX).contains(&len) {
        return None;
    }
    Some((len.next_power_of_two() / POOLED_MIN).trailing_zeros() as usize)
}

/// A buffer of at least `len` initialized bytes to read a block into
/// (`&mut buffer[..len]`): an idle one of its class when there is one.
/// Pooled buffers are zeroed once, when first allocated, never again.
pub fn take(len: usize) -> Vec<u8> {
    let Some(class) = class_of(len) else {
        return vec![0; len];
    };
    let reused = {
        let mut pool = POOL.lock().expect("read buffer pool");
        let reused = pool.free[class].pop();
        if let Some(buffer) = &reused {
            pool.kept -= buffer.len();
        }
        reused
    };
    reused.unwrap_or_else(|| vec![0; POOLED_MIN << class])
}

/// The first `len` bytes of `buffer` (a buffer from [`take`], filled by
/// the caller) as [`Bytes`] that give the buffer back to the pool when the
/// last clone is dropped.
pub fn into_bytes(mut buffer: Vec<u8>, len: usize) -> Bytes {
    if class_of(len).is_none() {
        buffer.truncate(len);
        return Bytes::from(buffer);
    }
    Bytes::from_owner(Pooled { buffer, len })
}

/// Idle buffers kept now, in bytes.
pub fn kept_bytes() -> usize {
    POOL.lock().expect("read buffer pool").kept
}

struct Pooled {
    buffer: Vec<u8>,
    len: usize,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        // Only a buffer of exactly its class's size goes back, so every
        // buffer taken from a class has room for any block of it.
        let Some(class) =
            class_of(buffer.len()).filter(|&class| buffer.len() == POOLED_MIN << class)
        else {
            return;
        };
        let mut pool = POOL.lock().expect("read buffer pool");
        if pool.kept + buffer.len() <= KEPT_BYTES {
            pool.kept += buffer.len();
            pool.free[class].push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test touches the process-wide pool, so the steps cannot race
    /// with another test's.
    #[test]
    fn buffers_come_back_when_their_bytes_are_dropped_and_are_reused_within_bounds() {
        // A block of 100 KiB uses the 128 KiB class.
        let len = 100 << 10;
        let mut buffer = take(len);
        assert_eq!(buffer.len(), 128 << 10);
        buffer[..len].fill(7);
        let address = buffer.as_ptr();
        let before = kept_bytes();
        let bytes = into_bytes(buffer, len);
        assert_eq!(bytes.len(), len, "only the block's bytes are visible");
        let clone = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(kept_bytes(), before, "a clone still holds the buffer");
        assert_eq!(&clone[..], &[7u8; 10][..]);
        drop(clone);
        assert_eq!(kept_bytes(), before + (128 << 10));

        // The next block of the class gets the same buffer.
        let again = take(120 << 10);
        assert_eq!(again.as_ptr(), address);
        assert_eq!(kept_bytes(), before);

        // Small and huge blocks are not pooled.
        assert_eq!(take(1000).len(), 1000);
        assert!(class_of(POOLED_MAX + 1).is_none());
        let small = into_bytes(vec![1u8; 4096], 1000);
        assert_eq!(small.len(), 1000);
        drop(small);
        assert_eq!(kept_bytes(), before);

        // At most KEPT_BYTES stay idle.
        let many: Vec<Bytes> = (0..(KEPT_BYTES >> 20) + 8)
            .map(|_| into_bytes(take(1 << 20), 1 << 20))
            .collect();
        drop(many);
        assert!(kept_bytes() <= KEPT_BYTES);
        assert!(kept_bytes() > KEPT_BYTES - (1 << 20));
        drop(again);
    }
}
