//! `cairn-meta`: runs one metadata process.

use std::path::PathBuf;

use anyhow::Context;
use cairn_metadata_service::MetaServer;
use cairn_metadata_service::config::{MetaConfig, options};
use cairn_service::listen::{Listeners, write_addr_file};
use cairn_service::{ClusterSecret, process};
use clap::Parser;

/// Runs a Cairn metadata process: one replica of each Raft group (catalogue
/// shards, cluster state) placed on it.
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
    /// Cluster secret (prefer CAIRN_CLUSTER_SECRET or CAIRN_CLUSTER_SECRET_FILE:
    /// command lines are visible to other users).
    #[arg(long)]
    secret: Option<String>,
    /// Write the bound address here once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    process::install_panic_abort();
    process::init_tracing();
    let args = Args::parse();
    let mut config = MetaConfig::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    let secret = ClusterSecret::resolve(args.secret.as_deref(), config.secret_file.as_deref())?
        .with_tls(cairn_service::tls::load(config.tls.as_ref())?);
    let listener = Listeners::from_env()
        .next("metadata API", config.listen)
        .await?;
    let bound = listener.local_addr()?;
    let mut options = options(&config, bound)?;
    options.issuer = match (&config.ca_key, &config.tls) {
        (Some(key), Some(tls)) => Some(std::sync::Arc::new(
            cairn_service::tls::ca::ClusterCa::from_files(&tls.ca, key)
                .context("load the cluster CA (ca_key)")?,
        )),
        (Some(_), None) => anyhow::bail!("ca_key needs [tls] (its ca is the CA's certificate)"),
        (None, _) => None,
    };
    let server = MetaServer::open(options, secret, listener)
        .await
        .context("open the metadata service")?;
    if let Some(path) = &args.addr_file {
        write_addr_file(path, bound)?;
    }
    server.run(process::shutdown_signal()).await?;
    Ok(())
}
