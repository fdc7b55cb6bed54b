//! Key layout inside a shard's RocksDB. One-byte namespace, a NUL, then the
//! namespace's key; integers are big-endian so they sort numerically.
//!
//! | namespace | key | value |
//! | --- | --- | --- |
//! | `b` | bucket name | `BucketRecord` |
//! | `o` | catalogue key `bucket/key` | `ObjectRecord` (current version) |
//! | `v` | catalogue key, NUL, `u64::MAX - sequence` | `ObjectRecord`: noncurrent versions and delete markers |
//! | `u` | catalogue key, NUL, upload id | `UploadRecord` |
//! | `n` | node id, NUL, blob id (16 B), chunk index (1 B) | `ChunkOwner` |
//! | `g` | garbage id (u64) | `GarbageEntry` |
//! | `m` | name | shard counters (`sequence`, `garbage`) |
//!
//! `o` holds a key's current version when it is an object; every other
//! version of a versioned key (older objects, and every delete marker,
//! current or not) is in `v`, newest first. So GET and ListObjects read `o`
//! alone, and an unversioned bucket never writes `v`.
//!
//! Catalogue keys are `bucket/key`: bucket names contain no `/`, so a bucket
//! and every directory in it is one contiguous range, and the shard map cuts
//! that same key space.

use cairn_core::ids::{BlobId, NodeId};

pub const BUCKET: u8 = b'b';
pub const OBJECT: u8 = b'o';
pub const UPLOAD: u8 = b'u';
pub const VERSION: u8 = b'v';
pub const NODE_CHUNK: u8 = b'n';
pub const GARBAGE: u8 = b'g';
pub const META: u8 = b'm';

pub use cairn_meta_api::keys::{bucket_anchor, catalogue_key};

pub fn namespaced(namespace: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(rest.len() + 2);
    key.push(namespace);
    key.push(0);
    key.extend_from_slice(rest);
    key
}

pub fn bucket(name: &str) -> Vec<u8> {
    namespaced(BUCKET, name.as_bytes())
}

pub fn object(catalogue_key: &str) -> Vec<u8> {
    namespaced(OBJECT, catalogue_key.as_bytes())
}

/// Prefix of every `v` row of one catalogue key (object keys hold no NUL).
pub fn versions_of(catalogue_key: &str) -> Vec<u8> {
    let mut key = namespaced(VERSION, catalogue_key.as_bytes());
    key.push(0);
    key
}

/// The `v` row of one version: newer versions sort first.
pub fn version(catalogue_key: &str, sequence: u64) -> Vec<u8> {
    let mut key = versions_of(catalogue_key);
    key.extend_from_slice(&(u64::MAX - sequence).to_be_bytes());
    key
}

/// The catalogue key inside a `v` key.
pub fn catalogue_key_of_version(db_key: &[u8]) -> Option<&str> {
    let rest = db_key.strip_prefix(&[VERSION, 0])?;
    let cat = rest.get(..rest.len().checked_sub(9)?)?;
    std::str::from_utf8(cat).ok()
}

pub fn upload(catalogue_key: &str, upload_id: &str) -> Vec<u8> {
    let mut key = namespaced(UPLOAD, catalogue_key.as_bytes());
    key.push(0);
    key.extend_from_slice(upload_id.as_bytes());
    key
}

pub fn node_chunk(node: &NodeId, blob: &BlobId, index: u8) -> Vec<u8> {
    let mut key = node_prefix(node);
    key.extend_from_slice(blob.as_bytes());
    key.push(index);
    key
}

/// Prefix of every reverse-index entry of one node.
pub fn node_prefix(node: &NodeId) -> Vec<u8> {
    let mut key = namespaced(NODE_CHUNK, node.as_str().as_bytes());
    key.push(0);
    key
}

pub fn garbage(id: u64) -> Vec<u8> {
    namespaced(GARBAGE, &id.to_be_bytes())
}

pub fn meta(name: &str) -> Vec<u8> {
    namespaced(META, name.as_bytes())
}

/// The catalogue key inside an `o` key.
pub fn catalogue_key_of_object(db_key: &[u8]) -> Option<&str> {
    db_key
        .strip_prefix(&[OBJECT, 0])
        .and_then(|k| std::str::from_utf8(k).ok())
}
