//! What every scrubber task shares: the catalogue client, the store, the
//! node list (cached), node clients, metrics and the cancellation set.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_core::ids::NodeId;
use cairn_metadata_service::client::{MetaClient, MetaError, NodeCache};
use cairn_metadata_service::model::NodeRecord;
use cairn_storage_node::client::NodeClient;

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
    http: reqwest::Client,
    secret: String,
    nodes: NodeCache,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Context {
    pub fn new(meta: MetaClient, store: ScrubStore, config: ScrubberConfig, secret: &str) -> Self {
        Self {
            meta,
            store,
            metrics: ScrubberMetrics::new(),
            config,
            in_progress: AtomicU64::new(0),
            cancelled: Mutex::new(HashSet::new()),
            http: reqwest::Client::new(),
            secret: secret.to_owned(),
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
            .map(|n| NodeClient::with_http(self.http.clone(), &n.address, &self.secret))
    }

    pub fn is_cancelled(&self, job: u64) -> bool {
        self.cancelled.lock().expect("cancel set").contains(&job)
    }
}
