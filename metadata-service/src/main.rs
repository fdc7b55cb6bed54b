//! `cairn-meta`: runs one metadata process.

use std::path::PathBuf;

use anyhow::Context;
use cairn_metadata_service::MetaServer;
use cairn_metadata_service::config::MetaConfig;
use cairn_storage_node::service;
use clap::Parser;
use tokio::net::TcpListener;

/// Runs a Cairn metadata process: catalogue shards and (on the primary)
/// cluster membership.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config (see configs/meta.toml).
    #[arg(long)]
    config: PathBuf,
    /// Override the listen address (port 0 picks a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Override the data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Cluster secret (prefer CAIRN_CLUSTER_SECRET or CAIRN_CLUSTER_SECRET_FILE).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Write the bound address here once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

fn secret(args: &Args, config: &MetaConfig) -> anyhow::Result<String> {
    if let Some(secret) = &args.secret {
        return Ok(secret.clone());
    }
    let file = config
        .secret_file
        .clone()
        .or_else(|| std::env::var_os("CAIRN_CLUSTER_SECRET_FILE").map(PathBuf::from))
        .context("no cluster secret: pass --secret, or set CAIRN_CLUSTER_SECRET or CAIRN_CLUSTER_SECRET_FILE")?;
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
    Ok(text.trim().to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::install_panic_abort();
    service::init_tracing();
    let args = Args::parse();
    let mut config = MetaConfig::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    let secret = secret(&args, &config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("bind {}", config.listen))?;
    let bound = listener.local_addr()?;
    let options = config.options(bound)?;
    let server = MetaServer::open(options, &secret, listener).await?;
    if let Some(path) = &args.addr_file {
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, bound.to_string())?;
        std::fs::rename(&temp, path)?;
    }
    server.run(service::shutdown_signal()).await?;
    Ok(())
}
