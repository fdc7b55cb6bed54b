//! Scrubber configuration (TOML; unknown keys are named in a warning and
//! otherwise ignored). In the API crate so that `cairn dev` writes this type.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_service::config::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScrubberConfig {
    /// Admin API (`/scrub/jobs`, `/repair/status`, `/metrics`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The metadata replicas (one URL or several, comma-separated).
    pub metadata_url: String,
    /// RocksDB with jobs, checkpoints, the repair queue and counters.
    pub data_dir: PathBuf,
    /// How long a node must stay `down` before its chunks are rebuilt
    /// elsewhere: a node back within this grace period costs nothing.
    #[serde(default = "default_repair_after_ms")]
    pub repair_after_ms: u64,
    /// Repair reads at most this many bytes per second (0: unlimited).
    #[serde(default = "default_repair_rate")]
    pub repair_rate_bytes_per_sec: u64,
    /// Chunks rebuilt at once.
    #[serde(default = "default_repair_concurrency")]
    pub repair_concurrency: usize,
    /// Most chunks queued for repair; more wait to be queued.
    #[serde(default = "default_queue_limit")]
    pub repair_queue_limit: usize,
    /// A chunk is deleted only after it has been garbage this long: since
    /// the catalogue queued it (overwrite, delete, abort, move), or since a
    /// sweep first found it unreferenced. Must exceed the longest GET (a
    /// reader may still stream an overwritten version) and the longest
    /// upload (chunks are written before their manifest is committed).
    #[serde(default = "default_gc_grace_ms")]
    pub gc_grace_ms: u64,
    /// How often every node's chunk list is compared with the catalogue's
    /// reverse index, to find chunks nothing references (a gateway that
    /// died mid-PUT). A sweep lists every chunk, so it is rare by default.
    #[serde(default = "default_gc_sweep_interval_ms")]
    pub gc_sweep_interval_ms: u64,
    /// How often the failure feed, the queue and garbage are looked at.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// How often the lifecycle job runs.
    #[serde(default = "default_lifecycle_every_secs")]
    pub lifecycle_every_secs: u64,
    /// The length of a lifecycle "day" (tests scale it down; S3 rules
    /// count in days).
    #[serde(default = "default_lifecycle_day_ms")]
    pub lifecycle_day_ms: u64,
    /// Lifecycle actions (catalogue writes) per second at most.
    #[serde(default = "default_lifecycle_ops")]
    pub lifecycle_ops_per_sec: u64,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Mutual TLS with the rest of the cluster: the cluster CA and this
    /// process's certificate and key (docs/security.md). Without it every
    /// internal connection is plain HTTP and the secret crosses in clear.
    #[serde(default)]
    pub tls: Option<cairn_service::tls::TlsFiles>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7500))
}

fn default_repair_after_ms() -> u64 {
    15 * 60 * 1000
}

fn default_repair_rate() -> u64 {
    200 << 20
}

fn default_repair_concurrency() -> usize {
    2
}

fn default_queue_limit() -> usize {
    1_000_000
}

fn default_gc_grace_ms() -> u64 {
    60 * 60 * 1000
}

fn default_gc_sweep_interval_ms() -> u64 {
    10 * 60 * 1000
}

fn default_lifecycle_every_secs() -> u64 {
    3600
}

fn default_lifecycle_day_ms() -> u64 {
    86_400_000
}

fn default_lifecycle_ops() -> u64 {
    200
}

fn default_poll_ms() -> u64 {
    1000
}

impl ScrubberConfig {
    pub fn new(metadata_url: impl Into<String>, data_dir: PathBuf) -> Self {
        Self {
            listen: default_listen(),
            metadata_url: metadata_url.into(),
            data_dir,
            repair_after_ms: default_repair_after_ms(),
            repair_rate_bytes_per_sec: default_repair_rate(),
            repair_concurrency: default_repair_concurrency(),
            repair_queue_limit: default_queue_limit(),
            gc_grace_ms: default_gc_grace_ms(),
            gc_sweep_interval_ms: default_gc_sweep_interval_ms(),
            poll_interval_ms: default_poll_ms(),
            lifecycle_every_secs: default_lifecycle_every_secs(),
            lifecycle_day_ms: default_lifecycle_day_ms(),
            lifecycle_ops_per_sec: default_lifecycle_ops(),
            secret_file: None,
            tls: None,
        }
    }

    /// Reads a config file (unknown keys are named in a warning).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        cairn_service::config::load(path)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }

    pub fn gc_sweep_interval(&self) -> Duration {
        Duration::from_millis(self.gc_sweep_interval_ms.max(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/scrubber.toml"),
        )
        .expect("configs/scrubber.toml");
        let config: ScrubberConfig = toml::from_str(&text).expect("parses");
        assert_eq!(config.repair_after_ms, 15 * 60 * 1000);
        assert_eq!(config.listen.port(), 7500);
    }
}
