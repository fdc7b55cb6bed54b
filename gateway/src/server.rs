//! The gateway process: the S3 API on one listener; `/metrics`, `/health`
//! and the operator console on an admin listener (on the S3 port those
//! paths would shadow buckets named `metrics` and `health`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::error_handling::HandleError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use cairn_meta_api::client::{MetaClient, MetaError};
use cairn_service::ClusterSecret;
use cairn_service::server::{render_metrics, require_certificate};
use cairn_service::tasks::{DRAIN_DEADLINE, TaskSet};
use cairn_service::tls::{PeerIdentity, ServiceListener};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::backend::Backend;
use crate::config::{ConfigError, GatewayConfig};
use crate::metrics::GatewayMetrics;
use crate::s3::{BaseDomain, Cairn, CorsState, Users};
use crate::sse::Keyring;

/// How long a starting gateway waits for the metadata service.
const META_CONNECT_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot reach the metadata service: {0}")]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A gateway ready to serve on its listeners.
#[derive(Debug)]
pub struct Gateway {
    backend: Arc<Backend>,
    s3: Router,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    /// HTTPS on the S3 listener (`s3_tls`).
    s3_tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS on the admin listener with the cluster's identity: a client
    /// certificate is verified when presented, and required for everything
    /// but the console (a browser signs in with the cluster secret instead).
    admin_tls: Option<Arc<rustls::ServerConfig>>,
    console: crate::console::ConsoleState,
    secret: ClusterSecret,
}

impl Gateway {
    /// Connects to the metadata service (waiting for it to come up) and
    /// builds the S3 service. Users are the config's `[[credentials]]` and
    /// the catalogue's (`cairn user`); unsigned requests are anonymous and
    /// get only what a bucket policy grants everyone.
    pub async fn open(
        config: &GatewayConfig,
        secret: &ClusterSecret,
        listener: TcpListener,
        admin_listener: Option<TcpListener>,
    ) -> Result<Self, GatewayError> {
        let meta = connect_meta(&config.metadata_url, secret).await?;
        let backend = Arc::new(Backend::new(config, meta, secret, GatewayMetrics::new())?);
        let console = crate::console::ConsoleState::new(
            backend.clone(),
            config.scrubber_url.as_deref(),
            secret,
            crate::console::Classes {
                k: config.k,
                m: config.m,
                inline_max: config.inline_max_bytes,
                replicated: (config.replicated_max_bytes > 0)
                    .then_some((config.replicated_max_bytes, config.replicas)),
            },
        );

        let keyring = match &config.sse_keyring_file {
            Some(path) => Keyring::load(path)
                .map_err(|e| ConfigError::Invalid(format!("sse_keyring_file: {e}")))?,
            None => Keyring::default(),
        };
        let users =
            Users::with_catalogue(&config.credentials, Some((backend.clone(), secret.clone())));
        let cairn = Cairn::new(
            backend.clone(),
            &config.region,
            config.lifecycle_day_ms,
            Arc::new(keyring),
            users.clone(),
        )
        .with_default_ownership(config.default_object_ownership);
        let s3_tls = config
            .s3_tls
            .as_ref()
            .map(cairn_service::tls::server_only)
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("s3_tls: {e}")))?;
        let access = cairn
            .access()
            .over_tls(s3_tls.is_some())
            .sse_c_in_clear(config.sse_c_over_plain_http);
        let cors = CorsState::new(
            cairn.clone(),
            config.base_domain.as_deref().map(BaseDomain::new),
        );
        let mut builder = S3ServiceBuilder::new(cairn);
        builder.set_auth(users);
        builder.set_access(access);
        if let Some(domain) = &config.base_domain {
            builder.set_host(BaseDomain::new(domain));
        }
        let service = HandleError::new(builder.build(), |err: s3s::HttpError| async move {
            tracing::error!(?err, "S3 service error");
            StatusCode::INTERNAL_SERVER_ERROR
        });
        let front = Front {
            limit: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
            cors,
        };
        let s3 = Router::new()
            .fallback_service(service)
            .layer(axum::middleware::from_fn_with_state(front, front_door))
            .layer(tower_http::trace::TraceLayer::new_for_http());
        Ok(Self {
            backend,
            s3,
            listener,
            admin_listener,
            s3_tls,
            admin_tls: secret
                .tls()
                .map(|tls| tls.server_config_admitting_joiners()),
            console,
            secret: secret.clone(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub fn admin_addr(&self) -> Option<std::io::Result<std::net::SocketAddr>> {
        self.admin_listener.as_ref().map(TcpListener::local_addr)
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = ?self.listener.local_addr(), "gateway serving S3");
        let tasks = TaskSet::new();
        if let Some(listener) = self.admin_listener {
            let internal = Router::new()
                .route("/metrics", get(metrics))
                .route("/health", get(|| async { "ok" }))
                .with_state(self.backend.clone())
                // With the cluster's TLS, only clients with its certificate
                // (Prometheus gets one); browsers reach the console alone.
                .layer(axum::middleware::from_fn_with_state(
                    self.secret.clone(),
                    require_certificate,
                ));
            let app = internal
                .merge(self.console.router())
                .into_make_service_with_connect_info::<PeerIdentity>();
            tasks.spawn(
                "console-history",
                self.console.clone().sample(tasks.token()),
            );
            let stop = tasks.token();
            let listener = ServiceListener::new(listener, self.admin_tls)?;
            tasks.spawn("admin-listener", async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(err) = served {
                    tracing::error!(%err, "admin listener failed");
                }
            });
        }
        // The peer address is a policy condition key (`aws:SourceIp`);
        // `tap_io` keeps axum's `ConnectInfo<SocketAddr>` for our listener.
        let listener = ServiceListener::new(self.listener, self.s3_tls)?.tap_io(|_| {});
        let served = axum::serve(
            listener,
            self.s3
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        tasks.shutdown(DRAIN_DEADLINE).await;
        tracing::info!("gateway stopped");
        served
    }
}

async fn metrics(State(backend): State<Arc<Backend>>) -> impl IntoResponse {
    render_metrics(backend.metrics.registry())
}

/// What every S3 request passes before s3s (one middleware: each costs a
/// boxed future and a state clone per request).
#[derive(Debug, Clone)]
struct Front {
    limit: Arc<Semaphore>,
    cors: CorsState,
}

/// Holds a permit for the whole request, so at most the configured number
/// of requests (and their stripe buffers) are in memory at once; then
/// CORS (preflights answered here, cross-origin responses decorated).
async fn front_door(State(front): State<Front>, request: Request, next: Next) -> Response {
    match front.limit.acquire_owned().await {
        Ok(_permit) => crate::s3::cors(&front.cors, request, next).await,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn connect_meta(url: &str, secret: &ClusterSecret) -> Result<MetaClient, MetaError> {
    let started = Instant::now();
    loop {
        match MetaClient::connect(url, secret).await {
            Ok(client) => return Ok(client),
            Err(err) if err.is_unavailable() && started.elapsed() < META_CONNECT_PATIENCE => {
                tracing::info!(error = %err, "waiting for the metadata service");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => return Err(err),
        }
    }
}
