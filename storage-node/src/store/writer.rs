//! Writing one chunk file durably as its blocks stream in.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;

use cairn_core::chunk_file::{ChunkHeader, check_geometry, encode_trailer};
use cairn_core::ids::ChunkId;
use cairn_core::integrity::{BlockHash, MerkleRoot, hash_block, merkle_root};
use cairn_core::node_api::PutChunkResponse;

use super::{ChunkStore, StoreError, TEMP_PREFIX, io_error, sync_dir};

/// An unfinished chunk: a temp file next to its final name. Dropping it
/// without [`ChunkWriter::finish`] deletes the temp file, so an interrupted
/// upload leaves nothing behind.
#[derive(Debug)]
pub struct ChunkWriter {
    store: ChunkStore,
    dir: PathBuf,
    temp_path: PathBuf,
    file: File,
    header: ChunkHeader,
    hashes: Vec<BlockHash>,
    data_len: u64,
    saw_short_block: bool,
    finished: bool,
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
        let header = ChunkHeader { chunk, block_size };
        let mut writer = Self {
            store,
            dir,
            temp_path,
            file,
            header,
            hashes: Vec::new(),
            data_len: 0,
            saw_short_block: false,
            finished: false,
        };
        let head = header.encode();
        if let Err(err) = writer.file.write_all(&head) {
            return Err(writer.write_error(err));
        }
        Ok(writer)
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
        self.file.write_all(data).map_err(|e| self.write_error(e))?;
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
        let trailer = encode_trailer(&self.header, &self.hashes, self.data_len, &root);
        self.file
            .write_all(&trailer)
            .map_err(|e| self.write_error(e))?;
        self.file.sync_all().map_err(|e| self.write_error(e))?;

        let chunk = self.header.chunk;
        let final_path = self.dir.join(chunk.file_name());
        let replaced = fs::metadata(&final_path).ok().map(|m| m.len());
        fs::rename(&self.temp_path, &final_path).map_err(io_error("rename chunk into place"))?;
        self.finished = true;
        sync_dir(&self.dir)?;
        let file_len = self.file.metadata().map_err(io_error("stat chunk"))?.len();
        self.store.account_added(file_len, replaced);
        tracing::debug!(%chunk, blocks = block_count, bytes = self.data_len, "chunk stored");
        Ok(PutChunkResponse {
            chunk,
            blocks: block_count as u64,
            data_len: self.data_len,
            merkle_root: root,
        })
    }

    fn write_error(&self, err: io::Error) -> StoreError {
        if err.kind() == io::ErrorKind::StorageFull {
            StoreError::NoSpace(self.header.chunk)
        } else {
            io_error(format!("write {}", self.temp_path.display()))(err)
        }
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
