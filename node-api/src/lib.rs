//! The storage-node API as every other service sees it.
//!
//! - [`wire`]: the JSON bodies of the node's HTTP API (wire formats: fields
//!   are only ever added);
//! - [`client`]: [`NodeClient`], the only way other services talk to nodes,
//!   built on the shared [`cairn_service::HttpClient`] (deadlines on every
//!   call), and [`BlockStream`], which verifies every block it receives;
//! - [`config`]: [`NodeConfig`], the node's config file, so that tools that
//!   generate configs (`cairn dev`) are checked by the compiler.
//!
//! No server code and no storage engine live here.

pub mod client;
pub mod config;
pub mod wire;

pub use client::{BlockStream, Deletion, NodeClient, NodeError, frame_blocks};
pub use config::NodeConfig;
