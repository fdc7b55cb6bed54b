//! What the S3 layer stands on: the catalogue client, the erasure-coded data
//! path, live placement, limits and metrics, joined into operations on whole
//! objects (write a blob from a body, stream a range of an object's parts).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::codec::{CodecParams, ErasureCodec, StorageClass};
use cairn_core::ids::BlobId;
use cairn_core::manifest::{BlobManifest, ChunkState, InlineBody, ObjectManifest};
use cairn_core::placement::{PlacementError, place_blob};
use cairn_meta_api::client::{MetaClient, NodeCache};
use cairn_meta_api::model::NodeRecord;
use cairn_service::{ClusterSecret, HttpClient, Timeouts};
use futures_util::{Stream, StreamExt, TryStreamExt};

use crate::blob_reader::{ReadError, ReadStats, read_blob_observed};
use crate::blob_writer::{BodyTap, SealCheck, WriteError, WrittenBlob, write_blob_partial};
use crate::config::{ConfigError, GatewayConfig};
use crate::health::{NodeHealth, Outcome};
use crate::metrics::GatewayMetrics;
use crate::placement::{LocalNodes, sources_for_blob, targets_for_new_blob};
use crate::sse::{Keystream, VersionKey};

/// Largest chunk written into a local node's file (short-circuit) rather
/// than over HTTP: the 3-copy size class (one block of at most 1 MiB per
/// copy) and small erasure-coded blobs.
const LOCAL_WRITE_MAX_CHUNK: u64 = 4 * 1024 * 1024;

/// How long a fetched node list is used before asking the registry again.
const NODE_CACHE_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("no rack-safe placement: {0}")]
    Placement(#[from] PlacementError),
    #[error("the body exceeds the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("the client sent no body bytes for {0:?}")]
    ClientIdle(Duration),
    #[error(transparent)]
    Meta(#[from] cairn_meta_api::client::MetaError),
    /// A bucket's storage class that cannot be used (or placed).
    #[error("{0}")]
    Class(String),
}

/// The gateway's shared state behind every S3 request.
#[derive(Debug)]
pub struct Backend {
    pub meta: MetaClient,
    pub metrics: GatewayMetrics,
    /// The code of new blobs, and its write quorum.
    code: Code,
    /// The block size of erasure-coded blobs (a bucket's class keeps it).
    block_size: usize,
    /// Buckets' storage classes as last read, and the coders built for them.
    classes: ClassCache,
    /// Blobs of a known size up to `replicated_max` get copies instead.
    replicated: Option<Code>,
    replicated_max: u64,
    /// Reads (and deletes) from nodes: the generic deadlines, plus hedging.
    http: HttpClient,
    /// Chunk writes: `write_stall_after` for progress and the answer.
    write_http: HttpClient,
    /// Nodes that failed or stalled requests lately (`health`).
    health: NodeHealth,
    hedge_after: Duration,
    client_idle: Duration,
    max_object_bytes: u64,
    inline_max: u64,
    nodes: NodeCache,
    /// Short-circuit reads and writes of nodes on this host
    /// (`short_circuit`).
    local_nodes: Option<LocalNodes>,
}

/// A code new blobs are written with, and how many chunks must be durable
/// before one is acknowledged.
#[derive(Debug, Clone)]
struct Code {
    codec: Arc<ErasureCodec>,
    quorum: usize,
}

impl Code {
    /// A bucket class's code: acknowledged once k+1 chunks are durable, and
    /// never with more missing than the code survives in every pattern (an
    /// LRC's r+1).
    fn for_class(params: CodecParams) -> Result<Self, BackendError> {
        let codec = ErasureCodec::new(params).map_err(|e| BackendError::Class(e.to_string()))?;
        let total = params.total();
        let quorum = (params.k + 1)
            .max(total - params.tolerated_losses())
            .min(total);
        Ok(Self {
            codec: Arc::new(codec),
            quorum,
        })
    }
}

/// How long a bucket's storage class is trusted after it was read: a class
/// change applies to blobs written from at most this much later.
const CLASS_FRESH_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct ClassCache {
    buckets: std::sync::Mutex<HashMap<String, (Instant, Option<StorageClass>)>>,
    codes: std::sync::Mutex<HashMap<StorageClass, Code>>,
}

/// Where a single-blob body went.
#[derive(Debug, Clone)]
pub enum Stored {
    /// Small enough to live in the manifest; the bytes and their MD5.
    Inline { body: InlineBody, md5: [u8; 16] },
    /// Erasure-coded into chunks on nodes.
    Blob(WrittenBlob),
}

impl Stored {
    pub fn md5(&self) -> [u8; 16] {
        match self {
            Self::Inline { md5, .. } => *md5,
            Self::Blob(written) => written.md5,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            Self::Inline { body, .. } => body.data.len() as u64,
            Self::Blob(written) => written.manifest.size,
        }
    }
}

impl Backend {
    pub fn new(
        config: &GatewayConfig,
        meta: MetaClient,
        secret: &ClusterSecret,
        metrics: GatewayMetrics,
    ) -> Result<Self, ConfigError> {
        let codec = |params| {
            ErasureCodec::new(params)
                .map(Arc::new)
                .map_err(|e| ConfigError::Invalid(e.to_string()))
        };
        let code = Code {
            codec: codec(config.codec()?)?,
            quorum: config.quorum()?,
        };
        // Copies: acknowledged once all but one are durable (k+1, as the
        // default quorum is), the last one owed to repair.
        let replicated = match config.replicated_codec()? {
            Some(params) => Some(Code {
                codec: codec(params)?,
                quorum: params.k + 1,
            }),
            None => None,
        };
        Ok(Self {
            meta,
            metrics,
            code,
            block_size: config.block_size,
            classes: ClassCache::default(),
            replicated,
            replicated_max: config.replicated_max_bytes,
            http: HttpClient::with_builder(
                secret.clone(),
                Timeouts::INTERNAL,
                reqwest::Client::builder().pool_max_idle_per_host(64),
            ),
            // Chunk writes: no progress (bytes taken, or the answer once
            // all are sent) for `write_stall_after` abandons the chunk.
            write_http: HttpClient::with_builder(
                secret.clone(),
                Timeouts {
                    connect: Timeouts::INTERNAL.connect.min(config.write_stall_after()),
                    request: config.write_stall_after(),
                    progress: config.write_stall_after(),
                },
                reqwest::Client::builder().pool_max_idle_per_host(64),
            ),
            health: NodeHealth::default(),
            hedge_after: config.hedge_after(),
            client_idle: config.client_idle_timeout(),
            max_object_bytes: config.max_object_bytes,
            inline_max: config.inline_max()?,
            nodes: NodeCache::new(NODE_CACHE_TTL),
            local_nodes: config
                .short_circuit
                .then(|| LocalNodes::new(secret.clone(), Timeouts::INTERNAL.connect)),
        })
    }

    /// The registry's nodes, cached for [`NODE_CACHE_TTL`].
    async fn nodes(&self) -> Result<Arc<Vec<NodeRecord>>, BackendError> {
        Ok(self.nodes.get(&self.meta).await?)
    }

    /// Stores the body of a single PUT or copy: inline when it turns out to
    /// be at most `inline_max_bytes` (declared or not: the first bytes are
    /// read before choosing), as a blob otherwise. `tap` and `seal` see an
    /// inline body exactly as they see a blob's.
    pub async fn write_object<S, E>(
        &self,
        bucket: &str,
        body: S,
        size_hint: Option<u64>,
        mut tap: Option<BodyTap>,
        seal: Option<SealCheck>,
        key: Option<&VersionKey>,
    ) -> Result<Stored, BackendError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let inline_max = self.inline_max;
        if inline_max == 0 || size_hint.is_some_and(|size| size > inline_max) {
            return Ok(Stored::Blob(
                self.write(bucket, body, size_hint, tap, seal, key).await?,
            ));
        }
        let mut body = Box::pin(body);
        let mut head: Vec<Bytes> = Vec::new();
        let mut len = 0u64;
        let ended = loop {
            match tokio::time::timeout(self.client_idle, body.next()).await {
                Err(_) => return Err(BackendError::ClientIdle(self.client_idle)),
                Ok(None) => break true,
                Ok(Some(Err(err))) => return Err(WriteError::Body(err.to_string()).into()),
                Ok(Some(Ok(piece))) => {
                    len += piece.len() as u64;
                    head.push(piece);
                    if len > inline_max {
                        break false;
                    }
                }
            }
        };
        if !ended {
            // Larger than it said (or it said nothing): a blob after all,
            // starting with the bytes already read.
            let whole = futures_util::stream::iter(head.into_iter().map(Ok)).chain(body);
            return Ok(Stored::Blob(
                self.write(bucket, whole, size_hint, tap, seal, key).await?,
            ));
        }
        let data = match head.len() {
            1 => head.pop().expect("one piece"),
            _ => Bytes::from(head.concat()),
        };
        let md5: [u8; 16] = <md5::Md5 as md5::Digest>::digest(&data).into();
        if let Some(tap) = tap.as_mut() {
            tap(&data);
        }
        if let Some(seal) = seal {
            seal(&md5, len).map_err(WriteError::Rejected)?;
        }
        self.metrics.bytes_in.inc_by(len);
        self.metrics.inline_writes.inc();
        let data = match key {
            Some(key) => {
                let mut sealed = data.to_vec();
                key.inline_cipher(0).apply(&mut sealed);
                Bytes::from(sealed)
            }
            None => data,
        };
        Ok(Stored::Inline {
            body: InlineBody::new(data),
            md5,
        })
    }

    /// Stores `body` as a new blob of `bucket` on rack-safe nodes, in the
    /// code its size and the bucket's storage class call for. `size_hint`
    /// (the declared length) lets placement skip nodes too full for it.
    /// Bodies over the configured limit fail with
    /// [`BackendError::TooLarge`], and bodies `seal` refuses with
    /// [`WriteError::Rejected`]; both leave nothing behind.
    pub async fn write<S, E>(
        &self,
        bucket: &str,
        body: S,
        size_hint: Option<u64>,
        tap: Option<BodyTap>,
        seal: Option<SealCheck>,
        key: Option<&VersionKey>,
    ) -> Result<WrittenBlob, BackendError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let limit = self.max_object_bytes;
        if let Some(size) = size_hint
            && size > limit
        {
            return Err(BackendError::TooLarge { limit });
        }
        let code = self.code_for(bucket, size_hint).await?;
        let params = *code.codec.params();
        let blob = BlobId::random();
        let min_free = size_hint.unwrap_or(0).div_ceil(params.k as u64) + params.block_size as u64;
        let nodes = self.nodes().await?;
        // Short-circuit writes for small chunks only: they go through the
        // page cache, so the seal's fsync writes the whole chunk at once; a
        // large chunk goes over HTTP, where the node writes its full blocks
        // with direct I/O as they arrive (and does not evict readers' cache).
        let local = self.local_nodes.as_ref().filter(|_| {
            size_hint.is_some_and(|size| size.div_ceil(params.k as u64) <= LOCAL_WRITE_MAX_CHUNK)
        });
        let place = |candidates: &[NodeRecord]| {
            targets_for_new_blob(
                &blob,
                candidates,
                &params,
                min_free,
                code.quorum,
                &self.write_http,
                local,
            )
        };
        // Avoided nodes are a preference, never the reason a PUT fails.
        let targets = match place(&self.health.placeable(&nodes)) {
            Ok(targets) => targets,
            Err(err) if self.health.penalised_count() > 0 => {
                tracing::warn!(error = %err, "no placement around the avoided nodes; using them too");
                place(&nodes)?
            }
            Err(err) => return Err(err.into()),
        };

        let too_large = Arc::new(AtomicBool::new(false));
        let flag = too_large.clone();
        let idle = Arc::new(AtomicBool::new(false));
        let body = idle_limited(body, self.client_idle, idle.clone());
        let bytes_in = self.metrics.bytes_in.clone();
        let mut seen = 0u64;
        let body = Box::pin(body.map(move |item| {
            let chunk = item.map_err(|e| std::io::Error::other(e.to_string()))?;
            seen += chunk.len() as u64;
            if seen > limit {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("body too large"));
            }
            bytes_in.inc_by(chunk.len() as u64);
            Ok(chunk)
        }));
        match write_blob_partial(
            code.codec.clone(),
            blob,
            targets,
            body,
            code.quorum,
            tap,
            seal,
            key.map(|key| key.blob_cipher(&blob, 0)),
        )
        .await
        {
            Ok(written) => {
                if written.manifest.stored_chunks() < params.total() {
                    self.metrics.degraded_writes.inc();
                }
                self.penalise_failed_writes(&written.manifest, &nodes);
                Ok(written)
            }
            Err(_) if too_large.load(Ordering::Relaxed) => Err(BackendError::TooLarge { limit }),
            Err(_) if idle.load(Ordering::Relaxed) => {
                Err(BackendError::ClientIdle(self.client_idle))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The code for a new blob: copies when its declared size is small
    /// enough (and above the inline threshold, or it would not be a blob);
    /// otherwise the bucket's storage class, or the gateway's k+m.
    async fn code_for(&self, bucket: &str, size_hint: Option<u64>) -> Result<Code, BackendError> {
        if let (Some(replicated), Some(size)) = (&self.replicated, size_hint)
            && size <= self.replicated_max
        {
            return Ok(replicated.clone());
        }
        let Some(class) = self.bucket_class(bucket).await? else {
            return Ok(self.code.clone());
        };
        let mut codes = self.classes.codes.lock().expect("class codes lock");
        if let Some(code) = codes.get(&class) {
            return Ok(code.clone());
        }
        let code = Code::for_class(
            class
                .codec(self.block_size)
                .map_err(|e| BackendError::Class(e.to_string()))?,
        )?;
        codes.insert(class, code.clone());
        Ok(code)
    }

    /// The coder built for a bucket class with exactly these parameters, if
    /// one was (reads of a class's blobs reuse it instead of building one
    /// per GET).
    fn class_code(&self, params: &CodecParams) -> Option<Code> {
        self.classes
            .codes
            .lock()
            .expect("class codes lock")
            .get(&StorageClass::of(params))
            .filter(|code| code.codec.params() == params)
            .cloned()
    }

    /// A bucket's storage class, read at most every [`CLASS_FRESH_FOR`].
    async fn bucket_class(&self, bucket: &str) -> Result<Option<StorageClass>, BackendError> {
        if let Some((read, class)) = self
            .classes
            .buckets
            .lock()
            .expect("class cache lock")
            .get(bucket)
            && read.elapsed() < CLASS_FRESH_FOR
        {
            return Ok(*class);
        }
        let class = self
            .meta
            .head_bucket(bucket)
            .await?
            .and_then(|record| record.storage_class);
        self.classes
            .buckets
            .lock()
            .expect("class cache lock")
            .insert(bucket.to_owned(), (Instant::now(), class));
        Ok(class)
    }

    /// Refuses a storage class the nodes registered now cannot place
    /// rack-safely (too few nodes or racks for its chunks), naming why.
    pub async fn check_class(&self, class: StorageClass) -> Result<(), BackendError> {
        let params = class
            .codec(self.block_size)
            .map_err(|e| BackendError::Class(e.to_string()))?;
        let nodes = self.nodes().await?;
        let mut candidates: Vec<_> = nodes.iter().map(NodeRecord::candidate).collect();
        // The layout a healthy cluster gives: a node down now is not the
        // reason to refuse a class.
        for candidate in &mut candidates {
            candidate.state = cairn_core::placement::NodeState::Up;
            candidate.free = candidate.free.max(1);
        }
        place_blob(&BlobId::random(), &candidates, &params, 1, params.total())
            .map(drop)
            .map_err(|err| BackendError::Class(format!("{class} cannot be placed here: {err}")))
    }

    /// Leaves out of placement, for [`crate::health::PENALTY`], every node that
    /// was given a chunk of `blob` and did not store it.
    fn penalise_failed_writes(&self, blob: &BlobManifest, nodes: &[NodeRecord]) {
        for chunk in &blob.chunks {
            if chunk.state == ChunkState::Missing && nodes.iter().any(|n| n.id == chunk.node) {
                self.metrics.write_penalties.inc();
                self.health.penalise(&chunk.node, Outcome::Write);
            }
        }
    }

    /// Learns from a finished blob read which of its nodes served and which
    /// were in trouble (see `health`).
    fn record_read(&self, part: &BlobManifest, stats: &ReadStats) {
        let node = |index: &u8| part.chunks.get(usize::from(*index)).map(|c| &c.node);
        for served in stats.served_chunks.iter().filter_map(node) {
            self.health.record_read(served, true);
        }
        for troubled in stats.unresponsive_chunks.iter().filter_map(node) {
            if self.health.record_read(troubled, false) {
                self.metrics.read_penalties.inc();
            }
        }
    }

    /// Deletes the chunks of a blob the catalogue never referenced (a
    /// written blob whose commit failed). Best effort: what is left is
    /// unreferenced garbage for the scrubber.
    pub async fn discard(&self, blob: &BlobManifest) {
        let Ok(nodes) = self.nodes().await else {
            return;
        };
        let sources = sources_for_blob(blob, &nodes, &self.http, None);
        let deletes = blob
            .chunks
            .iter()
            .zip(sources)
            .filter(|(chunk, _)| chunk.state == ChunkState::Stored)
            .map(|(chunk, source)| {
                let id = blob.chunk_id(chunk.index);
                async move {
                    if let Err(err) = source.client.delete(&id).await {
                        tracing::warn!(chunk = %id, error = %err, "could not delete an uncommitted chunk");
                    }
                }
            });
        futures_util::future::join_all(deletes).await;
    }

    /// Streams bytes `range` of an object, part after part; each part is
    /// opened only when the stream reaches it.
    pub fn read(
        self: &Arc<Self>,
        object: &ObjectManifest,
        range: Range<u64>,
        key: Option<Arc<VersionKey>>,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
        if let Some(inline) = &object.inline {
            let mut cipher = key.map(|key| key.inline_cipher(range.start));
            return self
                .read_inline(inline, range)
                .map_ok(move |bytes| decrypt(cipher.as_mut(), bytes))
                .left_stream();
        }
        let mut plan = Vec::new();
        let mut offset = 0u64;
        for part in &object.parts {
            let part_range = offset..offset + part.size;
            let start = range.start.max(part_range.start);
            let end = range.end.min(part_range.end);
            if start < end {
                plan.push((part.clone(), start - offset..end - offset));
            }
            offset = part_range.end;
        }
        let backend = self.clone();
        let bytes_out = self.metrics.bytes_out.clone();
        futures_util::stream::iter(plan)
            .then(move |(part, within)| {
                let backend = backend.clone();
                let key = key.clone();
                async move {
                    let mut cipher = key.map(|key| key.blob_cipher(&part.blob, within.start));
                    let nodes = backend
                        .nodes()
                        .await
                        .map_err(|e| ReadError::Internal(e.to_string()))?;
                    let mut sources = sources_for_blob(
                        &part,
                        &nodes,
                        &backend.http,
                        backend.local_nodes.as_ref(),
                    );
                    for source in &mut sources {
                        source.avoid = backend.health.is_penalised(&source.node);
                    }
                    // Objects keep the code they were written with: the
                    // gateway's, or a bucket class's coder already built.
                    let known = std::iter::once(&backend.code)
                        .chain(&backend.replicated)
                        .find(|code| *code.codec.params() == part.codec)
                        .cloned()
                        .or_else(|| backend.class_code(&part.codec));
                    let codec = if let Some(code) = known {
                        code.codec.clone()
                    } else {
                        Arc::new(
                            ErasureCodec::new(part.codec)
                                .map_err(|e| ReadError::Internal(e.to_string()))?,
                        )
                    };
                    let observer = {
                        let backend = backend.clone();
                        let part = part.clone();
                        Arc::new(move |stats: &ReadStats| {
                            backend.metrics.observe_read(stats);
                            backend.record_read(&part, stats);
                        })
                    };
                    read_blob_observed(
                        codec,
                        part,
                        sources,
                        within,
                        backend.hedge_after,
                        Some(observer),
                    )
                    .map(|stream| stream.map_ok(move |bytes| decrypt(cipher.as_mut(), bytes)))
                }
            })
            .try_flatten()
            .inspect_ok(move |bytes| bytes_out.inc_by(bytes.len() as u64))
            .right_stream()
    }

    /// Bytes `range` of an inline body, once its hash checks out.
    fn read_inline(
        &self,
        inline: &InlineBody,
        range: Range<u64>,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
        let result = match inline.verified() {
            Ok(data) if range.start <= range.end && range.end <= data.len() as u64 => {
                self.metrics.inline_reads.inc();
                self.metrics.bytes_out.inc_by(range.end - range.start);
                Ok(data.slice(range.start as usize..range.end as usize))
            }
            Ok(data) => Err(ReadError::Range {
                start: range.start,
                end: range.end,
                size: data.len() as u64,
            }),
            Err(corrupt) => {
                self.metrics.corrupt_inline.inc();
                Err(ReadError::Corrupt(corrupt.to_string()))
            }
        };
        futures_util::stream::once(futures_util::future::ready(result))
    }
}

/// `bytes` through a keystream (decrypted), or as they are.
fn decrypt(cipher: Option<&mut Keystream>, bytes: Bytes) -> Bytes {
    let Some(cipher) = cipher else {
        return bytes;
    };
    let mut plain = bytes
        .try_into_mut()
        .unwrap_or_else(|shared| shared[..].into());
    cipher.apply(&mut plain);
    plain.freeze()
}

/// `body`, failing with `TimedOut` (and setting `flag`) when the client
/// sends nothing for `idle` while it is being waited for. Time spent while
/// the writer is not asking (its nodes are slow) does not count.
fn idle_limited<S, E>(
    body: S,
    idle: Duration,
    flag: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    futures_util::stream::unfold(Some(Box::pin(body)), move |body| {
        let flag = flag.clone();
        async move {
            let mut body = body?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(item)) => Some((item.map_err(|e| e.to_string()), Some(body))),
                Ok(None) => None,
                Err(_) => {
                    flag.store(true, Ordering::Relaxed);
                    Some((Err(format!("no body bytes for {idle:?}")), None))
                }
            }
        }
    })
}
