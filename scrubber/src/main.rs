//! `cairn-scrubber`: scrub jobs, repair and garbage collection.

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_scrubber::Scrubber;
use cairn_scrubber::config::ScrubberConfig;
use cairn_service::listen::{Listeners, write_addr_file};
use cairn_service::{ClusterSecret, process};
use clap::Parser;

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
    process::install_panic_abort();
    process::init_tracing();
    let args = Args::parse();
    let mut config = ScrubberConfig::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let secret = ClusterSecret::resolve(args.secret.as_deref(), config.secret_file.as_deref())?
        .with_tls(cairn_service::tls::load(config.tls.as_ref())?);
    let listener = Listeners::from_env()
        .next("scrubber admin API", config.listen)
        .await?;
    let scrubber = Scrubber::open(config, secret, listener).await?;
    if let Some(path) = &args.addr_file {
        write_addr_file(path, scrubber.local_addr()?)?;
    }
    scrubber.run(process::shutdown_signal()).await?;
    Ok(())
}
