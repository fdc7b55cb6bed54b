//! Gateway configuration (TOML file, overridable by flags and environment).
//! Unknown fields are tolerated, so an older gateway starts with a newer
//! config during a rollback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_core::codec::CodecParams;
use serde::{Deserialize, Serialize};

/// One S3 user: an access key and its secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayConfig {
    /// Address the S3 API (and `/metrics`, `/health`) listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where `/metrics` and `/health` are served (none: not served).
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// The metadata replicas (one URL or several, comma-separated).
    pub metadata_url: String,
    /// The scrubber's admin API, for the console's repair and scrub pages
    /// (none: those pages say it is not configured).
    #[serde(default)]
    pub scrubber_url: Option<String>,
    /// S3 users. `CAIRN_ACCESS_KEY` / `CAIRN_SECRET_KEY` add one more.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Enables virtual-host-style addressing (`bucket.<base_domain>`);
    /// path style always works.
    #[serde(default)]
    pub base_domain: Option<String>,
    /// Region reported by GetBucketLocation and expected in signatures.
    #[serde(default = "default_region")]
    pub region: String,
    /// SSE-S3's master keys: a file of `ID:BASE64` lines (32-byte keys,
    /// the highest id encrypts new versions), the same on every gateway.
    /// Unset: requests for SSE-S3 are refused; SSE-C works without it.
    #[serde(default)]
    pub sse_keyring_file: Option<PathBuf>,
    /// A lifecycle rule's day in milliseconds, for the `x-amz-expiration`
    /// header: set it to the scrubber's `lifecycle_day_ms` (a real day
    /// unless a test scales both).
    #[serde(default = "default_lifecycle_day_ms")]
    pub lifecycle_day_ms: u64,
    /// Object Ownership of buckets created without naming one:
    /// `bucket_owner_enforced` (S3's default: ACLs off), `object_writer`
    /// or `bucket_owner_preferred` (ACLs on, for clients that rely on them).
    #[serde(default)]
    pub default_object_ownership: cairn_core::acl::ObjectOwnership,
    /// Erasure code for new objects (existing objects keep theirs).
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default = "default_m")]
    pub m: usize,
    #[serde(default = "default_block_size")]
    pub block_size: usize,
    /// Chunks that must be durable before a PUT is acknowledged (default
    /// k+1). Every PUT still writes all k+m; chunks beyond the quorum that
    /// fail are recorded missing and repaired.
    #[serde(default)]
    pub write_quorum: Option<usize>,
    /// A chunk read slower than this is hedged with a parity chunk.
    #[serde(default = "default_hedge_ms")]
    pub hedge_after_ms: u64,
    /// Read and write the chunks of nodes on this host in their files
    /// (short-circuit, granted by the node over its Unix socket; every block
    /// still checked against its hash) instead of over HTTP.
    #[serde(default = "default_short_circuit")]
    pub short_circuit: bool,
    /// A chunk write that makes no progress for this long (its node takes
    /// no bytes, or does not answer once it has them all) is abandoned and
    /// recorded `Missing` when the write quorum still holds: a stalled node
    /// costs a PUT this much, not a transport timeout. Repair fills the gap.
    #[serde(default = "default_write_stall_ms")]
    pub write_stall_after_ms: u64,
    /// A client that sends no body bytes for this long, while the gateway
    /// waits for them, gets S3's `RequestTimeout` (400) and nothing is
    /// stored: a stalled upload cannot hold chunk streams open forever.
    #[serde(default = "default_client_idle_ms")]
    pub client_idle_timeout_ms: u64,
    /// Objects of at most this many bytes (single PUTs and copies, never
    /// multipart parts) are stored inline: in their manifest, replicated
    /// with the catalogue, instead of as k+m chunks. 0 turns inlining off.
    /// At most [`MAX_INLINE_BYTES`].
    #[serde(default = "default_inline_max")]
    pub inline_max_bytes: u64,
    /// Blobs (single PUTs, copies, parts) whose declared length is above
    /// `inline_max_bytes` and at most this are stored as `replicas` full
    /// copies, RS(1, replicas−1), on nodes in distinct racks instead of as
    /// k+m chunks: a GET is one request to one node, a PUT `replicas`
    /// writes instead of k+m, for `replicas`× storage instead of (k+m)/k.
    /// 0: every blob uses k+m.
    #[serde(default = "default_replicated_max")]
    pub replicated_max_bytes: u64,
    /// Copies of a replicated blob (2 or more; each in its own rack where
    /// the topology allows).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Largest single PUT or part (S3: 5 GiB).
    #[serde(default = "default_max_object")]
    pub max_object_bytes: u64,
    /// Requests served at once; more wait (back-pressure, bounded memory).
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// HTTPS on the S3 listener with this certificate and key (PEM).
    #[serde(default)]
    pub s3_tls: Option<cairn_service::tls::CertFiles>,
    /// Serve S3 over plain HTTP. `cairn-gateway` refuses to start with
    /// neither `s3_tls` nor this: S3 clients send data and signed requests,
    /// and clear text must be a decision, not a default.
    #[serde(default)]
    pub s3_plain_http: bool,
    /// Accept SSE-C keys over plain HTTP. S3 refuses them (400
    /// InvalidRequest): a key sent in clear is disclosed. For loopback
    /// only (`cairn dev` without `--tls` sets it).
    #[serde(default)]
    pub sse_c_over_plain_http: bool,
    /// Mutual TLS with the rest of the cluster: the cluster CA and this
    /// process's certificate and key (docs/security.md). Without it every
    /// internal connection is plain HTTP and the secret crosses in clear.
    #[serde(default)]
    pub tls: Option<cairn_service::tls::TlsFiles>,
}

fn default_write_stall_ms() -> u64 {
    2000
}

fn default_client_idle_ms() -> u64 {
    20_000
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9000))
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_lifecycle_day_ms() -> u64 {
    86_400_000
}

fn default_k() -> usize {
    CodecParams::DEFAULT.k
}

fn default_m() -> usize {
    CodecParams::DEFAULT.m
}

fn default_block_size() -> usize {
    CodecParams::DEFAULT.block_size
}

fn default_short_circuit() -> bool {
    true
}

fn default_hedge_ms() -> u64 {
    crate::blob_reader::DEFAULT_HEDGE_AFTER.as_millis() as u64
}

/// The ceiling of `inline_max_bytes`: an inline body travels in one Raft
/// log entry (base64 in JSON) to every metadata replica.
pub const MAX_INLINE_BYTES: u64 = 1024 * 1024;

fn default_inline_max() -> u64 {
    32 * 1024
}

/// The largest block of a replicated blob (a range read of one reads whole
/// blocks, so they are not made larger than this).
const MAX_REPLICATED_BLOCK: usize = 4 * 1024 * 1024;

fn default_replicated_max() -> u64 {
    1024 * 1024
}

fn default_replicas() -> usize {
    3
}

fn default_max_object() -> u64 {
    5 * 1024 * 1024 * 1024
}

fn default_concurrency() -> usize {
    256
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] cairn_service::config::ConfigError),
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl GatewayConfig {
    pub fn new(metadata_url: impl Into<String>) -> Self {
        Self {
            listen: default_listen(),
            admin_listen: None,
            metadata_url: metadata_url.into(),
            scrubber_url: None,
            credentials: Vec::new(),
            base_domain: None,
            region: default_region(),
            lifecycle_day_ms: default_lifecycle_day_ms(),
            default_object_ownership: Default::default(),
            sse_keyring_file: None,
            k: default_k(),
            m: default_m(),
            block_size: default_block_size(),
            write_quorum: None,
            hedge_after_ms: default_hedge_ms(),
            short_circuit: default_short_circuit(),
            write_stall_after_ms: default_write_stall_ms(),
            client_idle_timeout_ms: default_client_idle_ms(),
            inline_max_bytes: default_inline_max(),
            replicated_max_bytes: default_replicated_max(),
            replicas: default_replicas(),
            max_object_bytes: default_max_object(),
            max_concurrent_requests: default_concurrency(),
            secret_file: None,
            s3_tls: None,
            s3_plain_http: false,
            sse_c_over_plain_http: false,
            tls: None,
        }
    }

    /// Reads a config file (unknown keys are named in a warning).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Ok(cairn_service::config::load(path)?)
    }

    /// Adds the user named by `CAIRN_ACCESS_KEY` / `CAIRN_SECRET_KEY`, if set.
    pub fn add_env_credential(&mut self) -> Result<(), ConfigError> {
        match (
            std::env::var("CAIRN_ACCESS_KEY"),
            std::env::var("CAIRN_SECRET_KEY"),
        ) {
            (Ok(access_key), Ok(secret_key)) => {
                self.credentials.push(Credential {
                    access_key,
                    secret_key,
                });
                Ok(())
            }
            (Err(_), Err(_)) => Ok(()),
            _ => Err(ConfigError::Invalid(
                "set both CAIRN_ACCESS_KEY and CAIRN_SECRET_KEY, or neither".into(),
            )),
        }
    }

    pub fn codec(&self) -> Result<CodecParams, ConfigError> {
        CodecParams::new(self.k, self.m, self.block_size)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The write quorum, checked against the code: between k and k+m.
    pub fn quorum(&self) -> Result<usize, ConfigError> {
        let quorum = self.write_quorum.unwrap_or(self.k + 1).min(self.k + self.m);
        if quorum < self.k {
            return Err(ConfigError::Invalid(format!(
                "write_quorum {quorum} is below k = {}: an acknowledged object could be unreadable",
                self.k
            )));
        }
        Ok(quorum)
    }

    /// The code of replicated blobs, RS(1, replicas−1), when they are on.
    pub fn replicated_codec(&self) -> Result<Option<CodecParams>, ConfigError> {
        if self.replicated_max_bytes == 0 {
            return Ok(None);
        }
        if self.replicas < 2 {
            return Err(ConfigError::Invalid(format!(
                "replicas = {} keeps a single copy: use 2 or more, or replicated_max_bytes = 0",
                self.replicas
            )));
        }
        // One block per copy for blobs up to 4 MiB: a GET of a replicated
        // blob is then one frame and one hash, not one per 256 KiB.
        let block_size = usize::try_from(self.replicated_max_bytes)
            .unwrap_or(usize::MAX)
            .clamp(self.block_size, MAX_REPLICATED_BLOCK);
        CodecParams::new(1, self.replicas - 1, block_size)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The inline threshold, checked against [`MAX_INLINE_BYTES`].
    pub fn inline_max(&self) -> Result<u64, ConfigError> {
        if self.inline_max_bytes > MAX_INLINE_BYTES {
            return Err(ConfigError::Invalid(format!(
                "inline_max_bytes {} is above {MAX_INLINE_BYTES}: an inline body travels in one catalogue log entry",
                self.inline_max_bytes
            )));
        }
        Ok(self.inline_max_bytes)
    }

    pub fn hedge_after(&self) -> Duration {
        Duration::from_millis(self.hedge_after_ms)
    }

    pub fn write_stall_after(&self) -> Duration {
        Duration::from_millis(self.write_stall_after_ms)
    }

    pub fn client_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.client_idle_timeout_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_with_defaults() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/gateway.toml"),
        )
        .expect("configs/gateway.toml");
        let config: GatewayConfig = toml::from_str(&text).expect("parses");
        assert_eq!(config.codec().expect("valid code"), CodecParams::DEFAULT);
        assert_eq!(config.quorum().expect("valid quorum"), 9);
        assert_eq!(config.credentials.len(), 1);
    }

    #[test]
    fn a_quorum_below_k_is_refused() {
        let mut config = GatewayConfig::new("http://127.0.0.1:7300");
        config.write_quorum = Some(7);
        assert!(config.quorum().is_err());
        config.write_quorum = Some(12);
        assert_eq!(config.quorum().expect("k+m is fine"), 12);
    }
}
