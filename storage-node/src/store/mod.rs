//! Chunk files on local disk.
//!
//! Layout: `<data_dir>/chunks/<first two hex digits of the blob>/<blob>-<index>.chunk`
//! (see `cairn_core::chunk_file` for the byte format). The two-hex fan-out
//! keeps directories small; all 256 directories are made when the store
//! opens, so no write pays for one. Names are built only from validated
//! [`ChunkId`]s, never from anything a client typed.
//!
//! Durability: a chunk is written to a temp file in its final directory,
//! fsynced, renamed over the final name, and the directory is fsynced. A
//! crash leaves the old state or the whole new chunk; stray temp files are
//! removed when the store opens.
//!
//! All methods do blocking I/O: call them from `spawn_blocking`.

mod reader;
mod writer;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use cairn_core::chunk_file::FormatError;
use cairn_core::ids::{BlobId, ChunkId};
use cairn_node_api::wire::{ChunkListEntry, ChunkListPage};

pub use reader::{ChunkReader, VerifyOutcome, verify_chunk};
pub use writer::ChunkWriter;

/// Prefix of in-progress chunk files.
const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chunk {0} not found")]
    NotFound(ChunkId),
    #[error("block {block} of chunk {chunk} is corrupt on disk")]
    CorruptBlock { chunk: ChunkId, block: u64 },
    #[error("chunk {chunk} is unreadable: {source}")]
    CorruptChunk {
        chunk: ChunkId,
        #[source]
        source: FormatError,
    },
    #[error("block {block} does not match the hash the writer declared")]
    HashMismatch { block: u64 },
    #[error("invalid chunk stream: {0}")]
    InvalidStream(String),
    #[error("block range {first}..{end} is outside the chunk's {blocks} blocks")]
    RangeOutOfBounds { first: u64, end: u64, blocks: u64 },
    #[error("chunk {chunk} was written at {modified_ms} ms, after {cutoff_ms} ms")]
    ModifiedSince {
        chunk: ChunkId,
        modified_ms: u64,
        cutoff_ms: u64,
    },
    #[error("no space left for chunk {0}")]
    NoSpace(ChunkId),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// The set of chunk files under one data directory.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    chunks_dir: PathBuf,
    used_bytes: AtomicU64,
    chunk_count: AtomicU64,
    /// Write full blocks with `O_DIRECT` (see `writer`); switched off for
    /// good the first time the filesystem refuses it.
    direct_io: AtomicBool,
    /// Held while a name is checked and changed (rename into place,
    /// conditional delete), so the two cannot interleave.
    names: Mutex<()>,
}

fn modified_ms(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

impl ChunkStore {
    /// Opens (creating if needed) the store under `data_dir`, removes
    /// leftover temp files, and counts what is stored.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let chunks_dir = data_dir.join("chunks");
        fs::create_dir_all(&chunks_dir)
            .map_err(io_error(format!("create {}", chunks_dir.display())))?;
        sync_dir(data_dir)?;
        let (mut used, mut count, mut removed) = (0u64, 0u64, 0usize);
        for dir in fan_out_dirs(&chunks_dir)? {
            for entry in fs::read_dir(&dir).map_err(io_error(format!("list {}", dir.display())))? {
                let entry = entry.map_err(io_error("read directory entry"))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(TEMP_PREFIX) {
                    fs::remove_file(entry.path()).map_err(io_error("remove temp file"))?;
                    removed += 1;
                } else if ChunkId::from_file_name(&name).is_some() {
                    used += entry.metadata().map_err(io_error("stat chunk"))?.len();
                    count += 1;
                }
            }
            if removed > 0 {
                sync_dir(&dir)?;
            }
        }
        if removed > 0 {
            tracing::warn!(removed, "removed unfinished chunk writes left by a crash");
        }
        create_fan_out(&chunks_dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                chunks_dir,
                used_bytes: AtomicU64::new(used),
                chunk_count: AtomicU64::new(count),
                direct_io: AtomicBool::new(true),
                names: Mutex::new(()),
            }),
        })
    }

    pub fn chunks_dir(&self) -> &Path {
        &self.inner.chunks_dir
    }

    /// Bytes of chunk files on disk (headers and trailers included).
    pub fn used_bytes(&self) -> u64 {
        self.inner.used_bytes.load(Ordering::Relaxed)
    }

    pub fn chunk_count(&self) -> u64 {
        self.inner.chunk_count.load(Ordering::Relaxed)
    }

    /// Whether full blocks are written with direct I/O.
    pub fn direct_io(&self) -> bool {
        self.inner.direct_io.load(Ordering::Relaxed)
    }

    /// Turns direct I/O on or off (config `direct_io`; tests compare both).
    pub fn set_direct_io(&self, on: bool) {
        self.inner.direct_io.store(on, Ordering::Relaxed);
    }

    /// The filesystem refused direct I/O: write through the page cache
    /// from now on, and say so once.
    pub(crate) fn disable_direct_io(&self, err: &io::Error) {
        if self.inner.direct_io.swap(false, Ordering::Relaxed) {
            tracing::warn!(dir = %self.inner.chunks_dir.display(), %err,
                "direct I/O refused here; writing chunks through the page cache");
        }
    }

    /// Where a chunk's file lives.
    pub fn chunk_path(&self, chunk: &ChunkId) -> PathBuf {
        self.fan_out_dir(chunk).join(chunk.file_name())
    }

    fn fan_out_dir(&self, chunk: &ChunkId) -> PathBuf {
        self.inner.chunks_dir.join(fan_out_name(&chunk.blob))
    }

    /// Starts writing a chunk; nothing is visible until
    /// [`ChunkWriter::finish`] succeeds.
    pub fn create(&self, chunk: ChunkId, block_size: u32) -> Result<ChunkWriter, StoreError> {
        let dir = self.fan_out_dir(&chunk);
        match ChunkWriter::create(self.clone(), dir.clone(), chunk, block_size) {
            // [`Self::open`] made every fan-out directory; one removed since
            // (by hand) is made again rather than failing every write to it.
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(io_error(format!("create {}", dir.display())))?;
                sync_dir(&self.inner.chunks_dir)?;
                ChunkWriter::create(self.clone(), dir, chunk, block_size)
            }
            other => other,
        }
    }

    /// Opens a chunk for reading, checking its header and trailer.
    pub fn open_chunk(&self, chunk: ChunkId) -> Result<ChunkReader, StoreError> {
        ChunkReader::open(&self.chunk_path(&chunk), chunk)
    }

    /// Removes a chunk durably. Returns false if it did not exist.
    pub fn delete(&self, chunk: &ChunkId) -> Result<bool, StoreError> {
        self.delete_unless_modified_after(chunk, None)
    }

    /// Deletes a chunk unless its file was written after `cutoff_ms` (then
    /// `ModifiedSince`); `false` if it did not exist. Garbage collection
    /// passes the moment the chunk became garbage: a chunk written again
    /// since (repair put it back on this node) is a new, live chunk.
    pub fn delete_unless_modified_after(
        &self,
        chunk: &ChunkId,
        cutoff_ms: Option<u64>,
    ) -> Result<bool, StoreError> {
        let path = self.chunk_path(chunk);
        {
            // Under the names lock, so no chunk is renamed into place
            // between the check and the unlink.
            let _names = self.inner.names.lock().expect("names lock");
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(err) => return Err(io_error("stat chunk")(err)),
            };
            if let Some(cutoff_ms) = cutoff_ms {
                let modified_ms = modified_ms(&meta);
                if modified_ms > cutoff_ms {
                    return Err(StoreError::ModifiedSince {
                        chunk: *chunk,
                        modified_ms,
                        cutoff_ms,
                    });
                }
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(err) => return Err(io_error("remove chunk")(err)),
            }
            self.inner
                .used_bytes
                .fetch_sub(meta.len(), Ordering::Relaxed);
            self.inner.chunk_count.fetch_sub(1, Ordering::Relaxed);
        }
        sync_dir(&self.fan_out_dir(chunk))?;
        Ok(true)
    }

    /// Renames a finished temp file over `chunk`'s name, under the names
    /// lock, and accounts for the bytes it adds or replaces.
    pub(crate) fn rename_into_place(
        &self,
        temp_path: &Path,
        chunk: &ChunkId,
        file_len: u64,
    ) -> Result<(), StoreError> {
        let final_path = self.chunk_path(chunk);
        let _names = self.inner.names.lock().expect("names lock");
        let replaced = fs::metadata(&final_path).ok().map(|m| m.len());
        fs::rename(temp_path, &final_path).map_err(io_error("rename chunk into place"))?;
        self.inner.used_bytes.fetch_add(file_len, Ordering::Relaxed);
        match replaced {
            Some(old) => {
                self.inner.used_bytes.fetch_sub(old, Ordering::Relaxed);
            }
            None => {
                self.inner.chunk_count.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Chunks after `after` in (blob, index) order, at most `limit`.
    pub fn list(&self, after: Option<ChunkId>, limit: usize) -> Result<ChunkListPage, StoreError> {
        let start_dir = after.map(|c| fan_out_name(&c.blob));
        let mut chunks = Vec::new();
        let mut more = false;
        'dirs: for dir in fan_out_dirs(&self.inner.chunks_dir)? {
            let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            if start_dir.is_some() && dir_name < start_dir {
                continue;
            }
            let mut names: Vec<(ChunkId, PathBuf)> = fs::read_dir(&dir)
                .map_err(io_error(format!("list {}", dir.display())))?
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let id = ChunkId::from_file_name(&e.file_name().to_string_lossy())?;
                    Some((id, e.path()))
                })
                .filter(|(id, _)| after.is_none_or(|a| *id > a))
                .collect();
            names.sort_by_key(|(id, _)| *id);
            for (chunk, path) in names {
                if chunks.len() == limit {
                    more = true;
                    break 'dirs;
                }
                // A chunk deleted since the directory was read is skipped.
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                chunks.push(ChunkListEntry {
                    chunk,
                    file_bytes: meta.len(),
                    modified_ms: modified_ms(&meta),
                });
            }
        }
        let next_after = if more {
            chunks.last().map(|c| c.chunk)
        } else {
            None
        };
        Ok(ChunkListPage { chunks, next_after })
    }
}

/// The two-hex fan-out directories that exist, sorted.
fn fan_out_dirs(chunks_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(chunks_dir)
        .map_err(io_error(format!("list {}", chunks_dir.display())))?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The fan-out directory of a blob's chunks: its first byte in hex.
fn fan_out_name(blob: &BlobId) -> String {
    fan_out_name_of(blob.as_bytes()[0])
}

fn fan_out_name_of(first_byte: u8) -> String {
    hex::encode([first_byte])
}

/// Makes the 256 two-hex fan-out directories that do not exist yet, with
/// one fsync of `chunks/` for all of them. Made here, at start, and not on
/// a directory's first chunk: otherwise a new node's first few thousand
/// chunk writes each pay a `mkdir` and an fsync of `chunks/` on the data
/// path, and every write pays a `stat` to ask.
fn create_fan_out(chunks_dir: &Path) -> Result<(), StoreError> {
    let mut created = false;
    for prefix in 0..=u8::MAX {
        let dir = chunks_dir.join(fan_out_name_of(prefix));
        match fs::create_dir(&dir) {
            Ok(()) => created = true,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_error(format!("create {}", dir.display()))(err)),
        }
    }
    if created {
        sync_dir(chunks_dir)?;
    }
    Ok(())
}

/// fsync a directory so that entries created, renamed or removed in it are
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(format!("fsync directory {}", dir.display())))
}
