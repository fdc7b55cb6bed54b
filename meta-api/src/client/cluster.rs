//! Cluster calls: the node registry, heartbeats, the change feed, splits.

use cairn_node_api::wire::NodeStatus;
use reqwest::Method;

use super::{MetaClient, MetaError};
use crate::model::{
    GroupDigest, MetaStatus, NodeEvent, NodeRecord, ReplicaChange, ShardSplit, SplitRequest,
};
use crate::shard_map::{GroupId, ShardId, ShardMap};
use crate::users::{KeyRecord, UserChange, UserRecord};

impl MetaClient {
    /// A heartbeat is idempotent: a retry after a lost answer is harmless.
    pub async fn heartbeat(&self, status: &NodeStatus) -> Result<NodeRecord, MetaError> {
        self.on_group(
            GroupId::Cluster,
            Method::POST,
            "cluster/heartbeat",
            Some(status),
            &[],
        )
        .await
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, MetaError> {
        self.on_group(
            GroupId::Cluster,
            Method::GET,
            "cluster/nodes",
            None::<&()>,
            &[],
        )
        .await
    }

    /// Node state changes after sequence `after`.
    pub async fn events(&self, after: u64) -> Result<Vec<NodeEvent>, MetaError> {
        self.on_group(
            GroupId::Cluster,
            Method::GET,
            "cluster/events",
            None::<&()>,
            &[("after", after.to_string())],
        )
        .await
    }

    /// Every S3 user with its access keys (no secrets).
    pub async fn users(&self) -> Result<Vec<UserRecord>, MetaError> {
        self.on_group(
            GroupId::Cluster,
            Method::GET,
            "cluster/users",
            None::<&()>,
            &[],
        )
        .await
    }

    /// Applies a change to the user table; the user afterwards (`None`
    /// once deleted). Creations are safe to retry (see [`UserChange`]).
    /// Drains, un-drains, retires or removes a node; its record after the
    /// change (`None`: removed).
    pub async fn change_lifecycle(
        &self,
        node: &cairn_core::ids::NodeId,
        change: &crate::model::LifecycleChange,
    ) -> Result<Option<crate::model::NodeRecord>, MetaError> {
        self.on_group(
            GroupId::Cluster,
            Method::POST,
            &format!("cluster/nodes/{node}/lifecycle"),
            Some(change),
            &[],
        )
        .await
    }

    pub async fn change_user(&self, change: &UserChange) -> Result<Option<UserRecord>, MetaError> {
        self.on_group(
            GroupId::Cluster,
            Method::POST,
            "cluster/users",
            Some(change),
            &[],
        )
        .await
    }

    /// One access key with its user and sealed secret; `None` if there is
    /// no such key.
    pub async fn access_key(&self, access_key: &str) -> Result<Option<KeyRecord>, MetaError> {
        let path = format!("cluster/keys/{access_key}");
        match self
            .on_group(GroupId::Cluster, Method::GET, &path, None::<&()>, &[])
            .await
        {
            Ok(record) => Ok(Some(record)),
            Err(err) if err.code() == Some(cairn_service::ErrorCode::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Gives the directory `bucket/prefix` its own shard (online).
    pub async fn split(&self, catalogue_prefix: &str) -> Result<ShardMap, MetaError> {
        let request = SplitRequest {
            prefix: catalogue_prefix.to_owned(),
        };
        let map: ShardMap = self
            .on_group(
                GroupId::Cluster,
                Method::POST,
                "cluster/split",
                Some(&request),
                &[],
            )
            .await?;
        self.install_map(map.clone());
        Ok(map)
    }

    /// Asks shard `parent`'s leader to split off the keys at or above `at`
    /// as shard `child` (the cluster leader's half of a split; publishing
    /// the new map is the other half).
    pub async fn split_shard(
        &self,
        parent: ShardId,
        at: &str,
        child: ShardId,
    ) -> Result<(), MetaError> {
        let request = ShardSplit {
            at: at.to_owned(),
            child,
        };
        let done: Option<serde_json::Value> = self
            .on_shard_id(parent, Method::POST, "split", Some(&request), &[])
            .await?;
        done.map(drop).ok_or(MetaError::Routing {
            key: parent.to_string(),
        })
    }

    /// One process's view of its groups (leaders, terms, replication).
    pub async fn status(&self, process_url: &str) -> Result<MetaStatus, MetaError> {
        let url = format!("{}/status", process_url.trim_end_matches('/'));
        Ok(self.http.call(Method::GET, &url, &[], None::<&()>).await?)
    }

    /// The status of every metadata process in the map (an unreachable one
    /// is reported with its error).
    pub async fn statuses(&self) -> Vec<(u64, String, Result<MetaStatus, MetaError>)> {
        let replicas = self.shard_map().replicas;
        let mut out = Vec::new();
        for (id, url) in replicas {
            let status = self.status(&url).await;
            out.push((id, url, status));
        }
        out
    }
}

impl MetaClient {
    /// Adds or removes a metadata replica: every group, then the map (on
    /// the cluster leader).
    pub async fn change_replicas(&self, change: &ReplicaChange) -> Result<ShardMap, MetaError> {
        let map: ShardMap = self
            .on_group(
                GroupId::Cluster,
                Method::POST,
                "cluster/replicas",
                Some(change),
                &[],
            )
            .await?;
        self.install_map(map.clone());
        Ok(map)
    }

    /// Adds or removes a replica of one group (on that group's leader).
    pub async fn change_group_replicas(
        &self,
        group: GroupId,
        change: &ReplicaChange,
    ) -> Result<(), MetaError> {
        let _: serde_json::Value = self
            .on_group(
                group,
                Method::POST,
                &format!("raft/{group}/members"),
                Some(change),
                &[],
            )
            .await?;
        Ok(())
    }

    /// Creates an empty replica of `group` on the process at `url` (one
    /// being added; it is then seeded by snapshot).
    pub async fn create_group_on(&self, url: &str, group: GroupId) -> Result<(), MetaError> {
        let url = format!("{}/raft/{group}/create", url.trim_end_matches('/'));
        let _: serde_json::Value = self.http.call(Method::POST, &url, &[], None::<&()>).await?;
        Ok(())
    }

    /// One replica's digest of one group.
    pub async fn digest_on(&self, url: &str, group: GroupId) -> Result<GroupDigest, MetaError> {
        let url = format!("{}/raft/{group}/digest", url.trim_end_matches('/'));
        Ok(self.http.call(Method::GET, &url, &[], None::<&()>).await?)
    }
}

/// What `MetaClient::verify` found for one group.
#[derive(Debug, Clone)]
pub struct GroupVerdict {
    pub group: GroupId,
    /// Each replica's digest (or why it could not be had).
    pub digests: Vec<(u64, Result<GroupDigest, String>)>,
}

impl GroupVerdict {
    /// Every replica answered at the same applied index.
    pub fn settled(&self) -> bool {
        let indexes: Option<Vec<Option<u64>>> = self
            .digests
            .iter()
            .map(|(_, d)| d.as_ref().ok().map(|d| d.applied_index))
            .collect();
        matches!(indexes, Some(v) if !v.is_empty() && v.windows(2).all(|w| w[0] == w[1]))
    }

    /// Replicas at the same applied index have different states.
    pub fn diverged(&self) -> bool {
        let answered: Vec<&GroupDigest> = self
            .digests
            .iter()
            .filter_map(|(_, d)| d.as_ref().ok())
            .collect();
        answered.iter().any(|a| {
            answered
                .iter()
                .any(|b| a.applied_index == b.applied_index && a.digest != b.digest)
        })
    }
}

impl MetaClient {
    /// Compares every replica's digest of every group. A group still
    /// moving (replicas at different applied indexes) is asked again, up
    /// to `attempts` times, until its replicas settle on one index.
    pub async fn verify(&self, attempts: usize) -> Result<Vec<GroupVerdict>, MetaError> {
        let map = self.refresh_map().await?;
        let groups: Vec<GroupId> = std::iter::once(GroupId::Cluster)
            .chain(map.shards.iter().map(|s| GroupId::Shard(s.id)))
            .collect();
        let mut verdicts = Vec::with_capacity(groups.len());
        for group in groups {
            let replicas: Vec<u64> = match group {
                GroupId::Cluster => map.replicas.keys().copied().collect(),
                GroupId::Shard(id) => map
                    .shard(id)
                    .map(|s| s.replicas.clone())
                    .unwrap_or_default(),
            };
            let mut verdict = GroupVerdict {
                group,
                digests: Vec::new(),
            };
            for attempt in 0..attempts.max(1) {
                verdict.digests.clear();
                for replica in &replicas {
                    let digest = match map.url(*replica) {
                        Some(url) => self.digest_on(url, group).await.map_err(|e| e.to_string()),
                        None => Err("not in the map".to_owned()),
                    };
                    verdict.digests.push((*replica, digest));
                }
                // Settled, or a replica is unreachable (it cannot settle).
                let unreachable = verdict.digests.iter().any(|(_, d)| d.is_err());
                if verdict.settled() || unreachable || attempt + 1 == attempts {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }
}
