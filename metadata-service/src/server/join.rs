//! The join routes: how a new host obtains its certificate (and the cluster
//! secret) with a join token (docs/security.md, "Joining a host"). They are
//! the only routes a client without a certificate may reach, and they need
//! no cluster secret: the token is the credential. Only replicas configured
//! with the CA's key (`ca_key`) admit hosts; the others answer 404, and the
//! joiner tries the next replica the token names.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_meta_api::join::{IssuedPem, JoinGrant, JoinRequest};
use cairn_service::tls::ca::{ClusterCa, Issued};
use cairn_service::tls::join::{JoinRole, JoinToken};
use cairn_service::{ApiError, ErrorCode, now_ms};

use super::Shared;

/// At most this many names on one certificate.
const MAX_NAMES: usize = 16;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/join/ca", get(ca))
        .route("/join", post(join))
}

fn issuer(shared: &Shared) -> Result<&ClusterCa, ApiError> {
    shared.options.issuer.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "this metadata replica holds no CA key (ca_key) and admits no hosts",
        )
    })
}

/// The CA's certificate: public, and checked by the joiner against the hash
/// in its token.
async fn ca(State(shared): State<Arc<Shared>>) -> Result<String, ApiError> {
    Ok(issuer(&shared)?.cert_pem().to_owned())
}

async fn join(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<JoinRequest>,
) -> Result<Json<JoinGrant>, ApiError> {
    let issuer = issuer(&shared)?;
    let refused = |why: String| {
        tracing::warn!(role = %request.role, name = %request.name, %why, "join refused");
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, why)
    };
    JoinToken::parse(&request.token)
        .and_then(|token| token.verify(&shared.secret, now_ms(), request.role))
        .map_err(|e| refused(e.to_string()))?;
    check_name(&request.name)?;
    check_names(&request.addresses)?;
    check_names(&request.s3_names)?;
    if request.role != JoinRole::Gateway && !request.s3_names.is_empty() {
        return Err(ApiError::bad_request(
            "S3 names are a gateway's: only a gateway gets an S3 certificate",
        ));
    }
    if request.addresses.is_empty() {
        return Err(ApiError::bad_request(
            "a joining host names at least one address",
        ));
    }
    let issue = |name: &str, names: &[String]| -> Result<IssuedPem, ApiError> {
        let Issued { cert_pem, key_pem } = issuer
            .issue(name, names)
            .map_err(|e| ApiError::bad_request(format!("cannot issue a certificate: {e}")))?;
        Ok(IssuedPem { cert_pem, key_pem })
    };
    let identity = issue(&request.name, &request.addresses)?;
    let s3 = match (request.role, request.s3_names.is_empty()) {
        (JoinRole::Gateway, false) => {
            Some(issue(&format!("{}-s3", request.name), &request.s3_names)?)
        }
        _ => None,
    };
    tracing::info!(
        role = %request.role,
        name = %request.name,
        addresses = ?request.addresses,
        "host admitted: certificate issued"
    );
    Ok(Json(JoinGrant {
        ca_pem: issuer.cert_pem().to_owned(),
        identity,
        s3,
        cluster_secret: shared.secret.expose().to_owned(),
        ca_key_pem: (request.role == JoinRole::Meta).then(|| issuer.key_pem()),
    }))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid host name {name:?}: 1 to 64 of A-Z a-z 0-9 - _ ."
        )))
    }
}

fn check_names(names: &[String]) -> Result<(), ApiError> {
    if names.len() > MAX_NAMES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_NAMES} names on one certificate"
        )));
    }
    match names.iter().find(|n| n.is_empty() || n.len() > 253) {
        Some(bad) => Err(ApiError::bad_request(format!("invalid address {bad:?}"))),
        None => Ok(()),
    }
}
