//! The cluster state, replicated as the `cluster` Raft group: the shard
//! map, the storage-node registry and the change feed of node state
//! transitions. Persisted in the group's database
//! (`<data_dir>/groups/cluster`), changed only by applying proposals.
//!
//! Failure detection itself is not here: it needs a clock, so it runs on
//! the group's leader (`server::detector`) and proposes its verdicts as
//! [`Proposal::Transition`]s, which apply only if the node is still in the
//! state the verdict started from.

use std::sync::Arc;

use cairn_core::ids::NodeId;
use cairn_core::placement::NodeState;
use cairn_meta_api::model::{NodeEvent, NodeRecord};
use cairn_meta_api::shard_map::ShardMap;
use cairn_node_api::wire::NodeStatus;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use crate::raft::state_machine::Machine;
use crate::raft::{Proposal, Reply};
use crate::shard::CatalogError;

const MAP_KEY: &[u8] = b"map";
const NODE_PREFIX: &[u8] = b"node\0";
const EVENT_PREFIX: &[u8] = b"event\0";

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
