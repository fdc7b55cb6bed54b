//! Reading and verifying one chunk file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use cairn_core::chunk_file::{
    ChunkFooter, ChunkHeader, ChunkMeta, FOOTER_LEN, FormatError, HEADER_LEN,
};
use cairn_core::ids::ChunkId;
use cairn_core::integrity::{BlockHash, MerkleRoot, hash_block, merkle_root};

use super::{StoreError, io_error};

/// An open chunk whose header and trailer have been checked.
#[derive(Debug)]
pub struct ChunkReader {
    file: File,
    meta: ChunkMeta,
}

/// The result of re-hashing a chunk from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOutcome {
    pub blocks: u64,
    pub data_len: u64,
    /// Root over the hashes computed now.
    pub merkle_root: MerkleRoot,
    /// Blocks whose bytes differ from the stored hash (empty when the stored
    /// hashes themselves are damaged: compare `merkle_root` with the manifest).
    pub corrupt_blocks: Vec<u64>,
    pub trailer_intact: bool,
    pub leaves: Vec<BlockHash>,
}

impl ChunkReader {
    pub(super) fn open(path: &Path, chunk: ChunkId) -> Result<Self, StoreError> {
        let (file, header, footer, file_len) = open_parts(path, chunk)?;
        let table = read_hash_table(&file, &header, &footer, chunk)?;
        let meta =
            ChunkMeta::validate(header, &footer, &table, file_len).map_err(corrupt(chunk))?;
        Ok(Self { file, meta })
    }

    pub fn meta(&self) -> &ChunkMeta {
        &self.meta
    }

    pub fn chunk(&self) -> ChunkId {
        self.meta.header.chunk
    }

    /// The open file, for handing to a reader on this host (short-circuit
    /// reads: the receiver checks each block against the stored hash).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads block `index` and its stored hash without comparing them: for
    /// a receiver that checks every block against that hash itself (the
    /// block-frame stream, `BlockStream`), so the bytes are hashed once per
    /// trust boundary rather than twice. Data at rest is checked by the
    /// scrubber's verify.
    pub fn read_block_unverified(&self, index: u64) -> Result<(Bytes, BlockHash), StoreError> {
        let (offset, len) = self.meta.block_extent(index);
        let mut buf = BytesMut::zeroed(len);
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(io_error(format!("read block {index} of {}", self.chunk())))?;
        Ok((buf.freeze(), self.meta.hashes[index as usize]))
    }

    /// Checks that `first..first+count` is within the chunk.
    pub fn check_range(&self, first: u64, count: u64) -> Result<(), StoreError> {
        let blocks = self.meta.block_count();
        let end = first.saturating_add(count);
        if end > blocks {
            return Err(StoreError::RangeOutOfBounds { first, end, blocks });
        }
        Ok(())
    }
}

/// Re-hashes every block of a chunk from disk. Works even when the stored
/// hash table is damaged (as long as header and footer can be read), since
/// the caller compares the computed root with the manifest's.
pub fn verify_chunk(path: &Path, chunk: ChunkId) -> Result<VerifyOutcome, StoreError> {
    let (file, header, footer, file_len) = open_parts(path, chunk)?;
    cairn_core::chunk_file::check_geometry(header.block_size, footer.block_count, footer.data_len)
        .map_err(corrupt(chunk))?;
    let table = read_hash_table(&file, &header, &footer, chunk)?;
    let stored = ChunkMeta::validate(header, &footer, &table, file_len).ok();
    let geometry = ChunkMeta {
        header,
        data_len: footer.data_len,
        merkle_root: footer.merkle_root,
        hashes: vec![BlockHash::default(); footer.block_count as usize],
    };
    let mut buf = vec![0u8; header.block_size as usize];
    let mut leaves = Vec::with_capacity(footer.block_count as usize);
    let mut corrupt_blocks = Vec::new();
    for index in 0..footer.block_count {
        let (offset, len) = geometry.block_extent(index);
        file.read_exact_at(&mut buf[..len], offset)
            .map_err(io_error(format!("read block {index} of {chunk}")))?;
        let leaf = hash_block(&buf[..len]);
        if stored
            .as_ref()
            .is_some_and(|s| s.hashes[index as usize] != leaf)
        {
            corrupt_blocks.push(index);
        }
        leaves.push(leaf);
    }
    Ok(VerifyOutcome {
        blocks: footer.block_count,
        data_len: footer.data_len,
        merkle_root: merkle_root(&leaves),
        corrupt_blocks,
        trailer_intact: stored.is_some(),
        leaves,
    })
}

fn open_parts(
    path: &Path,
    chunk: ChunkId,
) -> Result<(File, ChunkHeader, ChunkFooter, u64), StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound(chunk));
        }
        Err(err) => return Err(io_error(format!("open {}", path.display()))(err)),
    };
    let file_len = file.metadata().map_err(io_error("stat chunk"))?.len();
    if file_len < (HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(corrupt(chunk)(FormatError::LengthMismatch {
            expected: (HEADER_LEN + FOOTER_LEN) as u64,
            actual: file_len,
        }));
    }
    let mut head = [0u8; HEADER_LEN];
    file.read_exact_at(&mut head, 0)
        .map_err(io_error("read chunk header"))?;
    let header = ChunkHeader::decode(&head).map_err(corrupt(chunk))?;
    if header.chunk != chunk {
        return Err(corrupt(chunk)(FormatError::Geometry(format!(
            "file holds chunk {}",
            header.chunk
        ))));
    }
    let mut foot = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut foot, file_len - FOOTER_LEN as u64)
        .map_err(io_error("read chunk footer"))?;
    let footer = ChunkFooter::decode(&foot).map_err(corrupt(chunk))?;
    footer
        .check_file_len(&header, file_len)
        .map_err(corrupt(chunk))?;
    Ok((file, header, footer, file_len))
}

/// Reads the hash table; the footer's length was checked against the file.
fn read_hash_table(
    file: &File,
    header: &ChunkHeader,
    footer: &ChunkFooter,
    chunk: ChunkId,
) -> Result<Vec<u8>, StoreError> {
    let mut table = vec![0u8; footer.block_count as usize * 32];
    file.read_exact_at(&mut table, footer.hash_table_offset(header))
        .map_err(|_| {
            corrupt(chunk)(FormatError::Geometry(
                "hash table beyond end of file".into(),
            ))
        })?;
    Ok(table)
}

fn corrupt(chunk: ChunkId) -> impl FnOnce(FormatError) -> StoreError {
    move |source| StoreError::CorruptChunk { chunk, source }
}
