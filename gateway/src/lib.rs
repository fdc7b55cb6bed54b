//! The S3 gateway. In progress (issue "Gateway"): the erasure-coded write
//! path ([`blob_writer`]) and read path ([`blob_reader`]) are built; the
//! s3s-based S3 API, hedged reads and `cairn dev` are not yet.

pub mod blob_reader;
pub mod blob_writer;
pub mod placement;
