//! Configuration of a metadata process (TOML; unknown keys are named in a
//! warning and otherwise ignored). The struct lives in the API crate so that
//! tools writing configs (`cairn dev`) use this very type.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_service::config::ConfigError;
use serde::{Deserialize, Serialize};

/// Failure-detector timeouts: a node silent for `suspect_after` gets no new
/// chunks; silent for `down_after`, it is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorConfig {
    pub suspect_after: Duration,
    pub down_after: Duration,
}

impl DetectorConfig {
    /// Defaults for a local cluster: seconds, not minutes.
    pub const LOCAL: Self = Self {
        suspect_after: Duration::from_secs(3),
        down_after: Duration::from_secs(10),
    };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// URL by which the other replicas and the clients reach this process
    /// (default: from `listen`).
    #[serde(default)]
    pub advertise_url: Option<String>,
    pub data_dir: PathBuf,
    /// This process's replica id (an entry of `replicas`).
    #[serde(default = "default_replica_id")]
    pub replica_id: u64,
    /// Every metadata process of the cluster (this one included); empty: a
    /// cluster of this process alone. Every group is replicated on all of
    /// them; the lowest id initialises the cluster on first start.
    #[serde(default)]
    pub replicas: Vec<ReplicaEntry>,
    /// Replicas per group (1, 3 or 5), placed in distinct racks when the
    /// racks allow; first start only. More processes than this spread the
    /// groups (and their leaders) over more hosts.
    #[serde(default = "default_replicas_per_group")]
    pub replicas_per_group: usize,
    /// This process joins a running cluster (it is being added with
    /// `cairn meta add-replica`): it creates and initialises nothing itself.
    #[serde(default)]
    pub join: bool,
    /// First start only, the same on every replica: split points of the
    /// initial map.
    #[serde(default)]
    pub initial_splits: Vec<String>,
    #[serde(default = "default_suspect_ms")]
    pub suspect_after_ms: u64,
    #[serde(default = "default_down_ms")]
    pub down_after_ms: u64,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Mutual TLS with the rest of the cluster: the cluster CA and this
    /// process's certificate and key (docs/security.md). Without it every
    /// internal connection is plain HTTP and the secret crosses in clear.
    #[serde(default)]
    pub tls: Option<cairn_service::tls::TlsFiles>,
    /// The cluster CA's private key (PEM; its certificate is `tls.ca`):
    /// this replica admits joining hosts with join tokens (docs/security.md).
    #[serde(default)]
    pub ca_key: Option<PathBuf>,
}

/// One metadata process in `replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaEntry {
    pub id: u64,
    pub url: String,
    /// Its failure domain: a group's replicas go to distinct racks.
    #[serde(default)]
    pub rack: Option<String>,
}

fn default_replicas_per_group() -> usize {
    3
}

fn default_replica_id() -> u64 {
    1
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7300))
}

fn default_suspect_ms() -> u64 {
    DetectorConfig::LOCAL.suspect_after.as_millis() as u64
}

fn default_down_ms() -> u64 {
    DetectorConfig::LOCAL.down_after.as_millis() as u64
}

impl MetaConfig {
    /// Reads a config file (unknown keys are named in a warning).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        cairn_service::config::load(path)
    }

    /// The failure detector this config asks for.
    pub fn detector(&self) -> DetectorConfig {
        DetectorConfig {
            suspect_after: Duration::from_millis(self.suspect_after_ms),
            down_after: Duration::from_millis(self.down_after_ms),
        }
    }
}
