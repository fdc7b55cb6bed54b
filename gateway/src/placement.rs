//! From the metadata service's node registry to chunk targets: which node
//! (and address) holds each chunk of a new blob, and where to read an
//! existing one.

use cairn_core::codec::CodecParams;
use cairn_core::ids::BlobId;
use cairn_core::manifest::BlobManifest;
use cairn_core::placement::{NodeCandidate, PlacementError, place_blob};
use cairn_meta_api::model::NodeRecord;
use cairn_node_api::NodeClient;
use cairn_service::HttpClient;

use crate::blob_writer::ChunkTarget;

/// Chooses rack-safe targets for a new blob among the registered nodes (an
/// LRC's groups aligned with racks: `place_blob`).
/// `min_free` is the space each node needs (about one chunk). With fewer
/// than k+m eligible nodes but at least `quorum`, the last chunks get no
/// target (`None`): the write records them missing, for repair.
pub fn targets_for_new_blob(
    blob: &BlobId,
    nodes: &[NodeRecord],
    codec: &CodecParams,
    min_free: u64,
    quorum: usize,
    http: &HttpClient,
) -> Result<Vec<Option<ChunkTarget>>, PlacementError> {
    let candidates: Vec<NodeCandidate> = nodes.iter().map(NodeRecord::candidate).collect();
    let placement = place_blob(blob, &candidates, codec, min_free, quorum)?;
    Ok(placement
        .into_iter()
        .map(|id| {
            let id = id?;
            let address = nodes
                .iter()
                .find(|n| n.id == id)
                .map(|n| n.address.clone())
                .unwrap_or_default();
            Some(ChunkTarget {
                client: NodeClient::new(http.clone(), &address),
                node: id,
                avoid: false,
            })
        })
        .collect())
}

/// Where to read each chunk of a stored blob. A node the registry no longer
/// knows gets an unroutable address: the reader treats it as failed and
/// reads around it.
pub fn sources_for_blob(
    manifest: &BlobManifest,
    nodes: &[NodeRecord],
    http: &HttpClient,
) -> Vec<ChunkTarget> {
    manifest
        .chunks
        .iter()
        .map(|chunk| {
            let address = nodes.iter().find(|n| n.id == chunk.node).map_or_else(
                || "http://unknown-node.invalid".to_owned(),
                |n| n.address.clone(),
            );
            ChunkTarget {
                node: chunk.node.clone(),
                client: NodeClient::new(http.clone(), &address),
                avoid: false,
            }
        })
        .collect()
}
