//! Short-circuit reads and writes: a service on the same host as a storage
//! node reads and writes a chunk's blocks in the node's file itself,
//! without the bytes crossing a socket.
//!
//! Why: on a GET the node's `pread`, its socket write and the gateway's
//! socket read are three copies of every byte and most of a small GET's CPU
//! (BENCHMARKS.md, "Where a 1 MiB GET's CPU goes"); a PUT pays the same
//! socket copies in the other direction for every chunk. When both run on
//! one host the bytes can go through the page cache directly. As in HDFS's
//! short-circuit reads, the node stays in charge: over a Unix socket in its
//! data directory (mode 0600), a caller presenting the cluster secret
//!
//! - **reads**: asks for a chunk and a block range; the node answers with an
//!   open, read-only descriptor of the chunk file (`SCM_RIGHTS`) plus each
//!   block's extent and the blake3 stored beside it. The caller hashes every
//!   block it reads and compares, exactly as [`BlockStream`] does for blocks
//!   that arrive over HTTP, so a corrupt block on disk is caught the same way.
//! - **writes**: asks the node to create a chunk; the node opens a temporary
//!   file in the chunk's directory, writes its header and hands over a
//!   write-only descriptor of it. The caller writes the blocks at their
//!   offsets, closes the descriptor and asks the node to seal the chunk
//!   with the blocks' hashes and root; the node reads every block back and
//!   checks it against its declared hash (the check it makes of blocks
//!   arriving over HTTP), then writes the trailer, fsyncs, renames into
//!   place and fsyncs the directory: the same durability as an HTTP PUT.
//!   A connection that ends before the seal leaves nothing (the node drops
//!   the temporary file).
//!
//! Object keys never become paths: the node resolves the validated
//! [`ChunkId`], as on its HTTP API. "Same host" is [`host_identity`]: the
//! machine id and the network and mount namespaces, so processes in other
//! containers or network namespaces (the multi-host tests) never take this
//! path and a partition stays a partition.
//!
//! Wire format (little-endian), one exchange at a time per connection:
//! request `CLR1 | op u8 | blob[16] | index u8 | a u64 | b u64 | secret_len
//! u16 | secret | extra`; answer `CLR1 | status u16 | body_len u32 | body`.
//!
//! | op | a, b | extra | success |
//! | --- | --- | --- | --- |
//! | 1 read | first block, count (u64::MAX: to the end) | — | 200, a read-only descriptor; body `first u64 \| count u64 \| count × (offset u64 \| len u32 \| blake3[32])` |
//! | 2 create | block size, — | — | 200, a write-only descriptor; body `header_len u64` |
//! | 3 seal | block count, data length | root[32], count × blake3[32] | 201, body the JSON `PutChunkResponse` |
//!
//! Any other status: the body is the JSON [`ErrorBody`] the HTTP API would
//! send. Seal refers to the chunk the connection's last create opened.
//!
//! [`BlockStream`]: crate::BlockStream

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_core::frame;
use cairn_core::ids::{BlobId, ChunkId};
use cairn_core::integrity::{BlockHash, MerkleRoot};
use cairn_service::{ClientError, ClusterSecret, ErrorBody};
use futures_util::{Stream, StreamExt};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use crate::wire::PutChunkResponse;

const MAGIC: &[u8; 4] = b"CLR1";
/// Request header length before the secret.
pub const REQUEST_HEAD_LEN: usize = 4 + 1 + 16 + 1 + 8 + 8 + 2;
const ANSWER_HEAD_LEN: usize = 4 + 2 + 4;
/// One block's extent on the wire.
const EXTENT_LEN: usize = 8 + 4 + 32;
/// Longest secret a request may carry.
pub const MAX_SECRET_LEN: usize = 4096;
/// Most blocks a sealed chunk may have (a 16 GiB chunk of 4 KiB blocks).
pub const MAX_SEAL_BLOCKS: u64 = 1 << 22;
/// Largest answer body accepted (about 1.5 million blocks).
const MAX_BODY_LEN: usize = 64 << 20;
/// Idle connections kept per node.
const IDLE_CONNECTIONS: usize = 32;
/// The socket's file name in a node's data directory.
pub const SOCKET_NAME: &str = "local.sock";
/// `sun_path` holds 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Where a node serves short-circuit reads, as it registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalEndpoint {
    /// The node's [`host_identity`]: callers with another identity must not
    /// use the socket.
    pub host: String,
    /// Absolute path of the node's Unix socket.
    pub socket: String,
}

/// This process's host identity: the machine id (or, lacking one, the boot
/// id) and the inodes of its network and mount namespaces. Two processes
/// with equal identities can open the same socket path and read the same
/// files.
pub fn host_identity() -> String {
    let machine = ["/etc/machine-id", "/proc/sys/kernel/random/boot_id"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|id| id.trim().to_owned())
        .unwrap_or_default();
    let namespace = |name: &str| {
        std::fs::read_link(format!("/proc/self/ns/{name}"))
            .map(|link| link.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    format!("{machine}/{}/{}", namespace("net"), namespace("mnt"))
}

/// One block's place in the chunk file and its stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockExtent {
    pub offset: u64,
    pub len: u32,
    pub hash: BlockHash,
}

/// A parsed request head (the secret and any extra bytes follow it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub op: Op,
    pub secret_len: usize,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A read-only descriptor and the extents of blocks `first..`.
    Read {
        chunk: ChunkId,
        first: u64,
        /// `None`: to the end of the chunk.
        count: Option<u64>,
    },
    /// A new chunk's temporary file, to be written by the caller.
    Create { chunk: ChunkId, block_size: u32 },
    /// Seal the created chunk; the root and `block_count` hashes follow
    /// the secret.
    Seal { block_count: u64, data_len: u64 },
}

impl RequestHead {
    pub fn decode(head: &[u8; REQUEST_HEAD_LEN]) -> Result<Self, String> {
        if &head[..4] != MAGIC {
            return Err("not a local-socket request".into());
        }
        let blob = BlobId::from_bytes(head[5..21].try_into().expect("16 bytes"));
        let chunk = ChunkId::new(blob, head[21]);
        let a = u64::from_le_bytes(head[22..30].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(head[30..38].try_into().expect("8 bytes"));
        let secret_len = u16::from_le_bytes(head[38..40].try_into().expect("2 bytes")) as usize;
        if secret_len > MAX_SECRET_LEN {
            return Err(format!("secret of {secret_len} bytes"));
        }
        let op = match head[4] {
            1 => Op::Read {
                chunk,
                first: a,
                count: (b != u64::MAX).then_some(b),
            },
            2 => Op::Create {
                chunk,
                block_size: u32::try_from(a).map_err(|_| format!("block size {a}"))?,
            },
            3 if a <= MAX_SEAL_BLOCKS => Op::Seal {
                block_count: a,
                data_len: b,
            },
            3 => return Err(format!("{a} blocks")),
            other => return Err(format!("unknown operation {other}")),
        };
        Ok(Self { op, secret_len })
    }

    /// Bytes after the secret: the root and the hashes of a seal.
    pub fn extra_len(&self) -> usize {
        match self.op {
            Op::Seal { block_count, .. } => 32 * (1 + block_count as usize),
            _ => 0,
        }
    }

    fn encode(op: &Op, secret: &str, extra: &[u8]) -> Vec<u8> {
        let zero = ChunkId::new(BlobId::from_bytes([0; 16]), 0);
        let (code, chunk, a, b) = match op {
            Op::Read {
                chunk,
                first,
                count,
            } => (1, chunk, *first, count.unwrap_or(u64::MAX)),
            Op::Create { chunk, block_size } => (2, chunk, u64::from(*block_size), 0),
            Op::Seal {
                block_count,
                data_len,
            } => (3, &zero, *block_count, *data_len),
        };
        let mut out = Vec::with_capacity(REQUEST_HEAD_LEN + secret.len() + extra.len());
        out.extend_from_slice(MAGIC);
        out.push(code);
        out.extend_from_slice(chunk.blob.as_bytes());
        out.push(chunk.index);
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        out.extend_from_slice(&(secret.len() as u16).to_le_bytes());
        out.extend_from_slice(secret.as_bytes());
        out.extend_from_slice(extra);
        out
    }
}

/// Splits a seal's extra bytes into the declared root and block hashes.
pub fn decode_seal_extra(extra: &[u8]) -> (MerkleRoot, Vec<BlockHash>) {
    let root = MerkleRoot(extra[..32].try_into().expect("32 bytes"));
    let hashes = extra[32..]
        .chunks_exact(32)
        .map(|h| BlockHash(h.try_into().expect("32 bytes")))
        .collect();
    (root, hashes)
}

/// Encodes the answer to a create: the header length (data starts there).
pub fn encode_created(header_len: u64) -> Vec<u8> {
    let mut out = answer_head(200, 8);
    out.extend_from_slice(&header_len.to_le_bytes());
    out
}

/// Encodes the answer to a seal.
pub fn encode_sealed(response: &PutChunkResponse) -> Vec<u8> {
    let json = serde_json::to_vec(response).expect("responses serialize");
    let mut out = answer_head(201, json.len());
    out.extend_from_slice(&json);
    out
}

/// Encodes a granted answer's head and body (the descriptor is sent with it).
pub fn encode_grant(first: u64, extents: &[BlockExtent]) -> Vec<u8> {
    let body_len = 16 + extents.len() * EXTENT_LEN;
    let mut out = answer_head(200, body_len);
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&(extents.len() as u64).to_le_bytes());
    for extent in extents {
        out.extend_from_slice(&extent.offset.to_le_bytes());
        out.extend_from_slice(&extent.len.to_le_bytes());
        out.extend_from_slice(&extent.hash.0);
    }
    out
}

/// Encodes a refusal: the HTTP status and error body the HTTP API would send.
pub fn encode_refusal(status: u16, body: &ErrorBody) -> Vec<u8> {
    let json = serde_json::to_vec(body).expect("error bodies serialize");
    let mut out = answer_head(status, json.len());
    out.extend_from_slice(&json);
    out
}

fn answer_head(status: u16, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(ANSWER_HEAD_LEN + body_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out
}

/// Sends `answer` on `stream`, with `fd` attached to its first byte.
pub async fn send_answer(
    stream: &mut UnixStream,
    answer: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let sent = stream
        .async_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
            if !fds.is_empty() {
                control.push(SendAncillaryMessage::ScmRights(&fds));
            }
            sendmsg(
                &*stream,
                &[IoSlice::new(answer)],
                &mut control,
                SendFlags::NOSIGNAL,
            )
            .map_err(io::Error::from)
        })
        .await?;
    stream.write_all(&answer[sent..]).await
}

/// A granted read: the open chunk file and the blocks asked for.
#[derive(Debug)]
pub struct LocalChunk {
    pub file: Arc<File>,
    pub first: u64,
    pub extents: Vec<BlockExtent>,
}

/// Why a short-circuit read or write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The socket could not be reached at all (no node there, no
    /// permission): the caller goes over HTTP instead. Nothing was sent.
    #[error("local socket {path} unavailable: {source}")]
    Unavailable {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The node answered with an error, or failed mid-exchange.
    #[error(transparent)]
    Failed(#[from] ClientError),
}

/// Client of one node's local socket; clones share idle connections.
#[derive(Debug, Clone)]
pub struct LocalNode {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    url: String,
    secret: ClusterSecret,
    deadline: Duration,
    idle: Mutex<Vec<UnixStream>>,
}

impl LocalNode {
    /// `deadline` bounds each exchange with the node (a stopped node must
    /// not hold a read or a write forever).
    pub fn new(path: &Path, secret: ClusterSecret, deadline: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: format!("unix:{}", path.display()),
                path: path.to_owned(),
                secret,
                deadline,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Asks the node for blocks `range` of `chunk` (all when `None`).
    pub async fn open(
        &self,
        chunk: &ChunkId,
        range: Option<Range<u64>>,
    ) -> Result<LocalChunk, LocalError> {
        let op = Op::Read {
            chunk: *chunk,
            first: range.as_ref().map_or(0, |r| r.start),
            count: range.as_ref().map(|r| r.end.saturating_sub(r.start)),
        };
        let (stream, answer) = self
            .first_exchange(&op, "local read grant", self.inner.deadline)
            .await?;
        self.pool(stream);
        let answer = self.expect(answer, 200)?;
        let Some(fd) = answer.fd else {
            return Err(self.failed(invalid("a grant without a descriptor")));
        };
        let (first, extents) = decode_grant(&answer.body).map_err(|err| self.failed(err))?;
        Ok(LocalChunk {
            file: Arc::new(File::from(fd)),
            first,
            extents,
        })
    }

    /// Asks the node to create `chunk`'s temporary file: the first step of
    /// a short-circuit write, before any frame is consumed (so a caller can
    /// still go over HTTP when the socket is `Unavailable`). `write_deadline`
    /// bounds this and every later step, as an HTTP PUT's start, progress
    /// and answer are bounded.
    pub async fn create(
        &self,
        chunk: &ChunkId,
        block_size: u32,
        write_deadline: Duration,
    ) -> Result<LocalWrite, LocalError> {
        let create = Op::Create {
            chunk: *chunk,
            block_size,
        };
        let (stream, answer) = self
            .first_exchange(&create, "local chunk create", write_deadline)
            .await?;
        let answer = self.expect(answer, 200)?;
        let (Some(fd), Ok(header_len)) = (
            answer.fd,
            <[u8; 8]>::try_from(answer.body.as_slice()).map(u64::from_le_bytes),
        ) else {
            return Err(self.failed(invalid("a created chunk without its descriptor")));
        };
        Ok(LocalWrite {
            node: self.clone(),
            stream,
            file: Arc::new(File::from(fd)),
            header_len,
            block_size,
            deadline: write_deadline,
        })
    }

    /// Sends `op` on an idle connection or a new one. A pooled connection
    /// may have been closed by a node that restarted: such a failure is
    /// retried once on a new connection. Only a failure to connect is
    /// `Unavailable`.
    async fn first_exchange(
        &self,
        op: &Op,
        phase: &'static str,
        deadline: Duration,
    ) -> Result<(UnixStream, Answer), LocalError> {
        let request = RequestHead::encode(op, self.inner.secret.expose(), &[]);
        self.within(
            async {
                let pooled = self.inner.idle.lock().expect("idle lock").pop();
                if let Some(mut stream) = pooled {
                    match exchange(&mut stream, &request).await {
                        Ok(answer) => return Ok((stream, answer)),
                        Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                            return Err(self.failed(err));
                        }
                        Err(_) => {}
                    }
                }
                let mut stream = UnixStream::connect(&self.inner.path)
                    .await
                    .map_err(|source| LocalError::Unavailable {
                        path: self.inner.path.display().to_string(),
                        source,
                    })?;
                let answer = exchange(&mut stream, &request)
                    .await
                    .map_err(|err| self.failed(err))?;
                Ok((stream, answer))
            },
            phase,
            deadline,
        )
        .await
    }

    /// Runs `exchange` within `deadline`.
    async fn within<T, E>(
        &self,
        exchange: impl Future<Output = Result<T, E>>,
        phase: &'static str,
        deadline: Duration,
    ) -> Result<T, LocalError>
    where
        LocalError: From<E>,
    {
        match tokio::time::timeout(deadline, exchange).await {
            Ok(result) => result.map_err(LocalError::from),
            Err(_) => Err(LocalError::Failed(ClientError::Timeout {
                url: self.inner.url.clone(),
                phase,
                after: deadline,
            })),
        }
    }

    fn failed(&self, source: io::Error) -> LocalError {
        LocalError::Failed(ClientError::Local {
            url: self.inner.url.clone(),
            source,
        })
    }

    /// Keeps a connection whose exchange completed for the next request.
    fn pool(&self, stream: UnixStream) {
        let mut idle = self.inner.idle.lock().expect("idle lock");
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(stream);
        }
    }

    /// The answer if it has `status`, else the node's error.
    fn expect(&self, answer: Answer, status: u16) -> Result<Answer, LocalError> {
        if answer.status == status {
            return Ok(answer);
        }
        let body = serde_json::from_slice::<ErrorBody>(&answer.body)
            .map_err(|err| self.failed(io::Error::new(io::ErrorKind::InvalidData, err)))?;
        Err(LocalError::Failed(ClientError::Api {
            url: self.inner.url.clone(),
            status: answer.status,
            body,
        }))
    }
}

/// A chunk created on a node's local socket, its temporary file open for
/// writing. Dropping it without [`LocalWrite::finish`] closes the
/// connection, and the node drops the temporary file.
#[derive(Debug)]
pub struct LocalWrite {
    node: LocalNode,
    stream: UnixStream,
    file: Arc<File>,
    header_len: u64,
    block_size: u32,
    deadline: Duration,
}

impl LocalWrite {
    /// Writes the blocks of a frame stream (as for
    /// `NodeClient::put_chunk_stream`) into the file, then has the node
    /// check every block and seal the chunk. The frames may take as long as
    /// their producer needs; each file write and the seal (which reads the
    /// blocks back and fsyncs) have the write deadline.
    pub async fn finish<S>(mut self, frames: S) -> Result<PutChunkResponse, LocalError>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Send,
    {
        let node = self.node.clone();
        let written = write_frames(
            &self.file,
            self.header_len,
            self.block_size,
            frames,
            self.deadline,
            &node.inner.url,
        )
        .await?;
        // The descriptor is closed before the seal: nothing of this
        // process can write to the chunk once it is in place.
        drop(self.file);
        let mut extra = Vec::with_capacity(32 * (1 + written.hashes.len()));
        extra.extend_from_slice(&written.root.0);
        for hash in &written.hashes {
            extra.extend_from_slice(&hash.0);
        }
        let seal = Op::Seal {
            block_count: written.hashes.len() as u64,
            data_len: written.data_len,
        };
        let request = RequestHead::encode(&seal, node.inner.secret.expose(), &extra);
        let stream = &mut self.stream;
        let answer = node
            .within(
                async { exchange(stream, &request).await.map_err(|e| node.failed(e)) },
                "local chunk seal",
                self.deadline,
            )
            .await?;
        node.pool(self.stream);
        let answer = node.expect(answer, 201)?;
        serde_json::from_slice(&answer.body)
            .map_err(|err| node.failed(io::Error::new(io::ErrorKind::InvalidData, err)))
    }
}

/// What the frames of a chunk declared, once its blocks are in the file.
struct WrittenFrames {
    hashes: Vec<BlockHash>,
    root: MerkleRoot,
    data_len: u64,
}

/// Writes the blocks of a frame stream into `file` at their places after
/// `header_len`, without copying them: pieces are sliced, not reassembled.
/// Returns the declared hashes and root, for the node to check.
async fn write_frames<S>(
    file: &Arc<File>,
    header_len: u64,
    block_size: u32,
    frames: S,
    deadline: Duration,
    url: &str,
) -> Result<WrittenFrames, LocalError>
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send,
{
    let failed = |source: io::Error| {
        LocalError::Failed(ClientError::Local {
            url: url.to_owned(),
            source,
        })
    };
    let protocol = |message: String| failed(io::Error::new(io::ErrorKind::InvalidData, message));
    let mut frames = std::pin::pin!(frames);
    let mut head: Vec<u8> = Vec::with_capacity(frame::BLOCK_HEAD_LEN);
    // Bytes of the current block still to come, and where they go.
    let mut remaining = 0usize;
    let mut at = 0u64;
    let mut hashes = Vec::new();
    let mut data_len = 0u64;
    while let Some(piece) = frames.next().await {
        let mut piece = piece.map_err(failed)?;
        while !piece.is_empty() {
            if remaining > 0 {
                let take = remaining.min(piece.len());
                let data = piece.split_to(take);
                let file = file.clone();
                let write = tokio::task::spawn_blocking(move || file.write_all_at(&data, at));
                match tokio::time::timeout(deadline, write).await {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(err))) => return Err(write_error(url, err)),
                    Ok(Err(join)) => return Err(failed(io::Error::other(join))),
                    Err(_) => {
                        return Err(LocalError::Failed(ClientError::Timeout {
                            url: url.to_owned(),
                            phase: "chunk file write",
                            after: deadline,
                        }));
                    }
                }
                remaining -= take;
                at += take as u64;
                continue;
            }
            let want = match head.first().copied().unwrap_or(piece[0]) {
                frame::TAG_BLOCK => frame::BLOCK_HEAD_LEN,
                frame::TAG_END => frame::END_LEN,
                other => return Err(protocol(format!("unexpected frame tag {other}"))),
            };
            let take = (want - head.len()).min(piece.len());
            head.extend_from_slice(&piece.split_to(take));
            if head.len() < want {
                continue;
            }
            if head[0] == frame::TAG_END {
                let block_count = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes"));
                if block_count as usize != hashes.len() || !piece.is_empty() {
                    return Err(protocol("end frame does not end the blocks".into()));
                }
                let root = MerkleRoot(head[5..37].try_into().expect("32 bytes"));
                return Ok(WrittenFrames {
                    hashes,
                    root,
                    data_len,
                });
            }
            let index = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(head[5..9].try_into().expect("4 bytes"));
            if index as usize != hashes.len() || len == 0 || len > block_size {
                return Err(protocol(format!(
                    "block {index} of {len} bytes out of place"
                )));
            }
            hashes.push(BlockHash(head[9..41].try_into().expect("32 bytes")));
            at = header_len + u64::from(index) * u64::from(block_size);
            remaining = len as usize;
            data_len += u64::from(len);
            head.clear();
        }
    }
    Err(protocol("frames ended without their end frame".into()))
}

/// A failed write into the node's file: out of space is the node's
/// `insufficient_storage`, as over HTTP.
fn write_error(url: &str, err: io::Error) -> LocalError {
    if err.kind() == io::ErrorKind::StorageFull {
        return LocalError::Failed(ClientError::Api {
            url: url.to_owned(),
            status: 507,
            body: ErrorBody {
                code: cairn_service::ErrorCode::InsufficientStorage,
                message: err.to_string(),
                block: None,
                leader: None,
            },
        });
    }
    LocalError::Failed(ClientError::Local {
        url: url.to_owned(),
        source: err,
    })
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    fd: Option<OwnedFd>,
}

/// Sends one request and reads its answer (with any descriptor on it).
async fn exchange(stream: &mut UnixStream, request: &[u8]) -> io::Result<Answer> {
    stream.write_all(request).await?;
    let mut head = [0u8; ANSWER_HEAD_LEN];
    let mut fd = None;
    // The descriptor rides on the answer's first byte: read that with
    // recvmsg, the rest with plain reads.
    let got = stream
        .async_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut head)];
            let message = recvmsg(&*stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
                .map_err(io::Error::from)?;
            for received in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = received {
                    for owned in fds {
                        fd.get_or_insert(owned);
                    }
                }
            }
            Ok(message.bytes)
        })
        .await?;
    if got == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the node closed the connection",
        ));
    }
    stream.read_exact(&mut head[got..]).await?;
    if &head[..4] != MAGIC {
        return Err(invalid("not a local-read answer"));
    }
    let status = u16::from_le_bytes([head[4], head[5]]);
    let body_len = u32::from_le_bytes(head[6..10].try_into().expect("4 bytes")) as usize;
    if body_len > MAX_BODY_LEN {
        return Err(invalid("answer too long"));
    }
    let mut body = vec![0u8; body_len];
    stream.read_exact(&mut body).await?;
    Ok(Answer { status, body, fd })
}

fn decode_grant(body: &[u8]) -> io::Result<(u64, Vec<BlockExtent>)> {
    if body.len() < 16 {
        return Err(invalid("grant too short"));
    }
    let first = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let count = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let entries = &body[16..];
    if entries.len() as u64 != count.saturating_mul(EXTENT_LEN as u64) {
        return Err(invalid("grant length does not match its block count"));
    }
    let extents = entries
        .chunks_exact(EXTENT_LEN)
        .map(|entry| BlockExtent {
            offset: u64::from_le_bytes(entry[..8].try_into().expect("8 bytes")),
            len: u32::from_le_bytes(entry[8..12].try_into().expect("4 bytes")),
            hash: BlockHash(entry[12..44].try_into().expect("32 bytes")),
        })
        .collect();
    Ok((first, extents))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(bytes: &[u8]) -> RequestHead {
        RequestHead::decode(bytes[..REQUEST_HEAD_LEN].try_into().expect("head length"))
            .expect("valid")
    }

    #[test]
    fn requests_round_trip_through_their_head() {
        let chunk = ChunkId::new(BlobId::random(), 7);
        for op in [
            Op::Read {
                chunk,
                first: 3,
                count: Some(5),
            },
            Op::Read {
                chunk,
                first: 0,
                count: None,
            },
            Op::Create {
                chunk,
                block_size: 1 << 20,
            },
        ] {
            let bytes = RequestHead::encode(&op, "s3cret", &[]);
            let head = head_of(&bytes);
            assert_eq!(head.op, op);
            assert_eq!(head.secret_len, 6);
            assert_eq!(head.extra_len(), 0);
            assert_eq!(&bytes[REQUEST_HEAD_LEN..], b"s3cret");
        }
        let seal = Op::Seal {
            block_count: 2,
            data_len: 77,
        };
        let extra = [[9u8; 32], [1; 32], [2; 32]].concat();
        let bytes = RequestHead::encode(&seal, "", &extra);
        let head = head_of(&bytes);
        assert_eq!(head.op, seal);
        assert_eq!(head.extra_len(), 96);
        let (root, hashes) = decode_seal_extra(&bytes[REQUEST_HEAD_LEN..]);
        assert_eq!(root, MerkleRoot([9; 32]));
        assert_eq!(hashes, vec![BlockHash([1; 32]), BlockHash([2; 32])]);

        let mut bad = bytes[..REQUEST_HEAD_LEN].to_vec();
        bad[0] = b'X';
        assert!(RequestHead::decode(bad.as_slice().try_into().expect("head length")).is_err());
        bad[0] = b'C';
        bad[4] = 9;
        assert!(RequestHead::decode(bad.as_slice().try_into().expect("head length")).is_err());
        let too_many = RequestHead::encode(
            &Op::Seal {
                block_count: MAX_SEAL_BLOCKS + 1,
                data_len: 0,
            },
            "",
            &[],
        );
        assert!(
            RequestHead::decode(
                too_many[..REQUEST_HEAD_LEN]
                    .try_into()
                    .expect("head length")
            )
            .is_err()
        );
    }

    #[test]
    fn grants_decode_and_refuse_a_wrong_length() {
        let extents = vec![
            BlockExtent {
                offset: 4096,
                len: 1 << 20,
                hash: BlockHash([1; 32]),
            },
            BlockExtent {
                offset: 4096 + (1 << 20),
                len: 17,
                hash: BlockHash([2; 32]),
            },
        ];
        let answer = encode_grant(9, &extents);
        let body = &answer[ANSWER_HEAD_LEN..];
        assert_eq!(decode_grant(body).expect("valid"), (9, extents));
        assert!(decode_grant(&body[..body.len() - 1]).is_err());
    }

    #[test]
    fn the_host_identity_names_the_namespaces() {
        let id = host_identity();
        assert_eq!(id, host_identity());
        assert!(id.contains("net:["), "{id}");
        assert!(id.contains("mnt:["), "{id}");
    }
}
