//! Node loss: a node `down` for longer than `repair_after` has every chunk
//! it held (the catalogue's reverse index) queued for repair, most
//! endangered blobs first. A node back before that costs nothing; one back
//! after finds its chunks moved, and garbage collection deletes them.
//!
//! Drains: a node the operator drains (`cairn node drain`) has every chunk
//! it holds queued the same way (reason `Drain`), at the repair rate; each
//! is copied to an active node (rebuilt from k others if its node cannot
//! serve it) and the catalogue moved to it, while the
//! draining node keeps serving reads. Once nothing in the catalogue
//! references the node, it is retired; garbage collection empties it.

use cairn_service::tasks::{CancellationToken, pause};
use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_core::ids::NodeId;
use cairn_core::manifest::{ChunkState, UNPLACED_NODE};
use cairn_core::placement::NodeState;
use cairn_meta_api::model::{LifecycleChange, NodeLifecycle};

use crate::context::{Context, now_ms};
use crate::model::RepairReason;
use crate::owners::{self, Owners};

/// Polls between looks at chunks written without a node, and at draining
/// nodes (each look reads every chunk reference of the node).
const UNPLACED_EVERY: u32 = 4;

/// Watches the registry forever, and picks up chunks that degraded PUTs
/// could not place (recorded on [`UNPLACED_NODE`]).
pub async fn watch_nodes(ctx: Arc<Context>, token: CancellationToken) {
    let unplaced = NodeId::new(UNPLACED_NODE).expect("a valid node id");
    let mut round = 0u32;
    loop {
        // Queueing is idempotent (the queue dedupes), so a round may be cut.
        let work = async {
            if let Err(err) = check_nodes(&ctx).await {
                tracing::warn!(error = %err, "node-loss check failed; retrying");
            }
            if round.is_multiple_of(UNPLACED_EVERY) {
                match queue_node(&ctx, &unplaced, &BTreeSet::new(), RepairReason::Missing).await {
                    Ok(Queued { queued: 0, .. }) => {}
                    Ok(Queued { queued, .. }) => {
                        tracing::info!(queued, "chunks of degraded writes queued for repair")
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot read unplaced chunks"),
                }
                if let Err(err) = drain_nodes(&ctx).await {
                    tracing::warn!(error = %err, "drain check failed; retrying");
                }
            }
        };
        if token.run_until_cancelled(work).await.is_none() {
            return;
        }
        round = round.wrapping_add(1);
        if !pause(&token, ctx.config.poll_interval()).await {
            return;
        }
    }
}

async fn check_nodes(ctx: &Context) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nodes = ctx.meta.nodes().await?;
    let now = now_ms();
    let down: BTreeSet<NodeId> = nodes
        .iter()
        .filter(|n| n.state == NodeState::Down)
        .map(|n| n.id.clone())
        .collect();
    for node in &nodes {
        let handled = ctx.store.lost_since(&node.id)?;
        match (node.state, handled) {
            (NodeState::Down, None)
                if now.saturating_sub(node.state_since_ms) >= ctx.config.repair_after_ms =>
            {
                let Queued { queued, .. } =
                    queue_node(ctx, &node.id, &down, RepairReason::NodeLost).await?;
                ctx.store.set_lost(&node.id, Some(now))?;
                tracing::warn!(node = %node.id, down_for_ms = now - node.state_since_ms, queued, "node lost: its chunks are queued for repair");
            }
            (NodeState::Up, Some(_)) => {
                ctx.store.set_lost(&node.id, None)?;
                tracing::info!(node = %node.id, "lost node is back; its moved chunks are garbage");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Queues the chunks of draining nodes; retires a draining node that
/// nothing references any more.
async fn drain_nodes(ctx: &Context) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nodes = ctx.meta.nodes().await?;
    let down: BTreeSet<NodeId> = nodes
        .iter()
        .filter(|n| n.state == NodeState::Down)
        .map(|n| n.id.clone())
        .collect();
    for node in nodes
        .iter()
        .filter(|n| n.lifecycle == NodeLifecycle::Draining)
    {
        let Queued { queued, referenced } =
            queue_node(ctx, &node.id, &down, RepairReason::Drain).await?;
        if referenced == 0 {
            ctx.meta
                .change_lifecycle(&node.id, &LifecycleChange::Retire)
                .await?;
            tracing::info!(node = %node.id, "drained: nothing references the node; retired");
        } else if queued > 0 {
            tracing::info!(node = %node.id, queued, referenced, "draining: chunks queued to move");
        }
    }
    Ok(())
}

/// What [`queue_node`] found: chunks newly queued, and chunks the catalogue
/// still places on the node (parts of unfinished uploads included).
struct Queued {
    queued: u64,
    referenced: u64,
}

/// Queues every chunk the catalogue places on `node`.
async fn queue_node(
    ctx: &Context,
    node: &NodeId,
    down: &BTreeSet<NodeId>,
    reason: RepairReason,
) -> Result<Queued, Box<dyn std::error::Error + Send + Sync>> {
    let chunks = ctx.meta.chunks_on_node(node).await?;
    let referenced = chunks.len() as u64;
    let mut owners = Owners::default();
    let mut queued = 0;
    for chunk in chunks {
        // Every version is repaired, not only the current one.
        let Some((id, part)) = owners.part_of(ctx, &chunk).await? else {
            continue;
        };
        let surviving = part
            .chunks
            .iter()
            .filter(|c| c.state == ChunkState::Stored && !down.contains(&c.node))
            .count() as u8;
        let task = owners::task(id, &chunk, node, reason.clone(), surviving);
        if ctx.store.enqueue(&task, ctx.config.repair_queue_limit)? {
            queued += 1;
        }
    }
    Ok(Queued { queued, referenced })
}
