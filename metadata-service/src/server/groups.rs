//! The groups this process hosts: opened at start from the data directory
//! (the initial groups are created there on first start), created by
//! splits, and opened on first contact from another replica; plus the split
//! orchestration.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use cairn_core::ids::BlobId;
use cairn_meta_api::MetaClient;
use cairn_meta_api::model::Command;
use cairn_meta_api::shard_map::{GroupId, ShardId, ShardMap, prefix_successor};
use cairn_service::{ApiError, ErrorCode, now_ms};
use openraft::BasicNode;

use super::{Shared, StartError};
use crate::cluster::ClusterState;
use crate::raft::group::Replicated;
use crate::raft::{Group, Proposal, Reply};
use crate::shard::{KeyRange, Shard};

impl Shared {
    pub(super) fn groups_dir(&self) -> PathBuf {
        self.options.data_dir.join("groups")
    }

    fn group_dir(&self, id: GroupId) -> PathBuf {
        self.groups_dir().join(id.to_string())
    }

    /// Opens every group in the data directory. On first start it creates
    /// the initial groups this replica is placed in; those whose first
    /// replica it is are initialised once it serves
    /// ([`Self::initialise_new_groups`]: each group's first leader, so
    /// leaders start spread over the processes).
    pub(super) async fn open_all(self: &Arc<Self>) -> Result<(), StartError> {
        let dir = self.groups_dir();
        let io = |source| StartError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut found: Vec<GroupId> = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            // `<child>.split` is a split interrupted before its rename.
            if let Some(id) = name.to_str().and_then(|n| n.parse::<GroupId>().ok()) {
                found.push(id);
            }
        }
        let initial = &self.initial;
        let me = self.options.replica_id;
        let first_start = found.is_empty() && !self.options.join;
        if first_start {
            found.extend(
                std::iter::once(GroupId::Cluster)
                    .chain(initial.shards.iter().map(|s| GroupId::Shard(s.id)))
                    .filter(|g| initial.group_replicas(*g).contains(&me)),
            );
        }
        for id in &found {
            self.open_group(*id).await?;
        }
        Ok(())
    }

    /// Initialises the groups of the initial map whose first replica this
    /// is and that nobody has initialised yet. Runs once the server
    /// serves: it asks the other replicas first, and they ask it.
    pub(super) async fn initialise_new_groups(self: &Arc<Self>) {
        self.warn_if_config_disagrees();
        if self.options.join {
            return;
        }
        let initial = &self.initial;
        let me = self.options.replica_id;
        let groups: Vec<Arc<Group>> = self.all_groups();
        let mut mine = Vec::new();
        for group in groups {
            if initial.group_replicas(group.id).first() == Some(&me)
                && !group.raft.is_initialized().await.unwrap_or(true)
            {
                mine.push(group.id);
            }
        }
        if mine.is_empty() {
            return;
        }
        let elsewhere = self.initialised_elsewhere(initial).await;
        for id in mine {
            let group = self.group(id).expect("opened above");
            if group.raft.is_initialized().await.unwrap_or(true) {
                continue;
            }
            // Another replica has the group already: this one lost its disk
            // (or was never part of it). It waits to be caught up instead
            // of starting the group afresh.
            if elsewhere.contains(&id) {
                tracing::warn!(group = %id, "another replica already has this group; waiting to be caught up instead of initialising it");
                continue;
            }
            let members: std::collections::BTreeMap<u64, BasicNode> = initial
                .group_replicas(id)
                .iter()
                .filter_map(|r| initial.url(*r).map(|url| (*r, BasicNode::new(url))))
                .collect();
            tracing::info!(group = %id, ?members, "initialising a new group");
            if let Err(err) = group.raft.initialize(members).await {
                tracing::warn!(group = %id, %err, "initialise");
            }
        }
    }

    /// The config's replica list is read on first start only; afterwards
    /// the committed map rules (changed with `cairn meta add-replica` /
    /// `remove-replica`). A config that disagrees with it is named, not
    /// silently ignored.
    fn warn_if_config_disagrees(&self) {
        let Ok(state) = self.cluster_state() else {
            return;
        };
        if let Ok(Some(map)) = state.shard_map()
            && map.replicas != self.options.replicas
        {
            tracing::warn!(
                config = ?self.options.replicas,
                cluster = ?map.replicas,
                "the config's [[replicas]] differ from the cluster's map; the map rules \
                 (change it with `cairn meta add-replica` / `remove-replica`)"
            );
        }
    }

    /// The groups some other reachable replica already has initialised
    /// (asked before initialising, so that a replica restarted on an empty
    /// disk does not start its groups afresh next to the running ones).
    async fn initialised_elsewhere(&self, map: &ShardMap) -> std::collections::BTreeSet<GroupId> {
        let mut found = std::collections::BTreeSet::new();
        for (id, url) in &map.replicas {
            if *id == self.options.replica_id {
                continue;
            }
            let client = cairn_meta_api::MetaClient::unconnected_with(
                url,
                &self.secret,
                cairn_service::Timeouts {
                    connect: std::time::Duration::from_secs(1),
                    request: std::time::Duration::from_secs(2),
                    progress: std::time::Duration::from_secs(2),
                },
            );
            if let Ok(status) = client.status(url).await {
                found.extend(
                    status
                        .groups
                        .iter()
                        .filter(|g| !g.voters.is_empty())
                        .filter_map(|g| g.group.parse::<GroupId>().ok()),
                );
            }
        }
        found
    }

    /// Opens one group's database and starts its Raft replica (no-op when
    /// it is open already).
    pub(super) async fn open_group(
        self: &Arc<Self>,
        id: GroupId,
    ) -> Result<Arc<Group>, StartError> {
        let _opening = self.opening.lock().await;
        if let Some(group) = self.group(id) {
            return Ok(group);
        }
        let path = self.group_dir(id);
        let group = match id {
            GroupId::Cluster => {
                let db = tokio::task::spawn_blocking(move || crate::raft::open_db(&path))
                    .await
                    .map_err(|e| crate::shard::CatalogError::Corrupt(e.to_string()))?
                    .map_err(crate::shard::CatalogError::from)?;
                let state = Arc::new(ClusterState::replica(db));
                Group::start(
                    id,
                    self.options.replica_id,
                    state.clone(),
                    Replicated::Cluster(state),
                    self.raft_http.clone(),
                )
                .await?
            }
            GroupId::Shard(shard_id) => {
                let shard = tokio::task::spawn_blocking(move || {
                    let db = crate::raft::open_db(&path)?;
                    Shard::replica(shard_id, &path, db)
                })
                .await
                .map_err(|e| crate::shard::CatalogError::Corrupt(e.to_string()))??;
                let shard = Arc::new(shard);
                Group::start(
                    id,
                    self.options.replica_id,
                    shard.clone(),
                    Replicated::Shard(shard),
                    self.raft_http.clone(),
                )
                .await?
            }
        };
        let group = Arc::new(group);
        self.groups
            .write()
            .expect("groups")
            .insert(id, group.clone());
        tracing::info!(group = %id, "group open");
        Ok(group)
    }

    pub(super) fn group(&self, id: GroupId) -> Option<Arc<Group>> {
        self.groups.read().expect("groups").get(&id).cloned()
    }

    /// Every group open here.
    pub(super) fn all_groups(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .expect("groups")
            .values()
            .cloned()
            .collect()
    }

    /// A group this process has a replica of (`not_found` otherwise).
    pub(super) fn hosted(&self, id: GroupId) -> Result<Arc<Group>, ApiError> {
        self.group(id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("{id} has no replica here"),
            )
        })
    }

    /// The group a Raft RPC is for: open, or opened now if its directory
    /// exists (a split created it, or the process restarted). A group with
    /// no directory here is not this replica's.
    pub(super) async fn group_for_rpc(
        self: &Arc<Self>,
        id: GroupId,
    ) -> Result<Arc<Group>, ApiError> {
        if let Some(group) = self.group(id) {
            return Ok(group);
        }
        if !self.group_dir(id).exists() {
            return self.hosted(id);
        }
        self.open_group(id)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// A shard group hosted here (`wrong_shard` otherwise: the client's map
    /// is stale).
    pub(super) fn shard_group(&self, id: ShardId) -> Result<(Arc<Group>, Arc<Shard>), ApiError> {
        let group = self
            .group(GroupId::Shard(id))
            .ok_or_else(|| super::http::wrong_shard(format!("{id} is not hosted here")))?;
        match &group.state {
            // A new shard whose first entry is not applied yet owns no
            // range: the client is told to look again (as during an
            // election), not that its map is wrong.
            Replicated::Shard(shard) if shard.range() == KeyRange::nothing() => {
                Err(group.not_leader_here())
            }
            Replicated::Shard(shard) => {
                let shard = shard.clone();
                Ok((group, shard))
            }
            Replicated::Cluster(_) => unreachable!("shard ids name shard groups"),
        }
    }

    /// The cluster group, when this replica leads it.
    pub(super) fn cluster_leader(&self) -> Result<(Arc<Group>, Arc<ClusterState>), ApiError> {
        let group = self
            .group(GroupId::Cluster)
            .ok_or_else(not_a_cluster_replica)?;
        if !group.is_leader() {
            return Err(group.not_leader_here());
        }
        match &group.state {
            Replicated::Cluster(state) => {
                let state = state.clone();
                Ok((group, state))
            }
            Replicated::Shard(_) => unreachable!("the cluster id names the cluster group"),
        }
    }

    /// The cluster state as this replica has applied it.
    pub(super) fn cluster_state(&self) -> Result<Arc<ClusterState>, ApiError> {
        match self.group(GroupId::Cluster).map(|g| g.state.clone()) {
            Some(Replicated::Cluster(state)) => Ok(state),
            _ => Err(not_a_cluster_replica()),
        }
    }

    /// Proposes the first entry of every group this replica leads whose
    /// state has none yet: the initial map, or an initial shard's range.
    pub(super) async fn initialise_led_groups(&self) {
        let groups: Vec<Arc<Group>> = self.all_groups();
        for group in groups {
            if !group.is_leader() {
                continue;
            }
            let proposal = match &group.state {
                Replicated::Cluster(state) => match state.has_map() {
                    Ok(false) => Some(Proposal::InitCluster {
                        map: self.initial.clone(),
                    }),
                    _ => None,
                },
                Replicated::Shard(shard) => {
                    let initial = self.initial.shard(shard.id()).cloned();
                    match initial {
                        Some(range) if shard.range() == KeyRange::nothing() => {
                            Some(Proposal::InitShard {
                                start: range.start,
                                end: range.end,
                            })
                        }
                        _ => None,
                    }
                }
            };
            if let Some(proposal) = proposal
                && let Err(err) = group.write(proposal).await
            {
                tracing::warn!(group = %group.id, error = %err.body.message, "initial entry not committed yet");
            }
        }
    }

    /// Commits a catalogue command on a shard this replica leads.
    pub(super) async fn commit(
        &self,
        id: ShardId,
        request_id: String,
        command: Command,
    ) -> Result<Reply, ApiError> {
        let (group, _) = self.shard_group(id)?;
        group
            .write(Proposal::Catalogue {
                request_id,
                now_ms: now_ms(),
                fresh_id: BlobId::random(),
                command: Box::new(command),
            })
            .await
    }

    /// On the parent's leader: commits the split, then starts the child
    /// group here and initialises it on the parent's replicas.
    pub(super) async fn split_here(
        self: &Arc<Self>,
        parent: ShardId,
        at: String,
        child: ShardId,
    ) -> Result<(), ApiError> {
        let (group, _) = self.shard_group(parent)?;
        group.write(Proposal::Split { at, child }).await?;
        let members: std::collections::BTreeMap<u64, BasicNode> = group
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect();
        let child_group = self
            .open_group(GroupId::Shard(child))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if !child_group.raft.is_initialized().await.unwrap_or(true)
            && let Err(err) = child_group.raft.initialize(members).await
        {
            tracing::warn!(%child, %err, "initialise the split's child");
        }
        Ok(())
    }

    /// On the cluster leader: gives a directory its own shard(s) by
    /// splitting at the prefix and at its successor, each split committed
    /// in its parent's log before the new map is committed.
    pub(super) async fn isolate(self: &Arc<Self>, prefix: &str) -> Result<ShardMap, ApiError> {
        let _serial = self.reshaping.lock().await;
        let (cluster_group, state) = self.cluster_leader()?;
        let mut map = state
            .shard_map()?
            .ok_or_else(|| ApiError::internal("the cluster has no shard map yet"))?;
        let urls: Vec<String> = map.replicas.values().cloned().collect();
        let client = MetaClient::connect(&urls.join(","), &self.secret)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut cuts = vec![prefix.to_owned()];
        cuts.extend(prefix_successor(prefix));
        for at in cuts {
            let holder = map.route(&at).clone();
            if holder.start == at {
                continue;
            }
            let child = map.next_id();
            let next = map.split(holder.id, &at, child).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadSplit, e.to_string())
            })?;
            // The client must know the parent (a shard an earlier cut made).
            client.refresh_map().await.map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::NoQuorum,
                    e.to_string(),
                )
            })?;
            client
                .split_shard(holder.id, &at, child)
                .await
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ErrorCode::NoQuorum,
                        e.to_string(),
                    )
                })?;
            match cluster_group
                .write(Proposal::PublishMap { map: next.clone() })
                .await?
            {
                Reply::Map { .. } => {}
                other => return Err(ApiError::internal(format!("unexpected reply {other:?}"))),
            }
            tracing::info!(from = %holder.id, to = %child, at, version = next.version, "shard split");
            self.metrics.splits.inc();
            map = next;
        }
        Ok(map)
    }
}

/// A process that hosts no replica of the cluster group sends the client
/// on to the others, as a follower that knows no leader does.
fn not_a_cluster_replica() -> ApiError {
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        ErrorCode::NotLeader,
        "this process has no replica of the cluster group",
    )
}
