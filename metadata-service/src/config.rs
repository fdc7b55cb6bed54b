//! From a metadata process's config file to the options its server starts
//! with (the file format itself is `cairn_meta_api::MetaConfig`).

use std::net::SocketAddr;

pub use cairn_meta_api::config::{DetectorConfig, MetaConfig};
use cairn_meta_api::shard_map::ShardMapError;

use crate::server::MetaOptions;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid initial shard map: {0}")]
    Map(#[from] ShardMapError),
    #[error(transparent)]
    File(#[from] cairn_service::config::ConfigError),
    #[error(
        "replicas_per_group must be 1, 3 or 5 (an odd number, so a majority is well defined), not {0}"
    )]
    ReplicasPerGroup(usize),
}

/// Resolves the options a server starts with, given the bound address.
pub fn options(config: &MetaConfig, bound: SocketAddr) -> Result<MetaOptions, ConfigError> {
    let advertise_url = config.advertise_url.clone().unwrap_or_else(|| {
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{bound}")
    });
    let replicas = if config.replicas.is_empty() {
        [(config.replica_id, advertise_url.clone())].into()
    } else {
        config
            .replicas
            .iter()
            .map(|r| (r.id, r.url.trim_end_matches('/').to_owned()))
            .collect()
    };
    if ![1, 3, 5].contains(&config.replicas_per_group) {
        return Err(ConfigError::ReplicasPerGroup(config.replicas_per_group));
    }
    let racks = config
        .replicas
        .iter()
        .filter_map(|r| r.rack.clone().map(|rack| (r.id, rack)))
        .collect();
    let options = MetaOptions {
        data_dir: config.data_dir.clone(),
        advertise_url,
        replica_id: config.replica_id,
        replicas,
        initial_splits: config.initial_splits.clone(),
        detector: config.detector(),
        join: config.join,
        racks,
        replicas_per_group: config.replicas_per_group,
        issuer: None,
    };
    options.initial_map()?;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_into_a_single_replica_with_two_shards() {
        let config: MetaConfig = toml::from_str(&format!(
            "{}\nunknown_future_field = true\n",
            include_str!("../../configs/meta.toml")
        ))
        .expect("parse");
        let options = options(&config, "127.0.0.1:7300".parse().expect("addr")).expect("options");
        assert_eq!(options.initial_map().expect("map").shards.len(), 2);
        assert_eq!(options.replicas.len(), 1);
        assert_eq!(options.replica_id, 1);
        let mut even = config.clone();
        even.replicas_per_group = 2;
        let bound = "127.0.0.1:7300".parse().expect("addr");
        assert!(matches!(
            super::options(&even, bound),
            Err(ConfigError::ReplicasPerGroup(2))
        ));
    }
}
