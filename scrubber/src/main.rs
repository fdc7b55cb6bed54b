//! `cairn-scrubber`: scrub jobs, repair and garbage collection.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use cairn_scrubber::Scrubber;
use cairn_scrubber::config::ScrubberConfig;
use cairn_storage_node::{ClusterSecret, service};
use clap::Parser;
use tokio::net::TcpListener;

/// Runs the Cairn scrubber: verifies chunks, rebuilds lost and corrupt
/// ones, collects garbage.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config (see configs/scrubber.toml).
    #[arg(long)]
    config: PathBuf,
    /// Override the admin listen address (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Cluster secret (prefer CAIRN_CLUSTER_SECRET or CAIRN_CLUSTER_SECRET_FILE).
    #[arg(long)]
    secret: Option<String>,
    /// Write the bound address here once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::install_panic_abort();
    service::init_tracing();
    let args = Args::parse();
    let mut config = ScrubberConfig::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let secret = ClusterSecret::resolve(args.secret.as_deref(), config.secret_file.as_deref())?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("bind {}", config.listen))?;
    let scrubber = Scrubber::open(config, secret, listener).await?;
    if let Some(path) = &args.addr_file {
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, scrubber.local_addr()?.to_string()).context("write addr file")?;
        std::fs::rename(&temp, path).context("write addr file")?;
    }
    scrubber.run(service::shutdown_signal()).await?;
    Ok(())
}
