//! Cairn storage node: keeps chunk files durably on local disk and serves
//! them over an authenticated HTTP API.
//!
//! The node knows chunks only by [`cairn_core::ChunkId`]: it never sees an
//! object key, a bucket, or a manifest. It verifies every block it receives
//! against the hash the writer declares, every block it sends against the
//! hash stored beside it, and can recompute a chunk's Merkle root from disk
//! so that scrubbing ships 32 bytes instead of the chunk.
//!
//! The crate is a library (`StorageNode::open` + `run`) with a thin
//! `cairn-node` binary, so tests can run nodes in-process on ephemeral ports
//! or as real processes. [`client::NodeClient`] is the typed client every
//! other service uses.

mod api;
pub mod client;
pub mod config;
pub mod metrics;
mod node;
pub mod secret;
pub mod service;
pub mod store;

pub use config::NodeConfig;
pub use node::{NodeShared, StorageNode};
pub use secret::ClusterSecret;
