//! Reading a byte range of one blob, streaming, stripe by stripe.
//!
//! Healthy path: only the data chunks holding the range are read (one block
//! stream per chunk over the stripes needed), every block is verified
//! against its hash by [`BlockStream`], and bytes are copied straight out,
//! with no decoding. When a chunk fails (unreachable, missing, a corrupt or
//! cut stream), another chunk's stream is opened from the current stripe on
//! and each stripe is reconstructed from k blocks, still streaming.
//!
//! Hedging: the block reads of a stripe run concurrently; a read slower than
//! `hedge_after` brings in another chunk and the first k blocks win, so one
//! slow (or hung) node costs one hedge delay, not the whole GET. The
//! deadline is per stripe, so a stream that stalls midway is replaced as
//! one that never starts is. Chunks on nodes the gateway avoids (they
//! failed or stalled a request lately, see `health`) are read only if the
//! others cannot make k.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::codec::{CodecError, ErasureCodec, StripeBuffer};
use cairn_core::ids::ChunkId;
use cairn_core::layout::StripeSlice;
use cairn_core::manifest::{BlobManifest, ChunkState};
use cairn_node_api::{BlockStream, NodeError};
use cairn_service::ErrorCode;
use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::blob_writer::ChunkTarget;

/// Stripes read ahead of the consumer.
const READ_AHEAD: usize = 2;

/// A healthy stripe slice up to this long goes out as one copied piece
/// rather than as slices of its blocks.
const COALESCE_BELOW: usize = 64 * 1024;

/// Default delay before a slow chunk read is hedged with another chunk.
pub const DEFAULT_HEDGE_AFTER: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("range {start}..{end} is outside a blob of {size} bytes")]
    Range { start: u64, end: u64, size: u64 },
    #[error("stripe {stripe}: {source}")]
    Unrecoverable {
        stripe: u64,
        #[source]
        source: CodecError,
    },
    /// Stored bytes that fail their hash and cannot be rebuilt (an inline
    /// body: its only copies are the catalogue's).
    #[error("corrupt: {0}")]
    Corrupt(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// Counts of what a read had to do, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub degraded_stripes: u64,
    pub hedged_stripes: u64,
    pub failed_chunks: Vec<u8>,
    pub slow_chunks: Vec<u8>,
    /// Chunks whose node, not whose data, was the trouble: unreachable,
    /// out of time, a server error, or outrun by a hedge (a subset of the
    /// failed and slow ones). Their nodes are avoided for a while.
    pub unresponsive_chunks: Vec<u8>,
    /// Chunks passed over at the start because their node was avoided.
    pub avoided_chunks: Vec<u8>,
    /// Chunks that served at least one block.
    pub served_chunks: Vec<u8>,
    /// Chunks that sent a block not matching its hash (a subset of the
    /// failed ones): damage at rest the scrubber will find and repair.
    pub corrupt_chunks: Vec<u8>,
    /// Served chunks read from the node's file on this host (short-circuit
    /// reads) rather than over HTTP.
    pub local_chunks: Vec<u8>,
}

impl ReadStats {
    /// Whether the read had to do more than read its data chunks: degraded
    /// or hedged stripes, failed, slow or avoided chunks.
    pub fn troubled(&self) -> bool {
        self.degraded_stripes > 0
            || self.hedged_stripes > 0
            || !self.failed_chunks.is_empty()
            || !self.slow_chunks.is_empty()
            || !self.avoided_chunks.is_empty()
    }
}

/// Told what a finished blob read had to do (for metrics).
pub type ReadObserver = Arc<dyn Fn(&ReadStats) + Send + Sync>;

/// Streams bytes `range` of the blob described by `manifest`, whose chunk i
/// is served by `sources[i]`.
pub fn read_blob(
    codec: Arc<ErasureCodec>,
    manifest: BlobManifest,
    sources: Vec<ChunkTarget>,
    range: Range<u64>,
    hedge_after: Duration,
) -> Result<BlobStream, ReadError> {
    read_blob_observed(codec, manifest, sources, range, hedge_after, None)
}

/// [`read_blob`], reporting its [`ReadStats`] to `observer` when it ends.
pub fn read_blob_observed(
    codec: Arc<ErasureCodec>,
    manifest: BlobManifest,
    sources: Vec<ChunkTarget>,
    range: Range<u64>,
    hedge_after: Duration,
    observer: Option<ReadObserver>,
) -> Result<BlobStream, ReadError> {
    if range.start > range.end || range.end > manifest.size {
        return Err(ReadError::Range {
            start: range.start,
            end: range.end,
            size: manifest.size,
        });
    }
    // A healthy stripe goes out as up to k pieces (its blocks' slices).
    let (tx, rx) = mpsc::channel(READ_AHEAD * codec.params().k);
    let span = tracing::info_span!("read_blob", blob = %manifest.blob, start = range.start, end = range.end);
    tokio::spawn(
        async move {
            let mut reader = StripeReader::new(codec, manifest, sources, hedge_after);
            let result = reader.run(range, &tx).await;
            if let Some(observer) = &observer {
                observer(&reader.stats);
            }
            match result {
                Ok(stats) if stats.troubled() => {
                    tracing::info!(?stats, "read needed degraded or hedged stripes");
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "read failed");
                    let _ = tx.send(Err(err)).await;
                }
            }
        }
        .instrument(span),
    );
    Ok(BlobStream { rx })
}

/// The bytes of a blob range, in order; an error ends the stream.
#[derive(Debug)]
pub struct BlobStream {
    rx: mpsc::Receiver<Result<Bytes, ReadError>>,
}

impl Stream for BlobStream {
    type Item = Result<Bytes, ReadError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

type BlockRead = (usize, Option<BlockStream>, Result<Bytes, NodeError>);

struct StripeReader {
    codec: Arc<ErasureCodec>,
    manifest: BlobManifest,
    sources: Vec<ChunkTarget>,
    /// Chunks not to use for the rest of this read (failed or slow, or
    /// avoided while the others do).
    failed: Vec<bool>,
    /// Chunks left out only because their node is avoided: taken back when
    /// the rest cannot make k.
    avoided: Vec<bool>,
    hedge_after: Duration,
    stats: ReadStats,
}

impl StripeReader {
    fn new(
        codec: Arc<ErasureCodec>,
        manifest: BlobManifest,
        sources: Vec<ChunkTarget>,
        hedge_after: Duration,
    ) -> Self {
        let missing: Vec<bool> = manifest
            .chunks
            .iter()
            .map(|c| c.state == ChunkState::Missing)
            .collect();
        let mut avoided: Vec<bool> = sources
            .iter()
            .zip(&missing)
            .map(|(source, missing)| source.avoid && !missing)
            .collect();
        let preferred = (0..missing.len())
            .filter(|&i| !missing[i] && !avoided[i])
            .count();
        if preferred < codec.params().k {
            avoided.iter_mut().for_each(|a| *a = false);
        }
        let failed = missing
            .iter()
            .zip(&avoided)
            .map(|(m, a)| *m || *a)
            .collect();
        let stats = ReadStats {
            avoided_chunks: (0..avoided.len())
                .filter(|&i| avoided[i])
                .map(|i| i as u8)
                .collect(),
            ..ReadStats::default()
        };
        Self {
            codec,
            manifest,
            sources,
            failed,
            avoided,
            hedge_after,
            stats,
        }
    }

    fn fail(&mut self, index: usize, err: &NodeError) {
        self.avoided[index] = false;
        if !self.failed[index] {
            tracing::warn!(blob = %self.manifest.blob, chunk = index, error = %err, "chunk unusable; reading around it");
            self.failed[index] = true;
            self.stats.failed_chunks.push(index as u8);
            if node_trouble(err) {
                self.stats.unresponsive_chunks.push(index as u8);
            }
            if err.corrupt_block().is_some() {
                self.stats.corrupt_chunks.push(index as u8);
            }
        }
    }

    /// Takes back the chunks left out only because their node is avoided;
    /// false if there were none.
    fn readmit_avoided(&mut self) -> bool {
        let mut any = false;
        for index in 0..self.avoided.len() {
            if std::mem::take(&mut self.avoided[index]) {
                self.failed[index] = false;
                any = true;
            }
        }
        if any {
            tracing::debug!(blob = %self.manifest.blob, "reading chunks of avoided nodes: the others do not make k");
        }
        any
    }

    async fn run(
        &mut self,
        range: Range<u64>,
        out: &mpsc::Sender<Result<Bytes, ReadError>>,
    ) -> Result<ReadStats, ReadError> {
        let layout = self.manifest.layout();
        let slices = layout.slices(range);
        let (Some(first), Some(last)) = (slices.first(), slices.last()) else {
            return Ok(self.stats.clone());
        };
        let k = self.codec.params().k;
        let total = self.codec.params().total();
        let end = last.stripe + 1;
        // Data chunks the range touches (all k unless it stays in one stripe).
        let needed: Vec<usize> = if slices.len() == 1 {
            first.data_blocks.clone().collect()
        } else {
            (0..k).collect()
        };
        let mut streams: Vec<Option<BlockStream>> = (0..total).map(|_| None).collect();
        let mut received: Vec<Option<Bytes>> = vec![None; total];
        // Only a degraded stripe is assembled in a buffer: made at the
        // first one, sized for this blob's largest stripe.
        let mut stripe_buf: Option<StripeBuffer> = None;
        for slice in &slices {
            let stripe = slice.stripe;
            received.iter_mut().for_each(|r| *r = None);
            let block_len = layout.block_len(stripe);
            self.read_stripe(stripe, end, &needed, &mut streams, block_len, &mut received)
                .await?;
            let pieces = match data_pieces(&received, block_len, slice) {
                // Healthy: the verified blocks as they arrived, no copy;
                // small stripes as one piece (many tiny body frames cost
                // more than copying a few KiB: measured, BENCHMARKS.md).
                Some(pieces) if pieces.len() > 1 && slice.within.len() <= COALESCE_BELOW => {
                    vec![Bytes::from(pieces.concat())]
                }
                Some(pieces) => pieces,
                None => {
                    self.stats.degraded_stripes += 1;
                    let buf = stripe_buf.take().unwrap_or_else(|| {
                        self.codec.stripe_buffer_up_to(layout.stripe_data_len(0))
                    });
                    let (buf, bytes) = self
                        .reconstruct(buf, layout.stripe_data_len(stripe), &received, slice)
                        .await?;
                    stripe_buf = Some(buf);
                    vec![bytes]
                }
            };
            for piece in pieces {
                if out.send(Ok(piece)).await.is_err() {
                    return Ok(self.stats.clone()); // the client went away
                }
            }
        }
        Ok(self.stats.clone())
    }

    /// Rebuilds the data of a degraded stripe (`data_len` bytes) from the
    /// k or more blocks in `received`, in `buf` (handed back for the next
    /// one), and returns the bytes `slice` asks for.
    async fn reconstruct(
        &self,
        mut buf: StripeBuffer,
        data_len: usize,
        received: &[Option<Bytes>],
        slice: &StripeSlice,
    ) -> Result<(StripeBuffer, Bytes), ReadError> {
        let stripe = slice.stripe;
        buf.prepare(data_len)
            .map_err(|source| ReadError::Unrecoverable { stripe, source })?;
        let present: Vec<bool> = received.iter().map(Option::is_some).collect();
        for (index, block) in received.iter().enumerate() {
            if let Some(block) = block {
                buf.block_mut(index).copy_from_slice(block);
            }
        }
        let codec = self.codec.clone();
        let (buf, result) = tokio::task::spawn_blocking(move || {
            let result = codec.reconstruct(&mut buf, &present, true);
            (buf, result)
        })
        .await
        .map_err(|e| ReadError::Internal(e.to_string()))?;
        result.map_err(|source| ReadError::Unrecoverable { stripe, source })?;
        let bytes = slice_bytes(&buf, slice);
        Ok((buf, bytes))
    }

    /// Fills `received` with this stripe's blocks (`block_len` bytes each):
    /// the needed data blocks, or any k blocks once a chunk fails or is
    /// slow. After `hedge_after` without
    /// completion, one more chunk per outstanding read is asked and the first
    /// blocks to arrive win. Chunks still outstanding when the stripe
    /// completes are left out for the rest of the read. Returns which blocks
    /// are present.
    async fn read_stripe(
        &mut self,
        stripe: u64,
        end: u64,
        needed: &[usize],
        streams: &mut [Option<BlockStream>],
        block_len: usize,
        received: &mut [Option<Bytes>],
    ) -> Result<(), ReadError> {
        let k = self.codec.params().k;
        let total = streams.len();
        let mut present = vec![false; total];
        let mut launched = vec![false; total];
        let mut pending = FuturesUnordered::new();
        for &index in needed.iter().filter(|&&i| !self.failed[i]) {
            launched[index] = true;
            pending.push(self.read_block(index, stripe, end, streams[index].take()));
        }
        let hedge = tokio::time::sleep(self.hedge_after);
        tokio::pin!(hedge);
        let mut hedged = false;
        // Hedge reads asked on top of k.
        let mut extra = 0;
        loop {
            let have = present.iter().filter(|p| **p).count();
            // Degraded: a needed chunk is unusable, or reads were slow. Then
            // any blocks that decode the stripe will do: any k for
            // Reed-Solomon; for an LRC, k that are independent (one more
            // block at a time until they are).
            let degraded = hedged || needed.iter().any(|&i| self.failed[i]);
            let decodable = degraded && have >= k && self.codec.is_decodable(&present);
            if needed.iter().all(|&i| present[i]) || decodable {
                break;
            }
            let mut target = if degraded { k + extra } else { needed.len() };
            if degraded && have >= k {
                target = target.max(have + 1);
            }
            let launch = target.saturating_sub(have + pending.len());
            // Only a read around a failure or a slow chunk launches more
            // (the healthy path never builds the order).
            let order = if launch > 0 {
                self.codec.fallback_order(&self.failed)
            } else {
                Vec::new()
            };
            for _ in 0..launch {
                let Some(index) = order
                    .iter()
                    .copied()
                    .find(|&i| !launched[i] && !self.failed[i])
                else {
                    break;
                };
                launched[index] = true;
                pending.push(self.read_block(index, stripe, end, streams[index].take()));
            }
            if pending.is_empty() {
                if self.readmit_avoided() {
                    continue;
                }
                return Err(ReadError::Unrecoverable {
                    stripe,
                    source: CodecError::TooFewBlocks {
                        available: have,
                        needed: k,
                    },
                });
            }
            tokio::select! {
                Some((index, stream, result)) = pending.next() => match result {
                    Ok(data) if data.len() == block_len => {
                        received[index] = Some(data);
                        present[index] = true;
                        if !self.stats.served_chunks.contains(&(index as u8)) {
                            self.stats.served_chunks.push(index as u8);
                            if stream.as_ref().is_some_and(BlockStream::is_local) {
                                self.stats.local_chunks.push(index as u8);
                            }
                        }
                        streams[index] = stream;
                    }
                    Ok(data) => {
                        let err = NodeError::Protocol {
                            chunk: ChunkId::new(self.manifest.blob, index as u8),
                            message: format!("block {stripe} has {} bytes, expected {block_len}", data.len()),
                        };
                        self.fail(index, &err);
                    }
                    Err(err) => self.fail(index, &err),
                },
                () = &mut hedge, if !hedged => {
                    hedged = true;
                    extra = pending.len();
                    self.stats.hedged_stripes += 1;
                    tracing::debug!(blob = %self.manifest.blob, stripe, outstanding = pending.len(), "hedging slow chunk reads");
                }
            }
        }
        // Whatever is still outstanding is slow: leave it behind (dropping
        // `pending` drops its streams).
        let slow: Vec<usize> = (0..total)
            .filter(|&i| launched[i] && !present[i] && !self.failed[i])
            .collect();
        for index in slow {
            self.failed[index] = true;
            self.stats.slow_chunks.push(index as u8);
            self.stats.unresponsive_chunks.push(index as u8);
        }
        Ok(())
    }

    /// Reads block `stripe` of chunk `index`, opening a stream over
    /// `stripe..end` if none is open; hands the stream back for reuse.
    fn read_block(
        &self,
        index: usize,
        stripe: u64,
        end: u64,
        stream: Option<BlockStream>,
    ) -> impl std::future::Future<Output = BlockRead> + use<> {
        let chunk = ChunkId::new(self.manifest.blob, index as u8);
        let client = self.sources[index].client.clone();
        async move {
            let mut stream = match stream {
                Some(stream) => stream,
                None => match client.get_blocks(&chunk, Some(stripe..end)).await {
                    Ok(stream) => stream,
                    Err(err) => return (index, None, Err(err)),
                },
            };
            // A stream not read for some stripes lags behind: skip forward.
            let result = loop {
                match stream.next_block().await {
                    Ok(Some((got, _))) if got < stripe => continue,
                    Ok(Some((got, data))) if got == stripe => break Ok(data),
                    Ok(other) => {
                        break Err(NodeError::Protocol {
                            chunk,
                            message: format!(
                                "expected block {stripe}, got {:?}",
                                other.map(|(i, _)| i)
                            ),
                        });
                    }
                    Err(err) => break Err(err),
                }
            };
            match result {
                Ok(data) => (index, Some(stream), Ok(data)),
                Err(err) => (index, None, Err(err)),
            }
        }
    }
}

/// Whether a failed block read says the node is in trouble (unreachable,
/// out of time, a server error) rather than its data (missing, corrupt).
fn node_trouble(err: &NodeError) -> bool {
    match err {
        NodeError::Http(err) => {
            err.is_unreachable()
                || (err.status().is_some_and(|s| s >= 500)
                    && !matches!(
                        err.code(),
                        Some(ErrorCode::CorruptBlock | ErrorCode::CorruptChunk)
                    ))
        }
        _ => false,
    }
}

/// The requested bytes of a stripe, as slices of its received data blocks
/// (`block_len` each; block i holds stripe bytes `i * block_len..(i + 1) *
/// block_len`), or `None` if a block they need did not arrive.
fn data_pieces(
    received: &[Option<Bytes>],
    block_len: usize,
    slice: &StripeSlice,
) -> Option<Vec<Bytes>> {
    slice
        .data_blocks
        .clone()
        .map(|index| {
            let block = received[index].as_ref()?;
            let start = slice.within.start.max(index * block_len) - index * block_len;
            let end = slice.within.end.min((index + 1) * block_len) - index * block_len;
            Some(block.slice(start..end))
        })
        .filter(|piece| piece.as_ref().is_none_or(|p| !p.is_empty()))
        .collect()
}

/// The requested bytes of one stripe (data blocks are contiguous).
fn slice_bytes(stripe: &StripeBuffer, slice: &StripeSlice) -> Bytes {
    Bytes::copy_from_slice(&stripe.data()[slice.within.clone()])
}
