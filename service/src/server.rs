//! Server-side plumbing: the cluster-secret middleware, Prometheus
//! rendering, and blocking work kept off the reactor.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::SECRET_HEADER;
use crate::error::{ApiError, ErrorCode};
use crate::secret::ClusterSecret;

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
            ErrorCode::Unauthorized,
            format!("the cluster secret is required ({SECRET_HEADER} header)"),
        )
        .into_response(),
        Some(candidate) if !secret.matches(candidate) => ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "wrong cluster secret",
        )
        .into_response(),
        Some(_) => next.run(request).await,
    }
}

/// The Prometheus text exposition of a registry, as an HTTP response body.
/// Middleware for the routes of a listener that also admits TLS clients
/// without a certificate (a metadata replica's, for joining hosts; a
/// gateway's admin listener, for the console's browsers): with the cluster's
/// TLS (`State(secret)` has an identity), a client that presented no
/// certificate from the cluster CA is answered 401 `unauthorized`.
pub async fn require_certificate(
    State(secret): State<ClusterSecret>,
    request: Request,
    next: Next,
) -> Response {
    let certified = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::tls::PeerIdentity>>()
        .is_some_and(|axum::extract::ConnectInfo(peer)| peer.certified);
    if secret.tls().is_some() && !certified {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "a client certificate from the cluster CA is required",
        )
        .into_response();
    }
    next.run(request).await
}

pub fn render_metrics(registry: &Registry) -> impl IntoResponse + use<> {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding of gathered metrics");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
