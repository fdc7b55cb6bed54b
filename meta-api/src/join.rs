//! Joining a host to a TLS cluster (`cairn node join --token …` and its
//! siblings): the wire types of the metadata service's join routes and the
//! joiner's side of the exchange (docs/security.md, "Joining a host").
//!
//! 1. `GET /join/ca` over a connection that cannot be verified yet; the
//!    answer is accepted only if its SHA-256 is the one in the token.
//! 2. `POST /join` with the token, verifying the replica against that CA:
//!    the replica checks the token and answers with a certificate for the
//!    host's name and addresses, issued by the cluster CA, and the cluster
//!    secret (and, to a metadata replica, the CA key, so that every replica
//!    can admit hosts).

use std::time::Duration;

use cairn_service::tls::join::{JoinRole, JoinToken, JoinTokenError};
use serde::{Deserialize, Serialize};

/// How long one join attempt may take against one replica.
const JOIN_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token: String,
    pub role: JoinRole,
    /// The certificate's common name (the node id, `meta-3`, `gateway-2`…).
    pub name: String,
    /// IP addresses and DNS names peers will dial (the certificate's SANs).
    pub addresses: Vec<String>,
    /// A gateway's S3 names: if any, a second certificate for the S3
    /// endpoint (names and `*.name` for virtual-host buckets are the
    /// caller's to list).
    #[serde(default)]
    pub s3_names: Vec<String>,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("role", &self.role)
            .field("name", &self.name)
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

/// A PEM certificate and its key.
#[derive(Clone, Serialize, Deserialize)]
pub struct IssuedPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedPem(..)")
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct JoinGrant {
    pub ca_pem: String,
    /// The host's certificate for the cluster's mutual TLS.
    pub identity: IssuedPem,
    /// The S3 endpoint's certificate (gateways that asked for one).
    #[serde(default)]
    pub s3: Option<IssuedPem>,
    pub cluster_secret: String,
    /// The CA's key (metadata replicas only).
    #[serde(default)]
    pub ca_key_pem: Option<String>,
}

impl std::fmt::Debug for JoinGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinGrant(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Token(#[from] JoinTokenError),
    #[error("no metadata replica admitted this host: {0}")]
    NoReplica(String),
}

/// The joiner's side: asks each replica the token names in turn.
pub async fn join(token: &JoinToken, request: &JoinRequest) -> Result<JoinGrant, JoinError> {
    cairn_service::tls::install_default_provider();
    let mut failures = Vec::new();
    for url in token
        .meta_urls
        .split(',')
        .map(|u| u.trim().trim_end_matches('/'))
    {
        if url.is_empty() {
            continue;
        }
        match join_one(token, request, url).await {
            Ok(grant) => return Ok(grant),
            Err(JoinAttempt::Fatal(err)) => return Err(err),
            Err(JoinAttempt::Failed(why)) => failures.push(format!("{url}: {why}")),
        }
    }
    Err(JoinError::NoReplica(failures.join("; ")))
}

enum JoinAttempt {
    /// Another replica will not do better (the CA is not the token's).
    Fatal(JoinError),
    Failed(String),
}

async fn join_one(
    token: &JoinToken,
    request: &JoinRequest,
    url: &str,
) -> Result<JoinGrant, JoinAttempt> {
    let failed = |e: &dyn std::fmt::Display| JoinAttempt::Failed(e.to_string());
    let fetch = reqwest::Client::builder()
        .use_preconfigured_tls(cairn_service::tls::client_for_fetching_a_pinned_ca())
        .timeout(JOIN_DEADLINE)
        .build()
        .map_err(|e| failed(&e))?;
    let ca_pem = fetch
        .get(format!("{url}/join/ca"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| failed(&e))?
        .text()
        .await
        .map_err(|e| failed(&e))?;
    token
        .check_ca(&ca_pem)
        .map_err(|e| JoinAttempt::Fatal(e.into()))?;
    let trusting = cairn_service::tls::client_trusting_pem(&ca_pem).map_err(|e| failed(&e))?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(trusting)
        .https_only(true)
        .timeout(JOIN_DEADLINE)
        .build()
        .map_err(|e| failed(&e))?;
    let response = client
        .post(format!("{url}/join"))
        .json(request)
        .send()
        .await
        .map_err(|e| failed(&e))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(JoinAttempt::Failed(format!("{status}: {body}")));
    }
    response.json().await.map_err(|e| failed(&e))
}
