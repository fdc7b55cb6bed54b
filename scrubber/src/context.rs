//! What every scrubber task shares: the catalogue client, the store, the
//! node list (cached), node clients, metrics and the cancellation set.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::ids::NodeId;
use cairn_meta_api::client::{MetaClient, MetaError, NodeCache};
use cairn_meta_api::model::NodeRecord;
use cairn_node_api::NodeClient;
use cairn_service::{ClusterSecret, HttpClient, Timeouts};

use crate::config::ScrubberConfig;
use crate::metrics::ScrubberMetrics;
use crate::store::ScrubStore;

const NODE_CACHE_TTL: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Context {
    pub meta: MetaClient,
    pub store: ScrubStore,
    pub metrics: ScrubberMetrics,
    pub config: ScrubberConfig,
    /// Chunks being rebuilt right now.
    pub in_progress: AtomicU64,
    /// Jobs cancelled while running (the runner stops at its next object).
    pub cancelled: Mutex<HashSet<u64>>,
    /// One pool and one set of deadlines for every node.
    http: HttpClient,
    nodes: NodeCache,
}

pub use cairn_service::now_ms;

impl Context {
    pub fn new(
        meta: MetaClient,
        store: ScrubStore,
        config: ScrubberConfig,
        secret: &ClusterSecret,
    ) -> Self {
        Self {
            meta,
            store,
            metrics: ScrubberMetrics::new(),
            config,
            in_progress: AtomicU64::new(0),
            cancelled: Mutex::new(HashSet::new()),
            http: HttpClient::new(secret.clone(), Timeouts::INTERNAL),
            nodes: NodeCache::new(NODE_CACHE_TTL),
        }
    }

    /// The registry's nodes (cached briefly).
    pub async fn nodes(&self) -> Result<Arc<Vec<NodeRecord>>, MetaError> {
        self.nodes.get(&self.meta).await
    }

    /// A client for `node`, if the registry knows it.
    pub fn client(&self, nodes: &[NodeRecord], node: &NodeId) -> Option<NodeClient> {
        nodes
            .iter()
            .find(|n| &n.id == node)
            .map(|n| NodeClient::new(self.http.clone(), &n.address))
    }

    pub fn is_cancelled(&self, job: u64) -> bool {
        self.cancelled.lock().expect("cancel set").contains(&job)
    }
}
