//! Cairn's S3 gateway: the S3 API (on `s3s`) over the erasure-coded data
//! path. A PUT streams through [`blob_writer`] to k+m storage nodes, a GET
//! streams back through [`blob_reader`], reconstructing around failed,
//! slow or corrupt chunks; the catalogue lives in the metadata service.

pub mod backend;
pub mod blob_reader;
pub mod blob_writer;
pub mod config;
pub mod console;
pub mod health;
pub mod metrics;
pub mod placement;
pub mod policy;
pub mod s3;
pub mod server;
pub mod sse;
