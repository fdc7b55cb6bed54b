//! The node registry, cached briefly for the data path and the scrubber.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{MetaClient, MetaError};
use crate::model::NodeRecord;

/// The node registry as last fetched, reused for `ttl`: the data path and
/// the scrubber need it for every object, and membership changes slowly.
#[derive(Debug)]
pub struct NodeCache {
    ttl: Duration,
    cached: tokio::sync::Mutex<Option<(Instant, Arc<Vec<NodeRecord>>)>>,
}

impl NodeCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The registry's nodes, fetched again once the copy is `ttl` old.
    pub async fn get(&self, meta: &MetaClient) -> Result<Arc<Vec<NodeRecord>>, MetaError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, nodes)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(nodes.clone());
        }
        let nodes = Arc::new(meta.nodes().await?);
        *cached = Some((Instant::now(), nodes.clone()));
        Ok(nodes)
    }
}
