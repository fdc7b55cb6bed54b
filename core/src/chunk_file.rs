//! The on-disk format of one chunk file (format version 2).
//!
//! ```text
//! header   64 B  magic "CAIRNCHK" | version u16 | header_len u16 | blob id 16 B
//!                | chunk index u8 | 3 B zero | block_size u32 | 28 B zero
//! padding        zeros up to header_len (64 or 4096)
//! blocks         block 0 | block 1 | … (all block_size bytes but the last)
//! hashes   n×32  blake3 of each block, in order
//! footer   72 B  block_count u64 | data_len u64 | merkle root 32 B
//!                | checksum 16 B | magic "CAIRNEND"
//! ```
//! Integers are little-endian. The checksum is the first 16 bytes of blake3
//! over header, hashes and the footer fields before it, so a damaged hash
//! table or footer is told apart from a damaged block. Hashes trail the
//! blocks because a chunk is written as it streams in: the writer does not
//! know the block count up front. Everything needed to verify the chunk is in
//! the file itself.
//!
//! Version 2 adds the padded header: a chunk whose blocks are written with
//! direct I/O starts its blocks at [`ALIGNED_HEADER_LEN`] so every full
//! block sits on a page boundary; small chunks keep the 64-byte header.
//! Version 1 files (always a 64-byte header) are still read.

use crate::ids::{BlobId, ChunkId};
use crate::integrity::{BlockHash, MerkleRoot};

pub const MAGIC: &[u8; 8] = b"CAIRNCHK";
pub const END_MAGIC: &[u8; 8] = b"CAIRNEND";
pub const FORMAT_VERSION: u16 = 2;
/// Length of the header's fields (and the whole header when unpadded).
pub const HEADER_LEN: usize = 64;
/// The padded header of a chunk written with direct I/O: the page size, so
/// the blocks after it are page-aligned.
pub const ALIGNED_HEADER_LEN: usize = 4096;
pub const FOOTER_LEN: usize = 72;
const CHECKSUM_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a chunk file (bad magic)")]
    BadMagic,
    #[error("unsupported chunk format version {0}")]
    UnsupportedVersion(u16),
    #[error("chunk file is {actual} bytes but its footer implies {expected}")]
    LengthMismatch { expected: u64, actual: u64 },
    #[error("chunk trailer checksum mismatch: hash table or footer is damaged")]
    TrailerChecksum,
    #[error("inconsistent chunk geometry: {0}")]
    Geometry(String),
}

/// The fixed-size header at the start of a chunk file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub chunk: ChunkId,
    pub block_size: u32,
    /// Where the blocks start: [`HEADER_LEN`] or [`ALIGNED_HEADER_LEN`].
    pub header_len: u16,
    /// [`FORMAT_VERSION`] for new files; 1 for a file an older node wrote.
    pub version: u16,
}

impl ChunkHeader {
    /// The header of a new chunk file.
    pub fn new(chunk: ChunkId, block_size: u32, header_len: u16) -> Self {
        Self {
            chunk,
            block_size,
            header_len,
            version: FORMAT_VERSION,
        }
    }
}

impl ChunkHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[10..12].copy_from_slice(&self.header_len.to_le_bytes());
        out[12..28].copy_from_slice(self.chunk.blob.as_bytes());
        out[28] = self.chunk.index;
        out[32..36].copy_from_slice(&self.block_size.to_le_bytes());
        out
    }

    /// The whole header as written: the fields, then zeros up to
    /// `header_len`.
    pub fn encode_padded(&self) -> Vec<u8> {
        let mut out = vec![0u8; (self.header_len as usize).max(HEADER_LEN)];
        out[..HEADER_LEN].copy_from_slice(&self.encode());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < HEADER_LEN || &bytes[0..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        let header_len = u16::from_le_bytes([bytes[10], bytes[11]]);
        let len_ok = match version {
            1 => header_len as usize == HEADER_LEN,
            FORMAT_VERSION => [HEADER_LEN, ALIGNED_HEADER_LEN].contains(&(header_len as usize)),
            _ => return Err(FormatError::UnsupportedVersion(version)),
        };
        if !len_ok {
            return Err(FormatError::Geometry(format!("header length {header_len}")));
        }
        let mut blob = [0u8; 16];
        blob.copy_from_slice(&bytes[12..28]);
        let block_size = u32::from_le_bytes(read4(&bytes[32..36]));
        if block_size == 0 {
            return Err(FormatError::Geometry("block size 0".into()));
        }
        Ok(Self {
            chunk: ChunkId::new(BlobId::from_bytes(blob), bytes[28]),
            block_size,
            header_len,
            version,
        })
    }
}

/// The footer's fields, read from the last [`FOOTER_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkFooter {
    pub block_count: u64,
    pub data_len: u64,
    pub merkle_root: MerkleRoot,
    checksum: [u8; CHECKSUM_LEN],
}

impl ChunkFooter {
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() != FOOTER_LEN || &bytes[64..72] != END_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let mut root = [0u8; 32];
        root.copy_from_slice(&bytes[16..48]);
        let mut checksum = [0u8; CHECKSUM_LEN];
        checksum.copy_from_slice(&bytes[48..64]);
        Ok(Self {
            block_count: u64::from_le_bytes(read8(&bytes[0..8])),
            data_len: u64::from_le_bytes(read8(&bytes[8..16])),
            merkle_root: MerkleRoot(root),
            checksum,
        })
    }

    /// Offset of the hash table (which directly follows the blocks).
    pub fn hash_table_offset(&self, header: &ChunkHeader) -> u64 {
        header.header_len as u64 + self.data_len
    }

    /// The file length this footer implies (`None` if a damaged footer
    /// implies an impossible length).
    pub fn file_len(&self, header: &ChunkHeader) -> Option<u64> {
        (header.header_len as u64)
            .checked_add(self.data_len)?
            .checked_add(self.block_count.checked_mul(32)?)?
            .checked_add(FOOTER_LEN as u64)
    }

    /// Checks the footer against the actual file length.
    pub fn check_file_len(&self, header: &ChunkHeader, actual: u64) -> Result<(), FormatError> {
        match self.file_len(header) {
            Some(expected) if expected == actual => Ok(()),
            expected => Err(FormatError::LengthMismatch {
                expected: expected.unwrap_or(u64::MAX),
                actual,
            }),
        }
    }
}

/// Everything known about a chunk file once its header and trailer are read
/// and checked: enough to locate and verify every block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    pub header: ChunkHeader,
    pub data_len: u64,
    pub merkle_root: MerkleRoot,
    pub hashes: Vec<BlockHash>,
}

impl ChunkMeta {
    /// Checks a footer and hash table read from a file of `file_len` bytes.
    pub fn validate(
        header: ChunkHeader,
        footer: &ChunkFooter,
        hash_table: &[u8],
        file_len: u64,
    ) -> Result<Self, FormatError> {
        footer.check_file_len(&header, file_len)?;
        if hash_table.len() as u64 != footer.block_count * 32 {
            return Err(FormatError::Geometry("hash table length".into()));
        }
        let expected = trailer_checksum(
            &header,
            hash_table,
            footer.block_count,
            footer.data_len,
            &footer.merkle_root,
        );
        if expected != footer.checksum {
            return Err(FormatError::TrailerChecksum);
        }
        check_geometry(header.block_size, footer.block_count, footer.data_len)?;
        let hashes = hash_table
            .chunks_exact(32)
            .map(|h| {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(h);
                BlockHash(bytes)
            })
            .collect();
        Ok(Self {
            header,
            data_len: footer.data_len,
            merkle_root: footer.merkle_root,
            hashes,
        })
    }

    pub fn block_count(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// File offset and length of block `index`.
    pub fn block_extent(&self, index: u64) -> (u64, usize) {
        let size = self.header.block_size as u64;
        let start = index * size;
        let len = size.min(self.data_len - start);
        (self.header.header_len as u64 + start, len as usize)
    }
}

/// Encodes the hash table and footer that end a chunk file.
pub fn encode_trailer(
    header: &ChunkHeader,
    hashes: &[BlockHash],
    data_len: u64,
    merkle_root: &MerkleRoot,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * 32 + FOOTER_LEN);
    for hash in hashes {
        out.extend_from_slice(&hash.0);
    }
    let block_count = hashes.len() as u64;
    let checksum = trailer_checksum(header, &out, block_count, data_len, merkle_root);
    out.extend_from_slice(&block_count.to_le_bytes());
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&merkle_root.0);
    out.extend_from_slice(&checksum);
    out.extend_from_slice(END_MAGIC);
    out
}

/// Every block is `block_size` bytes except the last, which is 1..=block_size.
pub fn check_geometry(block_size: u32, block_count: u64, data_len: u64) -> Result<(), FormatError> {
    let size = block_size as u64;
    let ok = match block_count {
        0 => data_len == 0,
        n => data_len > (n - 1) * size && data_len <= n * size,
    };
    if ok {
        Ok(())
    } else {
        Err(FormatError::Geometry(format!(
            "{block_count} blocks of at most {block_size} bytes cannot hold {data_len} bytes"
        )))
    }
}

fn trailer_checksum(
    header: &ChunkHeader,
    hash_table: &[u8],
    block_count: u64,
    data_len: u64,
    root: &MerkleRoot,
) -> [u8; CHECKSUM_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&header.encode());
    hasher.update(hash_table);
    hasher.update(&block_count.to_le_bytes());
    hasher.update(&data_len.to_le_bytes());
    hasher.update(&root.0);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECKSUM_LEN]);
    out
}

fn read4(b: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(b);
    out
}

fn read8(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::{hash_block, merkle_root};

    fn sample() -> (ChunkHeader, Vec<Vec<u8>>) {
        let header = ChunkHeader::new(ChunkId::new(BlobId::random(), 7), 10, HEADER_LEN as u16);
        (header, vec![vec![1; 10], vec![2; 10], vec![3; 4]])
    }

    fn file(header: &ChunkHeader, blocks: &[Vec<u8>]) -> Vec<u8> {
        let hashes: Vec<BlockHash> = blocks.iter().map(|b| hash_block(b)).collect();
        let data_len = blocks.iter().map(|b| b.len() as u64).sum();
        let mut out = header.encode_padded();
        for b in blocks {
            out.extend_from_slice(b);
        }
        out.extend(encode_trailer(
            header,
            &hashes,
            data_len,
            &merkle_root(&hashes),
        ));
        out
    }

    fn parse(bytes: &[u8]) -> Result<ChunkMeta, FormatError> {
        let header = ChunkHeader::decode(&bytes[..HEADER_LEN])?;
        let footer = ChunkFooter::decode(&bytes[bytes.len() - FOOTER_LEN..])?;
        let table_start = footer.hash_table_offset(&header) as usize;
        let table = bytes
            .get(table_start..bytes.len() - FOOTER_LEN)
            .ok_or(FormatError::Geometry("short".into()))?;
        ChunkMeta::validate(header, &footer, table, bytes.len() as u64)
    }

    #[test]
    fn round_trips_header_trailer_and_block_extents() {
        let (header, blocks) = sample();
        let bytes = file(&header, &blocks);
        let meta = parse(&bytes).expect("valid");
        assert_eq!(meta.header, header);
        assert_eq!(meta.block_count(), 3);
        assert_eq!(meta.data_len, 24);
        assert_eq!(meta.block_extent(0), (64, 10));
        assert_eq!(meta.block_extent(2), (84, 4));
        let (offset, len) = meta.block_extent(2);
        assert_eq!(
            &bytes[offset as usize..offset as usize + len],
            &blocks[2][..]
        );
    }

    #[test]
    fn padded_header_puts_blocks_on_a_page_boundary() {
        let (mut header, blocks) = sample();
        header.header_len = ALIGNED_HEADER_LEN as u16;
        let bytes = file(&header, &blocks);
        let meta = parse(&bytes).expect("valid");
        assert_eq!(meta.header, header);
        assert_eq!(meta.block_extent(0), (4096, 10));
        assert_eq!(meta.block_extent(2), (4116, 4));
        assert_eq!(bytes.len(), 4096 + 24 + 3 * 32 + FOOTER_LEN);
        // Any other header length is refused, and version 1 knew only 64.
        let mut odd = bytes.clone();
        odd[10..12].copy_from_slice(&100u16.to_le_bytes());
        assert!(matches!(parse(&odd), Err(FormatError::Geometry(_))));
        let mut v1 = bytes.clone();
        v1[8..10].copy_from_slice(&1u16.to_le_bytes());
        assert!(matches!(parse(&v1), Err(FormatError::Geometry(_))));
    }

    #[test]
    fn version_1_files_are_still_read() {
        let (mut header, blocks) = sample();
        header.version = 1;
        let bytes = file(&header, &blocks);
        assert_eq!(&bytes[8..10], &1u16.to_le_bytes());
        let meta = parse(&bytes).expect("a version 1 file");
        assert_eq!(meta.header.version, 1);
        assert_eq!(meta.block_extent(2), (84, 4));
    }

    #[test]
    fn damaged_trailer_or_header_is_detected() {
        let (header, blocks) = sample();
        let good = file(&header, &blocks);
        let hash_table_byte = 64 + 24 + 5;
        let mut bad = good.clone();
        bad[hash_table_byte] ^= 1;
        assert_eq!(parse(&bad), Err(FormatError::TrailerChecksum));
        let mut bad = good.clone();
        bad[28] ^= 1; // chunk index in the header
        assert_eq!(parse(&bad), Err(FormatError::TrailerChecksum));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(parse(&bad), Err(FormatError::BadMagic));
        let mut bad = good.clone();
        bad[8] = 9;
        assert_eq!(parse(&bad), Err(FormatError::UnsupportedVersion(9)));
        let mut truncated = good[..good.len() - FOOTER_LEN - 1].to_vec();
        truncated.extend_from_slice(&good[good.len() - FOOTER_LEN..]);
        assert!(matches!(
            parse(&truncated),
            Err(FormatError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn geometry_rules() {
        assert!(check_geometry(10, 0, 0).is_ok());
        assert!(check_geometry(10, 1, 1).is_ok());
        assert!(check_geometry(10, 2, 20).is_ok());
        assert!(check_geometry(10, 2, 10).is_err(), "last block empty");
        assert!(check_geometry(10, 2, 21).is_err(), "last block too long");
        assert!(check_geometry(10, 0, 1).is_err());
    }
}
