//! Plumbing shared by Cairn's HTTP services (storage node, metadata service,
//! and the gateway and scrubber to come): the JSON error type, cluster-secret
//! authentication, Prometheus rendering, and process setup (tracing, panic =
//! abort, shutdown on SIGINT/SIGTERM).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_core::node_api::{ErrorBody, SECRET_HEADER};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::secret::ClusterSecret;

/// An API failure: an HTTP status and a JSON [`ErrorBody`] with a stable code.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                block: None,
            },
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Names the block an error is about.
    pub fn with_block(mut self, block: Option<u64>) -> Self {
        self.body.block = block;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Runs blocking work (file or database I/O) off the reactor, inside the
/// current tracing span, and turns its error into an API error.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(Into::into)
}

/// Middleware: every request must carry the cluster secret, in
/// `x-cairn-secret` or as `Authorization: Bearer`. Missing → 401, wrong →
/// 403; the comparison is constant-time.
pub async fn require_secret(
    State(secret): State<ClusterSecret>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(SECRET_HEADER)
        .map(HeaderValue::as_bytes)
        .or_else(|| {
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        });
    match presented {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("the cluster secret is required ({SECRET_HEADER} header)"),
        )
        .into_response(),
        Some(candidate) if !secret.matches(candidate) => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", "wrong cluster secret")
                .into_response()
        }
        Some(_) => next.run(request).await,
    }
}

/// The Prometheus text exposition of a registry, as an HTTP response body.
pub fn render_metrics(registry: &Registry) -> impl IntoResponse + use<> {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding of gathered metrics");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .init();
}

/// Makes a panic in any task abort the process: a server with a dead task
/// would otherwise keep answering half-working.
pub fn install_panic_abort() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}
