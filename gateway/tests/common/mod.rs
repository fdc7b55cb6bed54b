//! Real storage nodes on ephemeral ports for data-path tests.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use bytes::Bytes;
use cairn_core::ids::{ChunkId, NodeId, RackId};
use cairn_gateway::blob_writer::ChunkTarget;
use cairn_node_api::NodeClient;
use cairn_storage_node::{NodeConfig, StorageNode};

pub const SECRET: &str = "gateway-test-secret";

pub fn secret() -> cairn_service::ClusterSecret {
    cairn_service::ClusterSecret::new(SECRET).expect("secret")
}

pub struct Nodes {
    pub targets: Vec<ChunkTarget>,
    pub dirs: Vec<tempfile::TempDir>,
}

impl Nodes {
    /// The chunk file on node `node`.
    pub fn chunk_file(&self, node: usize, chunk: &ChunkId) -> PathBuf {
        self.dirs[node]
            .path()
            .join("chunks")
            .join(&chunk.blob.to_hex()[..2])
            .join(chunk.file_name())
    }

    /// Points target `node` at a server that accepts connections and never
    /// answers: a hung node.
    pub async fn hang(&mut self, node: usize) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        self.targets[node].client = NodeClient::standalone(&format!("http://{addr}"), &secret());
    }

    /// Points target `node` at a closed port, as if the node died: port 1
    /// (tcpmux), where nothing listens. A port from `bind(0)` and dropped
    /// could meanwhile become a concurrent test's live node.
    pub fn kill(&mut self, node: usize) {
        self.targets[node].client = NodeClient::standalone("http://127.0.0.1:1", &secret());
    }
}

pub async fn start_nodes(count: usize) -> Nodes {
    let mut targets = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..count {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = NodeId::new(format!("n{i}")).expect("id");
        let config = NodeConfig::new(
            id.clone(),
            RackId::new(format!("r{}", i % 3)).expect("rack"),
            dir.path().to_owned(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let node = StorageNode::open(config, secret(), listener).expect("node");
        tokio::spawn(node.run(std::future::pending()));
        targets.push(ChunkTarget {
            node: id,
            client: NodeClient::standalone(&format!("http://{addr}"), &secret()),
            avoid: false,
        });
        dirs.push(dir);
    }
    Nodes { targets, dirs }
}

pub fn data(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i * 2654435761) ^ seed) as u8)
        .collect()
}

/// The body as irregular pieces, like a network stream.
pub fn body(
    bytes: &[u8],
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static {
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut step = 1;
    while at < bytes.len() {
        let end = (at + step).min(bytes.len());
        pieces.push(Ok(Bytes::copy_from_slice(&bytes[at..end])));
        at = end;
        step = step * 3 % 5000 + 1;
    }
    futures_util::stream::iter(pieces)
}
