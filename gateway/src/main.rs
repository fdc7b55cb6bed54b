//! `cairn-gateway`: runs the S3 gateway.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cairn_gateway::config::GatewayConfig;
use cairn_gateway::server::Gateway;
use cairn_service::listen::{Listeners, write_addr_file};
use cairn_service::{ClusterSecret, process};
use clap::Parser;

/// Runs a Cairn gateway: the S3 API over the erasure-coded data path.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config (see configs/gateway.toml). Flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The metadata replicas, comma-separated (required without --config).
    #[arg(long)]
    metadata_url: Option<String>,
    /// S3 listen address (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin listen address for /metrics and /health.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Cluster secret (prefer CAIRN_CLUSTER_SECRET or CAIRN_CLUSTER_SECRET_FILE).
    #[arg(long)]
    secret: Option<String>,
    /// Write "<s3 address> <admin address>" here once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    process::install_panic_abort();
    process::init_tracing();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::new(
            args.metadata_url
                .clone()
                .context("--metadata-url is required without --config")?,
        ),
    };
    if let Some(url) = &args.metadata_url {
        config.metadata_url = url.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(listen) = args.admin_listen {
        config.admin_listen = Some(listen);
    }
    config.add_env_credential()?;
    anyhow::ensure!(
        config.s3_tls.is_some() || config.s3_plain_http,
        "the S3 listener needs a certificate ([s3_tls] cert and key) or, to serve S3 in clear \
         text, s3_plain_http = true"
    );
    let secret = ClusterSecret::resolve(args.secret.as_deref(), config.secret_file.as_deref())?
        .with_tls(cairn_service::tls::load(config.tls.as_ref())?);
    // Inherited sockets (LISTEN_FDS) come in this order: S3, then admin.
    let mut listeners = Listeners::from_env();
    let listener = listeners.next("S3 API", config.listen).await?;
    let admin = match config.admin_listen {
        Some(addr) => Some(listeners.next("admin", addr).await?),
        None => None,
    };
    let gateway = Gateway::open(&config, &secret, listener, admin).await?;
    if let Some(path) = &args.addr_file {
        let s3 = gateway.local_addr()?;
        let admin = match gateway.admin_addr() {
            Some(addr) => addr?.to_string(),
            None => "-".into(),
        };
        write_addr_file(path, format!("{s3} {admin}"))?;
    }
    gateway.run(process::shutdown_signal()).await?;
    Ok(())
}
