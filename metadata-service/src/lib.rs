//! The metadata service: the prefix-sharded catalogue (buckets, manifests,
//! multipart uploads) and cluster membership.
//!
//! In progress (issue "Metadata service"). Built so far, and pure: the shard
//! map that routes `bucket/key` ranges to shards ([`shard_map`]) and the
//! per-node failure detector ([`liveness`]). The RocksDB catalogue, the HTTP
//! API and the `cairn-meta` binary are not built yet.

pub mod liveness;
pub mod shard_map;
