//! Writing one chunk file durably as its blocks stream in.
//!
//! Full blocks of a large chunk go to disk with **direct I/O** (`O_DIRECT`),
//! from a page-aligned buffer to page-aligned file offsets (the header is
//! padded to [`ALIGNED_HEADER_LEN`]). That skips the page cache: no copy
//! into it, no per-page filesystem bookkeeping, no dirty pages for `fsync`
//! to write back, and a node streaming gigabytes does not evict what readers
//! have cached. It is the largest per-byte cost of a node on the PUT path
//! (BENCHMARKS.md). The short last block, the trailer, and chunks of a
//! single short block (small objects) are written through the page cache.
//! A filesystem that refuses direct I/O (EINVAL: e.g. tmpfs before Linux
//! 6.6; this machine's tmpfs accepts it) falls back to buffered
//! writes, for that chunk and, via the store, for every later one.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use cairn_core::chunk_file::{
    ALIGNED_HEADER_LEN, ChunkHeader, HEADER_LEN, check_geometry, encode_trailer,
};
use cairn_core::ids::ChunkId;
use cairn_core::integrity::{BlockHash, MerkleRoot, hash_block, merkle_root};
use cairn_node_api::wire::PutChunkResponse;

use super::{ChunkStore, StoreError, TEMP_PREFIX, io_error, sync_dir};

/// Bytes read back at a time when checking a chunk a local writer filled.
const READ_BACK_PIECE: usize = 256 * 1024;

thread_local! {
    /// The read-back buffer of this (blocking-pool) thread.
    static READ_BACK: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(vec![0; READ_BACK_PIECE]);
}

/// Direct I/O needs buffers, offsets and lengths aligned to the device's
/// logical block; the page size covers every device we expect.
const DIRECT_ALIGN: usize = ALIGNED_HEADER_LEN;

/// An unfinished chunk: a temp file next to its final name. Dropping it
/// without [`ChunkWriter::finish`] deletes the temp file, so an interrupted
/// upload leaves nothing behind.
#[derive(Debug)]
pub struct ChunkWriter {
    store: ChunkStore,
    dir: PathBuf,
    temp_path: PathBuf,
    /// Buffered handle: header, short blocks, trailer, and the final fsync
    /// (which makes the direct writes' metadata durable too).
    file: File,
    /// Direct-I/O handle and its aligned staging buffer, for full blocks.
    direct: Option<DirectBlocks>,
    /// Written with the first block (while `hashes` is empty), once the
    /// layout is known.
    header: ChunkHeader,
    hashes: Vec<BlockHash>,
    data_len: u64,
    saw_short_block: bool,
    finished: bool,
}

/// A second handle on the temp file opened with `O_DIRECT`, and a
/// page-aligned buffer of one block.
#[derive(Debug)]
struct DirectBlocks {
    file: File,
    /// `block_size + DIRECT_ALIGN` bytes; the block is staged at `offset`.
    buffer: Vec<u8>,
    offset: usize,
}

impl DirectBlocks {
    fn open(path: &std::path::Path, block_size: usize) -> io::Result<Self> {
        let file = File::options()
            .write(true)
            .custom_flags(nix::libc::O_DIRECT)
            .open(path)?;
        let buffer = vec![0u8; block_size + DIRECT_ALIGN];
        let offset = buffer.as_ptr().align_offset(DIRECT_ALIGN);
        Ok(Self {
            file,
            buffer,
            offset,
        })
    }

    fn write_block(&mut self, data: &[u8], at: u64) -> io::Result<()> {
        let staged = &mut self.buffer[self.offset..self.offset + data.len()];
        staged.copy_from_slice(data);
        self.file.write_all_at(staged, at)
    }
}

impl ChunkWriter {
    pub(super) fn create(
        store: ChunkStore,
        dir: PathBuf,
        chunk: ChunkId,
        block_size: u32,
    ) -> Result<Self, StoreError> {
        if block_size == 0 {
            return Err(StoreError::InvalidStream(
                "block size must be positive".into(),
            ));
        }
        let temp_path = dir.join(format!(
            "{TEMP_PREFIX}{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(io_error(format!("create {}", temp_path.display())))?;
        Ok(Self {
            store,
            dir,
            temp_path,
            file,
            direct: None,
            header: ChunkHeader::new(chunk, block_size, HEADER_LEN as u16),
            hashes: Vec::new(),
            data_len: 0,
            saw_short_block: false,
            finished: false,
        })
    }

    /// Chooses the layout when the first block arrives: a full first block
    /// of a page-multiple size means a chunk worth writing directly (padded
    /// header); anything else keeps the compact 64-byte header.
    fn write_header(&mut self, first_block_len: usize) -> Result<(), StoreError> {
        let block_size = self.header.block_size as usize;
        if self.store.direct_io()
            && block_size.is_multiple_of(DIRECT_ALIGN)
            && first_block_len == block_size
        {
            match DirectBlocks::open(&self.temp_path, block_size) {
                Ok(direct) => {
                    self.direct = Some(direct);
                    self.header.header_len = ALIGNED_HEADER_LEN as u16;
                }
                Err(err) => self.store.disable_direct_io(&err),
            }
        }
        let head = self.header.encode_padded();
        self.file
            .write_all_at(&head, 0)
            .map_err(|e| self.write_error(e))
    }

    /// Writes a block at its place: directly when it is a full block of a
    /// direct chunk, through the page cache otherwise.
    fn write_data(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let at = self.header.header_len as u64 + self.data_len;
        if data.len() == self.header.block_size as usize
            && let Some(direct) = self.direct.as_mut()
        {
            match direct.write_block(data, at) {
                Ok(()) => return Ok(()),
                // Refused (EINVAL: the filesystem cannot do it after all):
                // this write and every later one go through the page cache.
                Err(err) if err.raw_os_error() == Some(nix::libc::EINVAL) => {
                    self.store.disable_direct_io(&err);
                    self.direct = None;
                }
                Err(err) => return Err(self.write_error(err)),
            }
        }
        self.file
            .write_all_at(data, at)
            .map_err(|e| self.write_error(e))
    }

    pub fn chunk(&self) -> ChunkId {
        self.header.chunk
    }

    /// Appends block `index` after checking that it is the next block, that
    /// its size fits, and that its bytes hash to what the writer declared.
    pub fn write_block(
        &mut self,
        index: u32,
        hash: BlockHash,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let expected = self.hashes.len() as u64;
        if index as u64 != expected {
            return Err(StoreError::InvalidStream(format!(
                "expected block {expected}, got block {index}"
            )));
        }
        let block_size = self.header.block_size as usize;
        if data.is_empty() || data.len() > block_size {
            return Err(StoreError::InvalidStream(format!(
                "block {index} has {} bytes; blocks hold 1..={block_size}",
                data.len()
            )));
        }
        if self.saw_short_block {
            return Err(StoreError::InvalidStream(format!(
                "block {index} follows a short block; only the last block may be short"
            )));
        }
        if hash_block(data) != hash {
            return Err(StoreError::HashMismatch {
                block: index as u64,
            });
        }
        if self.hashes.is_empty() {
            self.write_header(data.len())?;
        }
        self.write_data(data)?;
        self.saw_short_block = data.len() < block_size;
        self.hashes.push(hash);
        self.data_len += data.len() as u64;
        Ok(())
    }

    /// Seals the chunk: checks the declared block count and Merkle root,
    /// writes the trailer, fsyncs, renames into place and fsyncs the
    /// directory. Only then is the chunk visible and durable.
    pub fn finish(
        mut self,
        block_count: u32,
        declared_root: MerkleRoot,
    ) -> Result<PutChunkResponse, StoreError> {
        if block_count as usize != self.hashes.len() {
            return Err(StoreError::InvalidStream(format!(
                "end frame declares {block_count} blocks but {} arrived",
                self.hashes.len()
            )));
        }
        let root = merkle_root(&self.hashes);
        if root != declared_root {
            return Err(StoreError::InvalidStream(format!(
                "end frame declares Merkle root {declared_root} but the blocks give {root}"
            )));
        }
        check_geometry(self.header.block_size, block_count as u64, self.data_len)
            .map_err(|e| StoreError::InvalidStream(e.to_string()))?;
        if self.hashes.is_empty() {
            // An empty chunk (an empty object): header and trailer only.
            self.write_header(0)?;
        }
        let trailer = encode_trailer(&self.header, &self.hashes, self.data_len, &root);
        let at = self.header.header_len as u64 + self.data_len;
        self.file
            .write_all_at(&trailer, at)
            .map_err(|e| self.write_error(e))?;
        self.file.sync_all().map_err(|e| self.write_error(e))?;

        let chunk = self.header.chunk;
        let file_len = at + trailer.len() as u64;
        self.store
            .rename_into_place(&self.temp_path, &chunk, file_len)?;
        self.finished = true;
        sync_dir(&self.dir)?;
        drop_cached_pages(&self.file);
        tracing::debug!(%chunk, blocks = block_count, bytes = self.data_len, "chunk stored");
        Ok(PutChunkResponse {
            chunk,
            blocks: block_count as u64,
            data_len: self.data_len,
            merkle_root: root,
        })
    }

    /// Prepares the chunk for a writer on this host that writes the blocks
    /// into the file itself (short-circuit writes): writes the compact
    /// header and returns where data starts; [`Self::file`] is the handle
    /// to give it. No direct I/O: the writer's `pwrite`s go through the
    /// page cache.
    pub fn begin_external(&mut self) -> Result<u64, StoreError> {
        let head = self.header.encode_padded();
        self.file
            .write_all_at(&head, 0)
            .map_err(|e| self.write_error(e))?;
        Ok(self.header.header_len as u64)
    }

    /// The temporary file (write-only), for an external writer.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Seals a chunk an external writer filled (after
    /// [`Self::begin_external`]): reads every block back and checks it
    /// against its declared hash, as [`Self::write_block`] checks blocks
    /// that arrive over the network, then finishes as usual. Anything the
    /// writer left past the data is cut off by the trailer and the length.
    pub fn seal_external(
        mut self,
        hashes: Vec<BlockHash>,
        data_len: u64,
        declared_root: MerkleRoot,
    ) -> Result<PutChunkResponse, StoreError> {
        let block_size = self.header.block_size;
        check_geometry(block_size, hashes.len() as u64, data_len)
            .map_err(|e| StoreError::InvalidStream(e.to_string()))?;
        let reader = File::open(&self.temp_path)
            .map_err(io_error(format!("open {}", self.temp_path.display())))?;
        let start = self.header.header_len as u64;
        READ_BACK.with_borrow_mut(|buf| {
            for (index, declared) in hashes.iter().enumerate() {
                let offset = index as u64 * block_size as u64;
                let len = (block_size as u64).min(data_len - offset);
                // Hashed in pieces through one reused buffer: no block-sized
                // allocation (and zeroing) per chunk sealed.
                let mut hasher = blake3::Hasher::new();
                let mut done = 0u64;
                while done < len {
                    let piece = &mut buf[..(len - done).min(READ_BACK_PIECE as u64) as usize];
                    reader
                        .read_exact_at(piece, start + offset + done)
                        .map_err(|_| {
                            StoreError::InvalidStream(format!(
                                "block {index} was not written whole"
                            ))
                        })?;
                    hasher.update(piece);
                    done += piece.len() as u64;
                }
                if BlockHash(*hasher.finalize().as_bytes()) != *declared {
                    return Err(StoreError::HashMismatch {
                        block: index as u64,
                    });
                }
            }
            Ok(())
        })?;
        let block_count = u32::try_from(hashes.len())
            .map_err(|_| StoreError::InvalidStream("too many blocks".into()))?;
        self.hashes = hashes;
        self.data_len = data_len;
        // `finish` writes the header only for an empty chunk; it is there.
        let file_len = start + data_len;
        self.file
            .set_len(file_len)
            .map_err(|e| self.write_error(e))?;
        self.finish(block_count, declared_root)
    }

    fn write_error(&self, err: io::Error) -> StoreError {
        if err.kind() == io::ErrorKind::StorageFull {
            StoreError::NoSpace(self.header.chunk)
        } else {
            io_error(format!("write {}", self.temp_path.display()))(err)
        }
    }
}

/// Lets the kernel drop a sealed chunk's pages from the page cache (they
/// are clean after the fsync). A chunk is written once and most are read
/// rarely, so caching what was just written only evicts what readers use;
/// and recycling these pages at once makes the next chunk's write land in
/// memory the kernel has just used instead of fresh pages, which cost
/// about 3× as much CPU to fill on a VM whose free memory goes back to the
/// host (BENCHMARKS.md, "sealed chunks out of the page cache"). Direct
/// I/O already keeps the full blocks of large chunks out of the cache;
/// this covers the rest. Advice only: a failure changes nothing but speed.
fn drop_cached_pages(file: &File) {
    if let Err(err) = nix::fcntl::posix_fadvise(
        file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    ) {
        tracing::debug!(%err, "could not drop a sealed chunk's cached pages");
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if !self.finished
            && let Err(err) = fs::remove_file(&self.temp_path)
        {
            tracing::warn!(path = %self.temp_path.display(), %err, "could not remove unfinished chunk");
        }
    }
}
