//! The config files of a dev cluster, built from the services' own config
//! types (a renamed field is a compile error here, not a silently ignored
//! key at start-up).

use std::net::SocketAddr;
use std::path::Path;

use cairn_gateway::config::{Credential, GatewayConfig};
use cairn_meta_api::MetaConfig;
use cairn_meta_api::config::ReplicaEntry;
use cairn_scrubber_api::ScrubberConfig;
use serde::Serialize;

use super::{DevError, DevOptions, io};

/// Metadata replica `id` (from 1) of those listening on `all`: two prefix
/// shards, every group on every replica, short failure detection.
pub(crate) fn meta(
    options: &DevOptions,
    data: &Path,
    id: u64,
    all: &[SocketAddr],
    scheme: &str,
) -> MetaConfig {
    let listen = all[(id - 1) as usize];
    MetaConfig {
        listen,
        advertise_url: Some(format!("{scheme}://{listen}")),
        data_dir: data.join(format!("meta-{id}")),
        replica_id: id,
        replicas: all
            .iter()
            .enumerate()
            .map(|(i, addr)| ReplicaEntry {
                id: i as u64 + 1,
                url: format!("{scheme}://{addr}"),
                // Each replica a failure domain of its own, as on hosts.
                rack: Some(format!("meta-rack-{}", i + 1)),
            })
            .collect(),
        replicas_per_group: 3,
        join: false,
        initial_splits: vec!["m".into()],
        suspect_after_ms: options.suspect_after.as_millis() as u64,
        down_after_ms: options.down_after.as_millis() as u64,
        secret_file: None,
        tls: None,
        ca_key: None,
    }
}

pub(crate) fn gateway(
    options: &DevOptions,
    meta_url: &str,
    s3: SocketAddr,
    admin: SocketAddr,
    credential: Credential,
) -> GatewayConfig {
    let mut config = GatewayConfig::new(meta_url);
    config.listen = s3;
    config.admin_listen = Some(admin);
    config.credentials = std::iter::once(credential)
        .chain(options.users.iter().cloned())
        .collect();
    config.k = options.k;
    config.m = options.m;
    config.base_domain = options.s3_domain.clone();
    config.inline_max_bytes = options.inline_max;
    config.replicated_max_bytes = options.replicated_max;
    config.short_circuit = options.short_circuit;
    config.lifecycle_day_ms = options.lifecycle_day.as_millis() as u64;
    config.region = options.region.clone();
    config.default_object_ownership = options.default_object_ownership;
    config
}

/// Scrubber: short grace periods, so a killed node heals while you watch.
pub(crate) fn scrubber(
    options: &DevOptions,
    data: &Path,
    meta_url: &str,
    listen: SocketAddr,
) -> ScrubberConfig {
    let mut config = ScrubberConfig::new(meta_url, data.join("scrubber"));
    config.listen = listen;
    config.repair_after_ms = options.repair_after.as_millis() as u64;
    config.gc_grace_ms = options.gc_grace.as_millis() as u64;
    // Sweeps a few times per grace period, so an orphan goes about one
    // grace period after it appears.
    config.gc_sweep_interval_ms = (config.gc_grace_ms / 4).clamp(500, 60_000);
    config.poll_interval_ms = 500;
    config.lifecycle_day_ms = options.lifecycle_day.as_millis() as u64;
    config.lifecycle_every_secs = options.lifecycle_every.as_secs().max(1);
    config
}

/// Writes a config as TOML.
pub(crate) fn write(path: &Path, config: &impl Serialize) -> Result<(), DevError> {
    let what = || format!("write {}", path.display());
    let text = toml::to_string(config).map_err(|e| io(what())(std::io::Error::other(e)))?;
    std::fs::write(path, text).map_err(io(what()))
}

/// The address an existing data dir's metadata service was configured
/// with (its shard map names it, so it must not change).
pub(crate) fn previous_meta_addr(path: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(path).ok()?;
    cairn_service::config::parse::<MetaConfig>(&text)
        .ok()
        .map(|(config, _)| config.listen)
}
