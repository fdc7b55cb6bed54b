//! Garbage collection: chunks no manifest references any more. The
//! catalogue queues them when a version is overwritten or deleted, an
//! upload aborted, or a chunk moved by repair; they are deleted from their
//! nodes once `gc_grace` has passed (a reader that fetched the old
//! manifest may still be streaming them). A node that is unreachable keeps
//! its entry queued until it answers (or is never coming back).
//!
//! A sweep also finds chunks that were never referenced at all (a gateway
//! that died between writing chunks and committing the manifest): every
//! chunk a node lists that the catalogue's reverse index does not place
//! there, older than the grace period, is deleted. The grace period must
//! exceed the longest upload, since a chunk is written before its manifest
//! is committed.

use cairn_service::tasks::{CancellationToken, pause};
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashSet;

use cairn_core::ids::BlobId;
use cairn_core::manifest::ChunkState;
use cairn_core::placement::NodeState;

use crate::context::{Context, now_ms};

/// Garbage entries handled per shard and round.
const BATCH: usize = 200;

/// Rounds of queued-garbage collection between orphan sweeps.
const SWEEP_EVERY: u32 = 10;

pub async fn collect_garbage(ctx: Arc<Context>, token: CancellationToken) {
    let mut round = 0u32;
    loop {
        // A round may be cut anywhere: deletions are idempotent and an
        // entry is acknowledged only after its chunks are gone.
        let work = async {
            if let Err(err) = collect_once(&ctx).await {
                tracing::warn!(error = %err, "garbage collection round failed");
            }
            if round.is_multiple_of(SWEEP_EVERY)
                && let Err(err) = sweep_orphans(&ctx).await
            {
                tracing::warn!(error = %err, "orphan sweep failed");
            }
        };
        if token.run_until_cancelled(work).await.is_none() {
            return;
        }
        round = round.wrapping_add(1);
        let wait = ctx.config.poll_interval().max(Duration::from_millis(500));
        if !pause(&token, wait).await {
            return;
        }
    }
}

/// Deletes chunks on live nodes that no manifest or upload references.
async fn sweep_orphans(ctx: &Context) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nodes = ctx.nodes().await?;
    for node in nodes.iter().filter(|n| n.state == NodeState::Up) {
        let Some(client) = ctx.client(&nodes, &node.id) else {
            continue;
        };
        // The index first: a chunk committed after this snapshot is younger
        // than the grace period when listed below.
        let referenced: HashSet<(BlobId, u8)> = ctx
            .meta
            .chunks_on_node(&node.id)
            .await?
            .into_iter()
            .map(|c| (c.blob, c.index))
            .collect();
        let cutoff = now_ms().saturating_sub(ctx.config.gc_grace_ms);
        let mut after = None;
        let mut deleted = 0u64;
        loop {
            let page = client.list(after.as_ref(), 1000).await?;
            for entry in &page.chunks {
                if entry.modified_ms < cutoff
                    && !referenced.contains(&(entry.chunk.blob, entry.chunk.index))
                {
                    match client.delete(&entry.chunk).await {
                        Ok(true) => {
                            deleted += 1;
                            tracing::info!(node = %node.id, chunk = %entry.chunk, "deleted an unreferenced chunk");
                        }
                        Ok(false) => {}
                        Err(err) => {
                            tracing::debug!(chunk = %entry.chunk, error = %err, "orphan not deleted")
                        }
                    }
                }
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if deleted > 0 {
            ctx.metrics.garbage_deleted.inc_by(deleted);
            ctx.store.add_garbage_deleted(deleted)?;
        }
    }
    Ok(())
}

async fn collect_once(ctx: &Context) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nodes = ctx.nodes().await?;
    let now = now_ms();
    for shard in ctx.meta.refresh_map().await?.shards {
        let entries = ctx.meta.garbage(shard.id, None, BATCH).await?;
        let mut done = Vec::new();
        let mut deleted = 0u64;
        for entry in entries {
            if now.saturating_sub(entry.queued_ms) < ctx.config.gc_grace_ms {
                break; // queued in order: the rest are younger
            }
            let mut complete = true;
            for chunk in entry
                .blob
                .chunks
                .iter()
                .filter(|c| c.state == ChunkState::Stored)
            {
                let id = entry.blob.chunk_id(chunk.index);
                let Some(client) = ctx.client(&nodes, &chunk.node) else {
                    continue; // the node left the cluster with its chunks
                };
                match client.delete(&id).await {
                    Ok(true) => deleted += 1,
                    Ok(false) => {}
                    Err(err) if err.is_not_found() => {}
                    Err(err) => {
                        tracing::debug!(chunk = %id, node = %chunk.node, error = %err, "garbage chunk not deleted yet");
                        complete = false;
                    }
                }
            }
            if complete {
                done.push(entry.id);
            }
        }
        if deleted > 0 {
            ctx.metrics.garbage_deleted.inc_by(deleted);
            ctx.store.add_garbage_deleted(deleted)?;
            tracing::info!(shard = %shard.id, deleted, "garbage chunks deleted");
        }
        if !done.is_empty() {
            ctx.meta.ack_garbage(shard.id, done).await?;
        }
    }
    Ok(())
}
