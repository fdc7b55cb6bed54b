//! `cairn-node`: runs one storage node.

use std::path::PathBuf;

use anyhow::Context;
use cairn_core::ids::{NodeId, RackId};
use cairn_service::listen::{Listeners, write_addr_file};
use cairn_service::{ClusterSecret, process};
use cairn_storage_node::{NodeConfig, StorageNode};
use clap::Parser;

/// Runs a Cairn storage node: durable, self-verifying chunk storage.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file (see configs/node.toml). Flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Node id (required without --config).
    #[arg(long)]
    id: Option<NodeId>,
    /// Rack (failure domain) of this node (required without --config).
    #[arg(long)]
    rack: Option<RackId>,
    /// Data directory (required without --config).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:7401 (port 0 picks a free one).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// URL other services use to reach this node.
    #[arg(long)]
    advertise_url: Option<String>,
    /// Capacity offered to the cluster, in bytes.
    #[arg(long)]
    capacity_bytes: Option<u64>,
    /// Cluster secret (prefer CAIRN_CLUSTER_SECRET or CAIRN_CLUSTER_SECRET_FILE:
    /// command lines are visible to other users).
    #[arg(long)]
    secret: Option<String>,
    /// Metadata replicas to register and heartbeat with (comma-separated).
    #[arg(long)]
    metadata_url: Option<String>,
    /// Write the bound address to this file once listening (for scripts and
    /// tests that use port 0). A socket inherited from a supervisor
    /// (`LISTEN_FDS`) is used instead of binding `--listen`.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

fn config_from(args: &Args) -> anyhow::Result<NodeConfig> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::new(
            args.id
                .clone()
                .context("--id is required without --config")?,
            args.rack
                .clone()
                .context("--rack is required without --config")?,
            args.data_dir
                .clone()
                .context("--data-dir is required without --config")?,
        ),
    };
    if let Some(id) = &args.id {
        config.id = id.clone();
    }
    if let Some(rack) = &args.rack {
        config.rack = rack.clone();
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = &args.advertise_url {
        config.advertise_url = Some(url.clone());
    }
    if let Some(url) = &args.metadata_url {
        config.metadata_url = Some(url.clone());
    }
    if let Some(capacity) = args.capacity_bytes {
        config.capacity_bytes = Some(capacity);
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    process::install_panic_abort();
    process::init_tracing();
    let args = Args::parse();
    let config = config_from(&args)?;
    let secret = ClusterSecret::resolve(args.secret.as_deref(), config.secret_file.as_deref())?
        .with_tls(cairn_service::tls::load(config.tls.as_ref())?);
    let listener = Listeners::from_env()
        .next("node API", config.listen)
        .await?;
    let node = StorageNode::open(config, secret, listener).context("open chunk store")?;
    if let Some(path) = &args.addr_file {
        write_addr_file(path, node.local_addr()?)?;
    }
    node.run(process::shutdown_signal()).await?;
    Ok(())
}
