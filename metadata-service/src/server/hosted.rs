//! The shards this process hosts (opened as the map assigns them) and the
//! online split of one of them.

use std::sync::Arc;

use axum::http::StatusCode;
use cairn_meta_api::shard_map::{ShardId, ShardMap};
use cairn_service::{ApiError, ErrorCode};

use crate::cluster::ClusterState;
use crate::shard::{CatalogError, KeyRange, Shard};

use super::Shared;
use super::http::wrong_shard;

impl Shared {
    pub(super) fn open_owned_shards(&self, map: &ShardMap) -> Result<(), CatalogError> {
        let mut shards = self.shards.write().expect("shards");
        for range in &map.shards {
            if range.owner != self.options.advertise_url || shards.contains_key(&range.id) {
                continue;
            }
            let path = self
                .options
                .data_dir
                .join("shards")
                .join(range.id.0.to_string());
            let shard = Shard::open(
                range.id,
                &path,
                KeyRange {
                    start: range.start.clone(),
                    end: range.end.clone(),
                },
            )?;
            shards.insert(range.id, Arc::new(shard));
        }
        Ok(())
    }

    pub(super) fn shard(&self, id: ShardId) -> Result<Arc<Shard>, ApiError> {
        self.shards
            .read()
            .expect("shards")
            .get(&id)
            .cloned()
            .ok_or_else(|| wrong_shard(format!("{id} is not hosted here")))
    }

    pub(super) fn cluster(&self) -> Result<&ClusterState, ApiError> {
        self.cluster.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                ErrorCode::NotPrimary,
                "ask the primary",
            )
        })
    }

    /// Gives a directory its own shard(s) on this process.
    pub(super) fn isolate(&self, prefix: &str) -> Result<ShardMap, ApiError> {
        let cluster = self.cluster()?;
        let mut map = cluster.shard_map();
        let next_id =
            |map: &ShardMap| ShardId(map.shards.iter().map(|s| s.id.0).max().unwrap_or(0) + 1);
        let mut cuts = vec![prefix.to_owned()];
        cuts.extend(cairn_meta_api::shard_map::prefix_successor(prefix));
        for at in cuts {
            let holder = map.route(&at).clone();
            if holder.start == at {
                continue;
            }
            if holder.owner != self.options.advertise_url {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::RemoteShard,
                    format!(
                        "{} is hosted by {}; split it there",
                        holder.id, holder.owner
                    ),
                ));
            }
            let new_id = next_id(&map);
            let next = map
                .split(holder.id, &at, new_id, &self.options.advertise_url)
                .map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadSplit, e.to_string())
                })?;
            let source = self.shard(holder.id)?;
            let path = self
                .options
                .data_dir
                .join("shards")
                .join(new_id.0.to_string());
            source.split_off(&at, new_id, &path, |target| {
                self.shards
                    .write()
                    .expect("shards")
                    .insert(new_id, Arc::new(target));
                cluster.publish_map(next.clone())?;
                *self.map.write().expect("map") = next.clone();
                Ok(())
            })?;
            tracing::info!(from = %holder.id, to = %new_id, at, version = next.version, "shard split");
            self.metrics.splits.inc();
            map = next;
        }
        Ok(map)
    }
}
