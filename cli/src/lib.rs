//! The `cairn` command line: `cairn dev` (a whole local cluster of real
//! processes) and administration of a running cluster (nodes, shards,
//! state changes, online splits).

pub mod bench;
pub mod cluster_file;
pub mod dev;
pub mod join;
pub mod table;
pub mod units;
