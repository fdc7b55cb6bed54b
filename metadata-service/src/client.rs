//! Typed client of the metadata service, used by the gateway, the scrubber
//! and the CLI. It keeps a copy of the shard map, routes every call to the
//! shard owning its key, and when a shard answers `wrong_shard` (after a
//! split) it refreshes the map and retries.

use std::sync::RwLock;
use std::time::Duration;

use cairn_core::ids::{BlobId, NodeId};
use cairn_core::manifest::ObjectManifest;
use cairn_core::node_api::{ErrorBody, NodeStatus, SECRET_HEADER};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::{bucket_anchor, catalogue_key};
use crate::model::{
    BucketRecord, Command, CompletedPart, GarbageEntry, ListEntry, ListPage, ListRequest,
    MetaStatus, NodeChunk, NodeEvent, NodeRecord, ObjectRecord, Outcome, PartRecord, Precondition,
    SplitRequest, UploadRecord,
};
use crate::shard_map::{ShardId, ShardMap, ShardRange};

/// Attempts for a call that keeps meeting a stale map.
const ROUTING_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("metadata service answered {status} {}: {}", .body.code, .body.message)]
    Api { status: u16, body: ErrorBody },
    #[error("could not reach the shard owning {key:?} after {ROUTING_ATTEMPTS} attempts")]
    Routing { key: String },
}

impl MetaError {
    /// The S3-style error code (`NoSuchBucket`, `BucketNotEmpty`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }

    fn is_wrong_shard(&self) -> bool {
        self.code() == Some("wrong_shard")
    }
}

/// One page of an object listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectListing {
    pub entries: Vec<ListEntry>,
    pub truncated: bool,
    /// Where the next page starts (inclusive), when truncated.
    pub next_cursor: Option<String>,
}

/// Arguments of [`MetaClient::list_objects`].
#[derive(Debug, Clone, Default)]
pub struct ListObjects {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    /// First key to consider (inclusive): a continuation cursor, or
    /// `start_after + "\0"`.
    pub cursor: String,
    pub max_keys: usize,
}

/// The node registry as last fetched, reused for `ttl`: the data path and
/// the scrubber need it for every object, and membership changes slowly.
#[derive(Debug)]
pub struct NodeCache {
    ttl: Duration,
    cached: tokio::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<Vec<NodeRecord>>)>>,
}

impl NodeCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The registry's nodes, fetched again once the copy is `ttl` old.
    pub async fn get(
        &self,
        meta: &MetaClient,
    ) -> Result<std::sync::Arc<Vec<NodeRecord>>, MetaError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, nodes)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(nodes.clone());
        }
        let nodes = std::sync::Arc::new(meta.nodes().await?);
        *cached = Some((std::time::Instant::now(), nodes.clone()));
        Ok(nodes)
    }
}

#[derive(Debug)]
pub struct MetaClient {
    http: reqwest::Client,
    primary: String,
    secret: String,
    map: RwLock<ShardMap>,
}

impl MetaClient {
    /// Connects through the primary metadata process and fetches the map.
    pub async fn connect(primary_url: &str, secret: &str) -> Result<Self, MetaError> {
        let client = Self {
            http: reqwest::Client::new(),
            primary: primary_url.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            map: RwLock::new(ShardMap::single(ShardId(0), primary_url)),
        };
        client.refresh_map().await?;
        Ok(client)
    }

    pub fn shard_map(&self) -> ShardMap {
        self.map.read().expect("map lock").clone()
    }

    pub async fn refresh_map(&self) -> Result<ShardMap, MetaError> {
        let map: ShardMap = self
            .send(
                Method::GET,
                &format!("{}/cluster/shard-map", self.primary),
                None::<&()>,
                &[],
            )
            .await?;
        *self.map.write().expect("map lock") = map.clone();
        Ok(map)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&impl Serialize>,
        query: &[(&str, String)],
    ) -> Result<T, MetaError> {
        let mut request = self
            .http
            .request(method, url)
            .header(SECRET_HEADER, &self.secret)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| MetaError::Transport {
            url: url.to_owned(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(transport);
        }
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(ErrorBody {
            code: "unknown".into(),
            message: text,
            block: None,
        });
        Err(MetaError::Api {
            status: status.as_u16(),
            body,
        })
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
            match self.send(method.clone(), &url, body, query).await {
                Err(err) if err.is_wrong_shard() => {
                    tracing::debug!(key, shard = %shard.id, attempt, "stale shard map; refreshing");
                    tokio::time::sleep(Duration::from_millis(10 << attempt.min(5))).await;
                    self.refresh_map().await?;
                }
                other => return other,
            }
        }
        Err(MetaError::Routing {
            key: key.to_owned(),
        })
    }

    /// Calls every shard in key order (for cluster-wide reads).
    async fn on_every_shard<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, MetaError> {
        let map = self.shard_map();
        let mut out = Vec::with_capacity(map.shards.len());
        for shard in &map.shards {
            out.push(
                self.send(Method::GET, &shard_url(shard, path), None::<&()>, query)
                    .await?,
            );
        }
        Ok(out)
    }

    /// Applies a command on the shard that owns it.
    pub async fn apply(&self, command: &Command) -> Result<Outcome, MetaError> {
        let key = command.routing_key().unwrap_or_default();
        self.on_shard(&key, Method::POST, "apply", Some(command), &[])
            .await
    }

    // ---- buckets ----

    pub async fn create_bucket(&self, name: &str, owner: &str) -> Result<(), MetaError> {
        self.apply(&Command::CreateBucket {
            name: name.into(),
            owner: owner.into(),
        })
        .await
        .map(drop)
    }

    pub async fn head_bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetaError> {
        let query = [("name", name.to_owned())];
        match self
            .on_shard(
                &bucket_anchor(name),
                Method::GET,
                "bucket",
                None::<&()>,
                &query,
            )
            .await
        {
            Ok(record) => Ok(Some(record)),
            Err(err) if err.code() == Some("NoSuchBucket") => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// All buckets, by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, MetaError> {
        let pages: Vec<Vec<BucketRecord>> = self.on_every_shard("buckets", &[]).await?;
        let mut buckets: Vec<BucketRecord> = pages.into_iter().flatten().collect();
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(buckets)
    }

    /// Deletes an empty bucket. Shards other than the one holding the
    /// bucket record are checked first; the record's own shard re-checks
    /// its part atomically. (A write racing into another shard during the
    /// delete is not excluded.)
    pub async fn delete_bucket(&self, name: &str) -> Result<(), MetaError> {
        let anchor = bucket_anchor(name);
        let map = self.shard_map();
        let home = map.route(&anchor).id;
        let end = crate::shard_map::prefix_successor(&anchor);
        for shard in map.shards_for_range(&anchor, end.as_deref()) {
            if shard.id == home {
                continue;
            }
            let reply: serde_json::Value = self
                .send(
                    Method::GET,
                    &shard_url(shard, "bucket-content"),
                    None::<&()>,
                    &[("name", name.to_owned())],
                )
                .await?;
            if reply["has_content"].as_bool() == Some(true) {
                return Err(MetaError::Api {
                    status: 409,
                    body: ErrorBody {
                        code: "BucketNotEmpty".into(),
                        message: format!("bucket {name} is not empty"),
                        block: None,
                    },
                });
            }
        }
        self.apply(&Command::DeleteBucket { name: name.into() })
            .await
            .map(drop)
    }

    // ---- objects ----

    /// Makes `manifest` the current version of `bucket/key` (atomic).
    pub async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        manifest: ObjectManifest,
        precondition: Precondition,
    ) -> Result<(String, u64), MetaError> {
        self.ensure_bucket_elsewhere(bucket, key).await?;
        match self
            .apply(&Command::CommitObject {
                bucket: bucket.into(),
                key: key.into(),
                manifest,
                precondition,
            })
            .await?
        {
            Outcome::Committed {
                version_id,
                sequence,
            } => Ok((version_id, sequence)),
            other => Err(unexpected(other)),
        }
    }

    /// The shard applying a write checks the bucket itself when it holds the
    /// bucket record; otherwise the bucket is checked here.
    async fn ensure_bucket_elsewhere(&self, bucket: &str, key: &str) -> Result<(), MetaError> {
        let map = self.shard_map();
        if map.route(&bucket_anchor(bucket)).id == map.route(&catalogue_key(bucket, key)).id {
            return Ok(());
        }
        match self.head_bucket(bucket).await? {
            Some(_) => Ok(()),
            None => Err(MetaError::Api {
                status: 404,
                body: ErrorBody {
                    code: "NoSuchBucket".into(),
                    message: format!("bucket {bucket} does not exist"),
                    block: None,
                },
            }),
        }
    }

    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, MetaError> {
        let query = [("bucket", bucket.to_owned()), ("key", key.to_owned())];
        match self
            .on_shard(
                &catalogue_key(bucket, key),
                Method::GET,
                "object",
                None::<&()>,
                &query,
            )
            .await
        {
            Ok(record) => Ok(Some(record)),
            Err(err) if err.code() == Some("NoSuchKey") => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Deletes the current version; `Ok(false)` if there was none.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        precondition: Precondition,
    ) -> Result<bool, MetaError> {
        match self
            .apply(&Command::DeleteObject {
                bucket: bucket.into(),
                key: key.into(),
                precondition,
            })
            .await?
        {
            Outcome::Deleted { existed } => Ok(existed),
            other => Err(unexpected(other)),
        }
    }

    /// One page of a bucket listing with S3 semantics, across shards.
    pub async fn list_objects(&self, request: &ListObjects) -> Result<ObjectListing, MetaError> {
        // One extra entry tells whether the listing is truncated.
        let want = request.max_keys + 1;
        let mut entries: Vec<ListEntry> = Vec::new();
        let mut cursor = request
            .cursor
            .as_str()
            .max(request.prefix.as_str())
            .to_owned();
        loop {
            let shard_request = ListRequest {
                bucket: request.bucket.clone(),
                prefix: request.prefix.clone(),
                delimiter: request.delimiter.clone(),
                cursor: cursor.clone(),
                limit: want - entries.len(),
            };
            let page: ListPage = self
                .on_shard(
                    &catalogue_key(&request.bucket, &cursor),
                    Method::POST,
                    "list",
                    Some(&shard_request),
                    &[],
                )
                .await?;
            entries.extend(page.entries);
            match page.next_cursor {
                Some(next) if entries.len() < want && next > cursor => cursor = next,
                _ => break,
            }
        }
        let truncated = entries.len() > request.max_keys;
        let next_cursor = truncated.then(|| entries[request.max_keys].resume_cursor().to_owned());
        entries.truncate(request.max_keys);
        Ok(ObjectListing {
            entries,
            truncated,
            next_cursor,
        })
    }

    // ---- multipart ----

    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        template: ObjectManifest,
    ) -> Result<String, MetaError> {
        self.ensure_bucket_elsewhere(bucket, key).await?;
        match self
            .apply(&Command::CreateUpload {
                bucket: bucket.into(),
                key: key.into(),
                template,
            })
            .await?
        {
            Outcome::UploadCreated { upload_id } => Ok(upload_id),
            other => Err(unexpected(other)),
        }
    }

    pub async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: PartRecord,
    ) -> Result<(), MetaError> {
        self.apply(&Command::PutPart {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            part,
        })
        .await
        .map(drop)
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(String, u64), MetaError> {
        match self
            .apply(&Command::CompleteUpload {
                bucket: bucket.into(),
                key: key.into(),
                upload_id: upload_id.into(),
                parts,
            })
            .await?
        {
            Outcome::Committed {
                version_id,
                sequence,
            } => Ok((version_id, sequence)),
            other => Err(unexpected(other)),
        }
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), MetaError> {
        self.apply(&Command::AbortUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
        })
        .await
        .map(drop)
    }

    pub async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, MetaError> {
        let query = [
            ("bucket", bucket.to_owned()),
            ("key", key.to_owned()),
            ("upload_id", upload_id.to_owned()),
        ];
        self.on_shard(
            &catalogue_key(bucket, key),
            Method::GET,
            "upload",
            None::<&()>,
            &query,
        )
        .await
    }

    /// In-progress uploads of a bucket under `prefix`, in (key, id) order.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, MetaError> {
        let start = catalogue_key(bucket, prefix);
        let end = crate::shard_map::prefix_successor(&start);
        let mut out = Vec::new();
        for shard in self.shard_map().shards_for_range(&start, end.as_deref()) {
            let query = [
                ("bucket", bucket.to_owned()),
                ("prefix", prefix.to_owned()),
                ("limit", (limit - out.len()).to_string()),
            ];
            let page: Vec<UploadRecord> = self
                .send(
                    Method::GET,
                    &shard_url(shard, "uploads"),
                    None::<&()>,
                    &query,
                )
                .await?;
            out.extend(page);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    // ---- repair and garbage collection ----

    /// Everything the catalogue places on `node` (reverse index, all shards).
    pub async fn chunks_on_node(&self, node: &NodeId) -> Result<Vec<NodeChunk>, MetaError> {
        let mut out = Vec::new();
        for shard in self.shard_map().shards {
            let mut after: Option<(BlobId, u8)> = None;
            loop {
                let mut query = vec![("node", node.to_string()), ("limit", "1000".to_owned())];
                if let Some((blob, index)) = after {
                    query.push(("after_blob", blob.to_hex()));
                    query.push(("after_index", index.to_string()));
                }
                let page: Vec<NodeChunk> = self
                    .send(
                        Method::GET,
                        &shard_url(&shard, "node-chunks"),
                        None::<&()>,
                        &query,
                    )
                    .await?;
                let done = page.len() < 1000;
                after = page.last().map(|c| (c.blob, c.index));
                out.extend(page);
                if done {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Garbage queued on one shard, after `after`.
    pub async fn garbage(
        &self,
        shard: ShardId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<GarbageEntry>, MetaError> {
        let map = self.shard_map();
        let Some(range) = map.shard(shard) else {
            return Ok(Vec::new());
        };
        let mut query = vec![("limit", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        self.send(
            Method::GET,
            &shard_url(range, "garbage"),
            None::<&()>,
            &query,
        )
        .await
    }

    /// Acknowledges garbage entries of `shard` whose chunks are deleted.
    pub async fn ack_garbage(&self, shard: ShardId, ids: Vec<u64>) -> Result<(), MetaError> {
        let map = self.shard_map();
        let Some(range) = map.shard(shard) else {
            return Ok(());
        };
        let _: Outcome = self
            .send(
                Method::POST,
                &shard_url(range, "apply"),
                Some(&Command::AckGarbage { ids }),
                &[],
            )
            .await?;
        Ok(())
    }

    // ---- cluster ----

    pub async fn heartbeat(&self, status: &NodeStatus) -> Result<NodeRecord, MetaError> {
        self.send(
            Method::POST,
            &format!("{}/cluster/heartbeat", self.primary),
            Some(status),
            &[],
        )
        .await
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, MetaError> {
        self.send(
            Method::GET,
            &format!("{}/cluster/nodes", self.primary),
            None::<&()>,
            &[],
        )
        .await
    }

    /// Node state changes after sequence `after`.
    pub async fn events(&self, after: u64) -> Result<Vec<NodeEvent>, MetaError> {
        self.send(
            Method::GET,
            &format!("{}/cluster/events", self.primary),
            None::<&()>,
            &[("after", after.to_string())],
        )
        .await
    }

    /// Gives the directory `bucket/prefix` its own shard (online).
    pub async fn split(&self, catalogue_prefix: &str) -> Result<ShardMap, MetaError> {
        let map: ShardMap = self
            .send(
                Method::POST,
                &format!("{}/cluster/split", self.primary),
                Some(&SplitRequest {
                    prefix: catalogue_prefix.to_owned(),
                }),
                &[],
            )
            .await?;
        *self.map.write().expect("map lock") = map.clone();
        Ok(map)
    }

    pub async fn status(&self, process_url: &str) -> Result<MetaStatus, MetaError> {
        self.send(
            Method::GET,
            &format!("{}/status", process_url.trim_end_matches('/')),
            None::<&()>,
            &[],
        )
        .await
    }
}

fn shard_url(shard: &ShardRange, path: &str) -> String {
    format!(
        "{}/shards/{}/{path}",
        shard.owner.trim_end_matches('/'),
        shard.id.0
    )
}

fn unexpected(outcome: Outcome) -> MetaError {
    MetaError::Api {
        status: 500,
        body: ErrorBody {
            code: "unexpected_outcome".into(),
            message: format!("{outcome:?}"),
            block: None,
        },
    }
}
