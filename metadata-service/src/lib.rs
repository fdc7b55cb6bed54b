//! The metadata service: the prefix-sharded catalogue (buckets, object
//! manifests, multipart uploads, the node → chunk reverse index, the GC
//! queue) and cluster membership (node registry, failure detection, change
//! feed).
//!
//! Every catalogue mutation is a [`model::Command`] applied by one
//! [`shard::Shard`] (a RocksDB with a synced WAL), so that replicating a
//! shard through a consensus log later changes no caller. Callers use
//! `cairn_meta_api::MetaClient`, which routes by the shard map; the model
//! types, the map and the client live in `cairn-meta-api`, without RocksDB.

pub mod cluster;
pub mod config;
pub mod keys;
pub mod liveness;
pub mod metrics;
pub mod server;
pub mod shard;

pub use server::{MetaOptions, MetaServer, Role};
