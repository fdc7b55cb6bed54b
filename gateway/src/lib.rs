//! The S3 gateway. In progress (issue "Gateway"): the erasure-coded write
//! path ([`blob_writer`]) is built; the read path, the s3s-based S3 API and
//! `cairn dev` are not yet.

pub mod blob_writer;
