//! Cluster calls: the node registry, heartbeats, the change feed, splits.

use cairn_node_api::wire::NodeStatus;
use reqwest::Method;

use super::{MetaClient, MetaError};
use crate::model::{MetaStatus, NodeEvent, NodeRecord, SplitRequest};
use crate::shard_map::ShardMap;

impl MetaClient {
    pub async fn heartbeat(&self, status: &NodeStatus) -> Result<NodeRecord, MetaError> {
        Ok(self
            .http
            .call(
                Method::POST,
                &self.cluster_url("heartbeat"),
                &[],
                Some(status),
            )
            .await?)
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, MetaError> {
        Ok(self
            .http
            .call(Method::GET, &self.cluster_url("nodes"), &[], None::<&()>)
            .await?)
    }

    /// Node state changes after sequence `after`.
    pub async fn events(&self, after: u64) -> Result<Vec<NodeEvent>, MetaError> {
        Ok(self
            .http
            .call(
                Method::GET,
                &self.cluster_url("events"),
                &[("after", after.to_string())],
                None::<&()>,
            )
            .await?)
    }

    /// Gives the directory `bucket/prefix` its own shard (online).
    pub async fn split(&self, catalogue_prefix: &str) -> Result<ShardMap, MetaError> {
        let request = SplitRequest {
            prefix: catalogue_prefix.to_owned(),
        };
        let map: ShardMap = self
            .http
            .call(
                Method::POST,
                &self.cluster_url("split"),
                &[],
                Some(&request),
            )
            .await?;
        self.install_map(map.clone());
        Ok(map)
    }

    pub async fn status(&self, process_url: &str) -> Result<MetaStatus, MetaError> {
        let url = format!("{}/status", process_url.trim_end_matches('/'));
        Ok(self.http.call(Method::GET, &url, &[], None::<&()>).await?)
    }
}
