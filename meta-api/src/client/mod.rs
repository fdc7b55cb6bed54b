//! Typed client of the metadata service, used by the gateway, the
//! scrubber, the storage nodes (heartbeats) and the CLI.
//!
//! This module is the transport and the routing: it keeps a copy of the
//! shard map, sends each call to the leader of the Raft group of the shard
//! owning its key (following `not_leader` hints, moving past dead
//! replicas), and when a shard answers `wrong_shard` (its range changed in a
//! split) it refreshes the map and retries. Whole-shard reads state the range they expect
//! ([`ExpectedRange`]) and restart from a fresh map when a shard disagrees,
//! so a stale map can never yield a partial answer. The calls themselves are
//! in [`catalogue`] (buckets, objects, uploads, repair and garbage reads)
//! and [`cluster`] (membership, the map, splits).

mod catalogue;
mod cluster;
mod node_cache;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use cairn_service::{ClientError, ClusterSecret, ErrorCode, HttpClient, Timeouts};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use catalogue::{
    Deleted, ListObjects, ListVersions, ObjectListing, VersionDelete, VersionListing, VersionWrite,
};
pub use cluster::GroupVerdict;
pub use node_cache::NodeCache;

use crate::shard_map::{ExpectedRange, GroupId, ShardId, ShardMap, ShardRange};

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

    /// The service could not be reached, did not answer in time, has no
    /// leader or no quorum for the group, or its shards could not be
    /// found: worth retrying later (S3 clients see 503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Http(err) => {
                err.is_unreachable()
                    || matches!(err.code(), Some(ErrorCode::NotLeader | ErrorCode::NoQuorum))
            }
            Self::Routing { .. } => true,
            Self::Catalogue { .. } | Self::UnexpectedOutcome(_) => false,
        }
    }

    fn is_wrong_shard(&self) -> bool {
        self.code() == Some(ErrorCode::WrongShard)
    }
}

/// Deadlines of a metadata call. A replica answers within its commit
/// deadline (4 s) even without a quorum, so a replica silent for longer is
/// hung (or a dead process's socket is still held): the call moves on to
/// another replica instead of waiting the generic 30 s.
pub const META_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    request: Duration::from_secs(8),
    progress: Duration::from_secs(8),
};

/// How long a call keeps looking for a group's leader (through an
/// election: a few election timeouts) before giving up as unavailable.
const LEADER_SEARCH: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct MetaClient {
    http: HttpClient,
    /// Metadata URLs given at start; asked for the map until it is known.
    seeds: Vec<String>,
    map: RwLock<ShardMap>,
    /// The last known leader URL of each group.
    leaders: RwLock<HashMap<GroupId, String>>,
}

impl MetaClient {
    /// Connects through any of the metadata processes in `urls` (one URL,
    /// or several separated by commas) and fetches the map.
    pub async fn connect(urls: &str, secret: &ClusterSecret) -> Result<Self, MetaError> {
        let client = Self::unconnected(urls, secret);
        client.refresh_map().await?;
        Ok(client)
    }

    /// A client that has not fetched the map yet: enough for cluster calls
    /// (heartbeats, the registry); shard calls need [`Self::refresh_map`]
    /// first.
    pub fn unconnected(urls: &str, secret: &ClusterSecret) -> Self {
        Self::unconnected_with(urls, secret, META_TIMEOUTS)
    }

    /// [`Self::unconnected`] with deadlines of its own (a heartbeat must
    /// give up well before the failure detector would call it silent).
    pub fn unconnected_with(urls: &str, secret: &ClusterSecret, timeouts: Timeouts) -> Self {
        let seeds: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        Self {
            http: HttpClient::new(secret.clone(), timeouts),
            seeds,
            map: RwLock::new(ShardMap {
                version: 0,
                shards: Vec::new(),
                replicas: Default::default(),
                cluster_replicas: Vec::new(),
                racks: Default::default(),
                replicas_per_group: 0,
            }),
            leaders: RwLock::new(HashMap::new()),
        }
    }

    pub fn shard_map(&self) -> ShardMap {
        self.map.read().expect("map lock").clone()
    }

    /// Fetches the map from the cluster group (its leader when known).
    pub async fn refresh_map(&self) -> Result<ShardMap, MetaError> {
        let map: ShardMap = self
            .on_group(
                GroupId::Cluster,
                Method::GET,
                "cluster/shard-map",
                None::<&()>,
                &[],
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

    /// Where to try a group's call, best first: its last known leader, then
    /// its replicas (for the cluster group, every process and the seeds).
    fn candidates(&self, group: GroupId) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        if let Some(leader) = self.leaders.read().expect("leaders").get(&group) {
            urls.push(leader.clone());
        }
        let map = self.map.read().expect("map lock");
        urls.extend(map.group_urls(group));
        if group == GroupId::Cluster {
            urls.extend(self.seeds.iter().cloned());
        }
        drop(map);
        let mut seen = std::collections::HashSet::new();
        urls.retain(|u| seen.insert(u.clone()));
        urls
    }

    fn forget_leader(&self, group: GroupId, url: &str) {
        let mut leaders = self.leaders.write().expect("leaders");
        if leaders.get(&group).is_some_and(|l| l == url) {
            leaders.remove(&group);
        }
    }

    /// Calls `path` on the leader of `group`: tries the last known leader,
    /// follows `not_leader` hints, and moves on to other replicas when one
    /// is unreachable or has no leader yet, for up to [`LEADER_SEARCH`].
    /// A call that is retried after a lost answer must be idempotent (shard
    /// commands carry a request id for that).
    async fn on_group<T: DeserializeOwned>(
        &self,
        group: GroupId,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        query: &[(&str, String)],
    ) -> Result<T, MetaError> {
        let deadline = tokio::time::Instant::now() + LEADER_SEARCH;
        let mut round = 0usize;
        let mut last_error: Option<ClientError> = None;
        loop {
            // One round asks each replica at most once, a hinted leader
            // first, and never follows a hint to a replica that was just
            // found unreachable (a follower keeps naming a dead leader
            // until the election it is waiting for is over).
            let mut queue: std::collections::VecDeque<String> = self.candidates(group).into();
            if queue.is_empty() {
                return Err(MetaError::Routing {
                    key: group.to_string(),
                });
            }
            let mut tried = std::collections::HashSet::new();
            let mut unreachable = std::collections::HashSet::new();
            while let Some(base) = queue.pop_front() {
                if !tried.insert(base.clone()) {
                    continue;
                }
                let url = format!("{base}/{path}");
                match self.http.call(method.clone(), &url, query, body).await {
                    Ok(value) => {
                        self.leaders
                            .write()
                            .expect("leaders")
                            .insert(group, base.clone());
                        return Ok(value);
                    }
                    Err(err) if err.code() == Some(ErrorCode::NotLeader) => {
                        self.forget_leader(group, &base);
                        if let Some(leader) = err.leader_hint()
                            && !tried.contains(leader)
                            && !unreachable.contains(leader)
                        {
                            queue.push_front(leader.to_owned());
                        }
                        last_error = Some(err);
                    }
                    Err(err) if err.is_unreachable() => {
                        tracing::debug!(%group, url, %err, "metadata replica unreachable; trying another");
                        self.forget_leader(group, &base);
                        unreachable.insert(base);
                        last_error = Some(err);
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(match last_error {
                    Some(err) => MetaError::Http(err),
                    None => MetaError::Routing {
                        key: group.to_string(),
                    },
                });
            }
            // No replica leads yet (an election is running).
            round += 1;
            tokio::time::sleep(Duration::from_millis(25 << round.min(3))).await;
        }
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
            let shard = self.map.read().expect("map lock").route(key).id;
            let path = shard_path(shard, path);
            match self
                .on_group(GroupId::Shard(shard), method.clone(), &path, body, query)
                .await
            {
                Err(err) if err.is_wrong_shard() => {
                    tracing::debug!(key, %shard, attempt, "stale shard map; refreshing");
                    self.backoff_and_refresh(attempt).await?;
                }
                other => return other,
            }
        }
        Err(MetaError::Routing {
            key: key.to_owned(),
        })
    }

    /// Calls shard `id`, refreshing the map while the answer is
    /// `wrong_shard`. `None` when the map has no such shard.
    async fn on_shard_id<T: DeserializeOwned>(
        &self,
        id: ShardId,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        query: &[(&str, String)],
    ) -> Result<Option<T>, MetaError> {
        for attempt in 0..ROUTING_ATTEMPTS {
            if self.shard_map().shard(id).is_none() {
                return Ok(None);
            }
            let path = shard_path(id, path);
            match self
                .on_group(GroupId::Shard(id), method.clone(), &path, body, query)
                .await
            {
                Err(err) if err.is_wrong_shard() => {
                    self.backoff_and_refresh(attempt).await?;
                }
                other => return other.map(Some),
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
        self.on_group(
            GroupId::Shard(shard.id),
            Method::GET,
            &shard_path(shard.id, path),
            None::<&()>,
            &query,
        )
        .await
    }

    /// A whole-shard read whose question is too large for a query string:
    /// POSTed as JSON, with the same range expectation.
    async fn shard_read_posting<T: DeserializeOwned>(
        &self,
        shard: &ShardRange,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, MetaError> {
        self.on_group(
            GroupId::Shard(shard.id),
            Method::POST,
            &shard_path(shard.id, path),
            Some(body),
            &ExpectedRange::of(shard).query(),
        )
        .await
    }
}

fn shard_path(shard: ShardId, path: &str) -> String {
    format!("shards/{}/{path}", shard.0)
}

/// A fresh id for one logical request, kept across its retries.
pub(crate) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn unexpected(outcome: crate::model::Outcome) -> MetaError {
    MetaError::UnexpectedOutcome(format!("{outcome:?}"))
}
