//! What every Cairn HTTP service shares, so that each service crate holds
//! only its own job:
//!
//! - [`error`]: the JSON error body and the typed [`ErrorCode`] that both
//!   servers and clients use (no code is ever compared as a string);
//! - [`secret`]: the cluster secret, one resolution order for every binary;
//! - [`sealed`]: small secrets stored sealed under the cluster secret;
//! - [`server`]: middleware (secret check), metrics rendering, blocking work;
//! - [`process`]: tracing, panic = abort, SIGINT/SIGTERM;
//! - [`client`]: the one HTTP client helper, with connect, request and
//!   body-progress deadlines, that every internal client is built on;
//! - [`tasks`]: background loops under one cancellation token, awaited with
//!   a drain deadline on shutdown;
//! - [`listen`]: listeners bound here or inherited from a supervisor, and
//!   the address file;
//! - [`config`]: TOML config loading that names unknown keys;
//! - [`tls`]: the cluster CA, mutual TLS between services, HTTPS for S3.
//!
//! This crate knows nothing of chunks, shards or S3.

pub mod client;
pub mod config;
pub mod error;
pub mod listen;
pub mod process;
pub mod sealed;
pub mod secret;
pub mod server;
pub mod tasks;
pub mod tls;

pub use client::{ClientError, HttpClient, Timeouts};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use secret::ClusterSecret;
pub use tasks::TaskSet;

/// Header carrying the cluster secret on every internal request.
pub const SECRET_HEADER: &str = "x-cairn-secret";

/// Wall-clock milliseconds since the Unix epoch, for records people read
/// (creation times, heartbeat ages). Never used to order versions: the
/// metadata service assigns the order.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
