//! `cairn rebalance`: evens out use across the active nodes (after nodes
//! were added, typically) by moving chunks from nodes above their share to
//! nodes below it.
//!
//! A node's share is its capacity × the cluster's mean use (bytes used ÷
//! bytes offered over the active, up nodes). The plan is made once, from the
//! registry's usage at that moment: for every node more than a tolerance
//! above its share, chunks of committed objects are queued (reason
//! `Rebalance`) until their bytes cover the excess. The repair worker moves
//! each (a copy from its node, see `repair`), at the repair rate and behind every real
//! repair (rebalance tasks have all their chunks healthy, and the queue
//! serves fewest survivors first); for a rebalance it only considers
//! targets below the mean use, and keeps the rack rule. A moved chunk's old
//! copy is garbage until the grace period passes, so a node's reported use
//! falls only then: plan again after that, not in a loop.

use cairn_core::ids::NodeId;
use cairn_core::manifest::ChunkState;
use cairn_core::placement::NodeState;
use cairn_meta_api::model::{NodeLifecycle, NodeRecord};

use crate::context::Context;
use crate::model::{RebalancePlan, RepairReason};
use crate::owners::{self, Owners};

/// A node within this much of its share is left alone: moving a chunk or
/// two buys nothing and costs a chunk read and write each.
const MIN_TOLERANCE_BYTES: f64 = 4.0 * 1024.0 * 1024.0;
const TOLERANCE_SHARE: f64 = 0.02;

/// The nodes a rebalance spreads over: up and active.
pub fn active(nodes: &[NodeRecord]) -> impl Iterator<Item = &NodeRecord> {
    nodes
        .iter()
        .filter(|n| n.state == NodeState::Up && n.lifecycle == NodeLifecycle::Active)
}

/// Bytes used ÷ bytes offered over the active nodes (`None`: nothing offered).
pub fn mean_use(nodes: &[NodeRecord]) -> Option<f64> {
    let (used, offered) = active(nodes).fold((0u128, 0u128), |(u, c), n| {
        (u + n.used_bytes as u128, c + n.capacity_bytes as u128)
    });
    (offered > 0).then(|| used as f64 / offered as f64)
}

/// Whether `node` is below the mean use: a target for a rebalance move.
pub fn below_mean(node: &NodeRecord, mean: f64) -> bool {
    (node.used_bytes as f64) < node.capacity_bytes as f64 * mean
}

pub async fn plan_and_queue(
    ctx: &Context,
) -> Result<RebalancePlan, Box<dyn std::error::Error + Send + Sync>> {
    let nodes = ctx.meta.nodes().await?;
    let Some(mean) = mean_use(&nodes) else {
        return Ok(RebalancePlan::default());
    };
    let mut plan = RebalancePlan {
        mean_use: mean,
        ..RebalancePlan::default()
    };
    if active(&nodes).count() < 2 {
        return Ok(plan);
    }
    let over: Vec<(NodeId, f64)> = active(&nodes)
        .filter_map(|n| {
            let share = n.capacity_bytes as f64 * mean;
            let excess = n.used_bytes as f64 - share;
            (excess > MIN_TOLERANCE_BYTES.max(share * TOLERANCE_SHARE))
                .then(|| (n.id.clone(), excess))
        })
        .collect();
    for (node, excess) in over {
        let (moves, bytes) = queue_excess(ctx, &node, excess).await?;
        if moves > 0 {
            plan.moves += moves;
            plan.bytes += bytes;
            plan.from.insert(node.to_string(), bytes);
        }
    }
    tracing::info!(
        moves = plan.moves,
        bytes = plan.bytes,
        mean_use = mean,
        "rebalance planned"
    );
    Ok(plan)
}

/// Queues chunks of `node` until their bytes cover `excess`.
async fn queue_excess(
    ctx: &Context,
    node: &NodeId,
    excess: f64,
) -> Result<(u64, u64), Box<dyn std::error::Error + Send + Sync>> {
    let mut owners = Owners::default();
    let (mut moves, mut bytes) = (0u64, 0u64);
    for chunk in ctx.meta.chunks_on_node(node).await? {
        if bytes as f64 >= excess {
            break;
        }
        // Parts of unfinished uploads stay where they are.
        let Some((id, part)) = owners.part_of(ctx, &chunk).await? else {
            continue;
        };
        // Only a blob whose chunks are all healthy is moved: anything else
        // is repair's to do first.
        if part.chunks.iter().any(|c| c.state != ChunkState::Stored) {
            continue;
        }
        let task = owners::task(
            id,
            &chunk,
            node,
            RepairReason::Rebalance,
            part.chunks.len() as u8,
        );
        if ctx.store.enqueue(&task, ctx.config.repair_queue_limit)? {
            moves += 1;
            bytes += part.layout().chunk_len();
        }
    }
    Ok((moves, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ids::RackId;

    fn node(id: &str, used: u64, capacity: u64, lifecycle: NodeLifecycle) -> NodeRecord {
        NodeRecord {
            id: NodeId::new(id).expect("id"),
            rack: RackId::new("r1").expect("rack"),
            address: String::new(),
            capacity_bytes: capacity,
            used_bytes: used,
            free_bytes: capacity.saturating_sub(used),
            chunk_count: 0,
            state: NodeState::Up,
            last_heartbeat_ms: 0,
            state_since_ms: 0,
            lifecycle,
            local: None,
        }
    }

    #[test]
    fn the_mean_counts_only_active_nodes_and_weighs_capacity() {
        let nodes = [
            node("a", 60, 100, NodeLifecycle::Active),
            node("b", 0, 100, NodeLifecycle::Active),
            node("c", 90, 100, NodeLifecycle::Draining),
            node("d", 30, 200, NodeLifecycle::Active),
        ];
        let mean = mean_use(&nodes).expect("mean");
        assert!((mean - 90.0 / 400.0).abs() < 1e-9, "{mean}");
        assert!(!below_mean(&nodes[0], mean));
        assert!(below_mean(&nodes[1], mean));
        // 30 of 200 is below 22.5%: a bigger node takes more before it is full.
        assert!(below_mean(&nodes[3], mean));
        assert_eq!(mean_use(&[node("x", 1, 0, NodeLifecycle::Active)]), None);
    }
}
