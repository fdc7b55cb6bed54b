//! Garbage collection: chunks no manifest references any more. The
//! catalogue queues them when a version is overwritten or deleted, an
//! upload aborted, or a chunk moved by repair; they are deleted from their
//! nodes once `gc_grace` has passed (a reader that fetched the old
//! manifest may still be streaming them). A node that is unreachable keeps
//! its entry queued until it answers (or is never coming back).

use std::sync::Arc;
use std::time::Duration;

use cairn_core::manifest::ChunkState;

use crate::context::{Context, now_ms};

/// Garbage entries handled per shard and round.
const BATCH: usize = 200;

pub async fn collect_garbage(ctx: Arc<Context>) {
    loop {
        if let Err(err) = collect_once(&ctx).await {
            tracing::warn!(error = %err, "garbage collection round failed");
        }
        tokio::time::sleep(ctx.config.poll_interval().max(Duration::from_millis(500))).await;
    }
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
