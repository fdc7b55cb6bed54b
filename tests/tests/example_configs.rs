//! The multi-host example configs (`configs/hosts-3`, `configs/hosts-12`)
//! are what an operator copies: every file must parse with no key the
//! service would ignore, use TLS and `https://` everywhere, and agree with
//! the others (the replica list, the metadata URLs every process dials, a
//! replica per rack).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cairn_gateway::config::GatewayConfig;
use cairn_meta_api::MetaConfig;
use cairn_node_api::NodeConfig;
use cairn_scrubber_api::ScrubberConfig;
use serde::de::DeserializeOwned;

fn layouts() -> Vec<PathBuf> {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    ["hosts-3", "hosts-12"]
        .iter()
        .map(|d| configs.join(d))
        .collect()
}

fn parse<T: DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (config, ignored) = cairn_service::config::parse::<T>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        ignored.is_empty(),
        "{}: keys the service ignores: {ignored:?}",
        path.display()
    );
    config
}

fn urls(list: &str) -> BTreeSet<String> {
    list.split(',').map(|u| u.trim().to_owned()).collect()
}

#[test]
fn every_layout_parses_uses_tls_and_agrees_with_itself() {
    for dir in layouts() {
        let meta: MetaConfig = parse(&dir.join("meta.toml"));
        let node_file = std::fs::read_dir(&dir)
            .expect("layout dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("node-"))
            })
            .expect("a node config");
        let node: NodeConfig = parse(&node_file);
        // The systemd unit `cairn-node@ID` reads node-ID.toml.
        assert_eq!(
            node_file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            Some(format!("node-{}.toml", node.id)),
            "{}",
            dir.display()
        );
        let gateway: GatewayConfig = parse(&dir.join("gateway.toml"));
        let scrubber: ScrubberConfig = parse(&dir.join("scrubber.toml"));
        let name = dir.display();

        assert!(meta.tls.is_some() && node.tls.is_some(), "{name}");
        assert!(gateway.tls.is_some() && scrubber.tls.is_some(), "{name}");
        assert!(
            gateway.s3_tls.is_some() && !gateway.s3_plain_http,
            "{name}: S3 in clear text"
        );

        let replicas: BTreeSet<String> = meta.replicas.iter().map(|r| r.url.clone()).collect();
        assert_eq!(replicas.len(), meta.replicas_per_group, "{name}");
        assert!(
            replicas.iter().all(|u| u.starts_with("https://")),
            "{name}: {replicas:?}"
        );
        let racks: BTreeSet<_> = meta.replicas.iter().map(|r| r.rack.clone()).collect();
        assert_eq!(
            racks.len(),
            replicas.len(),
            "{name}: two replicas share a rack"
        );
        assert_eq!(
            meta.advertise_url.as_deref(),
            Some(meta.replicas[0].url.as_str()),
            "{name}: replica 1 advertises another URL than the list has"
        );
        // Every process dials the same replicas.
        let dialled = node.metadata_url.as_deref().map(urls).unwrap_or_default();
        assert_eq!(dialled, replicas, "{name}: node");
        assert_eq!(urls(&gateway.metadata_url), replicas, "{name}: gateway");
        assert_eq!(urls(&scrubber.metadata_url), replicas, "{name}: scrubber");
        assert!(
            node.advertise_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
            "{name}: node"
        );
        // The metadata service accepts it as a start-up config.
        cairn_metadata_service::config::options(&meta, meta.listen)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
