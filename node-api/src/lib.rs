//! The storage-node API as every other service sees it.
//!
//! - [`wire`]: the JSON bodies of the node's HTTP API (wire formats: fields
//!   are only ever added);
//! - [`client`]: [`NodeClient`], the only way other services talk to nodes,
//!   built on the shared [`cairn_service::HttpClient`] (deadlines on every
//!   call), and [`BlockStream`], which verifies every block it receives;
//! - [`local`]: short-circuit reads and writes of a node's chunk files by a
//!   service on the same host (a Unix socket hands over a descriptor; every
//!   block's hash is still checked by whoever did not produce it);
//! - [`read_buffers`]: reused buffers for blocks read by short-circuit;
//! - [`config`]: [`NodeConfig`], the node's config file, so that tools that
//!   generate configs (`cairn dev`) are checked by the compiler.
//!
//! No server code and no storage engine live here.

pub mod client;
pub mod config;
pub mod local;
pub mod read_buffers;
pub mod wire;

pub use client::{BlockStream, Deletion, NodeClient, NodeError, frame_blocks};
pub use config::NodeConfig;
pub use local::{LocalEndpoint, LocalNode};
