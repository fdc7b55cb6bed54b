//! The `cairn` command line: administration of a running cluster (nodes,
//! shards, state changes, online splits). `cairn dev` and `cairn bench`
//! arrive with the gateway and benchmark issues.

pub mod table;
