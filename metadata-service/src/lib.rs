//! The metadata service: the prefix-sharded catalogue (buckets, object
//! manifests, multipart uploads, the node → chunk reverse index, the GC
//! queue) and cluster membership (node registry, failure detection, change
//! feed).
//!
//! Every shard and the cluster state is a Raft group ([`raft`], openraft)
//! replicated on the metadata processes; every catalogue mutation is a
//! `Command` committed in its shard's log and applied by each replica's
//! [`shard::Shard`]. Callers use `cairn_meta_api::MetaClient`, which routes
//! by the shard map to each group's leader; the model types, the map and
//! the client live in `cairn-meta-api`, without RocksDB.

pub mod cluster;
pub mod config;
pub mod keys;
pub mod liveness;
pub mod metrics;
pub mod raft;
pub mod server;
pub mod shard;

pub use server::{MetaOptions, MetaServer};
