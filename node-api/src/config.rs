//! Storage node configuration (TOML file, overridable by flags).
//!
//! Unknown fields are tolerated (and named in a warning), so that a config
//! written for a newer version still starts an older one during a rollback.
//! It lives in the API crate so that tools writing node configs (`cairn
//! dev`) use this very struct.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_core::codec::MAX_BLOCK_SIZE;
use cairn_core::ids::{NodeId, RackId};
use cairn_service::config::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Stable node name, unique in the cluster.
    pub id: NodeId,
    /// Failure domain this node shares with its neighbours.
    pub rack: RackId,
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Base URL other services use to reach this node (default: from `listen`).
    #[serde(default)]
    pub advertise_url: Option<String>,
    /// Directory holding `chunks/`.
    pub data_dir: PathBuf,
    /// Bytes this node offers; default: the size of the data directory's
    /// file system.
    #[serde(default)]
    pub capacity_bytes: Option<u64>,
    /// File holding the cluster secret (alternatively `CAIRN_CLUSTER_SECRET`
    /// or `--secret`).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Mutual TLS with the rest of the cluster: the cluster CA and this
    /// process's certificate and key (docs/security.md). Without it every
    /// internal connection is plain HTTP and the secret crosses in clear.
    #[serde(default)]
    pub tls: Option<cairn_service::tls::TlsFiles>,
    /// Largest block a writer may send, bounding per-request memory.
    #[serde(default = "default_max_block")]
    pub max_block_size: usize,
    /// Write full blocks of large chunks with `O_DIRECT`, bypassing the page
    /// cache (falls back by itself where the filesystem refuses it).
    #[serde(default = "default_direct_io")]
    pub direct_io: bool,
    /// The metadata replicas to register and heartbeat with (one URL or
    /// several, comma-separated; none: standalone).
    #[serde(default)]
    pub metadata_url: Option<String>,
    /// How often to heartbeat, in milliseconds.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
    /// Serve short-circuit reads and writes of chunk files to services on
    /// this host over `<data_dir>/local.sock` (see `cairn_node_api::local`).
    #[serde(default = "default_short_circuit")]
    pub short_circuit: bool,
}

fn default_heartbeat_ms() -> u64 {
    1000
}

fn default_short_circuit() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7401))
}

fn default_max_block() -> usize {
    MAX_BLOCK_SIZE
}

impl NodeConfig {
    /// Reads a config file (unknown keys are named in a warning).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        cairn_service::config::load(path)
    }

    /// A config for tests and local clusters.
    pub fn new(id: NodeId, rack: RackId, data_dir: PathBuf) -> Self {
        Self {
            id,
            rack,
            listen: default_listen(),
            advertise_url: None,
            data_dir,
            capacity_bytes: None,
            secret_file: None,
            tls: None,
            max_block_size: default_max_block(),
            direct_io: default_direct_io(),
            metadata_url: None,
            heartbeat_interval_ms: default_heartbeat_ms(),
            short_circuit: default_short_circuit(),
        }
    }
}

fn default_direct_io() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_example_config_and_tolerates_unknown_fields() {
        let text = include_str!("../../configs/node.toml");
        let config: NodeConfig =
            toml::from_str(&format!("{text}\nfuture_option = 1\n")).expect("parse");
        assert_eq!(config.id.as_str(), "node-01");
        assert_eq!(config.rack.as_str(), "rack-1");
        assert!(
            toml::from_str::<NodeConfig>("id = 'Bad Id'\nrack = 'r'\ndata_dir = '/x'").is_err()
        );
    }
}
