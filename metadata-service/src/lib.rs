//! The metadata service: the prefix-sharded catalogue (buckets, object
//! manifests, multipart uploads, the node → chunk reverse index, the GC
//! queue) and cluster membership (node registry, failure detection, change
//! feed).
//!
//! Every catalogue mutation is a [`model::Command`] applied by one
//! [`shard::Shard`] (a RocksDB with a synced WAL), so that replicating a
//! shard through a consensus log later changes no caller. Callers use
//! [`client::MetaClient`], which routes by the [`shard_map::ShardMap`].

pub mod client;
pub mod cluster;
pub mod config;
pub mod keys;
pub mod liveness;
pub mod metrics;
pub mod model;
pub mod server;
pub mod shard;
pub mod shard_map;

pub use client::MetaClient;
pub use server::{MetaOptions, MetaServer, Role};
