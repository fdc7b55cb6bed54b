//! Cluster calls: the node registry, heartbeats, the change feed, splits.

use cairn_node_api::wire::NodeStatus;
use reqwest::Method;

use super::{MetaClient, MetaError};
use crate::model::{MetaStatus, NodeEvent, NodeRecord, ShardSplit, SplitRequest};
use crate::shard_map::{GroupId, ShardId, ShardMap};

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
