//! The metadata service as every other service sees it.
//!
//! - [`model`]: commands, outcomes and records of the catalogue and the
//!   cluster state (wire formats);
//! - [`shard_map`] and [`keys`]: how catalogue keys map to prefix shards;
//! - [`client`]: [`MetaClient`], which routes every call by the shard map
//!   and retries on a stale map, and [`NodeCache`];
//! - [`users`]: S3 users and their access keys (sealed secrets);
//! - [`config`]: [`MetaConfig`], the metadata process's config file.
//!
//! Nothing here links RocksDB: the gateway, the scrubber and the CLI depend
//! on this crate, never on `cairn-metadata-service`.

pub mod client;
pub mod config;
pub mod join;
pub mod keys;
pub mod model;
pub mod shard_map;
pub mod users;

pub use client::{MetaClient, MetaError, NodeCache};
pub use config::MetaConfig;
