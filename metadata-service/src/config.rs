//! Configuration of a metadata process (TOML; unknown fields tolerated).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::liveness::DetectorConfig;
use crate::server::{MetaOptions, Role};
use crate::shard_map::{ShardMap, ShardMapError};

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid initial shard map: {0}")]
    Map(#[from] ShardMapError),
}

impl MetaConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Resolves the options a server starts with, given the bound address.
    pub fn options(&self, bound: SocketAddr) -> Result<MetaOptions, ConfigError> {
        let advertise_url = self
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let role = match &self.primary_url {
            Some(primary_url) => Role::Member {
                primary_url: primary_url.clone(),
            },
            None => {
                let owners: Vec<&str> = if self.shard_owners.is_empty() {
                    vec![advertise_url.as_str()]
                } else {
                    self.shard_owners.iter().map(String::as_str).collect()
                };
                let splits: Vec<&str> = self.initial_splits.iter().map(String::as_str).collect();
                Role::Primary {
                    initial_map: ShardMap::with_splits(&splits, &owners)?,
                }
            }
        };
        Ok(MetaOptions {
            data_dir: self.data_dir.clone(),
            advertise_url,
            role,
            detector: DetectorConfig {
                suspect_after: Duration::from_millis(self.suspect_after_ms),
                down_after: Duration::from_millis(self.down_after_ms),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_into_a_primary_with_two_shards() {
        let config: MetaConfig = toml::from_str(&format!(
            "{}\nunknown_future_field = true\n",
            include_str!("../../configs/meta.toml")
        ))
        .expect("parse");
        let options = config
            .options("127.0.0.1:7300".parse().expect("addr"))
            .expect("options");
        match options.role {
            Role::Primary { initial_map } => assert_eq!(initial_map.shards.len(), 2),
            Role::Member { .. } => panic!("expected the primary"),
        }
    }
}
