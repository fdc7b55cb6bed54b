//! From the metadata service's node registry to chunk targets: which node
//! (and address) holds each chunk of a new blob, and where to read an
//! existing one.

use cairn_core::codec::CodecParams;
use cairn_core::ids::BlobId;
use cairn_core::manifest::BlobManifest;
use cairn_core::placement::{NodeCandidate, PlacementError, place_blob};
use cairn_meta_api::model::NodeRecord;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use cairn_node_api::{LocalNode, NodeClient};
use cairn_service::{ClusterSecret, HttpClient};

use crate::blob_writer::ChunkTarget;

/// Chooses rack-safe targets for a new blob among the registered nodes (an
/// LRC's groups aligned with racks: `place_blob`).
/// `min_free` is the space each node needs (about one chunk). With fewer
/// than k+m eligible nodes but at least `quorum`, the last chunks get no
/// target (`None`): the write records them missing, for repair.
/// Nodes on this host are written through their local sockets when `local`
/// is given.
pub fn targets_for_new_blob(
    blob: &BlobId,
    nodes: &[NodeRecord],
    codec: &CodecParams,
    min_free: u64,
    quorum: usize,
    http: &HttpClient,
    local: Option<&LocalNodes>,
) -> Result<Vec<Option<ChunkTarget>>, PlacementError> {
    let candidates: Vec<NodeCandidate> = nodes.iter().map(NodeRecord::candidate).collect();
    let placement = place_blob(blob, &candidates, codec, min_free, quorum)?;
    Ok(placement
        .into_iter()
        .map(|id| {
            let id = id?;
            let record = nodes.iter().find(|n| n.id == id);
            Some(ChunkTarget {
                client: node_client(record, http, local),
                node: id,
                avoid: false,
            })
        })
        .collect())
}

/// The client of a registered node (an unroutable address for one the
/// registry no longer knows), through its local socket when it is on this
/// host and `local` is given.
fn node_client(
    record: Option<&NodeRecord>,
    http: &HttpClient,
    local: Option<&LocalNodes>,
) -> NodeClient {
    let address = record.map_or("http://unknown-node.invalid", |n| n.address.as_str());
    let client = NodeClient::new(http.clone(), address);
    match record.zip(local).and_then(|(n, pool)| pool.for_node(n)) {
        Some(socket) => client.with_local(socket),
        None => client,
    }
}

/// Where to read each chunk of a stored blob. A node the registry no longer
/// knows gets an unroutable address: the reader treats it as failed and
/// reads around it. Nodes on this host are read through their local
/// sockets when `local` is given.
pub fn sources_for_blob(
    manifest: &BlobManifest,
    nodes: &[NodeRecord],
    http: &HttpClient,
    local: Option<&LocalNodes>,
) -> Vec<ChunkTarget> {
    manifest
        .chunks
        .iter()
        .map(|chunk| ChunkTarget {
            node: chunk.node.clone(),
            client: node_client(nodes.iter().find(|n| n.id == chunk.node), http, local),
            avoid: false,
        })
        .collect()
}

/// Local-socket clients of the nodes on this host (short-circuit reads and
/// writes), one per socket, so their idle connections serve request after
/// request.
#[derive(Debug)]
pub struct LocalNodes {
    host: String,
    secret: ClusterSecret,
    deadline: Duration,
    clients: Mutex<HashMap<String, LocalNode>>,
}

impl LocalNodes {
    /// `deadline` bounds each read grant (a stopped node must not hold a
    /// read); writes have the write client's deadline.
    pub fn new(secret: ClusterSecret, deadline: Duration) -> Self {
        Self {
            host: cairn_node_api::local::host_identity(),
            secret,
            deadline,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client of `node`'s local socket, if it runs on this host.
    pub fn for_node(&self, node: &NodeRecord) -> Option<LocalNode> {
        let endpoint = node.local.as_ref().filter(|e| e.host == self.host)?;
        let mut clients = self.clients.lock().expect("local node clients");
        // Looked up per chunk of every read: no key allocated once known.
        if let Some(client) = clients.get(&endpoint.socket) {
            return Some(client.clone());
        }
        let client = LocalNode::new(
            Path::new(&endpoint.socket),
            self.secret.clone(),
            self.deadline,
        );
        clients.insert(endpoint.socket.clone(), client.clone());
        Some(client)
    }
}
