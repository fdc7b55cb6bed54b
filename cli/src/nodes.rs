//! `cairn node drain|remove`: the operator's side of a node's lifecycle
//! (`NodeLifecycle`). The scrubber does the moving (docs/flows.md,
//! "Draining a node"); these commands start, stop, follow and finish it.

use std::time::Duration;

use anyhow::Context;
use cairn_core::ids::NodeId;
use cairn_meta_api::MetaClient;
use cairn_meta_api::model::{LifecycleChange, NodeLifecycle, NodeRecord};
use cairn_scrubber_api::ScrubberClient;

/// How often `--watch` looks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

async fn record(client: &MetaClient, node: &NodeId) -> anyhow::Result<NodeRecord> {
    client
        .nodes()
        .await?
        .into_iter()
        .find(|n| &n.id == node)
        .with_context(|| format!("no node {node} in the registry"))
}

/// Starts (or with `cancel`, stops) draining `node`; with `watch`, follows
/// it with a progress bar until it is retired.
pub(crate) async fn drain(
    client: &MetaClient,
    node: &NodeId,
    cancel: bool,
    watch: bool,
) -> anyhow::Result<()> {
    let change = if cancel {
        LifecycleChange::Cancel
    } else {
        LifecycleChange::Drain
    };
    client
        .change_lifecycle(node, &change)
        .await
        .with_context(|| {
            format!(
                "{} {node}",
                if cancel {
                    "cancel the drain of"
                } else {
                    "drain"
                }
            )
        })?;
    if cancel {
        println!(
            "{node}: drain cancelled; the node is active again (chunks already moved stay moved)"
        );
        return Ok(());
    }
    let start = client.chunks_on_node(node).await?.len() as u64;
    println!(
        "{node}: draining ({start} chunks to move; it keeps serving reads and gets no new chunks)"
    );
    if !watch {
        println!("follow it with `cairn node drain {node} --watch` or `cairn nodes`");
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(start.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {pos}/{len} chunks moved ({elapsed})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(node.to_string());
    loop {
        let current = record(client, node).await?;
        let left = client.chunks_on_node(node).await?.len() as u64;
        bar.set_position(start.saturating_sub(left));
        match current.lifecycle {
            NodeLifecycle::Retired => {
                bar.finish();
                println!("{node}: retired; remove it with `cairn node remove {node}`");
                return Ok(());
            }
            NodeLifecycle::Active => {
                bar.abandon();
                anyhow::bail!("{node}: the drain was cancelled");
            }
            NodeLifecycle::Draining => {}
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// Forgets a node: only once nothing in the catalogue references it (it
/// was drained, or it was lost and repaired elsewhere).
pub(crate) async fn remove(client: &MetaClient, node: &NodeId) -> anyhow::Result<()> {
    let current = record(client, node).await?;
    let left = client.chunks_on_node(node).await?.len();
    if left > 0 {
        anyhow::bail!(
            "{node} still holds {left} chunks that are not rebuilt elsewhere: drain it first (`cairn node drain {node} --watch`){}",
            if current.lifecycle == NodeLifecycle::Draining {
                " — it is draining now"
            } else {
                ""
            }
        );
    }
    client
        .change_lifecycle(node, &LifecycleChange::Remove)
        .await
        .with_context(|| format!("remove {node}"))?;
    println!(
        "{node} removed from the registry; stop its process if it still runs (a heartbeat would register it again)"
    );
    Ok(())
}

/// `cairn rebalance`: plan and queue (default), follow, cancel or show.
pub(crate) async fn rebalance(
    scrubber: &ScrubberClient,
    watch: bool,
    cancel: bool,
    status: bool,
    json: bool,
) -> anyhow::Result<()> {
    if cancel {
        let left = scrubber.cancel_rebalance().await?;
        println!(
            "rebalance cancelled ({} moves still queued: those in progress)",
            left.queued
        );
        return Ok(());
    }
    if status {
        let now = scrubber.rebalance_status().await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&now)?);
        } else {
            println!("{} rebalance moves queued", now.queued);
        }
        return Ok(());
    }
    let plan = scrubber.rebalance().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else if plan.moves == 0 {
        println!(
            "balanced: every active node is within its share of the mean use ({:.2}%)",
            plan.mean_use * 100.0
        );
    } else {
        println!(
            "{} chunks ({}) queued to move; mean use {:.2}%",
            plan.moves,
            crate::table::bytes(plan.bytes),
            plan.mean_use * 100.0
        );
        for (node, bytes) in &plan.from {
            println!("  from {node}: {}", crate::table::bytes(*bytes));
        }
    }
    if !watch || plan.moves == 0 {
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(plan.moves);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} rebalance [{bar:40}] {pos}/{len} moves ({elapsed})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    loop {
        let now = scrubber.rebalance_status().await?;
        bar.set_position(plan.moves.saturating_sub(now.queued));
        if now.queued == 0 {
            bar.finish();
            println!("rebalance done (moved chunks' old copies are collected after the GC grace)");
            return Ok(());
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}
