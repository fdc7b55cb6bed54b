//! Typed client of the metadata service, used by the gateway, the
//! scrubber, the storage nodes (heartbeats) and the CLI.
//!
//! This module is the transport and the routing: it keeps a copy of the
//! shard map, sends each call to the shard owning its key, and when a shard
//! answers `wrong_shard` (its range changed in a split) it refreshes the map
//! and retries. Whole-shard reads state the range they expect
//! ([`ExpectedRange`]) and restart from a fresh map when a shard disagrees,
//! so a stale map can never yield a partial answer. The calls themselves are
//! in [`catalogue`] (buckets, objects, uploads, repair and garbage reads)
//! and [`cluster`] (membership, the map, splits).

mod catalogue;
mod cluster;
mod node_cache;

use std::sync::RwLock;
use std::time::Duration;

use cairn_service::{ClientError, ClusterSecret, ErrorCode, HttpClient, Timeouts};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use catalogue::{ListObjects, ObjectListing};
pub use node_cache::NodeCache;

use crate::shard_map::{ExpectedRange, ShardId, ShardMap, ShardRange};

/// Attempts for a call that keeps meeting a stale map.
const ROUTING_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The service was unreachable, too slow, or answered with an error.
    #[error(transparent)]
    Http(#[from] ClientError),
    #[error("could not reach the shard owning {key:?} after {ROUTING_ATTEMPTS} attempts")]
    Routing { key: String },
    /// A catalogue rule checked across shards by this client (an empty
    /// bucket on delete, a bucket that must exist for a write).
    #[error("{message}")]
    Catalogue { code: ErrorCode, message: String },
    #[error("the metadata service answered an unexpected outcome: {0}")]
    UnexpectedOutcome(String),
}

impl MetaError {
    /// The typed error code, when the error is an answer (or a client-side
    /// catalogue rule).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Http(err) => err.code(),
            Self::Catalogue { code, .. } => Some(*code),
            Self::Routing { .. } | Self::UnexpectedOutcome(_) => None,
        }
    }

    /// The service could not be reached, did not answer in time, or its
    /// shards could not be found: worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Http(err) => err.is_unreachable(),
            Self::Routing { .. } => true,
            Self::Catalogue { .. } | Self::UnexpectedOutcome(_) => false,
        }
    }

    fn is_wrong_shard(&self) -> bool {
        self.code() == Some(ErrorCode::WrongShard)
    }
}

#[derive(Debug)]
pub struct MetaClient {
    http: HttpClient,
    primary: String,
    map: RwLock<ShardMap>,
}

impl MetaClient {
    /// Connects through the primary metadata process and fetches the map.
    pub async fn connect(primary_url: &str, secret: &ClusterSecret) -> Result<Self, MetaError> {
        let client = Self::unconnected(primary_url, secret);
        client.refresh_map().await?;
        Ok(client)
    }

    /// A client that has not fetched the map yet: enough for cluster calls
    /// (heartbeats, the registry); shard calls need [`Self::refresh_map`]
    /// first.
    pub fn unconnected(primary_url: &str, secret: &ClusterSecret) -> Self {
        Self::unconnected_with(primary_url, secret, Timeouts::INTERNAL)
    }

    /// [`Self::unconnected`] with deadlines of its own (a heartbeat must
    /// give up well before the failure detector would call it silent).
    pub fn unconnected_with(primary_url: &str, secret: &ClusterSecret, timeouts: Timeouts) -> Self {
        Self {
            http: HttpClient::new(secret.clone(), timeouts),
            primary: primary_url.trim_end_matches('/').to_owned(),
            map: RwLock::new(ShardMap::single(ShardId(0), primary_url)),
        }
    }

    pub fn shard_map(&self) -> ShardMap {
        self.map.read().expect("map lock").clone()
    }

    pub async fn refresh_map(&self) -> Result<ShardMap, MetaError> {
        let map: ShardMap = self
            .http
            .call(
                Method::GET,
                &self.cluster_url("shard-map"),
                &[],
                None::<&()>,
            )
            .await?;
        self.install_map(map.clone());
        Ok(map)
    }

    /// Keeps `map` unless a newer one is already installed.
    fn install_map(&self, map: ShardMap) {
        let mut current = self.map.write().expect("map lock");
        if map.version >= current.version {
            *current = map;
        }
    }

    fn cluster_url(&self, path: &str) -> String {
        format!("{}/cluster/{path}", self.primary)
    }

    async fn backoff_and_refresh(&self, attempt: usize) -> Result<(), MetaError> {
        tokio::time::sleep(Duration::from_millis(10 << attempt.min(5))).await;
        self.refresh_map().await.map(drop)
    }

    /// Calls the shard owning `key`, refreshing the map and retrying while
    /// the answer is `wrong_shard`.
    async fn on_shard<T: DeserializeOwned>(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        query: &[(&str, String)],
    ) -> Result<T, MetaError> {
        for attempt in 0..ROUTING_ATTEMPTS {
            let shard = self.map.read().expect("map lock").route(key).clone();
            let url = shard_url(&shard, path);
            match self.http.call(method.clone(), &url, query, body).await {
                Err(err) if err.code() == Some(ErrorCode::WrongShard) => {
                    tracing::debug!(key, shard = %shard.id, attempt, "stale shard map; refreshing");
                    self.backoff_and_refresh(attempt).await?;
                }
                other => return Ok(other?),
            }
        }
        Err(MetaError::Routing {
            key: key.to_owned(),
        })
    }

    /// Calls shard `id` wherever the map places it, refreshing the map
    /// while the answer is `wrong_shard`. `None` when the map has no such
    /// shard.
    async fn on_shard_id<T: DeserializeOwned>(
        &self,
        id: ShardId,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        query: &[(&str, String)],
    ) -> Result<Option<T>, MetaError> {
        for attempt in 0..ROUTING_ATTEMPTS {
            let Some(shard) = self.shard_map().shard(id).cloned() else {
                return Ok(None);
            };
            match self
                .http
                .call(method.clone(), &shard_url(&shard, path), query, body)
                .await
            {
                Err(err) if err.code() == Some(ErrorCode::WrongShard) => {
                    self.backoff_and_refresh(attempt).await?;
                }
                other => return Ok(Some(other?)),
            }
        }
        Err(MetaError::Routing {
            key: id.to_string(),
        })
    }

    /// Runs a read that spans shards (`read` is given the map to use)
    /// against a consistent map: when any shard answers `wrong_shard` the
    /// whole read starts again on a fresh map, so partial results from a
    /// stale map are never returned.
    async fn across_shards<T, F, Fut>(&self, what: &str, read: F) -> Result<T, MetaError>
    where
        F: Fn(ShardMap) -> Fut,
        Fut: Future<Output = Result<T, MetaError>>,
    {
        for attempt in 0..ROUTING_ATTEMPTS {
            let map = self.shard_map();
            let version = map.version;
            match read(map).await {
                Err(err) if err.is_wrong_shard() => {
                    tracing::debug!(
                        what,
                        version,
                        attempt,
                        "a shard's range changed; reading again"
                    );
                    self.backoff_and_refresh(attempt).await?;
                }
                other => return other,
            }
        }
        Err(MetaError::Routing {
            key: what.to_owned(),
        })
    }

    /// A whole-shard read of `shard`, which must still own the range the
    /// caller's map gives it.
    async fn shard_read<T: DeserializeOwned>(
        &self,
        shard: &ShardRange,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, MetaError> {
        let mut query = query.to_vec();
        query.extend(ExpectedRange::of(shard).query());
        Ok(self
            .http
            .call(Method::GET, &shard_url(shard, path), &query, None::<&()>)
            .await?)
    }
}

fn shard_url(shard: &ShardRange, path: &str) -> String {
    format!(
        "{}/shards/{}/{path}",
        shard.owner.trim_end_matches('/'),
        shard.id.0
    )
}

fn unexpected(outcome: crate::model::Outcome) -> MetaError {
    MetaError::UnexpectedOutcome(format!("{outcome:?}"))
}
