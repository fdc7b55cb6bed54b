//! Adding and removing metadata replicas online.
//!
//! A new replica of a group is always seeded by a snapshot, never by
//! replaying the log from its start: a shard created by a split starts with
//! rows its log does not contain (they came from the parent), so only a
//! snapshot reproduces its state. The group's leader therefore builds a
//! snapshot and purges the log up to it before it adds the learner, then
//! makes it a voter through joint consensus (openraft's
//! `change_membership`).
//!
//! The cluster leader runs the whole change group by group (the cluster
//! group first), then commits the new map. Splits and replica changes are
//! serialised on the cluster leader, so a change never misses a shard that
//! a concurrent split creates.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use cairn_meta_api::MetaClient;
use cairn_meta_api::model::{GroupDigest, ReplicaChange};
use cairn_meta_api::shard_map::{GroupId, ShardMap};
use cairn_service::{ApiError, ErrorCode, Timeouts};
use openraft::BasicNode;

use super::Shared;
use crate::raft::state_machine::Machine;
use crate::raft::{Proposal, Reply};

/// How long one group may take to seed a new replica.
const SEED_DEADLINE: Duration = Duration::from_secs(120);

fn unavailable(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NoQuorum,
        message.to_string(),
    )
}

/// Polls `check` every 50 ms until it holds or `deadline` passes.
async fn wait_until(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), ApiError> {
    let until = tokio::time::Instant::now() + deadline;
    while !check() {
        if tokio::time::Instant::now() >= until {
            return Err(unavailable(format!("{what}: not done within {deadline:?}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

impl Shared {
    /// On a group's leader: applies `change` to the group's voters.
    pub(super) async fn change_group_replicas(
        self: &Arc<Self>,
        id: GroupId,
        change: &ReplicaChange,
    ) -> Result<(), ApiError> {
        let group = self.hosted(id)?;
        if !group.is_leader() {
            return Err(group.not_leader_here());
        }
        let metrics = || group.raft.metrics().borrow().clone();
        let voters: BTreeSet<u64> = metrics()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        let next: BTreeSet<u64> = match change {
            ReplicaChange::Add {
                id: replica, url, ..
            } => {
                if voters.contains(replica) {
                    return Ok(());
                }
                // Seed by snapshot: snapshot everything applied, then purge
                // the log up to it, so the learner cannot be sent the log
                // from its start.
                let target = metrics().last_applied.map_or(0, |l| l.index);
                group
                    .raft
                    .trigger()
                    .snapshot()
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                wait_until("build a snapshot", SEED_DEADLINE, || {
                    metrics().snapshot.is_some_and(|s| s.index >= target)
                })
                .await?;
                let upto = metrics().snapshot.map_or(0, |s| s.index);
                group
                    .raft
                    .trigger()
                    .purge_log(upto)
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                wait_until("purge the log up to the snapshot", SEED_DEADLINE, || {
                    metrics().purged.is_some_and(|p| p.index >= upto)
                })
                .await?;
                let adding = group.raft.add_learner(*replica, BasicNode::new(url), true);
                match tokio::time::timeout(SEED_DEADLINE, adding).await {
                    Err(_) => {
                        return Err(unavailable(format!(
                            "{id}: the new replica did not catch up"
                        )));
                    }
                    Ok(Err(err)) => return Err(unavailable(format!("{id}: add learner: {err}"))),
                    Ok(Ok(_)) => {}
                }
                let mut next = voters.clone();
                next.insert(*replica);
                next
            }
            ReplicaChange::Remove { id: replica } => {
                if !voters.contains(replica) {
                    return Ok(());
                }
                let mut next = voters.clone();
                next.remove(replica);
                if next.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "{id}: cannot remove its last replica"
                    )));
                }
                next
            }
        };
        match tokio::time::timeout(
            SEED_DEADLINE,
            group.raft.change_membership(next.clone(), false),
        )
        .await
        {
            Err(_) => Err(unavailable(format!(
                "{id}: membership change not committed"
            ))),
            Ok(Err(err)) => Err(unavailable(format!("{id}: change membership: {err}"))),
            Ok(Ok(_)) => {
                tracing::info!(group = %id, voters = ?next, "group membership changed");
                Ok(())
            }
        }
    }

    /// On the cluster leader: applies `change` to every group (the cluster
    /// group first), then commits the new map.
    pub(super) async fn change_replicas(
        self: &Arc<Self>,
        change: &ReplicaChange,
    ) -> Result<ShardMap, ApiError> {
        let _serial = self.reshaping.lock().await;
        let (cluster_group, state) = self.cluster_leader()?;
        let map = state
            .shard_map()?
            .ok_or_else(|| ApiError::internal("the cluster has no shard map yet"))?;
        let urls: Vec<String> = map.replicas.values().cloned().collect();
        let client = MetaClient::unconnected_with(
            &urls.join(","),
            &self.secret,
            Timeouts {
                connect: Duration::from_secs(2),
                request: SEED_DEADLINE * 2,
                progress: SEED_DEADLINE * 2,
            },
        );
        client
            .refresh_map()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let groups = match change {
            ReplicaChange::Add { id, .. } => map.groups_short_of_replicas(*id),
            ReplicaChange::Remove { id } => map.groups_of(*id),
        };
        for group in &groups {
            if let ReplicaChange::Add { url, .. } = change {
                client
                    .create_group_on(url, *group)
                    .await
                    .map_err(|e| unavailable(format!("create {group} on {url}: {e}")))?;
            }
            client
                .change_group_replicas(*group, change)
                .await
                .map_err(|e| unavailable(format!("{group}: {e}")))?;
        }
        let next = match change {
            ReplicaChange::Add { id, url, rack } => {
                map.with_replica_added(*id, url, rack.as_deref(), &groups)
            }
            ReplicaChange::Remove { id } => map.with_replica_removed(*id),
        };
        // The cluster group may have a new leader if this one was removed.
        let committed = if cluster_group.is_leader() {
            cluster_group
                .write(Proposal::PublishMap { map: next.clone() })
                .await?
        } else {
            return Err(unavailable(
                "the cluster group's leader changed during the change; run it again",
            ));
        };
        match committed {
            Reply::Map { map } => {
                tracing::info!(?change, version = map.version, "metadata replicas changed");
                Ok(map)
            }
            other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
        }
    }

    /// Creates an empty replica of a group here, for a replica being
    /// added. Refused on a replica that already has the group.
    pub(super) async fn create_group(self: &Arc<Self>, id: GroupId) -> Result<(), ApiError> {
        if self.group(id).is_some() {
            return Ok(());
        }
        let dir = self.groups_dir().join(id.to_string());
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        self.open_group(id)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(())
    }

    /// This replica's digest of a group's state.
    pub(super) async fn digest(&self, id: GroupId) -> Result<GroupDigest, ApiError> {
        let group = self.hosted(id)?;
        let db = match &group.state {
            crate::raft::group::Replicated::Shard(shard) => shard.db().clone(),
            crate::raft::group::Replicated::Cluster(state) => state.db().clone(),
        };
        let (applied_index, digest, rows) = cairn_service::server::blocking(move || {
            crate::raft::state_machine::digest(&db).map_err(ApiError::internal)
        })
        .await?;
        Ok(GroupDigest {
            group: id.to_string(),
            applied_index,
            digest,
            rows,
        })
    }
}
