//! Garbage collection: deleting chunks no manifest references any more.
//!
//! Garbage is found two ways. The catalogue **queues** a blob's chunks when
//! a version is overwritten or deleted, an upload aborted, or a chunk moved
//! by repair. A **sweep** compares every live node's chunk list with the
//! reverse index, for chunks that were never referenced at all (a gateway
//! that died between writing chunks and committing the manifest).
//!
//! Both follow one deletion rule ([`delete_if_still_garbage`]). A chunk is
//! deleted only when all three hold:
//! 1. It has been garbage for `gc_grace`, counted from when it *became*
//!    garbage: its queue entry's time, or the sweep's first sighting of it
//!    unreferenced. A file's age says nothing: an overwritten version's
//!    chunks are old, and a reader that fetched its manifest may still be
//!    streaming them.
//! 2. No shard's reverse index places it on its node, asked right before
//!    deleting, of every shard under one shard map (a shard whose range
//!    changed meanwhile answers `wrong_shard` and the question is asked
//!    again under the new map). The sweep also leaves queued chunks to the
//!    queue.
//! 3. Its file was not written after it became garbage: the node checks the
//!    file's time under the lock it renames chunks into place with, so a
//!    chunk that repair wrote back onto the node is a new, live chunk.
//!
//! A node that is unreachable keeps its queue entries until it answers (or
//! leaves the registry with its chunks). The grace period must exceed the
//! longest GET and the longest upload.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::ids::ChunkId;
use cairn_core::manifest::ChunkState;
use cairn_core::placement::NodeState;
use cairn_meta_api::model::{NodeRecord, PlacedChunk};
use cairn_node_api::Deletion;
use cairn_service::tasks::{CancellationToken, pause};

use crate::context::{Context, now_ms};

/// Garbage entries handled per shard and round.
const BATCH: usize = 200;

/// Chunks checked and deleted per call of the deletion rule.
const DELETE_BATCH: usize = 1000;

type GcError = Box<dyn std::error::Error + Send + Sync>;

/// Most of the time orphan sweeps may take. A sweep lists every chunk of
/// every node and reads every node's reverse index, so its cost grows with
/// the data stored; at a short interval (a dev cluster's: a quarter of a
/// 10 s grace period) a large store would sweep without pause, taking CPU
/// and disk from the requests. After a sweep that took T the next waits at
/// least T × (1 / duty − 1), whatever the configured interval.
const SWEEP_MAX_DUTY: f64 = 0.05;

/// When the sweep after one that started at `started` and took `took` may
/// start: `interval` after its start, and no sooner than its duty cycle
/// allows after its end.
fn next_sweep_at(started: Instant, took: Duration, interval: Duration) -> Instant {
    let rest = took.mul_f64(1.0 / SWEEP_MAX_DUTY - 1.0);
    (started + interval).max(started + took + rest)
}

pub async fn collect_garbage(ctx: Arc<Context>, token: CancellationToken) {
    let mut next_sweep = Instant::now();
    loop {
        // A round may be cut anywhere: deletions are idempotent and an
        // entry is acknowledged only after its chunks are gone.
        let work = async {
            if let Err(err) = collect_queued(&ctx).await {
                tracing::warn!(error = %err, "garbage collection round failed");
            }
            if Instant::now() >= next_sweep {
                let started = Instant::now();
                let result = sweep_orphans(&ctx).await;
                let took = started.elapsed();
                ctx.metrics.gc_sweep_seconds.observe(took.as_secs_f64());
                next_sweep = next_sweep_at(started, took, ctx.config.gc_sweep_interval());
                if let Err(err) = result {
                    tracing::warn!(error = %err, "orphan sweep failed");
                }
            }
        };
        if token.run_until_cancelled(work).await.is_none() {
            return;
        }
        let wait = ctx
            .config
            .poll_interval()
            .max(std::time::Duration::from_millis(500));
        if !pause(&token, wait).await {
            return;
        }
    }
}

/// A chunk that has been garbage since `since_ms`.
#[derive(Debug, Clone)]
struct Doomed {
    place: PlacedChunk,
    since_ms: u64,
}

/// What the deletion rule did with one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Deleted,
    /// Not there (deleted before, or its node left the registry).
    Gone,
    /// Live after all: referenced again, or written since it became garbage.
    Spared,
    /// Its node did not answer; ask again next round.
    Retry,
}

/// The one deletion rule (module docs), for queue and sweep alike. The
/// caller has checked the grace period.
#[tracing::instrument(skip_all, fields(chunks = doomed.len()))]
async fn delete_if_still_garbage(
    ctx: &Context,
    nodes: &[NodeRecord],
    doomed: &[Doomed],
) -> Result<Vec<Fate>, GcError> {
    let places: Vec<PlacedChunk> = doomed.iter().map(|d| d.place.clone()).collect();
    let referenced = ctx.meta.referenced(&places).await?;
    let spared = |reason: &str| {
        ctx.metrics
            .garbage_spared
            .with_label_values(&[reason])
            .inc()
    };
    let mut fates = Vec::with_capacity(doomed.len());
    let mut deleted = 0u64;
    for d in doomed {
        let PlacedChunk { node, chunk } = &d.place;
        if referenced.contains(&d.place) {
            tracing::info!(%node, %chunk, "garbage chunk is referenced again; kept");
            spared("referenced");
            fates.push(Fate::Spared);
            continue;
        }
        let Some(client) = ctx.client(nodes, node) else {
            fates.push(Fate::Gone); // the node left the cluster with its chunks
            continue;
        };
        fates.push(
            match client.delete_unless_modified_after(chunk, d.since_ms).await {
                Ok(Deletion::Deleted) => {
                    deleted += 1;
                    tracing::debug!(%node, %chunk, "garbage chunk deleted");
                    Fate::Deleted
                }
                Ok(Deletion::Absent) => Fate::Gone,
                Ok(Deletion::WrittenSince) => {
                    tracing::info!(%node, %chunk, "garbage chunk was written again since; kept");
                    spared("written_since");
                    Fate::Spared
                }
                Err(err) => {
                    tracing::debug!(%node, %chunk, error = %err, "garbage chunk not deleted yet");
                    Fate::Retry
                }
            },
        );
    }
    if deleted > 0 {
        ctx.metrics.garbage_deleted.inc_by(deleted);
        ctx.store.add_garbage_deleted(deleted)?;
    }
    Ok(fates)
}

/// Deletes the chunks of queue entries whose grace period is over, and
/// acknowledges each entry once none of its chunks needs another try.
async fn collect_queued(ctx: &Context) -> Result<(), GcError> {
    let nodes = ctx.nodes().await?;
    let now = now_ms();
    for shard in ctx.meta.refresh_map().await?.shards {
        let entries = ctx.meta.garbage(shard.id, None, BATCH).await?;
        // Queued in order: the first young entry ends the due ones.
        let due: Vec<_> = entries
            .into_iter()
            .take_while(|e| now.saturating_sub(e.queued_ms) >= ctx.config.gc_grace_ms)
            .collect();
        if due.is_empty() {
            continue;
        }
        let mut doomed = Vec::new();
        let mut owner = Vec::new();
        for (i, entry) in due.iter().enumerate() {
            for chunk in entry
                .blob
                .chunks
                .iter()
                .filter(|c| c.state == ChunkState::Stored)
            {
                doomed.push(Doomed {
                    place: PlacedChunk {
                        node: chunk.node.clone(),
                        chunk: entry.blob.chunk_id(chunk.index),
                    },
                    since_ms: entry.queued_ms,
                });
                owner.push(i);
            }
        }
        let fates = delete_if_still_garbage(ctx, &nodes, &doomed).await?;
        let mut complete = vec![true; due.len()];
        for (fate, i) in fates.into_iter().zip(owner) {
            if fate == Fate::Retry {
                complete[i] = false;
            }
        }
        let done: Vec<u64> = due
            .iter()
            .zip(complete)
            .filter(|(_, complete)| *complete)
            .map(|(e, _)| e.id)
            .collect();
        if !done.is_empty() {
            tracing::info!(shard = %shard.id, entries = done.len(), "garbage entries collected");
            ctx.meta.ack_garbage(shard.id, done).await?;
        }
    }
    Ok(())
}

/// Every chunk some queue entry names (the queue deletes those itself).
async fn queued_chunks(ctx: &Context) -> Result<HashSet<PlacedChunk>, GcError> {
    let mut queued = HashSet::new();
    for shard in ctx.meta.refresh_map().await?.shards {
        let mut after = None;
        loop {
            let page = ctx.meta.garbage(shard.id, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for entry in &page {
                queued.extend(entry.blob.chunks.iter().map(|c| PlacedChunk {
                    node: c.node.clone(),
                    chunk: entry.blob.chunk_id(c.index),
                }));
            }
        }
    }
    Ok(queued)
}

/// Finds chunks on live nodes that nothing references, remembers when each
/// was first seen so, and deletes those seen so for the grace period.
async fn sweep_orphans(ctx: &Context) -> Result<(), GcError> {
    let nodes = ctx.nodes().await?;
    let queued = queued_chunks(ctx).await?;
    for node in nodes.iter().filter(|n| n.state == NodeState::Up) {
        let Some(client) = ctx.client(&nodes, &node.id) else {
            continue;
        };
        // The index before the listing: a chunk committed after this read
        // is merely seen unreferenced once, and checked again before any
        // deletion.
        let referenced: HashSet<ChunkId> = ctx
            .meta
            .chunks_on_node(&node.id)
            .await?
            .into_iter()
            .map(|c| ChunkId::new(c.blob, c.index))
            .collect();
        let seen_before = ctx.store.unreferenced_since(&node.id)?;
        let now = now_ms();
        let mut seen = HashMap::new();
        let mut doomed = Vec::new();
        let mut after = None;
        loop {
            let page = client.list(after.as_ref(), 1000).await?;
            ctx.metrics.gc_sweep_chunks.inc_by(page.chunks.len() as u64);
            for entry in &page.chunks {
                let place = PlacedChunk {
                    node: node.id.clone(),
                    chunk: entry.chunk,
                };
                if referenced.contains(&entry.chunk) || queued.contains(&place) {
                    continue;
                }
                // A file written after its first sighting is a new chunk.
                let since = match seen_before.get(&entry.chunk) {
                    Some(&since) if entry.modified_ms <= since => since,
                    _ => now,
                };
                seen.insert(entry.chunk, since);
                if now.saturating_sub(since) >= ctx.config.gc_grace_ms {
                    doomed.push(Doomed {
                        place,
                        since_ms: since,
                    });
                }
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let newly_seen = seen.keys().filter(|c| !seen_before.contains_key(c)).count();
        if newly_seen > 0 {
            tracing::info!(node = %node.id, newly_seen, "chunks found unreferenced; deleted after the grace period");
        }
        ctx.store.set_unreferenced(&node.id, &seen)?;
        for batch in doomed.chunks(DELETE_BATCH) {
            let fates = delete_if_still_garbage(ctx, &nodes, batch).await?;
            let deleted = fates.iter().filter(|f| **f == Fate::Deleted).count();
            if deleted > 0 {
                tracing::info!(node = %node.id, deleted, "unreferenced chunks deleted");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_sweep_waits_for_the_interval_and_a_slow_one_for_its_duty_cycle() {
        let start = Instant::now();
        let interval = Duration::from_millis(2500);
        // 10 ms of listing: the interval decides.
        assert_eq!(
            next_sweep_at(start, Duration::from_millis(10), interval),
            start + interval
        );
        // 1 s of listing on a large store: 19 s of rest after it, so the
        // sweep takes 5% of the time, not 40%.
        assert_eq!(
            next_sweep_at(start, Duration::from_secs(1), interval),
            start + Duration::from_secs(20)
        );
        // A production interval (10 min) is not shortened.
        let rare = Duration::from_secs(600);
        assert_eq!(
            next_sweep_at(start, Duration::from_secs(1), rare),
            start + rare
        );
    }
}
