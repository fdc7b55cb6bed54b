//! Erasure coding of stripes: Reed-Solomon, or a locally repairable code
//! ([`crate::lrc`]) when the parameters name local groups.
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

use std::sync::Mutex;

use reed_solomon_erasure::galois_8::ReedSolomon;
use serde::{Deserialize, Serialize};

use crate::integrity::{BlockHash, hash_block};
use crate::layout::block_len_for;
use crate::lrc::{Lrc, LrcError, LrcParams};

/// Largest block the codec accepts (a stripe buffer is `(k+m)` of them).
pub const MAX_BLOCK_SIZE: usize = 16 << 20;

/// Bytes of write buffers a codec keeps for reuse (see
/// [`ErasureCodec::recycle_write_buffer`]): 16 writes of 1 MiB copies, or
/// a handful of large writes' pools of 8+4 stripes.
pub const SPARE_WRITE_BUFFER_BYTES: usize = 64 << 20;

/// The erasure code of a blob: k data blocks, m parity blocks per stripe, and
/// the block size of full stripes. Recorded in every manifest.
///
/// With `local_groups` = l > 0 the code is `LRC(k, l, m − l)`: the m parity
/// blocks are l local parities (chunks k..k+l) and m − l global ones. Such a
/// code survives any m − l + 1 losses (not any m), and a single lost chunk is
/// rebuilt from its group's k/l others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodecParams {
    pub k: usize,
    pub m: usize,
    pub block_size: usize,
    /// Local groups of an LRC; 0 for Reed-Solomon (and in every manifest
    /// written before LRC existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub local_groups: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl CodecParams {
    /// Cairn's default: 8+4 (1.5× overhead, survives any 4 losses) with
    /// 256 KiB blocks (see docs/placement.md, "Default block size").
    pub const DEFAULT: Self = Self {
        k: 8,
        m: 4,
        block_size: 256 * 1024,
        local_groups: 0,
    };

    pub fn new(k: usize, m: usize, block_size: usize) -> Result<Self, CodecError> {
        let params = Self {
            k,
            m,
            block_size,
            local_groups: 0,
        };
        params.validate()?;
        Ok(params)
    }

    /// `LRC(k, l, r)`: k data blocks in l local groups, r global parities.
    pub fn lrc(k: usize, l: usize, r: usize, block_size: usize) -> Result<Self, CodecError> {
        let params = Self {
            k,
            m: l + r,
            block_size,
            local_groups: l,
        };
        params.validate()?;
        Ok(params)
    }

    /// The LRC shape, when this is one.
    pub fn lrc_params(&self) -> Option<LrcParams> {
        (self.local_groups > 0).then(|| LrcParams {
            k: self.k,
            l: self.local_groups,
            r: self.m - self.local_groups,
        })
    }

    /// Losses every pattern of which is survived: m for Reed-Solomon,
    /// r + 1 for an LRC. Placement puts at most this many chunks of a blob
    /// in one rack, so a whole rack's loss is survived.
    pub fn tolerated_losses(&self) -> usize {
        match self.lrc_params() {
            Some(lrc) => lrc.r + 1,
            None => self.m,
        }
    }

    /// Chunks a single lost chunk is rebuilt from at best: k, or the k/l
    /// others of its group for an LRC (global parities still need k).
    pub fn local_repair_reads(&self) -> usize {
        match self.lrc_params() {
            Some(lrc) => lrc.group_size(),
            None => self.k,
        }
    }

    pub fn validate(&self) -> Result<(), CodecError> {
        if self.k == 0 || self.m == 0 || self.k + self.m > 256 {
            return Err(CodecError::InvalidParams(format!(
                "need 1 <= k, 1 <= m and k + m <= 256, got k={} m={}",
                self.k, self.m
            )));
        }
        if self.local_groups > 0
            && (self.local_groups >= self.m
                || !self.k.is_multiple_of(self.local_groups)
                || self.k + self.m > 255)
        {
            return Err(CodecError::InvalidParams(format!(
                "an LRC needs l local groups dividing k, at least one global parity \
                 (l < m) and k + m <= 255, got k={} m={} l={}",
                self.k, self.m, self.local_groups
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

/// A bucket's choice of code for its erasure-coded blobs, as users write
/// it: `RS(8,4)` (k data + m parity) or `LRC(12,2,2)` (k data in l local
/// groups + r global parities). The block size is the gateway's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StorageClass {
    pub k: usize,
    pub m: usize,
    pub local_groups: usize,
}

impl StorageClass {
    /// The codec parameters of this class with `block_size` blocks.
    pub fn codec(&self, block_size: usize) -> Result<CodecParams, CodecError> {
        let params = CodecParams {
            k: self.k,
            m: self.m,
            block_size,
            local_groups: self.local_groups,
        };
        params.validate()?;
        Ok(params)
    }

    /// The class a blob's parameters belong to.
    pub fn of(params: &CodecParams) -> Self {
        Self {
            k: params.k,
            m: params.m,
            local_groups: params.local_groups,
        }
    }
}

impl std::fmt::Display for StorageClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.local_groups > 0 {
            write!(
                f,
                "LRC({},{},{})",
                self.k,
                self.local_groups,
                self.m - self.local_groups
            )
        } else {
            write!(f, "RS({},{})", self.k, self.m)
        }
    }
}

impl std::str::FromStr for StorageClass {
    type Err = CodecError;

    fn from_str(text: &str) -> Result<Self, CodecError> {
        let invalid = || {
            CodecError::InvalidParams(format!(
                "storage class {text:?}: expected RS(k,m) or LRC(k,l,r), e.g. RS(8,4), LRC(12,2,2)"
            ))
        };
        let upper = text.trim().to_ascii_uppercase();
        let (kind, rest) = upper.split_once('(').ok_or_else(invalid)?;
        let numbers: Vec<usize> = rest
            .strip_suffix(')')
            .ok_or_else(invalid)?
            .split(',')
            .map(|n| n.trim().parse().map_err(|_| invalid()))
            .collect::<Result<_, _>>()?;
        let class = match (kind.trim(), &numbers[..]) {
            ("RS", &[k, m]) => Self {
                k,
                m,
                local_groups: 0,
            },
            ("LRC", &[k, l, r]) => Self {
                k,
                m: l + r,
                local_groups: l,
            },
            _ => return Err(invalid()),
        };
        class.codec(1)?;
        Ok(class)
    }
}

impl TryFrom<String> for StorageClass {
    type Error = CodecError;
    fn try_from(text: String) -> Result<Self, CodecError> {
        text.parse()
    }
}

impl From<StorageClass> for String {
    fn from(class: StorageClass) -> String {
        class.to_string()
    }
}

impl std::fmt::Display for CodecParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        StorageClass::of(self).fmt(f)
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
    /// Only the data blocks have room (copies: every parity block is the
    /// data block); the codec refuses to encode or decode in it.
    data_only: bool,
}

impl StripeBuffer {
    pub fn new(params: &CodecParams) -> Self {
        Self::for_stripes_up_to(params, params.k * params.block_size)
    }

    /// A buffer with room for the data blocks only, for a writer of copies
    /// (k = 1), which sends the data block to every chunk: the parity
    /// region of a 1 MiB copy stripe would be 2 MiB allocated and zeroed
    /// per PUT for nothing (measured: a tenth of the gateway's PUT CPU).
    pub fn data_only(params: &CodecParams) -> Self {
        Self {
            k: params.k,
            m: params.m,
            max_block_len: params.block_size,
            buf: vec![0; params.k * params.block_size],
            data_len: 0,
            block_len: 0,
            data_only: true,
        }
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
            data_only: false,
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

    /// Blocks the buffer holds: k + m, or k for a data-only buffer.
    pub fn block_count(&self) -> usize {
        if self.data_only {
            self.k
        } else {
            self.k + self.m
        }
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

/// The coder of one parameter set: Reed-Solomon, or an LRC. Cheap to share:
/// build once per parameter set and reuse (it caches decode matrices).
#[derive(Debug)]
pub struct ErasureCodec {
    params: CodecParams,
    coder: Coder,
    /// Write buffers given back by finished writes, for the next ones.
    spare: Mutex<Vec<StripeBuffer>>,
}

#[derive(Debug)]
enum Coder {
    /// Boxed: the coder carries its decode-matrix cache inline.
    Rs(Box<ReedSolomon>),
    Lrc(Lrc),
}

impl ErasureCodec {
    pub fn new(params: CodecParams) -> Result<Self, CodecError> {
        params.validate()?;
        let coder = match params.lrc_params() {
            Some(lrc) => Coder::Lrc(Lrc::new(lrc).map_err(lrc_error)?),
            None => Coder::Rs(Box::new(
                ReedSolomon::new(params.k, params.m)
                    .map_err(|err| CodecError::InvalidParams(format!("{err:?}")))?,
            )),
        };
        Ok(Self {
            params,
            coder,
            spare: Mutex::new(Vec::new()),
        })
    }

    pub fn params(&self) -> &CodecParams {
        &self.params
    }

    /// A stripe buffer sized for this codec.
    pub fn stripe_buffer(&self) -> StripeBuffer {
        StripeBuffer::new(&self.params)
    }

    /// The buffer a writer fills: data blocks only for copies (nothing is
    /// encoded), a whole stripe otherwise. One a finished write gave back
    /// when there is one.
    pub fn write_buffer(&self) -> StripeBuffer {
        if let Some(buffer) = self.spare.lock().expect("spare buffers lock").pop() {
            return buffer;
        }
        if self.is_replication() {
            StripeBuffer::data_only(&self.params)
        } else {
            self.stripe_buffer()
        }
    }

    /// Keeps a buffer [`Self::write_buffer`] gave out for the next write,
    /// up to [`SPARE_WRITE_BUFFER_BYTES`]; anything else is freed. Why:
    /// a new megabyte buffer is zeroed and page-faulted in on every PUT
    /// (3% of the machine in a 1 MiB PUT ×16 profile, BENCHMARKS.md), and
    /// on a VM that returns free memory to its host fresh pages cost
    /// about 3× more to fill than reused ones. Nothing stale can leak
    /// from a reused buffer: a stripe's data overwrites the data region,
    /// [`StripeBuffer::set_data_len`] zeroes a short stripe's padding, and
    /// encoding writes every parity byte it sends.
    pub fn recycle_write_buffer(&self, buffer: StripeBuffer) {
        let fresh_shape = if self.is_replication() {
            buffer.data_only && buffer.buf.len() == self.params.k * self.params.block_size
        } else {
            !buffer.data_only
                && buffer.max_block_len == self.params.block_size
                && buffer.buf.len() == self.params.total() * self.params.block_size
        };
        if !fresh_shape || buffer.k != self.params.k || buffer.m != self.params.m {
            return;
        }
        let mut spare = self.spare.lock().expect("spare buffers lock");
        if (spare.len() + 1) * buffer.buf.len() <= SPARE_WRITE_BUFFER_BYTES {
            spare.push(buffer);
        }
    }

    /// Write buffers kept for reuse.
    pub fn spare_write_buffers(&self) -> usize {
        self.spare.lock().expect("spare buffers lock").len()
    }

    /// A stripe buffer for stripes of at most `max_data_len` bytes (a
    /// small blob's reads).
    pub fn stripe_buffer_up_to(&self, max_data_len: usize) -> StripeBuffer {
        StripeBuffer::for_stripes_up_to(&self.params, max_data_len)
    }

    /// Computes the m parity blocks of the stripe in place.
    pub fn encode(&self, stripe: &mut StripeBuffer) -> Result<(), CodecError> {
        self.check_buffer(stripe)?;
        let k = self.params.k;
        let mut blocks = stripe.blocks_mut();
        match &self.coder {
            Coder::Rs(rs) => rs.encode(&mut blocks).map_err(coder_error),
            Coder::Lrc(lrc) => {
                let (data, parity) = blocks.split_at_mut(k);
                let data: Vec<&[u8]> = data.iter().map(|b| &**b).collect();
                lrc.encode(&data, parity).map_err(lrc_error)
            }
        }
    }

    /// Whether the data can be decoded from the blocks marked present: at
    /// least k of them for Reed-Solomon; for an LRC, blocks that determine
    /// all k data blocks (k blocks of one over-full group do not).
    pub fn is_decodable(&self, present: &[bool]) -> bool {
        match &self.coder {
            Coder::Rs(_) => present.iter().filter(|p| **p).count() >= self.params.k,
            Coder::Lrc(lrc) => lrc.is_decodable(present),
        }
    }

    /// Which blocks to read to rebuild block `lost` from those `available`:
    /// any k for Reed-Solomon (data blocks first); for an LRC its group's
    /// others when they are all there, else a decodable set. `None`: the
    /// available blocks cannot rebuild it.
    pub fn read_set(&self, lost: usize, available: &[bool]) -> Option<Vec<usize>> {
        match &self.coder {
            Coder::Rs(_) => {
                let set: Vec<usize> = (0..available.len())
                    .filter(|&i| i != lost && available[i])
                    .take(self.params.k)
                    .collect();
                (set.len() == self.params.k).then_some(set)
            }
            Coder::Lrc(lrc) => lrc.read_set(lost, available),
        }
    }

    /// The order in which to add blocks to a read around `failed` ones:
    /// for an LRC, the local parities of groups with a failure before the
    /// global parities and the other groups' (which cannot help).
    pub fn fallback_order(&self, failed: &[bool]) -> Vec<usize> {
        let total = self.params.total();
        let Some(lrc) = self.params.lrc_params() else {
            return (0..total).collect();
        };
        let hurt = |g: usize| lrc.group(g).iter().any(|&b| failed.get(b) == Some(&true));
        let mut order: Vec<usize> = (0..lrc.k).collect();
        order.extend((0..lrc.l).filter(|&g| hurt(g)).map(|g| lrc.k + g));
        order.extend(lrc.k + lrc.l..total);
        order.extend((0..lrc.l).filter(|&g| !hurt(g)).map(|g| lrc.k + g));
        order
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
        match &self.coder {
            Coder::Rs(rs) => {
                let blocks = stripe.blocks_mut();
                rs.verify(&blocks).map_err(coder_error)
            }
            Coder::Lrc(_) => {
                let k = self.params.k;
                let mut copy = stripe.clone();
                self.encode(&mut copy)?;
                Ok((k..self.params.total()).all(|i| copy.block(i) == stripe.block(i)))
            }
        }
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
        if !self.is_decodable(present) {
            return Err(CodecError::TooFewBlocks {
                available,
                needed: self.params.k,
            });
        }
        if available == present.len() {
            return Ok(());
        }
        match &self.coder {
            Coder::Rs(rs) => {
                let mut blocks: Vec<(&mut [u8], bool)> = stripe
                    .blocks_mut()
                    .into_iter()
                    .zip(present.iter().copied())
                    .collect();
                let result = if data_only {
                    rs.reconstruct_data(&mut blocks)
                } else {
                    rs.reconstruct(&mut blocks)
                };
                result.map_err(coder_error)
            }
            Coder::Lrc(lrc) => {
                // The LRC decodes owned blocks; a degraded stripe is the
                // rare case, so the copies in and out are acceptable.
                let mut blocks: Vec<Option<Vec<u8>>> = (0..present.len())
                    .map(|i| present[i].then(|| stripe.block(i).to_vec()))
                    .collect();
                lrc.reconstruct(&mut blocks).map_err(lrc_error)?;
                let wanted = if data_only {
                    self.params.k
                } else {
                    present.len()
                };
                for (i, block) in blocks.into_iter().enumerate().take(wanted) {
                    if !present[i] {
                        stripe
                            .block_mut(i)
                            .copy_from_slice(&block.expect("reconstructed"));
                    }
                }
                Ok(())
            }
        }
    }

    /// Rebuilds block `lost` of the stripe from the blocks marked present
    /// (what [`ErasureCodec::read_set`] chose): for an LRC possibly from its
    /// group alone, which could not decode the whole stripe.
    pub fn rebuild_block(
        &self,
        stripe: &mut StripeBuffer,
        present: &[bool],
        lost: usize,
    ) -> Result<(), CodecError> {
        self.check_buffer(stripe)?;
        check_count(present.len(), self.params.total())?;
        match &self.coder {
            // A lost data block needs only the data decoded; a parity needs
            // every missing block (the crate rebuilds them together).
            Coder::Rs(_) => self.reconstruct(stripe, present, lost < self.params.k),
            Coder::Lrc(lrc) => {
                let blocks: Vec<Option<&[u8]>> = (0..present.len())
                    .map(|i| (present[i] && i != lost).then(|| stripe.block(i)))
                    .collect();
                let rebuilt = lrc.rebuild(lost, &blocks).map_err(lrc_error)?;
                stripe.block_mut(lost).copy_from_slice(&rebuilt);
                Ok(())
            }
        }
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
        if stripe.data_only {
            return Err(CodecError::InvalidParams(
                "a data-only stripe buffer has no room for parity".into(),
            ));
        }
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

fn lrc_error(err: LrcError) -> CodecError {
    match err {
        LrcError::InvalidParams(params) => CodecError::InvalidParams(format!("{params}")),
        LrcError::TooFewBlocks { rank, k } => CodecError::TooFewBlocks {
            available: rank,
            needed: k,
        },
        other => CodecError::Coder(other.to_string()),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_copy_writer_buffer_holds_the_data_block_only() {
        let params = CodecParams::new(1, 2, 1 << 20).expect("params");
        let codec = ErasureCodec::new(params).expect("copies");
        let mut buffer = codec.write_buffer();
        assert_eq!(buffer.block_count(), 1);
        buffer.fill_from(&[7u8; 1000]).expect("fill");
        assert_eq!(buffer.block(0), &[7u8; 1000][..]);
        assert!(codec.encode(&mut buffer).is_err(), "no room for parity");
        // Coded writers still get whole stripes.
        let coded = ErasureCodec::new(CodecParams::new(4, 2, 4096).expect("params")).expect("4+2");
        assert_eq!(coded.write_buffer().block_count(), 6);
    }

    /// A write buffer given back is handed out again, and a short stripe
    /// written into it carries none of the previous stripe's bytes: its
    /// blocks and parity equal those of a fresh buffer.
    #[test]
    fn a_recycled_write_buffer_is_reused_and_leaks_nothing_stale() {
        let coded = codec(4, 2, 4096);
        let mut used = coded.write_buffer();
        used.fill_from(&vec![0xAB; 4 * 4096]).expect("full stripe");
        coded.encode(&mut used).expect("encode");
        let region = used.fill_region().as_ptr();
        coded.recycle_write_buffer(used);
        assert_eq!(coded.spare_write_buffers(), 1);

        let mut reused = coded.write_buffer();
        assert_eq!(reused.fill_region().as_ptr(), region, "the same allocation");
        assert_eq!(coded.spare_write_buffers(), 0);
        let short: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        reused.fill_from(&short).expect("short stripe");
        coded.encode(&mut reused).expect("encode");
        let mut fresh = codec(4, 2, 4096).write_buffer();
        fresh.fill_from(&short).expect("short stripe");
        coded.encode(&mut fresh).expect("encode");
        assert_eq!(reused.block_len(), fresh.block_len());
        for index in 0..6 {
            assert_eq!(reused.block(index), fresh.block(index), "block {index}");
        }

        // Copies: the data block's padding is zeroed too.
        let copies = codec(1, 2, 8192);
        let mut used = copies.write_buffer();
        used.fill_from(&[0xCD; 8192]).expect("fill");
        copies.recycle_write_buffer(used);
        let mut reused = copies.write_buffer();
        reused.fill_from(&[1u8; 10]).expect("fill");
        assert_eq!(reused.block(0), &[1u8; 10][..]);
        assert_eq!(reused.data(), &[1u8; 10][..]);
    }

    /// Only buffers of the codec's own write shape are kept, and no more
    /// than [`SPARE_WRITE_BUFFER_BYTES`] of them.
    #[test]
    fn only_write_shaped_buffers_are_kept_and_their_bytes_are_bounded() {
        let coded = codec(4, 2, 1 << 20);
        coded.recycle_write_buffer(coded.stripe_buffer_up_to(4096));
        coded.recycle_write_buffer(codec(8, 4, 1 << 20).write_buffer());
        coded.recycle_write_buffer(codec(1, 2, 1 << 20).write_buffer());
        assert_eq!(coded.spare_write_buffers(), 0, "wrong shapes are freed");

        let buffers: Vec<StripeBuffer> = (0..20).map(|_| coded.write_buffer()).collect();
        for buffer in buffers {
            coded.recycle_write_buffer(buffer);
        }
        let kept = SPARE_WRITE_BUFFER_BYTES / (6 << 20);
        assert_eq!(coded.spare_write_buffers(), kept);
    }

    use super::*;
    use proptest::prelude::*;

    fn codec(k: usize, m: usize, block_size: usize) -> ErasureCodec {
        ErasureCodec::new(CodecParams::new(k, m, block_size).expect("params")).expect("codec")
    }

    #[test]
    fn storage_classes_parse_and_print_the_way_users_write_them() {
        for (text, k, m, l) in [
            ("RS(8,4)", 8, 4, 0),
            ("rs(4, 2)", 4, 2, 0),
            ("LRC(12,2,2)", 12, 4, 2),
            ("LRC(8,2,2)", 8, 4, 2),
        ] {
            let class: StorageClass = text.parse().expect(text);
            assert_eq!((class.k, class.m, class.local_groups), (k, m, l), "{text}");
            assert_eq!(
                class.to_string().parse::<StorageClass>().expect("again"),
                class
            );
        }
        assert_eq!(
            "LRC(12,2,2)"
                .parse::<StorageClass>()
                .expect("lrc")
                .to_string(),
            "LRC(12,2,2)"
        );
        for bad in [
            "RS(8)",
            "LRC(12,5,2)",
            "RS(0,4)",
            "XOR(2,1)",
            "RS(8,4",
            "LRC(12,2,0)",
            "",
        ] {
            assert!(bad.parse::<StorageClass>().is_err(), "{bad} accepted");
        }
        let json = serde_json::to_string(&"LRC(8,2,2)".parse::<StorageClass>().expect("lrc"))
            .expect("json");
        assert_eq!(json, "\"LRC(8,2,2)\"");
    }

    #[test]
    fn manifests_without_local_groups_are_reed_solomon() {
        let old: CodecParams =
            serde_json::from_str(r#"{"k":8,"m":4,"block_size":262144}"#).expect("old manifest");
        assert_eq!(old, CodecParams::DEFAULT);
        assert_eq!(old.tolerated_losses(), 4);
        assert_eq!(
            serde_json::to_string(&old).expect("json"),
            r#"{"k":8,"m":4,"block_size":262144}"#
        );
        let lrc = CodecParams::lrc(12, 2, 2, 1024).expect("lrc");
        assert_eq!(
            (
                lrc.total(),
                lrc.tolerated_losses(),
                lrc.local_repair_reads()
            ),
            (16, 3, 6)
        );
    }

    #[test]
    fn lrc_stripes_survive_every_pattern_of_r_plus_one_losses_and_refuse_worse() {
        let params = CodecParams::lrc(8, 2, 2, 64).expect("lrc");
        let codec = ErasureCodec::new(params).expect("codec");
        let mut stripe = codec.stripe_buffer();
        let data: Vec<u8> = (0..500u32).map(|i| (i * 31 % 251) as u8).collect();
        stripe.fill_from(&data).expect("fill");
        codec.encode(&mut stripe).expect("encode");
        assert!(codec.verify(&mut stripe).expect("verify"));
        let expected = stripe.block_hashes();
        let total = params.total();
        let mut undecodable = 0;
        for mask in 0u32..(1 << total) {
            let lost = mask.count_ones() as usize;
            if lost == 0 || lost > 4 {
                continue;
            }
            let present: Vec<bool> = (0..total).map(|i| mask & (1 << i) == 0).collect();
            let mut damaged = stripe.clone();
            for (i, p) in present.iter().enumerate() {
                if !p {
                    damaged.block_mut(i).fill(0xEE);
                }
            }
            match codec.restore(&mut damaged, &present, &expected, false) {
                Ok(report) => {
                    assert_eq!(report.rebuilt.len(), lost);
                    assert_eq!(damaged.data(), &data[..], "mask {mask:b}");
                }
                Err(CodecError::TooFewBlocks { .. }) => {
                    assert!(lost > params.tolerated_losses(), "mask {mask:b} refused");
                    assert!(!codec.is_decodable(&present));
                    undecodable += 1;
                }
                Err(other) => panic!("mask {mask:b}: {other}"),
            }
        }
        // 4 losses of 12: 495 patterns, 425 decodable (core::lrc's count).
        assert_eq!(undecodable, 495 - 425);
    }

    #[test]
    fn lrc_repair_reads_the_group_and_degraded_reads_add_its_local_parity_first() {
        let codec = ErasureCodec::new(CodecParams::lrc(12, 2, 2, 64).expect("lrc")).expect("codec");
        let mut available = vec![true; 16];
        available[3] = false;
        assert_eq!(codec.read_set(3, &available), Some(vec![0, 1, 2, 4, 5, 12]));
        available[0] = false;
        let wide = codec.read_set(3, &available).expect("decodable");
        assert_eq!(wide.len(), 12);
        let mut failed = vec![false; 16];
        failed[7] = true; // group 1
        let order = codec.fallback_order(&failed);
        assert_eq!(&order[12..], &[13, 14, 15, 12]);
        // A local rebuild from the six blocks of the read set.
        let mut stripe = codec.stripe_buffer();
        let data: Vec<u8> = (0..700u32).map(|i| (i * 7 % 253) as u8).collect();
        stripe.fill_from(&data).expect("fill");
        codec.encode(&mut stripe).expect("encode");
        let original = stripe.block(3).to_vec();
        let mut present = vec![false; 16];
        for b in [0, 1, 2, 4, 5, 12] {
            present[b] = true;
        }
        stripe.block_mut(3).fill(0);
        codec
            .rebuild_block(&mut stripe, &present, 3)
            .expect("local rebuild");
        assert_eq!(stripe.block(3), &original[..]);
        present[12] = false;
        assert!(matches!(
            codec.rebuild_block(&mut stripe, &present, 3),
            Err(CodecError::TooFewBlocks { .. })
        ));
        let rs = ErasureCodec::new(CodecParams::DEFAULT).expect("rs");
        assert_eq!(rs.fallback_order(&failed), (0..12).collect::<Vec<_>>());
        // Reed-Solomon rebuilds a data block or a parity from its read set.
        let mut stripe = rs.stripe_buffer();
        stripe.fill_from(&data).expect("fill");
        rs.encode(&mut stripe).expect("encode");
        for lost in [2usize, 10] {
            let original = stripe.block(lost).to_vec();
            let mut available = vec![true; 12];
            available[lost] = false;
            let set = rs.read_set(lost, &available).expect("k others");
            let present: Vec<bool> = (0..12).map(|i| set.contains(&i)).collect();
            stripe.block_mut(lost).fill(0);
            rs.rebuild_block(&mut stripe, &present, lost)
                .expect("rebuild");
            assert_eq!(stripe.block(lost), &original[..], "block {lost}");
        }
        assert_eq!(rs.read_set(0, &[true; 12]), Some((1..9).collect()));
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
