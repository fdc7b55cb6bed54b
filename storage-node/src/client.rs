//! Typed client for the storage-node API: the only way other services talk
//! to nodes. It verifies every block it receives against the hash in its
//! frame, so a node (or the network) can never hand it corrupt bytes.

use std::io;
use std::ops::Range;

use bytes::Bytes;
use cairn_core::frame::{self, Frame, FrameDecoder};
use cairn_core::ids::ChunkId;
use cairn_core::integrity::{BlockHash, MerkleRoot, hash_block, merkle_root};
use cairn_core::node_api::{
    ChunkInfo, ChunkListPage, ErrorBody, NodeStatus, PutChunkResponse, SECRET_HEADER, VerifyReport,
};
use futures_util::{Stream, StreamExt};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("node answered {status}: {} ({})", .body.message, .body.code)]
    Api { status: u16, body: ErrorBody },
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
        matches!(self, Self::Api { status: 404, .. })
    }

    /// The block the error is about, if any.
    pub fn corrupt_block(&self) -> Option<u64> {
        match self {
            Self::CorruptBlock { block, .. } | Self::HashMismatch { block, .. } => Some(*block),
            _ => None,
        }
    }
}

/// Client of one storage node.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    base: String,
    secret: String,
}

impl NodeClient {
    /// `base_url` like `http://127.0.0.1:7401`.
    pub fn new(base_url: &str, secret: &str) -> Self {
        Self::with_http(reqwest::Client::new(), base_url, secret)
    }

    /// Shares a connection pool between clients of many nodes.
    pub fn with_http(http: reqwest::Client, base_url: &str, secret: &str) -> Self {
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn chunk_url(&self, chunk: &ChunkId) -> String {
        format!("{}/chunks/{}/{}", self.base, chunk.blob, chunk.index)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, NodeError> {
        let response = request
            .header(SECRET_HEADER, &self.secret)
            .send()
            .await
            .map_err(transport(url))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or(ErrorBody {
            code: "unknown".into(),
            message: text,
            block: None,
        });
        Err(NodeError::Api { status, body })
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
        let url = self.chunk_url(chunk);
        let request = self
            .http
            .put(&url)
            .query(&[("block_size", block_size)])
            .body(reqwest::Body::wrap_stream(frames));
        let response = self.send(request, &url).await?;
        response.json().await.map_err(transport(&url))
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

    /// Reads blocks `range` (all blocks when `None`) as a verified stream.
    pub async fn get_blocks(
        &self,
        chunk: &ChunkId,
        range: Option<Range<u64>>,
    ) -> Result<BlockStream, NodeError> {
        let url = self.chunk_url(chunk);
        let mut request = self.http.get(&url);
        if let Some(range) = &range {
            request = request.query(&[("first", range.start), ("count", range.end - range.start)]);
        }
        let response = self.send(request, &url).await.map_err(|err| match err {
            NodeError::Api { body, .. } if body.code == "corrupt_block" => {
                NodeError::CorruptBlock {
                    chunk: *chunk,
                    block: body.block.unwrap_or(0),
                    message: body.message,
                }
            }
            other => other,
        })?;
        let first = header_u64(&response, "x-cairn-first-block").unwrap_or(0);
        let count = header_u64(&response, "x-cairn-block-count").unwrap_or(0);
        Ok(BlockStream {
            chunk: *chunk,
            url,
            body: Box::pin(response.bytes_stream()),
            decoder: FrameDecoder::new(cairn_core::codec::MAX_BLOCK_SIZE),
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
        let response = match self.send(self.http.head(&url), &url).await {
            Ok(response) => response,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err),
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
        match self.send(self.http.delete(&url), &url).await {
            Ok(_) => Ok(true),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// One page of the node's chunks, after `after`.
    pub async fn list(
        &self,
        after: Option<&ChunkId>,
        limit: usize,
    ) -> Result<ChunkListPage, NodeError> {
        let url = format!("{}/chunks", self.base);
        let mut request = self.http.get(&url).query(&[("limit", limit)]);
        if let Some(after) = after {
            request = request.query(&[("after", after.to_string())]);
        }
        let response = self.send(request, &url).await?;
        response.json().await.map_err(transport(&url))
    }

    /// Asks the node to re-hash the chunk from its disk.
    pub async fn verify(&self, chunk: &ChunkId, leaves: bool) -> Result<VerifyReport, NodeError> {
        let url = format!("{}/verify", self.chunk_url(chunk));
        let request = self.http.get(&url).query(&[("leaves", leaves)]);
        let response = self.send(request, &url).await?;
        response.json().await.map_err(transport(&url))
    }

    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let url = format!("{}/status", self.base);
        let response = self.send(self.http.get(&url), &url).await?;
        response.json().await.map_err(transport(&url))
    }

    pub async fn health(&self) -> Result<(), NodeError> {
        let url = format!("{}/health", self.base);
        self.send(self.http.get(&url), &url).await.map(|_| ())
    }

    /// The node's Prometheus exposition.
    pub async fn metrics(&self) -> Result<String, NodeError> {
        let url = format!("{}/metrics", self.base);
        let response = self.send(self.http.get(&url), &url).await?;
        response.text().await.map_err(transport(&url))
    }
}

/// Verified blocks of one chunk read, in order.
pub struct BlockStream {
    chunk: ChunkId,
    url: String,
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    decoder: FrameDecoder,
    first: u64,
    next_index: u64,
    end: u64,
    done: bool,
}

impl std::fmt::Debug for BlockStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStream")
            .field("chunk", &self.chunk)
            .field("next_index", &self.next_index)
            .field("end", &self.end)
            .finish()
    }
}

impl BlockStream {
    /// The next block as `(index, bytes)`, `None` after the end frame. Errors
    /// name the corrupt block; a stream cut short is an error, never a
    /// silent end.
    pub async fn next_block(&mut self) -> Result<Option<(u64, Bytes)>, NodeError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let frame = self
                .decoder
                .next_frame()
                .map_err(|e| self.protocol(e.to_string()))?;
            match frame {
                Some(Frame::Block { index, hash, data }) => {
                    return self.accept(index, hash, data).map(Some);
                }
                Some(Frame::End { block_count, .. }) => {
                    if self.next_index != self.end
                        || u64::from(block_count) != self.end - self.first
                    {
                        return Err(self.protocol(format!(
                            "stream ended at block {} of {}",
                            self.next_index, self.end
                        )));
                    }
                    self.done = true;
                    return Ok(None);
                }
                Some(Frame::Error { block, message }) => {
                    self.done = true;
                    return Err(NodeError::CorruptBlock {
                        chunk: self.chunk,
                        block: block as u64,
                        message,
                    });
                }
                None => match self.body.next().await {
                    Some(Ok(bytes)) => self.decoder.push(&bytes),
                    Some(Err(source)) => {
                        self.done = true;
                        return Err(NodeError::Transport {
                            url: self.url.clone(),
                            source,
                        });
                    }
                    None => {
                        self.done = true;
                        return Err(self.protocol("stream ended without its end frame".into()));
                    }
                },
            }
        }
    }

    fn accept(
        &mut self,
        index: u32,
        hash: BlockHash,
        data: Bytes,
    ) -> Result<(u64, Bytes), NodeError> {
        let index = index as u64;
        if index != self.next_index || index >= self.end {
            return Err(self.protocol(format!("expected block {}, got {index}", self.next_index)));
        }
        if hash_block(&data) != hash {
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

fn header_u64(response: &reqwest::Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

fn transport(url: &str) -> impl FnOnce(reqwest::Error) -> NodeError + '_ {
    move |source| NodeError::Transport {
        url: url.to_owned(),
        source,
    }
}
