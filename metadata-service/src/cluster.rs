//! Cluster-wide state kept by the primary metadata process: the shard map,
//! the storage-node registry with failure detection, and the change feed of
//! node state transitions. Persisted in its own RocksDB (`<data_dir>/cluster`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use cairn_core::ids::NodeId;
use cairn_core::placement::{NodeCandidate, NodeState};
use cairn_node_api::wire::NodeStatus;
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::liveness::{DetectorConfig, Liveness};
use crate::shard::CatalogError;
use cairn_meta_api::model::{NodeEvent, NodeRecord};
use cairn_meta_api::shard_map::ShardMap;

const MAP_KEY: &[u8] = b"map";
const NODE_PREFIX: &[u8] = b"node\0";
const EVENT_PREFIX: &[u8] = b"event\0";

pub struct ClusterState {
    db: DB,
    map: RwLock<ShardMap>,
    registry: Mutex<Registry>,
    detector: DetectorConfig,
}

impl std::fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState").finish_non_exhaustive()
    }
}

struct Registry {
    nodes: BTreeMap<NodeId, (NodeRecord, Liveness)>,
    next_event: u64,
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("cluster records serialize")
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

impl ClusterState {
    /// Opens the cluster database; `initial_map` is stored on first start
    /// only (afterwards the persisted map, with its splits, wins).
    pub fn open(
        path: &Path,
        initial_map: ShardMap,
        detector: DetectorConfig,
        now: Instant,
    ) -> Result<Self, CatalogError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path)?;
        let map = match db.get(MAP_KEY)? {
            Some(bytes) => parse(&bytes)?,
            None => {
                db.put_opt(MAP_KEY, json(&initial_map), &synced())?;
                initial_map
            }
        };
        let mut nodes = BTreeMap::new();
        for item in db.iterator(IteratorMode::From(NODE_PREFIX, Direction::Forward)) {
            let (key, value) = item?;
            if !key.starts_with(NODE_PREFIX) {
                break;
            }
            let record: NodeRecord = parse(&value)?;
            let liveness = Liveness::restored(record.state, now);
            nodes.insert(record.id.clone(), (record, liveness));
        }
        let next_event = db
            .iterator(IteratorMode::End)
            .filter_map(Result::ok)
            .find(|(k, _)| k.starts_with(EVENT_PREFIX))
            .and_then(|(_, v)| parse::<NodeEvent>(&v).ok())
            .map_or(1, |e| e.sequence + 1);
        Ok(Self {
            db,
            map: RwLock::new(map),
            registry: Mutex::new(Registry { nodes, next_event }),
            detector,
        })
    }

    pub fn shard_map(&self) -> ShardMap {
        self.map.read().expect("map lock").clone()
    }

    /// Replaces the map (durably) if `next` is newer.
    pub fn publish_map(&self, next: ShardMap) -> Result<(), CatalogError> {
        let mut map = self.map.write().expect("map lock");
        if next.version <= map.version {
            return Err(CatalogError::Conflict(format!(
                "shard map version {} is not newer than {}",
                next.version, map.version
            )));
        }
        self.db.put_opt(MAP_KEY, json(&next), &synced())?;
        *map = next;
        Ok(())
    }

    /// Registers or refreshes a node from its heartbeat.
    pub fn heartbeat(
        &self,
        status: NodeStatus,
        now: Instant,
        now_ms: u64,
    ) -> Result<NodeRecord, CatalogError> {
        let mut registry = self.registry.lock().expect("registry lock");
        let mut batch = WriteBatch::default();
        let (from, record) = match registry.nodes.remove(&status.id) {
            Some((mut record, mut liveness)) => {
                let change = liveness.heartbeat(now);
                record.state = liveness.state();
                if change.is_some() {
                    record.state_since_ms = now_ms;
                }
                update_usage(&mut record, &status, now_ms);
                let from = change.map(|c| c.from);
                registry
                    .nodes
                    .insert(status.id.clone(), (record.clone(), liveness));
                (from.map(Some), record)
            }
            None => {
                let mut record = NodeRecord {
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
                };
                update_usage(&mut record, &status, now_ms);
                registry
                    .nodes
                    .insert(status.id.clone(), (record.clone(), Liveness::new(now)));
                (Some(None), record)
            }
        };
        if let Some(from) = from {
            let event = registry.event(&record.id, from, record.state, now_ms);
            tracing::info!(node = %record.id, ?from, to = ?record.state, "node state change");
            batch.put(event_key(event.sequence), json(&event));
        }
        batch.put(node_key(&record.id), json(&record));
        self.db.write_opt(batch, &synced())?;
        Ok(record)
    }

    /// Re-evaluates every node's liveness; returns the transitions.
    pub fn tick(&self, now: Instant, now_ms: u64) -> Result<Vec<NodeEvent>, CatalogError> {
        let mut registry = self.registry.lock().expect("registry lock");
        let mut batch = WriteBatch::default();
        let mut events = Vec::new();
        let ids: Vec<NodeId> = registry.nodes.keys().cloned().collect();
        for id in ids {
            let Some((record, liveness)) = registry.nodes.get_mut(&id) else {
                continue;
            };
            let Some(change) = liveness.tick(now, &self.detector) else {
                continue;
            };
            record.state = change.to;
            record.state_since_ms = now_ms;
            batch.put(node_key(&id), json(&*record));
            tracing::warn!(node = %id, from = ?change.from, to = ?change.to, "node state change");
            let event = registry.event(&id, Some(change.from), change.to, now_ms);
            batch.put(event_key(event.sequence), json(&event));
            events.push(event);
        }
        if !events.is_empty() {
            self.db.write_opt(batch, &synced())?;
        }
        Ok(events)
    }

    pub fn nodes(&self) -> Vec<NodeRecord> {
        let registry = self.registry.lock().expect("registry lock");
        registry.nodes.values().map(|(r, _)| r.clone()).collect()
    }

    /// Nodes as placement sees them.
    pub fn candidates(&self) -> Vec<NodeCandidate> {
        self.nodes()
            .into_iter()
            .map(|n| NodeCandidate {
                id: n.id,
                rack: n.rack,
                capacity: n.capacity_bytes,
                free: n.free_bytes,
                state: n.state,
            })
            .collect()
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
}

impl Registry {
    fn event(
        &mut self,
        node: &NodeId,
        from: Option<NodeState>,
        to: NodeState,
        at_ms: u64,
    ) -> NodeEvent {
        let sequence = self.next_event;
        self.next_event += 1;
        NodeEvent {
            sequence,
            node: node.clone(),
            from,
            to,
            at_ms,
        }
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
