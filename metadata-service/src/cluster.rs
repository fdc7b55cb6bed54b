//! The cluster state, replicated as the `cluster` Raft group: the shard
//! map, the storage-node registry and the change feed of node state
//! transitions. Persisted in the group's database
//! (`<data_dir>/groups/cluster`), changed only by applying proposals.
//!
//! It also holds the S3 user table (`user\0NAME` → [`UserRecord`],
//! `akey\0ACCESS_KEY` → [`KeyRecord`] with the sealed secret): small,
//! cluster-wide and read by every gateway, like the registry.
//!
//! Failure detection itself is not here: it needs a clock, so it runs on
//! the group's leader (`server::detector`) and proposes its verdicts as
//! [`Proposal::Transition`]s, which apply only if the node is still in the
//! state the verdict started from.

use std::sync::Arc;

use cairn_core::ids::NodeId;
use cairn_core::placement::NodeState;
use cairn_meta_api::model::{LifecycleChange, NodeEvent, NodeLifecycle, NodeRecord};
use cairn_meta_api::shard_map::ShardMap;
use cairn_meta_api::users::{
    KeyInfo, KeyRecord, MAX_KEYS_PER_USER, NewKey, UserChange, UserRecord,
};
use cairn_node_api::wire::NodeStatus;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use crate::raft::state_machine::Machine;
use crate::raft::{Proposal, Reply};
use crate::shard::CatalogError;

const MAP_KEY: &[u8] = b"map";
const NODE_PREFIX: &[u8] = b"node\0";
const EVENT_PREFIX: &[u8] = b"event\0";
const USER_PREFIX: &[u8] = b"user\0";
const KEY_PREFIX: &[u8] = b"akey\0";

fn prefixed(prefix: &[u8], name: &str) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

pub struct ClusterState {
    db: Arc<DB>,
}

impl std::fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState").finish_non_exhaustive()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("cluster records serialize")
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

impl ClusterState {
    /// The cluster state on its group's open database.
    pub fn replica(db: Arc<DB>) -> Self {
        Self { db }
    }

    /// Whether the group's first entry (the map) is applied; cheaper than
    /// reading the map.
    pub fn has_map(&self) -> Result<bool, CatalogError> {
        Ok(self.db.get_pinned(MAP_KEY)?.is_some())
    }

    /// The current map; `None` until the group's first entry is applied.
    pub fn shard_map(&self) -> Result<Option<ShardMap>, CatalogError> {
        self.db.get(MAP_KEY)?.map(|b| parse(&b)).transpose()
    }

    pub fn nodes(&self) -> Result<Vec<NodeRecord>, CatalogError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(NODE_PREFIX, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(NODE_PREFIX) {
                break;
            }
            out.push(parse(&value)?);
        }
        Ok(out)
    }

    fn node(&self, id: &NodeId) -> Result<Option<NodeRecord>, CatalogError> {
        self.db.get(node_key(id))?.map(|b| parse(&b)).transpose()
    }

    /// State changes with sequence > `after`, oldest first.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<NodeEvent>, CatalogError> {
        let start = event_key(after + 1);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(EVENT_PREFIX) || out.len() >= limit {
                break;
            }
            out.push(parse(&value)?);
        }
        Ok(out)
    }

    fn next_event(&self) -> Result<u64, CatalogError> {
        let end = event_key(u64::MAX);
        match self
            .db
            .iterator(IteratorMode::From(&end, Direction::Reverse))
            .next()
        {
            Some(item) => {
                let (key, value) = item?;
                if key.starts_with(EVENT_PREFIX) {
                    Ok(parse::<NodeEvent>(&value)?.sequence + 1)
                } else {
                    Ok(1)
                }
            }
            None => Ok(1),
        }
    }

    fn record_event(
        &self,
        batch: &mut WriteBatch,
        node: &NodeId,
        from: Option<NodeState>,
        to: NodeState,
        at_ms: u64,
    ) -> Result<NodeEvent, CatalogError> {
        let event = NodeEvent {
            sequence: self.next_event()?,
            node: node.clone(),
            from,
            to,
            at_ms,
        };
        batch.put(event_key(event.sequence), json(&event));
        Ok(event)
    }

    /// Registers or refreshes a node; a heartbeat brings it back up.
    fn heartbeat(
        &self,
        status: &NodeStatus,
        now_ms: u64,
        batch: &mut WriteBatch,
    ) -> Result<NodeRecord, CatalogError> {
        let (from, mut record) = match self.node(&status.id)? {
            Some(record) => (Some(record.state), record),
            None => (
                None,
                NodeRecord {
                    id: status.id.clone(),
                    rack: status.rack.clone(),
                    address: status.address.clone(),
                    capacity_bytes: 0,
                    used_bytes: 0,
                    free_bytes: 0,
                    chunk_count: 0,
                    state: NodeState::Up,
                    last_heartbeat_ms: now_ms,
                    state_since_ms: now_ms,
                    lifecycle: NodeLifecycle::Active,
                    local: None,
                },
            ),
        };
        if from != Some(NodeState::Up) {
            record.state = NodeState::Up;
            record.state_since_ms = now_ms;
            tracing::info!(node = %record.id, ?from, to = ?record.state, "node state change");
            self.record_event(batch, &record.id, from, NodeState::Up, now_ms)?;
        }
        update_usage(&mut record, status, now_ms);
        batch.put(node_key(&record.id), json(&record));
        Ok(record)
    }

    /// Applies an operator's lifecycle change. `None`: the node was
    /// removed. Repeating a change is harmless (a retried request).
    fn change_lifecycle(
        &self,
        node: &NodeId,
        change: &LifecycleChange,
        batch: &mut WriteBatch,
    ) -> Result<Option<NodeRecord>, CatalogError> {
        use NodeLifecycle::{Active, Draining, Retired};
        let Some(mut record) = self.node(node)? else {
            return Err(CatalogError::NotFound(format!("no node {node}")));
        };
        let refuse = |why: &str| Err(CatalogError::Conflict(format!("node {node}: {why}")));
        let next = match (change, record.lifecycle) {
            (LifecycleChange::Drain, Active | Draining) => Draining,
            (LifecycleChange::Drain, Retired) => return refuse("it is retired"),
            (LifecycleChange::Cancel, Active | Draining) => Active,
            (LifecycleChange::Cancel, Retired) => {
                return refuse("it is retired: its chunks are gone; remove it and add it anew");
            }
            (LifecycleChange::Retire, Draining | Retired) => Retired,
            (LifecycleChange::Retire, Active) => return refuse("it is not draining"),
            (LifecycleChange::Remove, _)
                if record.lifecycle == Retired || record.state == NodeState::Down =>
            {
                batch.delete(node_key(node));
                tracing::info!(%node, "node removed from the registry");
                return Ok(None);
            }
            (LifecycleChange::Remove, _) => {
                return refuse(
                    "only a retired node, or a down one, can be removed (drain it first)",
                );
            }
        };
        if next != record.lifecycle {
            tracing::info!(%node, from = ?record.lifecycle, to = ?next, "node lifecycle change");
            record.lifecycle = next;
            batch.put(node_key(node), json(&record));
        }
        Ok(Some(record))
    }

    fn transition(
        &self,
        node: &NodeId,
        from: NodeState,
        to: NodeState,
        now_ms: u64,
        batch: &mut WriteBatch,
    ) -> Result<Vec<NodeEvent>, CatalogError> {
        let Some(mut record) = self.node(node)? else {
            return Ok(Vec::new());
        };
        if record.state != from {
            // A heartbeat (or another verdict) was applied in between.
            return Ok(Vec::new());
        }
        record.state = to;
        record.state_since_ms = now_ms;
        batch.put(node_key(node), json(&record));
        tracing::warn!(node = %node, ?from, ?to, "node state change");
        Ok(vec![self.record_event(
            batch,
            node,
            Some(from),
            to,
            now_ms,
        )?])
    }
}

/// The S3 user table.
impl ClusterState {
    pub fn users(&self) -> Result<Vec<UserRecord>, CatalogError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(USER_PREFIX, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(USER_PREFIX) {
                break;
            }
            out.push(parse(&value)?);
        }
        Ok(out)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, CatalogError> {
        self.db
            .get(prefixed(USER_PREFIX, name))?
            .map(|b| parse(&b))
            .transpose()
    }

    /// An access key with its owner and sealed secret.
    pub fn access_key(&self, access_key: &str) -> Result<Option<KeyRecord>, CatalogError> {
        self.db
            .get(prefixed(KEY_PREFIX, access_key))?
            .map(|b| parse(&b))
            .transpose()
    }

    fn change_user(
        &self,
        change: &UserChange,
        now_ms: u64,
        batch: &mut WriteBatch,
    ) -> Result<Option<UserRecord>, CatalogError> {
        change
            .validate()
            .map_err(|e| CatalogError::InvalidArgument(e.to_string()))?;
        match change {
            UserChange::Create { name, key } => {
                if let Some(existing) = self.user(name)? {
                    // A retry of this same creation answers as the first did.
                    if existing.keys.iter().any(|k| k.access_key == key.access_key) {
                        return Ok(Some(existing));
                    }
                    return Err(CatalogError::Conflict(format!(
                        "user {name} already exists"
                    )));
                }
                let mut record = UserRecord {
                    name: name.clone(),
                    created_ms: now_ms,
                    keys: Vec::new(),
                };
                self.add_key(&mut record, key, now_ms, batch)?;
                Ok(Some(record))
            }
            UserChange::AddKey { user, key } => {
                let mut record = self.existing_user(user)?;
                if record.keys.iter().any(|k| k.access_key == key.access_key) {
                    return Ok(Some(record));
                }
                if record.keys.len() >= MAX_KEYS_PER_USER {
                    return Err(CatalogError::Conflict(format!(
                        "user {user} already has {MAX_KEYS_PER_USER} access keys; delete one first"
                    )));
                }
                self.add_key(&mut record, key, now_ms, batch)?;
                Ok(Some(record))
            }
            UserChange::DeleteKey { user, access_key } => {
                let mut record = self.existing_user(user)?;
                let before = record.keys.len();
                record.keys.retain(|k| &k.access_key != access_key);
                if record.keys.len() == before {
                    return Err(CatalogError::NotFound(format!(
                        "user {user} has no access key {access_key}"
                    )));
                }
                batch.delete(prefixed(KEY_PREFIX, access_key));
                batch.put(prefixed(USER_PREFIX, user), json(&record));
                Ok(Some(record))
            }
            UserChange::Delete { name } => {
                let record = self.existing_user(name)?;
                for key in &record.keys {
                    batch.delete(prefixed(KEY_PREFIX, &key.access_key));
                }
                batch.delete(prefixed(USER_PREFIX, name));
                tracing::info!(user = %name, "S3 user deleted");
                Ok(None)
            }
        }
    }

    fn existing_user(&self, name: &str) -> Result<UserRecord, CatalogError> {
        self.user(name)?
            .ok_or_else(|| CatalogError::NotFound(format!("no user {name}")))
    }

    fn add_key(
        &self,
        record: &mut UserRecord,
        key: &NewKey,
        now_ms: u64,
        batch: &mut WriteBatch,
    ) -> Result<(), CatalogError> {
        if self.access_key(&key.access_key)?.is_some() {
            return Err(CatalogError::Conflict(format!(
                "access key {} is taken",
                key.access_key
            )));
        }
        record.keys.push(KeyInfo {
            access_key: key.access_key.clone(),
            created_ms: now_ms,
        });
        batch.put(
            prefixed(KEY_PREFIX, &key.access_key),
            json(&KeyRecord {
                access_key: key.access_key.clone(),
                user: record.name.clone(),
                sealed_secret: key.sealed_secret.clone(),
                created_ms: now_ms,
            }),
        );
        batch.put(prefixed(USER_PREFIX, &record.name), json(record));
        tracing::info!(user = %record.name, access_key = %key.access_key, "S3 access key added");
        Ok(())
    }
}

impl Machine for ClusterState {
    fn db(&self) -> &Arc<DB> {
        &self.db
    }

    fn apply(
        &self,
        proposal: &Proposal,
        finish: &dyn Fn(&mut WriteBatch),
    ) -> Result<Reply, CatalogError> {
        let mut batch = WriteBatch::default();
        let reply = match proposal {
            Proposal::InitCluster { map } => {
                if self.shard_map()?.is_none() {
                    batch.put(MAP_KEY, json(map));
                }
                Reply::Done
            }
            Proposal::PublishMap { map } => match self.shard_map()? {
                Some(current) if map.version <= current.version => {
                    crate::shard::refusal(CatalogError::Conflict(format!(
                        "shard map version {} is not newer than {}",
                        map.version, current.version
                    )))?
                }
                _ => {
                    batch.put(MAP_KEY, json(map));
                    Reply::Map { map: map.clone() }
                }
            },
            Proposal::Heartbeat { status, now_ms } => Reply::Node {
                record: self.heartbeat(status, *now_ms, &mut batch)?,
            },
            Proposal::Transition {
                node,
                from,
                to,
                now_ms,
            } => Reply::Events {
                events: self.transition(node, *from, *to, *now_ms, &mut batch)?,
            },
            Proposal::Lifecycle { node, change, .. } => {
                match self.change_lifecycle(node, change, &mut batch) {
                    Ok(Some(record)) => Reply::Node { record },
                    Ok(None) => Reply::Done,
                    Err(err) => crate::shard::refusal(err)?,
                }
            }
            Proposal::User { change, now_ms } => {
                match self.change_user(change, *now_ms, &mut batch) {
                    Ok(record) => Reply::User { record },
                    Err(err) => crate::shard::refusal(err)?,
                }
            }
            other => {
                tracing::error!(?other, "a shard proposal in the cluster log");
                crate::shard::refusal(CatalogError::Malformed("not a cluster proposal".to_owned()))?
            }
        };
        finish(&mut batch);
        self.db.write(batch)?;
        Ok(reply)
    }

    fn reload(&self) -> Result<(), CatalogError> {
        Ok(())
    }
}

fn update_usage(record: &mut NodeRecord, status: &NodeStatus, now_ms: u64) {
    record.rack = status.rack.clone();
    record.address = status.address.clone();
    record.local = status.local.clone();
    record.capacity_bytes = status.capacity_bytes;
    record.used_bytes = status.used_bytes;
    record.free_bytes = status.free_bytes;
    record.chunk_count = status.chunk_count;
    record.last_heartbeat_ms = now_ms;
}

fn node_key(id: &NodeId) -> Vec<u8> {
    let mut key = NODE_PREFIX.to_vec();
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

fn event_key(sequence: u64) -> Vec<u8> {
    let mut key = EVENT_PREFIX.to_vec();
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}
