//! Cairn's scrubber: the part that keeps data alive.
//!
//! - [`jobs`]: scheduled scrub jobs verify every chunk where it lives
//!   (Merkle roots, 32 bytes per chunk over the network), pinpoint corrupt
//!   blocks, and checkpoint their cursor.
//! - [`lost`]: a node down past the grace period has its chunks queued.
//! - [`repair`]: the queue, most endangered first, rebuilt from k
//!   survivors onto rack-safe replacements, with read amplification
//!   accounted.
//! - [`gc`]: unreferenced chunks deleted after a grace period.
//! - [`server`]: the admin API; [`client`]: its typed client.

pub mod context;
pub mod gc;
pub mod jobs;
pub mod lifecycle;
pub mod lost;
pub mod metrics;
mod owners;
pub mod rate;
pub mod rebalance;
pub mod repair;
pub mod server;
pub mod store;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use cairn_scrubber_api::{config, model};

use cairn_meta_api::client::{MetaClient, MetaError};
use cairn_service::ClusterSecret;
use cairn_service::tasks::{DRAIN_DEADLINE, TaskSet};
use cairn_service::tls::ServiceListener;
use tokio::net::TcpListener;

use crate::config::ScrubberConfig;
use crate::context::Context;
use crate::store::{ScrubStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ScrubberError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot reach the metadata service: {0}")]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A scrubber ready to run.
#[derive(Debug)]
pub struct Scrubber {
    ctx: Arc<Context>,
    secret: ClusterSecret,
    listener: TcpListener,
}

impl Scrubber {
    /// Opens the store and connects to the metadata service (waiting up to
    /// 30 s for it).
    pub async fn open(
        config: ScrubberConfig,
        secret: ClusterSecret,
        listener: TcpListener,
    ) -> Result<Self, ScrubberError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = ScrubStore::open(&config.data_dir)?;
        let started = Instant::now();
        let meta = loop {
            match MetaClient::connect(&config.metadata_url, &secret).await {
                Ok(meta) => break meta,
                Err(err) if err.is_unavailable() && started.elapsed() < Duration::from_secs(30) => {
                    tracing::info!(error = %err, "waiting for the metadata service");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(err) => return Err(err.into()),
            }
        };
        let ctx = Arc::new(Context::new(meta, store, config, &secret));
        Ok(Self {
            ctx,
            secret,
            listener,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Runs the job runner, the node-loss watcher, the repair workers,
    /// garbage collection and the admin API until `shutdown` resolves.
    /// Everything durable is in the store, so stopping at any point is
    /// safe: jobs resume from their checkpoints, queued repairs stay queued.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = ?self.listener.local_addr(), "scrubber serving");
        let tasks = TaskSet::new();
        let ctx = &self.ctx;
        if let Err(err) = lifecycle::ensure_job(ctx) {
            tracing::error!(error = %err, "cannot schedule the lifecycle job");
        }
        tasks.spawn("scrub-jobs", jobs::run_jobs(ctx.clone(), tasks.token()));
        tasks.spawn("node-loss", lost::watch_nodes(ctx.clone(), tasks.token()));
        tasks.spawn("repair", repair::run_repairs(ctx.clone(), tasks.token()));
        tasks.spawn("gc", gc::collect_garbage(ctx.clone(), tasks.token()));
        let app = server::router(self.ctx.clone(), self.secret.clone());
        let listener = ServiceListener::new(self.listener, self.secret.server_tls())?;
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        let drained = tasks.shutdown(DRAIN_DEADLINE).await;
        tracing::info!(
            finished = drained.finished,
            aborted = drained.aborted,
            "background tasks stopped"
        );
        tracing::info!("scrubber stopped");
        served
    }
}
