//! Cairn storage node: keeps chunk files durably on local disk and serves
//! them over an authenticated HTTP API.
//!
//! The node knows chunks only by [`cairn_core::ChunkId`]: it never sees an
//! object key, a bucket, or a manifest. It verifies every block it receives
//! against the hash the writer declares, sends every block with the hash
//! stored beside it for the receiver to check, and can recompute a chunk's
//! Merkle root from disk so that scrubbing ships 32 bytes instead of the
//! chunk. Services on the same host may read and write its chunk files
//! directly (`short_circuit`, `local_socket`): the node grants each read and
//! creates, checks and seals each written chunk; readers check the hashes.
//!
//! The crate is a library (`StorageNode::open` + `run`) with a thin
//! `cairn-node` binary, so tests can run nodes in-process on ephemeral ports
//! or as real processes. Other services talk to it through
//! `cairn_node_api::NodeClient`; this crate is only the server.

mod api;
mod local_socket;
pub mod metrics;
mod node;
pub mod store;

pub use cairn_node_api::NodeConfig;
pub use node::{NodeShared, StorageNode};
