//! From a metadata process's config file to the options its server starts
//! with (the file format itself is `cairn_meta_api::MetaConfig`).

use std::net::SocketAddr;

pub use cairn_meta_api::config::{DetectorConfig, MetaConfig};
use cairn_meta_api::shard_map::{ShardMap, ShardMapError};

use crate::server::{MetaOptions, Role};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid initial shard map: {0}")]
    Map(#[from] ShardMapError),
    #[error(transparent)]
    File(#[from] cairn_service::config::ConfigError),
}

/// Resolves the options a server starts with, given the bound address.
pub fn options(config: &MetaConfig, bound: SocketAddr) -> Result<MetaOptions, ConfigError> {
    let advertise_url = config
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let role = match &config.primary_url {
        Some(primary_url) => Role::Member {
            primary_url: primary_url.clone(),
        },
        None => {
            let owners: Vec<&str> = if config.shard_owners.is_empty() {
                vec![advertise_url.as_str()]
            } else {
                config.shard_owners.iter().map(String::as_str).collect()
            };
            let splits: Vec<&str> = config.initial_splits.iter().map(String::as_str).collect();
            Role::Primary {
                initial_map: ShardMap::with_splits(&splits, &owners)?,
            }
        }
    };
    Ok(MetaOptions {
        data_dir: config.data_dir.clone(),
        advertise_url,
        role,
        detector: config.detector(),
    })
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
        let options = options(&config, "127.0.0.1:7300".parse().expect("addr")).expect("options");
        match options.role {
            Role::Primary { initial_map } => assert_eq!(initial_map.shards.len(), 2),
            Role::Member { .. } => panic!("expected the primary"),
        }
    }
}
