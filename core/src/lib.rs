//! Cairn's pure building blocks.
//!
//! Everything here is deterministic computation over bytes and descriptions:
//! the erasure codec, block hashing and Merkle trees, stripe layout, rack-aware
//! placement, the durability model, identifiers, and the byte formats shared by
//! the services (chunk files on disk, block frames on the wire). This crate
//! performs no I/O, so every service and test can rely on it without a runtime.

pub mod acl;
pub mod chunk_file;
pub mod codec;
pub mod durability;
pub mod frame;
pub mod ids;
pub mod integrity;
pub mod layout;
pub mod lrc;
pub mod manifest;
pub mod placement;

pub use codec::{CodecError, CodecParams, ErasureCodec, StripeBuffer};
pub use ids::{BlobId, ChunkId, IdError, NodeId, RackId};
pub use integrity::{BlockHash, MerkleRoot};
pub use layout::BlobLayout;
