//! Typed client for the storage-node API: the only way other services talk
//! to nodes. It verifies every block it receives against the hash in its
//! frame, so a node (or the network) can never hand it corrupt bytes.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use cairn_core::frame::{self, Frame, FrameDecoder};
use cairn_core::ids::ChunkId;
use cairn_core::integrity::{BlockHash, MerkleRoot, hash_block, merkle_root};
use cairn_service::{ClientError, ClusterSecret, ErrorCode, HttpClient, Timeouts};
use futures_util::{Stream, StreamExt};
use reqwest::{Method, Response};

use crate::local::{BlockExtent, LocalChunk, LocalError, LocalNode};
use crate::read_buffers;
use crate::wire::{ChunkInfo, ChunkListPage, NodeStatus, PutChunkResponse, VerifyReport};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node was unreachable, too slow, or answered with an error.
    #[error(transparent)]
    Http(#[from] ClientError),
    #[error("block {block} of chunk {chunk} is corrupt: {message}")]
    CorruptBlock {
        chunk: ChunkId,
        block: u64,
        message: String,
    },
    #[error("block {block} of chunk {chunk} arrived with a wrong hash")]
    HashMismatch { chunk: ChunkId, block: u64 },
    #[error("chunk {chunk} stream is malformed: {message}")]
    Protocol { chunk: ChunkId, message: String },
}

impl NodeError {
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http(err) => err.status(),
            _ => None,
        }
    }

    /// The typed code of an error answer.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Http(err) => err.code(),
            _ => None,
        }
    }

    /// The block the error is about, if any.
    pub fn corrupt_block(&self) -> Option<u64> {
        match self {
            Self::CorruptBlock { block, .. } | Self::HashMismatch { block, .. } => Some(*block),
            Self::Http(ClientError::Api { body, .. }) => body.block,
            _ => None,
        }
    }
}

/// What a conditional delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// There was no such chunk.
    Absent,
    /// The file was written after the cutoff and was kept.
    WrittenSince,
}

/// Client of one storage node. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: HttpClient,
    base: String,
    /// The node's local socket, when it is on this host.
    local: Option<LocalNode>,
}

impl NodeClient {
    /// `base_url` like `http://127.0.0.1:7401`; `http` carries the secret
    /// and the deadlines (share one across all nodes).
    pub fn new(http: HttpClient, base_url: &str) -> Self {
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            local: None,
        }
    }

    /// Block reads and chunk writes go through the node's local socket
    /// (the node runs on this host; see [`crate::local`]).
    pub fn with_local(mut self, local: LocalNode) -> Self {
        self.local = Some(local);
        self
    }

    /// A client with a connection pool of its own (tests, one-off tools).
    pub fn standalone(base_url: &str, secret: &ClusterSecret) -> Self {
        Self::new(
            HttpClient::new(secret.clone(), Timeouts::INTERNAL),
            base_url,
        )
    }

    /// Whether block reads and chunk writes try the node's local socket
    /// first.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn chunk_url(&self, chunk: &ChunkId) -> String {
        format!("{}/chunks/{}/{}", self.base, chunk.blob, chunk.index)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<T, NodeError> {
        Ok(self.http.call(Method::GET, url, query, None::<&()>).await?)
    }

    /// Stores a chunk from a stream of already-framed bytes (block frames
    /// then an end frame, see [`frame_blocks`]).
    pub async fn put_chunk_stream<S>(
        &self,
        chunk: &ChunkId,
        block_size: u32,
        frames: S,
    ) -> Result<PutChunkResponse, NodeError>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    {
        if let Some(local) = &self.local {
            // Creating the chunk consumes no frame: a socket that cannot be
            // reached leaves them all for HTTP.
            let deadline = self.http.timeouts().request;
            match local.create(chunk, block_size, deadline).await {
                Ok(write) => return write.finish(frames).await.map_err(local_error),
                Err(LocalError::Unavailable { path, source }) => {
                    tracing::debug!(%path, error = %source, "local write unavailable; writing over HTTP");
                }
                Err(LocalError::Failed(err)) => return Err(NodeError::Http(err)),
            }
        }
        self.put_chunk_over_http(chunk, block_size, frames).await
    }

    async fn put_chunk_over_http<S>(
        &self,
        chunk: &ChunkId,
        block_size: u32,
        frames: S,
    ) -> Result<PutChunkResponse, NodeError>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    {
        let url = self.chunk_url(chunk);
        let request = self
            .http
            .request(Method::PUT, &url)
            .query(&[("block_size", block_size)]);
        let response = self.http.send_stream(request, frames).await?;
        Ok(response
            .json()
            .await
            .map_err(|source| ClientError::Transport { url, source })?)
    }

    /// Stores a chunk held in memory as its blocks.
    pub async fn put_chunk(
        &self,
        chunk: &ChunkId,
        block_size: u32,
        blocks: &[Bytes],
    ) -> Result<PutChunkResponse, NodeError> {
        let (frames, _) = frame_blocks(blocks);
        let stream = futures_util::stream::iter(frames.into_iter().map(Ok));
        self.put_chunk_stream(chunk, block_size, stream).await
    }

    /// Reads blocks `range` (all blocks when `None`) as a verified stream:
    /// from the node's file directly when the node is on this host and the
    /// client was given its socket (`with_local`; the node still grants the
    /// read), over HTTP otherwise or when the socket cannot be reached.
    pub async fn get_blocks(
        &self,
        chunk: &ChunkId,
        range: Option<Range<u64>>,
    ) -> Result<BlockStream, NodeError> {
        if let Some(local) = &self.local {
            match local.open(chunk, range.clone()).await {
                Ok(granted) => return Ok(BlockStream::local(*chunk, granted)),
                Err(LocalError::Unavailable { path, source }) => {
                    tracing::debug!(%path, error = %source, "local read unavailable; reading over HTTP");
                }
                Err(LocalError::Failed(err)) => return Err(node_error(chunk, err)),
            }
        }
        let url = self.chunk_url(chunk);
        let mut request = self.http.request(Method::GET, &url);
        if let Some(range) = &range {
            request = request.query(&[("first", range.start), ("count", range.end - range.start)]);
        }
        let response = self
            .http
            .send(request)
            .await
            .map_err(|err| node_error(chunk, err))?;
        let first = header_u64(&response, "x-cairn-first-block").unwrap_or(0);
        let count = header_u64(&response, "x-cairn-block-count").unwrap_or(0);
        Ok(BlockStream {
            chunk: *chunk,
            source: Source::Remote(RemoteFrames {
                body: Box::pin(self.http.progress_stream(&url, response)),
                decoder: FrameDecoder::new(cairn_core::codec::MAX_BLOCK_SIZE),
            }),
            first,
            next_index: first,
            end: first + count,
            done: false,
        })
    }

    /// Reads blocks into memory (tests and small chunks).
    pub async fn read_blocks(
        &self,
        chunk: &ChunkId,
        range: Option<Range<u64>>,
    ) -> Result<Vec<Bytes>, NodeError> {
        let mut stream = self.get_blocks(chunk, range).await?;
        let mut blocks = Vec::new();
        while let Some((_, data)) = stream.next_block().await? {
            blocks.push(data);
        }
        Ok(blocks)
    }

    /// The chunk's stored description, or `None` if the node lacks it.
    pub async fn head(&self, chunk: &ChunkId) -> Result<Option<ChunkInfo>, NodeError> {
        let url = self.chunk_url(chunk);
        let response = match self.http.send(self.http.request(Method::HEAD, &url)).await {
            Ok(response) => response,
            Err(err) if err.status() == Some(404) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let root = response
            .headers()
            .get("x-cairn-merkle-root")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<MerkleRoot>().ok());
        let info = (|| {
            Some(ChunkInfo {
                chunk: *chunk,
                block_size: header_u64(&response, "x-cairn-block-size")? as u32,
                blocks: header_u64(&response, "x-cairn-blocks")?,
                data_len: header_u64(&response, "x-cairn-data-len")?,
                merkle_root: root?,
            })
        })();
        info.map(Some).ok_or_else(|| NodeError::Protocol {
            chunk: *chunk,
            message: "HEAD response lacks chunk headers".into(),
        })
    }

    /// Deletes a chunk; `false` if it did not exist.
    pub async fn delete(&self, chunk: &ChunkId) -> Result<bool, NodeError> {
        let url = self.chunk_url(chunk);
        match self
            .http
            .send(self.http.request(Method::DELETE, &url))
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.status() == Some(404) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Deletes a chunk only if its file was last written at or before
    /// `cutoff_ms` (garbage collection's guard against deleting a chunk
    /// that was written again after it became garbage).
    pub async fn delete_unless_modified_after(
        &self,
        chunk: &ChunkId,
        cutoff_ms: u64,
    ) -> Result<Deletion, NodeError> {
        let url = self.chunk_url(chunk);
        let request = self
            .http
            .request(Method::DELETE, &url)
            .query(&[("unmodified_since_ms", cutoff_ms)]);
        match self.http.send(request).await {
            Ok(_) => Ok(Deletion::Deleted),
            Err(err) if err.status() == Some(404) => Ok(Deletion::Absent),
            Err(err) if err.status() == Some(409) => Ok(Deletion::WrittenSince),
            Err(err) => Err(err.into()),
        }
    }

    /// One page of the node's chunks, after `after`.
    pub async fn list(
        &self,
        after: Option<&ChunkId>,
        limit: usize,
    ) -> Result<ChunkListPage, NodeError> {
        let url = format!("{}/chunks", self.base);
        let mut query = vec![("limit", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        self.get_json(&url, &query).await
    }

    /// Asks the node to re-hash the chunk from its disk.
    pub async fn verify(&self, chunk: &ChunkId, leaves: bool) -> Result<VerifyReport, NodeError> {
        let url = format!("{}/verify", self.chunk_url(chunk));
        self.get_json(&url, &[("leaves", leaves.to_string())]).await
    }

    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        self.get_json(&format!("{}/status", self.base), &[]).await
    }

    pub async fn health(&self) -> Result<(), NodeError> {
        let url = format!("{}/health", self.base);
        self.http.send(self.http.request(Method::GET, &url)).await?;
        Ok(())
    }

    /// The node's Prometheus exposition.
    pub async fn metrics(&self) -> Result<String, NodeError> {
        let url = format!("{}/metrics", self.base);
        let response = self.http.send(self.http.request(Method::GET, &url)).await?;
        Ok(response
            .text()
            .await
            .map_err(|source| ClientError::Transport { url, source })?)
    }
}

/// Verified blocks of one chunk read, in order.
pub struct BlockStream {
    chunk: ChunkId,
    source: Source,
    first: u64,
    next_index: u64,
    end: u64,
    done: bool,
}

/// Where a [`BlockStream`]'s blocks come from.
enum Source {
    /// Block frames over HTTP.
    Remote(RemoteFrames),
    /// The chunk file itself, as granted by its node.
    Local {
        file: Arc<File>,
        extents: std::vec::IntoIter<BlockExtent>,
    },
}

impl std::fmt::Debug for BlockStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStream")
            .field("chunk", &self.chunk)
            .field("local", &self.is_local())
            .field("next_index", &self.next_index)
            .field("end", &self.end)
            .finish()
    }
}

impl BlockStream {
    fn local(chunk: ChunkId, granted: LocalChunk) -> Self {
        let end = granted.first + granted.extents.len() as u64;
        Self {
            chunk,
            first: granted.first,
            next_index: granted.first,
            end,
            done: false,
            source: Source::Local {
                file: granted.file,
                extents: granted.extents.into_iter(),
            },
        }
    }

    /// Whether the blocks are read from the node's file on this host.
    pub fn is_local(&self) -> bool {
        matches!(self.source, Source::Local { .. })
    }

    /// The next block as `(index, bytes)`, `None` after the end frame. Errors
    /// name the corrupt block; a stream cut short is an error, never a
    /// silent end.
    pub async fn next_block(&mut self) -> Result<Option<(u64, Bytes)>, NodeError> {
        if self.done {
            return Ok(None);
        }
        match &mut self.source {
            Source::Remote(_) => self.next_remote_block().await,
            Source::Local { file, extents } => {
                let Some(extent) = extents.next() else {
                    self.done = true;
                    return Ok(None);
                };
                let file = file.clone();
                // Read and hash off the async workers: one copy out of the
                // page cache, one hash, as for a block off the network.
                let read = tokio::task::spawn_blocking(move || read_extent(&file, extent))
                    .await
                    .map_err(io::Error::other)
                    .and_then(|read| read);
                match read {
                    Ok((data, actual)) => {
                        let index = self.next_index;
                        self.accept(index as u32, extent.hash, actual, data)
                            .map(Some)
                    }
                    Err(source) => {
                        self.done = true;
                        Err(NodeError::Http(ClientError::Local {
                            url: format!("chunk file of {}", self.chunk),
                            source,
                        }))
                    }
                }
            }
        }
    }

    async fn next_remote_block(&mut self) -> Result<Option<(u64, Bytes)>, NodeError> {
        if self.done {
            return Ok(None);
        }
        let Source::Remote(frames) = &mut self.source else {
            unreachable!("called for remote streams only");
        };
        let frame = frames.next_frame().await;
        match frame {
            Ok(Some(Frame::Block { index, hash, data })) => {
                let actual = hash_block(&data);
                self.accept(index, hash, actual, data).map(Some)
            }
            Ok(Some(Frame::End { block_count, .. })) => {
                if self.next_index != self.end || u64::from(block_count) != self.end - self.first {
                    return Err(self.protocol(format!(
                        "stream ended at block {} of {}",
                        self.next_index, self.end
                    )));
                }
                self.done = true;
                Ok(None)
            }
            Ok(Some(Frame::Error { block, message })) => {
                self.done = true;
                Err(NodeError::CorruptBlock {
                    chunk: self.chunk,
                    block: block as u64,
                    message,
                })
            }
            Ok(None) => {
                self.done = true;
                Err(self.protocol("stream ended without its end frame".into()))
            }
            Err(RemoteFailure::Decode(message)) => Err(self.protocol(message)),
            Err(RemoteFailure::Transport(err)) => {
                self.done = true;
                Err(err.into())
            }
        }
    }

    /// Hands out block `index` if it is the next one and `actual` (its
    /// blake3, computed here) equals the `stored` hash.
    fn accept(
        &mut self,
        index: u32,
        stored: BlockHash,
        actual: BlockHash,
        data: Bytes,
    ) -> Result<(u64, Bytes), NodeError> {
        let index = index as u64;
        if index != self.next_index || index >= self.end {
            return Err(self.protocol(format!("expected block {}, got {index}", self.next_index)));
        }
        if actual != stored {
            self.done = true;
            return Err(NodeError::HashMismatch {
                chunk: self.chunk,
                block: index,
            });
        }
        self.next_index += 1;
        Ok((index, data))
    }

    fn protocol(&self, message: String) -> NodeError {
        NodeError::Protocol {
            chunk: self.chunk,
            message,
        }
    }
}

/// Block frames arriving over HTTP.
struct RemoteFrames {
    body: Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>,
    decoder: FrameDecoder,
}

/// Why no frame came out of an HTTP body.
enum RemoteFailure {
    Decode(String),
    Transport(ClientError),
}

impl RemoteFrames {
    /// The next whole frame, pulling body pieces as needed; `None` when the
    /// body ended.
    async fn next_frame(&mut self) -> Result<Option<Frame>, RemoteFailure> {
        loop {
            let frame = self
                .decoder
                .next_frame()
                .map_err(|err| RemoteFailure::Decode(err.to_string()))?;
            if frame.is_some() {
                return Ok(frame);
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.decoder.push(&bytes),
                Some(Err(err)) => return Err(RemoteFailure::Transport(err)),
                None => return Ok(None),
            }
        }
    }
}

/// Reads one block's extent into a reused buffer (`read_buffers`: no page
/// faults, no zeroing after the buffer's first use), and hashes it.
fn read_extent(file: &File, extent: BlockExtent) -> io::Result<(Bytes, BlockHash)> {
    let len = extent.len as usize;
    // A buffer an earlier read gave back (`read_buffers`: no page faults).
    let mut data = read_buffers::take(len);
    file.read_exact_at(&mut data[..len], extent.offset)
        .map_err(|err| match err.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunk file shorter than its block",
            ),
            _ => err,
        })?;
    let hash = hash_block(&data[..len]);
    Ok((read_buffers::into_bytes(data, len), hash))
}

/// A failed short-circuit write after its creation (no HTTP fallback: the
/// frames are consumed).
fn local_error(err: LocalError) -> NodeError {
    match err {
        LocalError::Failed(err) => NodeError::Http(err),
        LocalError::Unavailable { path, source } => NodeError::Http(ClientError::Local {
            url: format!("unix:{path}"),
            source,
        }),
    }
}

/// A node's error answer as a [`NodeError`]: a block the node found corrupt
/// names it.
fn node_error(chunk: &ChunkId, err: ClientError) -> NodeError {
    match err {
        ClientError::Api { body, .. } if body.code == ErrorCode::CorruptBlock => {
            NodeError::CorruptBlock {
                chunk: *chunk,
                block: body.block.unwrap_or(0),
                message: body.message,
            }
        }
        other => NodeError::Http(other),
    }
}

/// Frames a chunk's blocks for a PUT: one block frame each (with its blake3)
/// and the end frame. Returns the frames and the chunk's Merkle root.
pub fn frame_blocks(blocks: &[Bytes]) -> (Vec<Bytes>, MerkleRoot) {
    let mut frames = Vec::with_capacity(blocks.len() * 2 + 1);
    let mut hashes = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        let hash = hash_block(block);
        frames.push(Bytes::copy_from_slice(&frame::block_head(
            index as u32,
            &hash,
            block.len(),
        )));
        frames.push(block.clone());
        hashes.push(hash);
    }
    let root = merkle_root(&hashes);
    frames.push(frame::end_frame(blocks.len() as u32, &root));
    (frames, root)
}

fn header_u64(response: &Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}
