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
    /// URL by which the shard map names this process (default: from `listen`).
    #[serde(default)]
    pub advertise_url: Option<String>,
    pub data_dir: PathBuf,
    /// Set on every process but the primary: where the primary listens.
    #[serde(default)]
    pub primary_url: Option<String>,
    /// Primary only, first start only: split points of the initial map.
    #[serde(default)]
    pub initial_splits: Vec<String>,
    /// Primary only, first start only: owner URL of each initial shard, in
    /// order (default: the primary).
    #[serde(default)]
    pub shard_owners: Vec<String>,
    #[serde(default = "default_suspect_ms")]
    pub suspect_after_ms: u64,
    #[serde(default = "default_down_ms")]
    pub down_after_ms: u64,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
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
