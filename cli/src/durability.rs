//! `cairn durability`: what the current topology gives the data stored in
//! it, by the brief's model (`cairn_core::durability`): erasure-coded blobs
//! as placement lays them out on the registered nodes, and inline objects
//! as copies on their shard's metadata replicas.

use cairn_core::codec::{CodecParams, StorageClass};
use cairn_core::durability::{ClassReport, FailureModel, racks_tolerated, stripe_loss_probability};
use cairn_core::ids::BlobId;
use cairn_core::placement::NodeState;
use cairn_meta_api::MetaClient;
use cairn_meta_api::shard_map::GroupId;

/// The storage classes a gateway uses, by size, and the bucket classes
/// asked about (`--class`).
#[derive(Debug, Clone)]
pub(crate) struct Classes {
    pub k: usize,
    pub m: usize,
    pub inline_max: u64,
    /// Upper size and number of copies of replicated blobs.
    pub replicated: Option<(u64, usize)>,
    /// Reported instead of the gateway's k+m when given.
    pub asked: Vec<StorageClass>,
}

/// A code's report on `candidates`, or `None` (said on stderr) when the
/// topology has no rack-safe placement for it.
fn coded(
    name: String,
    candidates: &[cairn_core::placement::NodeCandidate],
    params: &CodecParams,
    model: FailureModel,
) -> Option<ClassReport> {
    match ClassReport::for_code(name.clone(), &BlobId::random(), candidates, params, model) {
        Ok(report) => Some(report),
        Err(err) => {
            eprintln!("{name}: no rack-safe placement on this topology: {err}");
            None
        }
    }
}

pub(crate) async fn report(
    client: &MetaClient,
    classes: &Classes,
    model: FailureModel,
    json: bool,
) -> anyhow::Result<()> {
    let nodes = client.nodes().await?;
    let mut candidates: Vec<_> = nodes.iter().map(|n| n.candidate()).collect();
    // The layout a healthy cluster gives: every registered node as if up.
    for candidate in &mut candidates {
        candidate.state = NodeState::Up;
        candidate.free = candidate.free.max(1);
    }
    let (k, m, inline_max) = (classes.k, classes.m, classes.inline_max);
    let mut reports = Vec::new();
    let above = match classes.replicated {
        Some((replicated_max, copies)) => {
            reports.extend(coded(
                format!("{copies} copies ({inline_max} B < size <= {replicated_max} B)"),
                &candidates,
                &CodecParams::new(1, copies - 1, 1)?,
                model,
            ));
            replicated_max
        }
        None => inline_max,
    };
    if classes.asked.is_empty() {
        reports.extend(coded(
            format!("RS({k},{m}) chunks (size > {above} B)"),
            &candidates,
            &CodecParams::new(k, m, 1)?,
            model,
        ));
    }
    for class in &classes.asked {
        reports.extend(coded(
            format!("{class} chunks (size > {above} B)"),
            &candidates,
            &class.codec(1)?,
            model,
        ));
    }
    // Inline objects: one copy per replica of their shard; the weakest
    // shard speaks for all.
    let map = client.shard_map();
    let weakest = map
        .shards
        .iter()
        .map(|shard| {
            let replicas = map.group_replicas(GroupId::Shard(shard.id));
            let racks: std::collections::BTreeSet<String> = replicas
                .iter()
                .map(|r| {
                    map.racks
                        .get(r)
                        .cloned()
                        .unwrap_or_else(|| format!("replica-{r}"))
                })
                .collect();
            (replicas.len(), racks.len())
        })
        .min();
    if let Some((copies, racks)) = weakest
        && copies > 0
    {
        // Copies in distinct racks fail independently; copies sharing a
        // rack are modelled as one rack holding several.
        let mut per_rack = vec![copies / racks.max(1); racks.max(1)];
        for extra in per_rack.iter_mut().take(copies % racks.max(1)) {
            *extra += 1;
        }
        let majority_loss = copies.saturating_sub(1) / 2;
        reports.push(ClassReport {
            name: format!("inline (size <= {inline_max} B) in the catalogue"),
            // Base64 in JSON rows on each replica.
            overhead: copies as f64 * 4.0 / 3.0,
            pieces: copies,
            racks,
            losses_readable: majority_loss,
            losses_kept: copies - 1,
            racks_readable: racks_tolerated(&per_rack, majority_loss),
            p_unreadable: stripe_loss_probability(&per_rack, majority_loss, model),
            p_lost: stripe_loss_probability(&per_rack, copies - 1, model),
            repair_reads: None,
            cross_rack_share: None,
        });
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": {"q_node": model.q_node, "q_rack": model.q_rack},
                "classes": reports,
            }))?
        );
        return Ok(());
    }
    println!(
        "model: a node fails with q_node = {}, a rack with q_rack = {} (independently, over one repair window)",
        model.q_node, model.q_rack
    );
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                format!("{:.2}x", c.overhead),
                format!("{} in {} racks", c.pieces, c.racks),
                format!("{} ({} racks)", c.losses_readable, c.racks_readable),
                c.losses_kept.to_string(),
                format!("{:.1e}", c.p_unreadable),
                format!("{:.1e}", c.p_lost),
                c.repair_reads.map_or("-".into(), |r| format!("{r:.2}")),
                c.cross_rack_share
                    .map_or("-".into(), |s| format!("{:.0}%", s * 100.0)),
            ]
        })
        .collect();
    println!(
        "{}",
        crate::table::render(
            &[
                "STORED AS",
                "OVERHEAD",
                "PIECES",
                "LOSSES READABLE",
                "LOSSES KEPT",
                "P(UNREADABLE)",
                "P(LOST)",
                "REPAIR READS",
                "CROSS-RACK",
            ],
            &rows
        )
    );
    Ok(())
}
