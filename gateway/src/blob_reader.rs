//! Reading a byte range of one blob, streaming, stripe by stripe.
//!
//! Healthy path: only the data chunks holding the range are read (one block
//! stream per chunk over the stripes needed), every block is verified
//! against its hash by [`BlockStream`], and bytes are copied straight out,
//! with no decoding. When a chunk fails (unreachable, missing, a corrupt or
//! cut stream), another chunk's stream is opened from the current stripe on
//! and each stripe is reconstructed from k blocks, still streaming.
//!
//! Hedging slow nodes is not done yet (see the gateway issue).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use cairn_core::codec::{CodecError, ErasureCodec};
use cairn_core::ids::ChunkId;
use cairn_core::layout::StripeSlice;
use cairn_core::manifest::{BlobManifest, ChunkState};
use cairn_storage_node::client::{BlockStream, NodeError};
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::blob_writer::ChunkTarget;

/// Chunks read (in bytes) ahead of the consumer.
const READ_AHEAD: usize = 2;

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
    #[error("internal: {0}")]
    Internal(String),
}

/// Counts of what a read had to do, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub degraded_stripes: u64,
    pub failed_chunks: Vec<u8>,
}

/// Streams bytes `range` of the blob described by `manifest`, whose chunk i
/// is served by `sources[i]`.
pub fn read_blob(
    codec: Arc<ErasureCodec>,
    manifest: BlobManifest,
    sources: Vec<ChunkTarget>,
    range: Range<u64>,
) -> Result<BlobStream, ReadError> {
    if range.start > range.end || range.end > manifest.size {
        return Err(ReadError::Range {
            start: range.start,
            end: range.end,
            size: manifest.size,
        });
    }
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        let mut reader = StripeReader::new(codec, manifest, sources);
        if let Err(err) = reader.run(range, &tx).await {
            let _ = tx.send(Err(err)).await;
        }
    });
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

struct StripeReader {
    codec: Arc<ErasureCodec>,
    manifest: BlobManifest,
    sources: Vec<ChunkTarget>,
    /// Chunks known to be unusable for the rest of this read.
    failed: Vec<bool>,
    stats: ReadStats,
}

impl StripeReader {
    fn new(codec: Arc<ErasureCodec>, manifest: BlobManifest, sources: Vec<ChunkTarget>) -> Self {
        let total = manifest.chunks.len();
        let failed = manifest
            .chunks
            .iter()
            .map(|c| c.state == ChunkState::Missing)
            .collect();
        Self {
            codec,
            manifest,
            sources,
            failed,
            stats: ReadStats {
                failed_chunks: Vec::with_capacity(total),
                ..Default::default()
            },
        }
    }

    async fn open(&self, index: usize, stripes: Range<u64>) -> Result<BlockStream, NodeError> {
        let chunk = ChunkId::new(self.manifest.blob, index as u8);
        self.sources[index]
            .client
            .get_blocks(&chunk, Some(stripes))
            .await
    }

    fn fail(&mut self, index: usize, err: &NodeError) {
        if !self.failed[index] {
            tracing::warn!(blob = %self.manifest.blob, chunk = index, error = %err, "chunk unusable; reading around it");
            self.failed[index] = true;
            self.stats.failed_chunks.push(index as u8);
        }
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
        let mut stripe_buf = self.codec.stripe_buffer();
        for slice in &slices {
            let stripe = slice.stripe;
            stripe_buf
                .prepare(layout.stripe_data_len(stripe))
                .map_err(|source| ReadError::Unrecoverable { stripe, source })?;
            let mut present = vec![false; total];
            // Wanted chunks: the needed data chunks while they are healthy;
            // once one fails, any k usable chunks.
            loop {
                let degraded = needed.iter().any(|&i| self.failed[i]);
                let wanted: Vec<usize> = if degraded {
                    let mut usable: Vec<usize> = (0..total).filter(|&i| !self.failed[i]).collect();
                    usable.sort_by_key(|&i| !present[i]); // keep blocks already read
                    usable.into_iter().take(k).collect()
                } else {
                    needed.clone()
                };
                if degraded && wanted.len() < k {
                    return Err(ReadError::Unrecoverable {
                        stripe,
                        source: CodecError::TooFewBlocks {
                            available: wanted.len(),
                            needed: k,
                        },
                    });
                }
                let mut progress = true;
                let todo: Vec<usize> = wanted.iter().copied().filter(|&i| !present[i]).collect();
                for index in todo {
                    if streams[index].is_none() {
                        match self.open(index, stripe..end).await {
                            Ok(stream) => streams[index] = Some(stream),
                            Err(err) => {
                                self.fail(index, &err);
                                progress = false;
                                continue;
                            }
                        }
                    }
                    let Some(stream) = streams[index].as_mut() else {
                        continue;
                    };
                    // A stream not wanted for some stripes lags behind: skip
                    // forward to this stripe.
                    let next = loop {
                        match stream.next_block().await {
                            Ok(Some((got, _))) if got < stripe => continue,
                            other => break other,
                        }
                    };
                    match next {
                        Ok(Some((got, data)))
                            if got == stripe && data.len() == stripe_buf.block_len() =>
                        {
                            stripe_buf.block_mut(index).copy_from_slice(&data);
                            present[index] = true;
                        }
                        Ok(other) => {
                            let err = NodeError::Protocol {
                                chunk: ChunkId::new(self.manifest.blob, index as u8),
                                message: format!(
                                    "expected block {stripe}, got {:?}",
                                    other.map(|(i, d)| (i, d.len()))
                                ),
                            };
                            self.fail(index, &err);
                            streams[index] = None;
                            progress = false;
                        }
                        Err(err) => {
                            self.fail(index, &err);
                            streams[index] = None;
                            progress = false;
                        }
                    }
                }
                if progress && wanted.iter().all(|&i| present[i]) {
                    if degraded {
                        self.stats.degraded_stripes += 1;
                        let codec = self.codec.clone();
                        let mut buf = stripe_buf;
                        let flags = present.clone();
                        let (buf_back, result) = tokio::task::spawn_blocking(move || {
                            let result = codec.reconstruct(&mut buf, &flags, true);
                            (buf, result)
                        })
                        .await
                        .map_err(|e| ReadError::Internal(e.to_string()))?;
                        stripe_buf = buf_back;
                        result.map_err(|source| ReadError::Unrecoverable { stripe, source })?;
                    }
                    break;
                }
            }
            if out.send(Ok(slice_bytes(&stripe_buf, slice))).await.is_err() {
                break; // the client went away
            }
        }
        Ok(self.stats.clone())
    }
}

/// The requested bytes of one stripe (data blocks are contiguous).
fn slice_bytes(stripe: &cairn_core::codec::StripeBuffer, slice: &StripeSlice) -> Bytes {
    Bytes::copy_from_slice(&stripe.data()[slice.within.clone()])
}
