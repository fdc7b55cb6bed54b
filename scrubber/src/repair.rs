//! Rebuilding a chunk: read k verified surviving chunks stripe by stripe,
//! decode the lost one, stream it to a replacement node chosen by the core
//! placement rule (at most m chunks per rack), and move the manifest entry
//! atomically. Memory is one stripe per repair. The whole chunk is
//! rewritten even when only some blocks are corrupt: chunk files are
//! write-once (temp, fsync, rename), so there is no in-place block update.

use cairn_service::ErrorCode;
use cairn_service::tasks::{CancellationToken, pause};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::codec::ErasureCodec;
use cairn_core::frame;
use cairn_core::ids::{ChunkId, NodeId};
use cairn_core::integrity::{hash_block, merkle_root};
use cairn_core::manifest::{BlobManifest, ChunkState};
use cairn_core::placement::{NodeCandidate, NodeState, replace_near};
use cairn_meta_api::client::MetaError;
use cairn_meta_api::model::{Command, NodeRecord};
use cairn_node_api::{BlockStream, NodeError};
use tokio::sync::{Mutex, mpsc};

use crate::context::{Context, now_ms};
use crate::model::{RepairCost, RepairReason, RepairTask};
use crate::rate::TokenBucket;

/// Give up on a chunk after this many failed attempts (counted as a
/// failure; a later scrub queues it again).
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("reading {chunk}: {source}")]
    Read {
        chunk: ChunkId,
        #[source]
        source: NodeError,
    },
    #[error("writing {chunk} to {node}: {source}")]
    Write {
        chunk: ChunkId,
        node: NodeId,
        #[source]
        source: NodeError,
    },
    #[error("only {available} healthy chunks to rebuild from; {needed} needed")]
    TooFewSources { available: usize, needed: usize },
    #[error("no replacement node: {0}")]
    Placement(#[from] cairn_core::placement::PlacementError),
    #[error("decoding: {0}")]
    Codec(#[from] cairn_core::codec::CodecError),
    #[error("rebuilt chunk has root {got}, the manifest says {expected}")]
    RootMismatch { got: String, expected: String },
    #[error("internal: {0}")]
    Internal(String),
}

/// What became of a task.
#[derive(Debug)]
enum Outcome {
    Repaired(RepairCost),
    /// The object changed or the chunk is no longer where the task says.
    Obsolete,
}

/// Runs the repair queue forever: most endangered first, a few at a time,
/// at the configured read rate.
pub async fn run_repairs(ctx: Arc<Context>, token: CancellationToken) {
    let rate = Arc::new(Mutex::new(TokenBucket::new(
        ctx.config.repair_rate_bytes_per_sec,
        ctx.config.repair_rate_bytes_per_sec.max(4 << 20),
        Instant::now(),
    )));
    let workers = ctx.config.repair_concurrency.max(1);
    loop {
        let due = match ctx.store.due_tasks(now_ms(), workers) {
            Ok(due) => due,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the repair queue");
                if !pause(&token, ctx.config.poll_interval()).await {
                    return;
                }
                continue;
            }
        };
        let counts = ctx.store.queue_counts();
        ctx.metrics.repair_queue.set(counts.total as i64);
        for (reason, count) in counts.by_reason() {
            ctx.metrics
                .repair_queue_by_reason
                .with_label_values(&[reason])
                .set(count as i64);
        }
        if due.is_empty() {
            if !pause(
                &token,
                ctx.config.poll_interval().min(Duration::from_millis(200)),
            )
            .await
            {
                return;
            }
            continue;
        }
        // The batch runs concurrently inside this task (no detached tasks),
        // so cancelling the loop cancels the batch: an interrupted repair
        // stays queued and its half-written chunk is garbage for the GC.
        let batch = futures_util::future::join_all(
            due.into_iter()
                .map(|(key, task)| settle(&ctx, &rate, key, task)),
        );
        if token.run_until_cancelled(batch).await.is_none() {
            return;
        }
    }
}

/// Runs one task and records its outcome in the queue and the counters.
async fn settle(ctx: &Context, rate: &Mutex<TokenBucket>, key: String, mut task: RepairTask) {
    ctx.in_progress.fetch_add(1, Ordering::Relaxed);
    ctx.metrics.repairs_in_progress.inc();
    let result = repair_chunk(ctx, rate, &task).await;
    ctx.in_progress.fetch_sub(1, Ordering::Relaxed);
    ctx.metrics.repairs_in_progress.dec();
    let recorded = match result {
        Ok(outcome) => {
            match &outcome {
                Outcome::Repaired(cost) => {
                    ctx.metrics.repaired_chunks.inc();
                    ctx.metrics.repair_bytes_read.inc_by(cost.bytes_read);
                    ctx.metrics.repair_bytes_rebuilt.inc_by(cost.bytes_rebuilt);
                    ctx.metrics
                        .repair_cross_rack_bytes
                        .inc_by(cost.cross_rack_bytes);
                    tracing::info!(blob = %task.blob, index = task.index, ?cost, "chunk repaired");
                }
                Outcome::Obsolete => {
                    tracing::info!(blob = %task.blob, index = task.index, "repair no longer needed")
                }
            }
            ctx.store
                .update_totals(|totals| match &outcome {
                    Outcome::Repaired(cost) => totals.add(cost),
                    Outcome::Obsolete => totals.obsolete += 1,
                })
                .and_then(|()| ctx.store.remove_task(&key, &task))
        }
        Err(err) => {
            task.attempts += 1;
            ctx.metrics.repair_failures.inc();
            tracing::warn!(blob = %task.blob, index = task.index, attempt = task.attempts, error = %err, "repair failed");
            if task.attempts >= MAX_ATTEMPTS {
                ctx.store
                    .update_totals(|totals| totals.failures += 1)
                    .and_then(|()| ctx.store.remove_task(&key, &task))
            } else {
                // Back off: 1 s, 2 s, 4 s, … up to a minute.
                let backoff = 1000u64 << task.attempts.min(6);
                task.not_before_ms = now_ms() + backoff;
                ctx.store.retry_task(&key, &task)
            }
        }
    };
    if let Err(err) = recorded {
        tracing::error!(error = %err, "cannot record a repair outcome");
    }
}

#[tracing::instrument(skip_all, fields(blob = %task.blob, index = task.index))]
async fn repair_chunk(
    ctx: &Context,
    rate: &Mutex<TokenBucket>,
    task: &RepairTask,
) -> Result<Outcome, RepairError> {
    let started = Instant::now();
    let record = match &task.version_id {
        Some(version) => {
            ctx.meta
                .get_version(&task.bucket, &task.key, Some(version))
                .await?
        }
        None => ctx.meta.get_object(&task.bucket, &task.key).await?,
    };
    let Some(record) = record else {
        return Ok(Outcome::Obsolete);
    };
    let Some(part) = record.manifest.parts.iter().find(|p| p.blob == task.blob) else {
        return Ok(Outcome::Obsolete);
    };
    let index = task.index as usize;
    let Some(lost) = part.chunks.get(index) else {
        return Ok(Outcome::Obsolete);
    };
    if lost.node != task.node {
        return Ok(Outcome::Obsolete); // already moved
    }
    let nodes = ctx.nodes().await?;
    let up = |id: &NodeId| {
        nodes
            .iter()
            .any(|n| &n.id == id && n.state == NodeState::Up)
    };
    // Surviving chunks on live nodes.
    let mut available: Vec<bool> = part
        .chunks
        .iter()
        .map(|c| c.index as usize != index && c.state == ChunkState::Stored && up(&c.node))
        .collect();
    let codec = Arc::new(ErasureCodec::new(part.codec)?);
    let too_few = |available: &[bool]| RepairError::TooFewSources {
        available: available.iter().filter(|a| **a).count(),
        needed: part.codec.k,
    };
    if codec.read_set(index, &available).is_none() {
        return Err(too_few(&available));
    }

    // The replacement, by the core rule: no node holding another chunk of
    // the blob if possible, at most m chunks per rack.
    let placement: Vec<NodeId> = part.chunks.iter().map(|c| c.node.clone()).collect();
    let layout = part.layout();
    // A rebalance moves a chunk only to a node below the mean use; with
    // none left that keeps the rack rule, the move is moot.
    let mean = match task.reason {
        RepairReason::Rebalance => crate::rebalance::mean_use(&nodes),
        _ => None,
    };
    let eligible: Vec<NodeCandidate> = nodes
        .iter()
        .filter(|n| mean.is_none_or(|mean| crate::rebalance::below_mean(n, mean)))
        .map(NodeRecord::candidate)
        .collect();
    // An LRC chunk goes near its group, so its next local repair reads
    // less across racks.
    let peers = part
        .codec
        .lrc_params()
        .and_then(|lrc| lrc.group_peers(index))
        .unwrap_or_default();
    let target = match replace_near(
        &part.blob,
        &placement,
        index,
        &eligible,
        part.codec.tolerated_losses(),
        layout.chunk_len(),
        &peers,
    ) {
        Ok(target) => target,
        Err(_) if task.reason == RepairReason::Rebalance => return Ok(Outcome::Obsolete),
        Err(err) => return Err(err.into()),
    };
    let rack_of = |id: &NodeId| nodes.iter().find(|n| &n.id == id).map(|n| n.rack.clone());
    let target_rack = rack_of(&target);
    let target_client = ctx
        .client(&nodes, &target)
        .ok_or_else(|| RepairError::Internal(format!("{target} vanished")))?;

    // A drain or a rebalance moves a healthy chunk: it is copied from its
    // own node (one chunk read instead of k), every block verified on
    // receipt. A first attempt that failed (the node could not serve it, a
    // corrupt block) is retried by rebuilding instead.
    let mut copy_from = None;
    if matches!(task.reason, RepairReason::Drain | RepairReason::Rebalance)
        && task.attempts == 0
        && up(&lost.node)
        && let Some(client) = ctx.client(&nodes, &lost.node)
    {
        match client.get_blocks(&part.chunk_id(task.index), None).await {
            Ok(stream) => copy_from = Some((stream, rack_of(&lost.node) != target_rack)),
            Err(err) => {
                tracing::warn!(node = %lost.node, error = %err, "cannot copy the chunk; rebuilding it")
            }
        }
    }

    // Otherwise read the cheapest decodable set, stripe by stripe: any k
    // for Reed-Solomon (data chunks first), the rest of the group for an
    // LRC's single loss. A source that does not open is left out and the
    // set chosen again.
    let mut readers: Vec<(usize, BlockStream, bool)> = Vec::new();
    while copy_from.is_none() {
        let set = codec
            .read_set(index, &available)
            .ok_or_else(|| too_few(&available))?;
        let mut complete = true;
        for source in set {
            if readers.iter().any(|(s, _, _)| *s == source) {
                continue;
            }
            let chunk = part.chunk_id(source as u8);
            let node = &part.chunks[source].node;
            let opened = match ctx.client(&nodes, node) {
                Some(client) => client.get_blocks(&chunk, None).await,
                None => {
                    available[source] = false;
                    complete = false;
                    continue;
                }
            };
            match opened {
                Ok(stream) => readers.push((source, stream, rack_of(node) != target_rack)),
                Err(err) => {
                    tracing::warn!(%chunk, error = %err, "source unusable; trying another");
                    available[source] = false;
                    complete = false;
                }
            }
        }
        if complete {
            // Streams opened for an earlier set that is no longer the one
            // read are dropped (not read).
            let set = codec
                .read_set(index, &available)
                .ok_or_else(|| too_few(&available))?;
            readers.retain(|(s, _, _)| set.contains(s));
            break;
        }
    }
    let chunk_id = part.chunk_id(task.index);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let block_size = part.codec.block_size as u32;
    let upload = tokio::spawn({
        let client = target_client.clone();
        async move {
            let frames = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|f| (f, rx))
            });
            client.put_chunk_stream(&chunk_id, block_size, frames).await
        }
    });

    let mut cost = RepairCost {
        class: Some(part.codec.to_string()),
        ..RepairCost::default()
    };
    let mut hashes = Vec::new();
    let rebuilt = match copy_from {
        Some((mut stream, cross_rack)) => {
            copy_blocks(
                rate,
                part,
                (&mut stream, cross_rack, chunk_id),
                &tx,
                &mut hashes,
                &mut cost,
            )
            .await
        }
        None => {
            rebuild_stripes(
                rate,
                part,
                index,
                &codec,
                &mut readers,
                &tx,
                &mut hashes,
                &mut cost,
            )
            .await
        }
    };
    if let Err(err) = rebuilt {
        drop(tx); // abandon the upload: the node commits nothing
        let _ = upload.await;
        return Err(err);
    }
    let root = merkle_root(&hashes);
    if root != lost.merkle_root {
        drop(tx);
        let _ = upload.await;
        return Err(RepairError::RootMismatch {
            got: root.to_hex(),
            expected: lost.merkle_root.to_hex(),
        });
    }
    let _ = tx
        .send(Ok(frame::end_frame(hashes.len() as u32, &root)))
        .await;
    drop(tx);
    let stored = upload
        .await
        .map_err(|e| RepairError::Internal(e.to_string()))?
        .map_err(|source| RepairError::Write {
            chunk: chunk_id,
            node: target.clone(),
            source,
        })?;
    if stored.merkle_root != root {
        return Err(RepairError::RootMismatch {
            got: stored.merkle_root.to_hex(),
            expected: root.to_hex(),
        });
    }
    match ctx
        .meta
        .apply(&Command::MoveChunk {
            bucket: task.bucket.clone(),
            key: task.key.clone(),
            blob: task.blob,
            index: task.index,
            from: lost.node.clone(),
            to: target.clone(),
            merkle_root: root,
        })
        .await
    {
        Ok(_) => {}
        // The object changed meanwhile: what was written is garbage.
        Err(err) if err.code() == Some(ErrorCode::Conflict) => {
            let _ = target_client.delete(&chunk_id).await;
            return Ok(Outcome::Obsolete);
        }
        Err(err) => return Err(err.into()),
    }
    cost.millis = started.elapsed().as_millis() as u64;
    tracing::debug!(from = %lost.node, to = %target, "chunk moved");
    Ok(Outcome::Repaired(cost))
}

/// Sends the chunk's own blocks, as its node streams them (each verified
/// against its stored hash by the `BlockStream`), to `tx`, hashing each for
/// the Merkle root the manifest must match.
async fn copy_blocks(
    rate: &Mutex<TokenBucket>,
    part: &BlobManifest,
    (stream, cross_rack, chunk): (&mut BlockStream, bool, ChunkId),
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    hashes: &mut Vec<cairn_core::integrity::BlockHash>,
    cost: &mut RepairCost,
) -> Result<(), RepairError> {
    let layout = part.layout();
    for stripe in 0..layout.stripe_count() {
        let (got, block) = stream
            .next_block()
            .await
            .map_err(|source| RepairError::Read { chunk, source })?
            .ok_or_else(|| RepairError::Internal(format!("{chunk} ended at block {stripe}")))?;
        if got != stripe {
            return Err(RepairError::Internal(format!(
                "{chunk}: expected block {stripe}, got block {got}"
            )));
        }
        let len = block.len() as u64;
        rate.lock().await.take(len).await;
        cost.bytes_read += len;
        cost.bytes_rebuilt += len;
        if cross_rack {
            cost.cross_rack_bytes += len;
        }
        let hash = hash_block(&block);
        hashes.push(hash);
        let head = Bytes::copy_from_slice(&frame::block_head(stripe as u32, &hash, block.len()));
        if tx.send(Ok(head)).await.is_err() || tx.send(Ok(block)).await.is_err() {
            return Err(RepairError::Internal(
                "the target node stopped receiving".into(),
            ));
        }
    }
    Ok(())
}

/// Decodes chunk `index` stripe by stripe from the readers and sends its
/// block frames to `tx`, hashing each block.
#[allow(clippy::too_many_arguments)]
async fn rebuild_stripes(
    rate: &Mutex<TokenBucket>,
    part: &BlobManifest,
    index: usize,
    codec: &Arc<ErasureCodec>,
    readers: &mut [(usize, BlockStream, bool)],
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    hashes: &mut Vec<cairn_core::integrity::BlockHash>,
    cost: &mut RepairCost,
) -> Result<(), RepairError> {
    let layout = part.layout();
    let total = part.codec.total();
    let mut buf = codec.stripe_buffer();
    for stripe in 0..layout.stripe_count() {
        buf.prepare(layout.stripe_data_len(stripe))?;
        let block_len = buf.block_len() as u64;
        rate.lock()
            .await
            .take(block_len * readers.len() as u64)
            .await;
        let mut present = vec![false; total];
        for (source, stream, cross_rack) in readers.iter_mut() {
            let chunk = part.chunk_id(*source as u8);
            let (got, data) = stream
                .next_block()
                .await
                .map_err(|source| RepairError::Read { chunk, source })?
                .ok_or_else(|| RepairError::Internal(format!("{chunk} ended at block {stripe}")))?;
            if got != stripe || data.len() != buf.block_len() {
                return Err(RepairError::Internal(format!(
                    "{chunk}: expected block {stripe} of {} bytes, got block {got} of {}",
                    buf.block_len(),
                    data.len()
                )));
            }
            buf.block_mut(*source).copy_from_slice(&data);
            present[*source] = true;
            cost.bytes_read += data.len() as u64;
            if *cross_rack {
                cost.cross_rack_bytes += data.len() as u64;
            }
        }
        // Decode off the reactor.
        let decoder = codec.clone();
        let mut owned = buf;
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = decoder.rebuild_block(&mut owned, &present, index);
            (owned, result)
        })
        .await
        .map_err(|e| RepairError::Internal(e.to_string()))?;
        buf = back;
        result?;
        let block = buf.block(index);
        let hash = hash_block(block);
        hashes.push(hash);
        cost.bytes_rebuilt += block.len() as u64;
        let head = Bytes::copy_from_slice(&frame::block_head(stripe as u32, &hash, block.len()));
        if tx.send(Ok(head)).await.is_err()
            || tx.send(Ok(Bytes::copy_from_slice(block))).await.is_err()
        {
            return Err(RepairError::Internal(
                "the target node stopped receiving".into(),
            ));
        }
    }
    Ok(())
}
