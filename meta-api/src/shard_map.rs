//! The shard map: which shard owns which range of the catalogue's key space.
//!
//! Catalogue keys are `bucket/key` (bucket names cannot contain `/`), so one
//! bucket, and every "directory" inside it, is a contiguous key range.
//! Shards own half-open ranges `[start, end)` that tile the whole key space
//! in order. Because shards are ranges rather than hash buckets, a listing
//! under one prefix asks only the shards that overlap the prefix's range,
//! usually one. A directory that grows too large or too hot is isolated by
//! splitting at its prefix and at the prefix's successor
//! ([`ShardMap::isolate_prefix`]).
//!
//! The map is versioned: every split produces a new version, so a client
//! holding an older map can tell that it must refresh.
//!
//! Every shard, and the cluster state, is a Raft group replicated on a few
//! metadata processes (its `replicas`); the map names each process by its
//! replica id and URL. Any replica of a group knows who leads it, so a
//! client may ask any and follow the `not_leader` hint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A metadata process, as Raft knows it.
pub type ReplicaId = u64;

/// The metadata processes of a cluster: replica id → base URL.
pub type Replicas = BTreeMap<ReplicaId, String>;

/// One consensus group of the metadata service: the cluster state (shard
/// map, node registry, change feed) or one catalogue shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupId {
    Cluster,
    Shard(ShardId),
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cluster => f.write_str("cluster"),
            Self::Shard(id) => write!(f, "{id}"),
        }
    }
}

impl std::str::FromStr for GroupId {
    type Err = String;

    /// Parses what `Display` writes (`cluster`, `shard-7`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "cluster" {
            return Ok(Self::Cluster);
        }
        text.strip_prefix("shard-")
            .and_then(|n| n.parse().ok())
            .map(|n| Self::Shard(ShardId(n)))
            .ok_or_else(|| format!("{text:?} is not a group (cluster, shard-N)"))
    }
}

/// Identifies a shard (and its RocksDB) across the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// One shard's key range and the metadata processes replicating it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRange {
    pub id: ShardId,
    /// Inclusive lower bound (`""` for the first shard).
    pub start: String,
    /// Exclusive upper bound; `None` for the last shard.
    pub end: Option<String>,
    /// The replicas of the shard's Raft group.
    pub replicas: Vec<ReplicaId>,
}

impl ShardRange {
    pub fn contains(&self, key: &str) -> bool {
        key >= self.start.as_str() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether this shard's range meets `[start, end)` (`end = None`: unbounded).
    pub fn overlaps(&self, start: &str, end: Option<&str>) -> bool {
        let starts_before_their_end = end.is_none_or(|end| self.start.as_str() < end);
        let ends_after_their_start = self.end.as_deref().is_none_or(|own| own > start);
        starts_before_their_end && ends_after_their_start
    }
}

/// The range a client believes a shard owns. Whole-shard reads (every
/// bucket, a node's chunks, a prefix's uploads) carry it, and a shard whose
/// range differs (it was split since the client's map) answers
/// `wrong_shard` instead of a silently partial result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedRange {
    /// Present when the client states an expectation.
    pub expect_start: Option<String>,
    /// Absent: the range is unbounded above.
    pub expect_end: Option<String>,
}

impl ExpectedRange {
    /// The expectation for `shard` as the caller's map has it.
    pub fn of(shard: &ShardRange) -> Self {
        Self {
            expect_start: Some(shard.start.clone()),
            expect_end: shard.end.clone(),
        }
    }

    /// As query parameters.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::with_capacity(2);
        if let Some(start) = &self.expect_start {
            query.push(("expect_start", start.clone()));
            if let Some(end) = &self.expect_end {
                query.push(("expect_end", end.clone()));
            }
        }
        query
    }

    /// Whether a shard owning `[start, end)` meets the expectation (no
    /// expectation always does).
    pub fn matches(&self, start: &str, end: Option<&str>) -> bool {
        self.expect_start
            .as_deref()
            .is_none_or(|expected| expected == start && self.expect_end.as_deref() == end)
    }
}

/// A versioned, ordered, gap-free list of shard ranges, and the metadata
/// processes they live on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    pub version: u64,
    pub shards: Vec<ShardRange>,
    /// Every metadata process: replica id → base URL.
    pub replicas: Replicas,
    /// The replicas of the cluster group (empty: every replica).
    #[serde(default)]
    pub cluster_replicas: Vec<ReplicaId>,
    /// Each replica's rack, where known (groups are placed across racks).
    #[serde(default)]
    pub racks: BTreeMap<ReplicaId, String>,
    /// How many replicas each group should have (0: every replica).
    #[serde(default)]
    pub replicas_per_group: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    #[error("a shard map needs at least one shard")]
    Empty,
    #[error("shard ranges must tile the key space in order: {0}")]
    NotContiguous(String),
    #[error("duplicate shard id {0}")]
    DuplicateId(ShardId),
    #[error("no shard {0}")]
    UnknownShard(ShardId),
    #[error("split point {at:?} is not strictly inside {shard}'s range")]
    SplitOutside { shard: ShardId, at: String },
}

impl ShardMap {
    /// A map cut at `split_points` (sorted, distinct, non-empty), with shard
    /// ids 0.., every shard on every replica.
    pub fn with_splits(split_points: &[&str], replicas: &Replicas) -> Result<Self, ShardMapError> {
        let mut bounds: Vec<String> = vec![String::new()];
        bounds.extend(split_points.iter().map(|s| (*s).to_owned()));
        let shards = bounds
            .iter()
            .enumerate()
            .map(|(i, start)| ShardRange {
                id: ShardId(i as u32),
                start: start.clone(),
                end: bounds.get(i + 1).cloned(),
                replicas: replicas.keys().copied().collect(),
            })
            .collect();
        let map = Self {
            version: 1,
            shards,
            replicas: replicas.clone(),
            cluster_replicas: Vec::new(),
            racks: BTreeMap::new(),
            replicas_per_group: 0,
        };
        map.validate()?;
        Ok(map)
    }

    /// [`Self::with_splits`] with each group on `per_group` replicas (all
    /// when 0 or more than there are), in distinct racks when the racks
    /// allow, and each group's first replica (the one that initialises it,
    /// and so its first leader) rotating, so leaders spread over processes.
    pub fn placed(
        split_points: &[&str],
        replicas: &Replicas,
        racks: &BTreeMap<ReplicaId, String>,
        per_group: usize,
    ) -> Result<Self, ShardMapError> {
        let mut map = Self::with_splits(split_points, replicas)?;
        let order = rack_interleaved(replicas, racks);
        let k = if per_group == 0 {
            order.len()
        } else {
            per_group.min(order.len())
        };
        let rack_of = |id: &ReplicaId| {
            racks
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("\u{0}replica-{id}"))
        };
        // Starting at `offset` in the interleaved order: replicas of racks
        // not yet used first, then any, until there are k.
        let window = |offset: usize| -> Vec<ReplicaId> {
            let ring: Vec<ReplicaId> = (0..order.len())
                .map(|i| order[(offset + i) % order.len()])
                .collect();
            let mut chosen: Vec<ReplicaId> = Vec::with_capacity(k);
            let mut used = std::collections::BTreeSet::new();
            for id in &ring {
                if chosen.len() < k && used.insert(rack_of(id)) {
                    chosen.push(*id);
                }
            }
            for id in &ring {
                if chosen.len() < k && !chosen.contains(id) {
                    chosen.push(*id);
                }
            }
            chosen
        };
        map.cluster_replicas = window(0);
        for (index, shard) in map.shards.iter_mut().enumerate() {
            shard.replicas = window(index + 1);
        }
        map.racks = racks.clone();
        map.replicas_per_group = per_group;
        Ok(map)
    }

    /// The replicas of a group.
    pub fn group_replicas(&self, group: GroupId) -> Vec<ReplicaId> {
        match group {
            GroupId::Cluster if self.cluster_replicas.is_empty() => {
                self.replicas.keys().copied().collect()
            }
            GroupId::Cluster => self.cluster_replicas.clone(),
            GroupId::Shard(id) => self
                .shard(id)
                .map(|s| s.replicas.clone())
                .unwrap_or_default(),
        }
    }

    pub fn validate(&self) -> Result<(), ShardMapError> {
        let first = self.shards.first().ok_or(ShardMapError::Empty)?;
        if !first.start.is_empty() {
            return Err(ShardMapError::NotContiguous(
                "first shard must start at \"\"".into(),
            ));
        }
        for pair in self.shards.windows(2) {
            match &pair[0].end {
                Some(end) if *end == pair[1].start && pair[0].start < *end => {}
                _ => {
                    return Err(ShardMapError::NotContiguous(format!(
                        "{} ends at {:?} but {} starts at {:?}",
                        pair[0].id, pair[0].end, pair[1].id, pair[1].start
                    )));
                }
            }
        }
        if let Some(last) = self.shards.last()
            && last.end.is_some()
        {
            return Err(ShardMapError::NotContiguous(
                "last shard must be unbounded".into(),
            ));
        }
        let mut ids: Vec<ShardId> = self.shards.iter().map(|s| s.id).collect();
        ids.sort();
        if let Some(pair) = ids.windows(2).find(|p| p[0] == p[1]) {
            return Err(ShardMapError::DuplicateId(pair[0]));
        }
        Ok(())
    }

    /// The shard owning `key`.
    pub fn route(&self, key: &str) -> &ShardRange {
        // Shards are sorted by start and the first starts at "": the owner is
        // the last shard whose start is <= key.
        let after = self.shards.partition_point(|s| s.start.as_str() <= key);
        &self.shards[after.saturating_sub(1)]
    }

    /// Shards whose ranges meet `[start, end)`, in key order.
    pub fn shards_for_range(&self, start: &str, end: Option<&str>) -> Vec<&ShardRange> {
        self.shards
            .iter()
            .filter(|s| s.overlaps(start, end))
            .collect()
    }

    /// Shards that may hold keys beginning with `prefix`, in key order.
    pub fn shards_for_prefix(&self, prefix: &str) -> Vec<&ShardRange> {
        let end = prefix_successor(prefix);
        self.shards_for_range(prefix, end.as_deref())
    }

    pub fn shard(&self, id: ShardId) -> Option<&ShardRange> {
        self.shards.iter().find(|s| s.id == id)
    }

    /// The URL of a replica.
    pub fn url(&self, replica: ReplicaId) -> Option<&str> {
        self.replicas.get(&replica).map(String::as_str)
    }

    /// The URLs of a group's replicas.
    pub fn group_urls(&self, group: GroupId) -> Vec<String> {
        self.group_replicas(group)
            .iter()
            .filter_map(|r| self.url(*r).map(str::to_owned))
            .collect()
    }

    /// Every group `replica` is in.
    pub fn groups_of(&self, replica: ReplicaId) -> Vec<GroupId> {
        self.groups()
            .filter(|g| self.group_replicas(*g).contains(&replica))
            .collect()
    }

    /// The groups a new `replica` joins: those with fewer replicas than
    /// `replicas_per_group` (every group when groups are on every replica).
    pub fn groups_short_of_replicas(&self, replica: ReplicaId) -> Vec<GroupId> {
        let wanted = match self.replicas_per_group {
            0 => usize::MAX,
            n => n,
        };
        self.groups()
            .filter(|g| {
                let members = self.group_replicas(*g);
                !members.contains(&replica) && members.len() < wanted
            })
            .collect()
    }

    /// The cluster group, then every shard.
    fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        std::iter::once(GroupId::Cluster).chain(self.shards.iter().map(|s| GroupId::Shard(s.id)))
    }

    /// The next version, with `replica` (at `url`, in `rack`) added to
    /// `groups`.
    pub fn with_replica_added(
        &self,
        replica: ReplicaId,
        url: &str,
        rack: Option<&str>,
        groups: &[GroupId],
    ) -> Self {
        let mut next = self.next_version();
        next.replicas
            .insert(replica, url.trim_end_matches('/').to_owned());
        if let Some(rack) = rack {
            next.racks.insert(replica, rack.to_owned());
        }
        for group in groups {
            match group {
                GroupId::Cluster => next.cluster_replicas.push(replica),
                GroupId::Shard(id) => {
                    if let Some(range) = next.shards.iter_mut().find(|s| s.id == *id) {
                        range.replicas.push(replica);
                    }
                }
            }
        }
        next
    }

    /// The next version, with `replica` gone from every group.
    pub fn with_replica_removed(&self, replica: ReplicaId) -> Self {
        let mut next = self.next_version();
        next.replicas.remove(&replica);
        next.racks.remove(&replica);
        next.cluster_replicas.retain(|r| *r != replica);
        for shard in &mut next.shards {
            shard.replicas.retain(|r| *r != replica);
        }
        next
    }

    /// A copy one version on, naming the cluster group's replicas
    /// explicitly (an empty list means "every replica", which would
    /// silently follow a change it should not).
    fn next_version(&self) -> Self {
        let mut next = self.clone();
        next.version += 1;
        next.cluster_replicas = self.group_replicas(GroupId::Cluster);
        next
    }

    /// The smallest shard id not in use.
    pub fn next_id(&self) -> ShardId {
        ShardId(self.shards.iter().map(|s| s.id.0 + 1).max().unwrap_or(0))
    }

    /// Splits shard `id` at `at`: keys `>= at` move to a new shard `new_id`
    /// on the same replicas (a split is an entry in the shard's own log, so
    /// every replica of the parent holds the child). Returns the next
    /// version of the map.
    pub fn split(&self, id: ShardId, at: &str, new_id: ShardId) -> Result<Self, ShardMapError> {
        let index = self
            .shards
            .iter()
            .position(|s| s.id == id)
            .ok_or(ShardMapError::UnknownShard(id))?;
        let shard = &self.shards[index];
        if at <= shard.start.as_str() || shard.end.as_deref().is_some_and(|end| at >= end) {
            return Err(ShardMapError::SplitOutside {
                shard: id,
                at: at.to_owned(),
            });
        }
        let mut shards = self.shards.clone();
        let upper = ShardRange {
            id: new_id,
            start: at.to_owned(),
            end: shard.end.clone(),
            replicas: shard.replicas.clone(),
        };
        shards[index].end = Some(at.to_owned());
        shards.insert(index + 1, upper);
        let map = Self {
            version: self.version + 1,
            shards,
            ..self.clone()
        };
        map.validate()?;
        Ok(map)
    }

    /// Gives every key under `prefix` a shard of its own (`new_id`), by
    /// splitting at the prefix and at its successor where those are not
    /// already boundaries. The rest of the old range keeps its shard, or
    /// goes to `rest_id` if it has to be split in two.
    pub fn isolate_prefix(
        &self,
        prefix: &str,
        new_id: ShardId,
        rest_id: ShardId,
    ) -> Result<Self, ShardMapError> {
        let mut map = self.clone();
        let owner = map.route(prefix).clone();
        if owner.start != prefix {
            map = map.split(owner.id, prefix, new_id)?;
        }
        let isolated = map.route(prefix).id;
        if let Some(end) = prefix_successor(prefix) {
            let holder = map.route(&end).clone();
            if holder.start != end && holder.id == isolated {
                // Keys above the directory stay with the original owner.
                map = map.split(isolated, &end, rest_id)?;
            }
        }
        map.version = self.version + 1;
        Ok(map)
    }
}

/// Replica ids ordered so that consecutive ones are in different racks
/// where possible: the first of each rack, then the second of each, and so
/// on (racks and replicas in id order; a replica without a rack is a rack
/// of its own).
fn rack_interleaved(replicas: &Replicas, racks: &BTreeMap<ReplicaId, String>) -> Vec<ReplicaId> {
    let mut by_rack: BTreeMap<String, Vec<ReplicaId>> = BTreeMap::new();
    for id in replicas.keys() {
        let rack = racks
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("\u{0}replica-{id}"));
        by_rack.entry(rack).or_default().push(*id);
    }
    let mut order = Vec::with_capacity(replicas.len());
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    for depth in 0..deepest {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(depth) {
                order.push(*id);
            }
        }
    }
    order
}

/// The smallest string greater than every string starting with `prefix`
/// (`None` when no such string exists, e.g. for `""`).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1).or_else(|| {
            // Skip the surrogate gap.
            (last as u32 + 1 == 0xD800).then_some('\u{E000}')
        }) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas() -> Replicas {
        [(1, "http://a".to_owned()), (2, "http://b".to_owned())].into()
    }

    fn map() -> ShardMap {
        ShardMap::with_splits(&["b/", "m/", "photos/2024/"], &replicas()).expect("map")
    }

    #[test]
    fn routes_every_key_to_exactly_one_shard() {
        let map = map();
        let cases = [
            ("", 0),
            ("a/x", 0),
            ("b/", 1),
            ("b/zzz", 1),
            ("lzz", 1),
            ("m/", 2),
            ("photos/2023/x", 2),
            ("photos/2024/", 3),
            ("photos/2024/jan/1.jpg", 3),
            ("zzz", 3),
        ];
        for (key, shard) in cases {
            assert_eq!(map.route(key).id, ShardId(shard), "{key}");
            let owners: Vec<_> = map.shards.iter().filter(|s| s.contains(key)).collect();
            assert_eq!(owners.len(), 1, "{key}");
        }
    }

    #[test]
    fn a_prefix_listing_asks_only_the_overlapping_shards() {
        let map = map();
        let ids = |prefix: &str| -> Vec<u32> {
            map.shards_for_prefix(prefix)
                .iter()
                .map(|s| s.id.0)
                .collect()
        };
        assert_eq!(ids("photos/2024/"), vec![3]);
        assert_eq!(ids("photos/2024/jan/"), vec![3]);
        assert_eq!(ids("b/docs/"), vec![1]);
        assert_eq!(ids("photos/"), vec![2, 3]);
        assert_eq!(ids(""), vec![0, 1, 2, 3]);
    }

    #[test]
    fn split_produces_a_new_valid_version() {
        let map = map();
        let split = map.split(ShardId(1), "b/docs/", ShardId(9)).expect("split");
        assert_eq!(split.version, map.version + 1);
        assert_eq!(split.route("b/docs/readme").id, ShardId(9));
        assert_eq!(split.route("b/a").id, ShardId(1));
        assert_eq!(split.route("m/").id, ShardId(2));
        assert!(matches!(
            map.split(ShardId(1), "b/", ShardId(9)),
            Err(ShardMapError::SplitOutside { .. })
        ));
        assert!(matches!(
            map.split(ShardId(1), "z", ShardId(9)),
            Err(ShardMapError::SplitOutside { .. })
        ));
        assert!(matches!(
            map.split(ShardId(1), "b/x", ShardId(0)),
            Err(ShardMapError::DuplicateId(ShardId(0)))
        ));
    }

    #[test]
    fn isolating_a_hot_directory_gives_it_its_own_shard() {
        let map = map();
        let split = map
            .isolate_prefix("b/logs/", ShardId(10), ShardId(11))
            .expect("isolate");
        assert_eq!(split.shards_for_prefix("b/logs/").len(), 1);
        assert_eq!(split.route("b/logs/2024").id, ShardId(10));
        assert_eq!(split.route("b/logs0").id, ShardId(11));
        assert_eq!(
            split.group_urls(GroupId::Shard(ShardId(10))),
            ["http://a", "http://b"],
            "a split keeps its parent's replicas"
        );
        assert_eq!(split.next_id(), ShardId(12));
        assert_eq!(split.route("b/a").id, ShardId(1));
        assert_eq!(split.version, map.version + 1);
        split.validate().expect("valid");
        // A prefix that already starts a shard needs only the upper cut.
        let again = map
            .isolate_prefix("photos/2024/", ShardId(10), ShardId(11))
            .expect("isolate");
        assert_eq!(again.route("photos/2024/x").id, ShardId(3));
        assert_eq!(again.route("photos/2025").id, ShardId(11));
    }

    #[test]
    fn groups_are_placed_in_distinct_racks_with_rotating_first_replicas() {
        // Five replicas in three racks (a: 1, 4; b: 2, 5; c: 3).
        let replicas: Replicas = (1..=5).map(|i| (i, format!("http://m{i}"))).collect();
        let racks: BTreeMap<ReplicaId, String> = [(1, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "b")]
            .into_iter()
            .map(|(i, r)| (i, r.to_owned()))
            .collect();
        let map = ShardMap::placed(&["g", "n", "t"], &replicas, &racks, 3).expect("map");
        let mut firsts = std::collections::BTreeSet::new();
        for group in
            std::iter::once(GroupId::Cluster).chain(map.shards.iter().map(|s| GroupId::Shard(s.id)))
        {
            let members = map.group_replicas(group);
            assert_eq!(members.len(), 3, "{group}");
            let distinct: std::collections::BTreeSet<&String> =
                members.iter().map(|m| &racks[m]).collect();
            assert_eq!(distinct.len(), 3, "{group}: {members:?} share a rack");
            firsts.insert(members[0]);
        }
        assert_eq!(firsts.len(), 5, "each group is first on another replica");
        // Fewer replicas than asked for: every group on all of them.
        let two: Replicas = (1..=2).map(|i| (i, format!("http://m{i}"))).collect();
        let small = ShardMap::placed(&["m"], &two, &BTreeMap::new(), 3).expect("map");
        assert!(small.shards.iter().all(|s| s.replicas.len() == 2));
    }

    #[test]
    fn a_replaced_replica_leaves_every_group_and_its_successor_fills_them() {
        let replicas: Replicas = (1..=4).map(|i| (i, format!("http://m{i}"))).collect();
        let map = ShardMap::placed(&["m"], &replicas, &BTreeMap::new(), 3).expect("map");
        let gone = map.groups_of(2);
        assert!(!gone.is_empty());
        let without = map.with_replica_removed(2);
        assert_eq!(without.version, map.version + 1);
        assert!(without.groups_of(2).is_empty() && without.url(2).is_none());
        // Exactly the groups replica 2 left are short of three replicas.
        assert_eq!(without.groups_short_of_replicas(5), gone);
        let with = without.with_replica_added(5, "http://m5/", Some("e"), &gone);
        assert_eq!(with.url(5), Some("http://m5"));
        assert_eq!(with.racks.get(&5).map(String::as_str), Some("e"));
        for group in with.groups() {
            assert_eq!(with.group_replicas(group).len(), 3, "{group}");
        }
        assert!(with.groups_short_of_replicas(6).is_empty());
    }

    #[test]
    fn group_ids_round_trip_through_their_names() {
        for group in [
            GroupId::Cluster,
            GroupId::Shard(ShardId(0)),
            GroupId::Shard(ShardId(17)),
        ] {
            assert_eq!(group.to_string().parse::<GroupId>(), Ok(group));
        }
        assert!("shard-x".parse::<GroupId>().is_err());
        assert!("shards-1".parse::<GroupId>().is_err());
    }

    #[test]
    fn prefix_successor_bounds_exactly_the_prefixed_keys() {
        assert_eq!(prefix_successor("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        let succ = prefix_successor("photos/").expect("successor");
        for key in ["photos/", "photos/a", "photos/\u{10FFFF}"] {
            assert!(key < succ.as_str(), "{key}");
        }
        assert!("photos0" >= succ.as_str());
    }

    #[test]
    fn rejects_maps_with_gaps_or_bad_bounds() {
        let mut bad = map();
        bad.shards[1].start = "c/".into();
        assert!(matches!(
            bad.validate(),
            Err(ShardMapError::NotContiguous(_))
        ));
        assert!(ShardMap::with_splits(&["b", "a"], &replicas()).is_err());
        assert_eq!(
            ShardMap {
                version: 1,
                shards: vec![],
                replicas: replicas(),
                cluster_replicas: vec![],
                racks: Default::default(),
                replicas_per_group: 0,
            }
            .validate(),
            Err(ShardMapError::Empty)
        );
    }
}
