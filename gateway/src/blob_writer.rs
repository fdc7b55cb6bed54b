//! Writing one blob (an object, or a multipart part): the body is cut into
//! stripes, each stripe is erasure coded and hashed, and the k+m chunks
//! stream to their k+m nodes at the same time.
//!
//! Pipeline, each stage its own task so that a PUT runs at the speed of its
//! slowest stage rather than the sum of them:
//!
//! ```text
//! body ──▶ ingest ──stripes──▶ encode + blake3 ──frames──▶ k+m node senders
//!             └────bytes────▶ MD5 (ETag)
//! ```
//!
//! Memory is bounded by the stripe pool ([`STRIPE_POOL`] buffers), whatever
//! the object size: the blocks queued for the nodes are views into pooled
//! stripes, not copies, and a stripe returns to the pool when its last block
//! has been sent. CPU work runs on blocking threads, never on the reactor.

use std::sync::Arc;

use bytes::Bytes;
use cairn_core::codec::{ErasureCodec, StripeBuffer};
use cairn_core::frame;
use cairn_core::ids::{BlobId, ChunkId, NodeId};
use cairn_core::integrity::{BlockHash, MerkleRoot, hash_block, merkle_root, root_of_roots};
use cairn_core::manifest::{BlobManifest, ChunkDescriptor, ChunkState, UNPLACED_NODE};
use cairn_node_api::NodeClient;
use futures_util::{Stream, StreamExt};
use openssl::hash::{Hasher, MessageDigest};
use tokio::sync::mpsc;

use crate::sse::Keystream;

/// Stripe buffers per write: one being filled, one being encoded, and the
/// rest holding blocks queued for (or being written to) the nodes.
pub const STRIPE_POOL: usize = 6;
/// Frames queued per node before the encoder waits for that node (a block
/// is two frames: its head and its data).
const NODE_QUEUE: usize = 8;

/// A coded stripe shared by the k+m block views sent to the nodes; when
/// the last view is dropped (its bytes are on the wire, or its node failed)
/// the buffer goes back to the write's pool.
struct PooledStripe {
    stripe: Option<StripeBuffer>,
    home: mpsc::Sender<StripeBuffer>,
    codec: Arc<ErasureCodec>,
}

impl Drop for PooledStripe {
    fn drop(&mut self) {
        if let Some(stripe) = self.stripe.take() {
            // The pool has room for every buffer it owns; after the write
            // ends its receiver is gone and the codec keeps the buffer for
            // the next write instead.
            if let Err(err) = self.home.try_send(stripe) {
                self.codec.recycle_write_buffer(err.into_inner());
            }
        }
    }
}

/// Ingest's side of the pool: buffers are allocated on demand, up to
/// [`STRIPE_POOL`], so a small object costs one stripe buffer, not six.
struct StripePool {
    codec: Arc<ErasureCodec>,
    free: mpsc::Receiver<StripeBuffer>,
    allocated: usize,
}

impl StripePool {
    async fn take(&mut self) -> Result<StripeBuffer, WriteError> {
        if let Ok(stripe) = self.free.try_recv() {
            return Ok(stripe);
        }
        if self.allocated < STRIPE_POOL {
            self.allocated += 1;
            return Ok(self.codec.write_buffer());
        }
        self.free
            .recv()
            .await
            .ok_or_else(|| WriteError::Internal("stripe pool".into()))
    }
}

impl Drop for StripePool {
    /// The write is over: its idle buffers go back to the codec, for the
    /// next write to take instead of allocating and zeroing its own.
    fn drop(&mut self) {
        self.free.close();
        while let Ok(stripe) = self.free.try_recv() {
            self.codec.recycle_write_buffer(stripe);
        }
    }
}

/// Block `index` of a pooled stripe, as the bytes of a [`Bytes`].
struct BlockView {
    stripe: Arc<PooledStripe>,
    index: usize,
}

impl AsRef<[u8]> for BlockView {
    fn as_ref(&self) -> &[u8] {
        match &self.stripe.stripe {
            Some(stripe) => stripe.block(self.index),
            // Only `Drop` empties it, and a view keeps it alive.
            None => &[],
        }
    }
}

/// What ingest hands the encoder. Only an explicit `End` seals the chunks:
/// if ingest fails, the channel closes without it and every chunk stream is
/// abandoned, so no node commits a partial chunk.
enum Feed {
    Stripe(StripeBuffer),
    End,
}

/// Where chunk i goes.
#[derive(Debug, Clone)]
pub struct ChunkTarget {
    pub node: NodeId,
    pub client: NodeClient,
    /// Reads prefer other chunks (the node recently failed or stalled a
    /// request) and come back to this one only if the others do not do.
    pub avoid: bool,
}

/// A written blob: its manifest (placement, chunk roots, missing chunks)
/// and the MD5 of its bytes.
#[derive(Debug, Clone)]
pub struct WrittenBlob {
    pub manifest: BlobManifest,
    pub md5: [u8; 16],
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("need {expected} chunk targets (k+m), got {got}")]
    Targets { expected: usize, got: usize },
    #[error("request body failed: {0}")]
    Body(String),
    #[error("only {stored} of {total} chunks were stored; the write quorum is {quorum}")]
    Quorum {
        stored: usize,
        total: usize,
        quorum: usize,
    },
    #[error("erasure coding failed: {0}")]
    Codec(#[from] cairn_core::codec::CodecError),
    #[error("the body was refused before its chunks were sealed: {0}")]
    Rejected(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// Writes `body` as blob `blob` to `targets` (one per chunk index). Succeeds
/// when at least `quorum` chunks are durable; the others are recorded as
/// [`ChunkState::Missing`] for repair. On failure, chunks already stored are
/// deleted best-effort (and are garbage for the scrubber otherwise).
pub async fn write_blob<S>(
    codec: Arc<ErasureCodec>,
    blob: BlobId,
    targets: Vec<ChunkTarget>,
    body: S,
    quorum: usize,
) -> Result<WrittenBlob, WriteError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    let targets = targets.into_iter().map(Some).collect();
    write_blob_partial(codec, blob, targets, body, quorum, None, None, None).await
}

/// Sees every body byte, in order, on the MD5 thread (e.g. the additional
/// checksums an S3 client sends), so per-byte work stays off the reactor.
pub type BodyTap = Box<dyn FnMut(&[u8]) + Send>;

/// Decides, once the whole body has been read and hashed (its MD5, its
/// length, and whatever a [`BodyTap`] computed), whether the chunks may be
/// sealed. An `Err` abandons every chunk stream, so no node commits
/// anything: a body that fails its client's checksums is never written.
pub type SealCheck = Box<dyn FnOnce(&[u8; 16], u64) -> Result<(), String> + Send>;

/// [`write_blob`] when placement found fewer than k+m nodes: chunks without
/// a target (`None`) are recorded [`ChunkState::Missing`] on
/// [`UNPLACED_NODE`] from the start, for repair to place later. The write
/// quorum still applies to the chunks stored. `tap` sees the body bytes;
/// `seal` may refuse the body before any chunk is committed; `cipher`, when
/// set, encrypts each stripe's data before it is encoded (so the chunks,
/// their hashes and roots are of ciphertext; the MD5 and `tap` see the
/// plaintext the client sent).
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, fields(%blob, k = codec.params().k, m = codec.params().m, quorum, encrypted = cipher.is_some()))]
pub async fn write_blob_partial<S>(
    codec: Arc<ErasureCodec>,
    blob: BlobId,
    targets: Vec<Option<ChunkTarget>>,
    body: S,
    quorum: usize,
    mut tap: Option<BodyTap>,
    seal: Option<SealCheck>,
    cipher: Option<Keystream>,
) -> Result<WrittenBlob, WriteError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    let params = *codec.params();
    let total = params.total();
    if targets.len() != total {
        return Err(WriteError::Targets {
            expected: total,
            got: targets.len(),
        });
    }

    // One sender task per chunk, fed by a bounded frame queue.
    let mut queues = Vec::with_capacity(total);
    let mut senders = Vec::with_capacity(total);
    for (index, target) in targets.iter().enumerate() {
        let Some(target) = target else {
            queues.push(None);
            senders.push(None);
            continue;
        };
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(NODE_QUEUE);
        queues.push(Some(tx));
        let client = target.client.clone();
        let chunk = ChunkId::new(blob, index as u8);
        let frames =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        senders.push(Some(tokio::spawn(async move {
            client
                .put_chunk_stream(&chunk, params.block_size as u32, frames)
                .await
        })));
    }

    // Stripe buffers circulate: ingest fills, the encoder codes and shares
    // them with the node senders, the last block sent returns them.
    let (free_tx, free_rx) = mpsc::channel::<StripeBuffer>(STRIPE_POOL);
    let mut pool = StripePool {
        codec: codec.clone(),
        free: free_rx,
        allocated: 0,
    };
    let (full_tx, full_rx) = mpsc::channel::<Feed>(STRIPE_POOL);
    // A tokio channel: when MD5 falls behind, ingest awaits instead of
    // blocking a runtime thread.
    let (md5_tx, mut md5_rx) = mpsc::channel::<Bytes>(64);

    // OpenSSL's MD5 (0.75 GB/s here, against 0.59 for the md-5 crate's
    // asm): MD5 is the single most expensive stage of a PUT.
    let md5_task = tokio::task::spawn_blocking(move || -> Result<[u8; 16], WriteError> {
        let md5_error = |e: openssl::error::ErrorStack| WriteError::Internal(format!("MD5: {e}"));
        let mut md5 = Hasher::new(MessageDigest::md5()).map_err(md5_error)?;
        while let Some(piece) = md5_rx.blocking_recv() {
            md5.update(&piece).map_err(md5_error)?;
            if let Some(tap) = tap.as_mut() {
                tap(&piece);
            }
        }
        let digest = md5.finish().map_err(md5_error)?;
        <[u8; 16]>::try_from(&digest[..]).map_err(|_| WriteError::Internal("MD5 length".into()))
    });
    let encoder_codec = codec.clone();
    let encode_task = tokio::task::spawn_blocking(move || {
        encode_stripes(&encoder_codec, full_rx, free_tx, queues, cipher)
    });

    // Ingest: fill stripes from the body.
    let mut body = body;
    let mut size = 0u64;
    let mut stripe = pool.take().await?;
    let mut filled = 0usize;
    let capacity = stripe.capacity();
    let mut ingest_error = None;
    while let Some(piece) = body.next().await {
        let mut piece = match piece {
            Ok(piece) => piece,
            Err(err) => {
                ingest_error = Some(WriteError::Body(err.to_string()));
                break;
            }
        };
        size += piece.len() as u64;
        if md5_tx.send(piece.clone()).await.is_err() {
            ingest_error = Some(WriteError::Internal("MD5 stage stopped".into()));
            break;
        }
        while !piece.is_empty() {
            let take = piece.len().min(capacity - filled);
            stripe.fill_region()[filled..filled + take].copy_from_slice(&piece.split_to(take));
            filled += take;
            if filled == capacity {
                stripe.set_data_len(filled)?;
                if full_tx.send(Feed::Stripe(stripe)).await.is_err() {
                    return Err(WriteError::Internal("encoder stopped".into()));
                }
                stripe = pool.take().await?;
                filled = 0;
            }
        }
    }
    // The MD5 stage ends once it has seen every byte.
    drop(md5_tx);
    let mut md5 = None;
    if ingest_error.is_none() {
        if filled > 0 {
            stripe.set_data_len(filled)?;
            if full_tx.send(Feed::Stripe(stripe)).await.is_err() {
                return Err(WriteError::Internal("encoder stopped".into()));
            }
        } else {
            codec.recycle_write_buffer(stripe);
        }
        // Seal only a body that passes its checks.
        let digest = md5_task
            .await
            .map_err(|e| WriteError::Internal(e.to_string()))
            .and_then(|digest| digest)
            .and_then(|digest| match seal {
                Some(check) => check(&digest, size)
                    .map(|()| digest)
                    .map_err(WriteError::Rejected),
                None => Ok(digest),
            });
        match digest {
            Ok(digest) => {
                md5 = Some(digest);
                if full_tx.send(Feed::End).await.is_err() {
                    return Err(WriteError::Internal("encoder stopped".into()));
                }
            }
            Err(err) => ingest_error = Some(err),
        }
    }
    drop(full_tx);
    if let Some(err) = ingest_error {
        // The encoder sees the feed close without `End` and abandons every
        // chunk stream, so no node commits a partial chunk.
        let _ = encode_task.await;
        for sender in senders.into_iter().flatten() {
            let _ = sender.await;
        }
        return Err(err);
    }
    let roots = encode_task
        .await
        .map_err(|e| WriteError::Internal(e.to_string()))??;
    let md5 = md5.ok_or_else(|| WriteError::Internal("no MD5".into()))?;

    let mut chunks = Vec::with_capacity(total);
    for (index, sender) in senders.into_iter().enumerate() {
        let node = targets[index]
            .as_ref()
            .map_or_else(unplaced_node, |t| t.node.clone());
        let stored = match sender {
            None => false,
            Some(sender) => match sender.await {
                Ok(Ok(reply)) if reply.merkle_root == roots[index] => true,
                Ok(Ok(reply)) => {
                    tracing::error!(%blob, index, %node, got = %reply.merkle_root, "node stored a different root");
                    false
                }
                Ok(Err(err)) => {
                    tracing::warn!(%blob, index, %node, error = %err, "chunk write failed");
                    false
                }
                Err(err) => {
                    tracing::error!(%blob, index, error = %err, "chunk sender panicked");
                    false
                }
            },
        };
        chunks.push(ChunkDescriptor {
            index: index as u8,
            node,
            state: if stored {
                ChunkState::Stored
            } else {
                ChunkState::Missing
            },
            merkle_root: roots[index],
        });
    }
    let stored = chunks
        .iter()
        .filter(|c| c.state == ChunkState::Stored)
        .count();
    if stored < quorum {
        delete_stored(blob, &targets, &chunks).await;
        return Err(WriteError::Quorum {
            stored,
            total,
            quorum,
        });
    }
    let root = root_of_roots(&roots);
    tracing::debug!(size, stored, "blob written");
    Ok(WrittenBlob {
        manifest: BlobManifest {
            blob,
            size,
            codec: params,
            chunks,
            root,
        },
        md5,
    })
}

/// Encoder stage: codes each stripe, hashes every block, and hands block i
/// to chunk i's queue. Ends every chunk stream with its end frame and
/// returns the chunk roots. A node whose queue is closed (its write failed)
/// is skipped from then on; the others continue.
fn encode_stripes(
    codec: &Arc<ErasureCodec>,
    mut full: mpsc::Receiver<Feed>,
    free: mpsc::Sender<StripeBuffer>,
    mut queues: Vec<Option<mpsc::Sender<Result<Bytes, std::io::Error>>>>,
    mut cipher: Option<Keystream>,
) -> Result<Vec<MerkleRoot>, WriteError> {
    let total = queues.len();
    let mut hashes: Vec<Vec<BlockHash>> = vec![Vec::new(); total];
    let mut stripes = 0u32;
    loop {
        let mut stripe = match full.blocking_recv() {
            Some(Feed::Stripe(stripe)) => stripe,
            Some(Feed::End) => break,
            None => {
                return Err(WriteError::Body(
                    "the body ended early; chunk streams abandoned".into(),
                ));
            }
        };
        if let Some(cipher) = cipher.as_mut() {
            cipher.apply(stripe.data_mut());
        }
        // Replication (k = 1): every chunk's block is the data block, so it
        // is neither encoded nor hashed again, and all chunks share it.
        let replication = codec.is_replication();
        let block_hashes = if replication {
            vec![hash_block(stripe.block(0)); total]
        } else {
            codec.encode(&mut stripe)?;
            stripe.block_hashes()
        };
        let block_len = stripe.block_len();
        let shared = Arc::new(PooledStripe {
            stripe: Some(stripe),
            home: free.clone(),
            codec: codec.clone(),
        });
        for (index, queue) in queues.iter_mut().enumerate() {
            let hash = block_hashes[index];
            hashes[index].push(hash);
            let Some(tx) = queue else { continue };
            let head = Bytes::copy_from_slice(&frame::block_head(stripes, &hash, block_len));
            let data = Bytes::from_owner(BlockView {
                stripe: shared.clone(),
                index: if replication { 0 } else { index },
            });
            if tx.blocking_send(Ok(head)).is_err() || tx.blocking_send(Ok(data)).is_err() {
                *queue = None;
            }
        }
        stripes += 1;
    }
    let roots: Vec<MerkleRoot> = hashes.iter().map(|h| merkle_root(h)).collect();
    for (index, queue) in queues.into_iter().enumerate() {
        if let Some(tx) = queue {
            let _ = tx.blocking_send(Ok(frame::end_frame(stripes, &roots[index])));
        }
    }
    Ok(roots)
}

fn unplaced_node() -> NodeId {
    NodeId::new(UNPLACED_NODE).expect("a valid node id")
}

async fn delete_stored(blob: BlobId, targets: &[Option<ChunkTarget>], chunks: &[ChunkDescriptor]) {
    for chunk in chunks.iter().filter(|c| c.state == ChunkState::Stored) {
        let id = ChunkId::new(blob, chunk.index);
        let Some(target) = &targets[chunk.index as usize] else {
            continue;
        };
        if let Err(err) = target.client.delete(&id).await {
            tracing::warn!(chunk = %id, error = %err, "could not delete a chunk of a failed write");
        }
    }
}
