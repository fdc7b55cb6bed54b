//! Three real `cairn-meta` processes replicating every group, under a
//! PUT/DELETE/GET load: a killed follower is invisible to clients, a killed
//! leader loses no acknowledged write, resurrects no acknowledged delete
//! and is replaced within a few election timeouts, and without a quorum
//! writes fail fast instead of hanging. Also: replacing a replica (seeded
//! by snapshot) and the failure detector moving with the cluster leader.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_meta_api::MetaClient;
use cairn_meta_api::model::{Precondition, ReplicaChange};
use cairn_service::ErrorCode;
use common::{manifest, secret};

struct Replica {
    id: u64,
    url: String,
    config: PathBuf,
    addr_file: PathBuf,
    /// The replica's port, held from the cluster's configuration until
    /// its first start (`common::reserve_port`).
    reserved: Option<TcpListener>,
    child: Option<Child>,
}

impl Replica {
    fn start(&mut self) {
        assert!(self.child.is_none(), "replica {} is running", self.id);
        drop(self.reserved.take());
        self.child = Some(common::spawn_meta(&self.config, &self.addr_file, None));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three replica processes, each binding its own address (so that a
/// killed one's port refuses connections, as after a real crash; a
/// restarted one binds it again).
fn cluster(dir: &Path) -> Vec<Replica> {
    let reserved: Vec<TcpListener> = (0..3).map(|_| common::reserve_port()).collect();
    let addrs: Vec<std::net::SocketAddr> = reserved
        .iter()
        .map(|listener| listener.local_addr().expect("addr"))
        .collect();
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let replicas_toml: String = urls
        .iter()
        .enumerate()
        .map(|(i, url)| format!("[[replicas]]\nid = {}\nurl = \"{url}\"\n", i + 1))
        .collect();
    addrs
        .iter()
        .zip(reserved)
        .enumerate()
        .map(|(i, (addr, reserved))| {
            let id = i as u64 + 1;
            let config = dir.join(format!("meta-{id}.toml"));
            std::fs::write(
                &config,
                format!(
                    "listen = \"{addr}\"\nadvertise_url = \"{}\"\ndata_dir = \"{}\"\nreplica_id = {id}\ninitial_splits = [\"m\"]\n{replicas_toml}",
                    urls[i],
                    dir.join(format!("meta-{id}")).display()
                ),
            )
            .expect("config");
            let mut replica = Replica {
                id,
                url: urls[i].clone(),
                config,
                addr_file: dir.join(format!("meta-{id}.addr")),
                reserved: Some(reserved),
                child: None,
            };
            replica.start();
            replica
        })
        .collect()
}

/// A client given every replica's URL.
async fn connect(urls: &[String]) -> Arc<MetaClient> {
    Arc::new(
        MetaClient::connect(&urls.join(","), &secret())
            .await
            .expect("connect"),
    )
}

/// The replica id leading `group`, as the replicas report it.
async fn leader_of(client: &MetaClient, group: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (_, _, status) in client.statuses().await {
            if let Ok(status) = status
                && let Some(g) = status.groups.iter().find(|g| g.group == group)
                && g.leader == Some(status.replica_id)
            {
                return status.replica_id;
            }
        }
        assert!(Instant::now() < deadline, "{group} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client load of PUTs, DELETEs and GETs, remembering every acknowledged
/// PUT and DELETE; a GET of a key whose PUT was acknowledged (and that was
/// not deleted) that misses it, or returns other bytes, is a violation.
/// A failed DELETE leaves its key uncertain: it is checked no further.
struct Writer {
    state: Arc<Mutex<Acked>>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default, Clone)]
struct Acked {
    /// Acknowledged PUTs, not deleted: key → ETag.
    live: std::collections::BTreeMap<String, String>,
    /// Acknowledged DELETEs.
    deleted: Vec<String>,
    puts: usize,
    violations: Vec<String>,
}

impl Writer {
    fn start(client: Arc<MetaClient>, prefix: &'static str) -> Self {
        let state = Arc::new(Mutex::new(Acked::default()));
        let errors = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (state, errors, stop) = (state.clone(), errors.clone(), stop.clone());
            async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{prefix}-{i:05}");
                    let etag = format!("etag-{prefix}-{i}");
                    match client
                        .commit_object("bucket", &key, manifest(i, &etag), Precondition::None)
                        .await
                    {
                        Ok(_) => {
                            let mut state = state.lock().expect("state");
                            state.live.insert(key, etag);
                            state.puts += 1;
                        }
                        Err(err) => {
                            eprintln!("commit {key} failed: {err}");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Every third round: delete one acknowledged key, read
                    // another.
                    if i % 3 == 2 {
                        let (victim, probe) = {
                            let state = state.lock().expect("state");
                            let keys: Vec<(String, String)> = state
                                .live
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect();
                            (
                                keys.first().map(|(k, _)| k.clone()),
                                keys.get(keys.len() / 2).cloned(),
                            )
                        };
                        if let Some(victim) = victim {
                            let result = client
                                .delete_object("bucket", &victim, Precondition::None)
                                .await;
                            let mut state = state.lock().expect("state");
                            state.live.remove(&victim);
                            match result {
                                Ok(_) => state.deleted.push(victim),
                                Err(_) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        if let Some((key, etag)) = probe {
                            match client.get_object("bucket", &key).await {
                                Ok(Some(record)) if record.manifest.etag == etag => {}
                                Ok(other) => state.lock().expect("state").violations.push(format!(
                                    "GET {key} after its acknowledged PUT: {other:?}"
                                )),
                                Err(_) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    i += 1;
                }
            }
        });
        Self {
            state,
            errors,
            stop,
            task,
        }
    }

    fn count(&self) -> usize {
        self.state.lock().expect("state").puts
    }

    async fn wait_for(&self, more_than: usize, within: Duration) -> Duration {
        let started = Instant::now();
        while self.count() <= more_than {
            assert!(
                started.elapsed() < within,
                "no commit within {within:?} ({} errors)",
                self.errors.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        started.elapsed()
    }

    async fn finish(self) -> (Acked, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer");
        let state = self.state.lock().expect("state").clone();
        (state, self.errors.load(Ordering::Relaxed))
    }
}

/// Every acknowledged PUT (not deleted since) is there with its ETag; no
/// acknowledged DELETE came back; no GET during the load saw otherwise.
async fn check_load(client: &MetaClient, acked: &Acked) {
    assert!(acked.violations.is_empty(), "{:?}", acked.violations);
    for (key, etag) in &acked.live {
        let record = client
            .get_object("bucket", key)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("acknowledged {key} is lost"));
        assert_eq!(&record.manifest.etag, etag, "{key}");
    }
    for key in &acked.deleted {
        assert!(
            client
                .get_object("bucket", key)
                .await
                .expect("get")
                .is_none(),
            "deleted {key} came back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_a_killed_follower_and_a_killed_leader_and_fail_fast_without_quorum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut replicas = cluster(dir.path());
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let client = connect(&urls).await;
    client.create_bucket("bucket", "ann").await.expect("bucket");
    // "bucket/…" lives in shard 0 (the map is cut at "m").
    let leader = leader_of(&client, "shard-0").await;

    // A follower dies: no client sees an error.
    let writer = Writer::start(client.clone(), "f");
    writer.wait_for(20, Duration::from_secs(30)).await;
    let follower = replicas
        .iter_mut()
        .find(|r| r.id != leader)
        .expect("follower");
    follower.kill();
    let at_kill = writer.count();
    writer.wait_for(at_kill + 50, Duration::from_secs(30)).await;
    let (acked_f, errors) = writer.finish().await;
    assert_eq!(errors, 0, "a killed follower is invisible to clients");
    check_load(&client, &acked_f).await;
    let follower_id = follower.id;
    follower.start();

    // The leader dies mid-load: writes resume under a new leader.
    let writer = Writer::start(client.clone(), "l");
    writer.wait_for(20, Duration::from_secs(30)).await;
    let killed_at = Instant::now();
    replicas[(leader - 1) as usize].kill();
    let at_kill = writer.count();
    writer.wait_for(at_kill + 1, Duration::from_secs(30)).await;
    let failover = killed_at.elapsed();
    eprintln!("leader of shard-0 killed: first commit after {failover:?}");
    writer.wait_for(at_kill + 20, Duration::from_secs(30)).await;
    let (acked_l, _) = writer.finish().await;
    let new_leader = leader_of(&client, "shard-0").await;
    assert_ne!(new_leader, leader);

    // Every acknowledged write is there, with its ETag; no acknowledged
    // delete came back.
    check_load(&client, &acked_l).await;
    assert!(!acked_l.deleted.is_empty(), "the load deleted nothing");

    // The killed leader comes back and catches up.
    replicas[(leader - 1) as usize].start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = client.statuses().await;
        let applied: Vec<Option<u64>> = statuses
            .iter()
            .map(|(_, _, s)| {
                s.as_ref().ok().and_then(|s| {
                    s.groups
                        .iter()
                        .find(|g| g.group == "shard-0")
                        .and_then(|g| g.applied_index)
                })
            })
            .collect();
        if applied.iter().all(Option::is_some) && applied.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two of three die: a write fails fast with no_quorum (or no leader),
    // it does not hang.
    for replica in replicas.iter_mut().filter(|r| r.id != follower_id) {
        replica.kill();
    }
    let started = Instant::now();
    let refused = client
        .commit_object("bucket", "no-quorum", manifest(1, "x"), Precondition::None)
        .await
        .expect_err("no quorum, no commit");
    assert!(
        refused.is_unavailable() || refused.code() == Some(ErrorCode::NoQuorum),
        "{refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "failed after {:?}",
        started.elapsed()
    );
    // One returns: writes resume.
    let back = replicas
        .iter_mut()
        .find(|r| r.id != follower_id)
        .expect("one");
    back.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .commit_object(
                "bucket",
                "after-quorum",
                manifest(1, "y"),
                Precondition::None,
            )
            .await
        {
            Ok(_) => break,
            Err(err) => assert!(Instant::now() < deadline, "writes did not resume: {err}"),
        }
    }
    assert!(
        client
            .get_object("bucket", "after-quorum")
            .await
            .expect("get")
            .is_some()
    );
}

/// The documented replacement of a metadata host: its replica is removed,
/// a process with an empty disk joins under the same id, and every group
/// (a split's child included, whose first rows are not in its log) seeds
/// it by snapshot. Afterwards every replica's digest of every group is
/// equal, and the new replica is a full voter: the cluster survives the
/// loss of another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_replica_is_removed_and_re_added_by_snapshot_with_equal_digests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut replicas = cluster(dir.path());
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let client = connect(&urls).await;
    client.create_bucket("bucket", "ann").await.expect("bucket");
    client.create_bucket("zebra", "ann").await.expect("bucket");
    let commit = |bucket: &'static str, key: String| {
        let client = &client;
        async move {
            client
                .commit_object(bucket, &key, manifest(1, &key), Precondition::None)
                .await
                .expect("commit");
        }
    };
    for i in 0..40 {
        commit("bucket", format!("a/{i:03}")).await;
        commit("bucket", format!("sub/{i:03}")).await;
        commit("zebra", format!("{i:03}")).await;
    }
    // A child shard whose first rows come from its parent.
    client.split("bucket/sub/").await.expect("split");

    // Replica 3's disk is lost.
    replicas[2].kill();
    std::fs::remove_dir_all(dir.path().join("meta-3")).expect("wipe");
    let map = client
        .change_replicas(&ReplicaChange::Remove { id: 3 })
        .await
        .expect("remove replica 3");
    assert_eq!(map.replicas.keys().copied().collect::<Vec<_>>(), [1, 2]);
    for i in 40..60 {
        commit("bucket", format!("sub/{i:03}")).await;
    }

    // A new process joins under the same id and URL.
    let config = std::fs::read_to_string(&replicas[2].config).expect("config");
    std::fs::write(&replicas[2].config, format!("join = true\n{config}")).expect("config");
    replicas[2].start();
    let map = client
        .change_replicas(&ReplicaChange::Add {
            id: 3,
            url: replicas[2].url.clone(),
            rack: None,
        })
        .await
        .expect("add replica 3");
    assert_eq!(map.replicas.len(), 3);
    assert!(map.shards.iter().all(|s| s.replicas.len() == 3));
    assert!(map.shards.len() >= 3, "the split's child is in the map");

    let verdicts = client.verify(50).await.expect("verify");
    for verdict in &verdicts {
        assert!(!verdict.diverged(), "{verdict:?}");
        assert!(verdict.settled(), "{verdict:?}");
        assert_eq!(verdict.digests.len(), 3, "{verdict:?}");
    }

    // The new replica is a real copy: with replica 1 gone too, replicas 2
    // and 3 still hold a quorum of every group and every object.
    replicas[0].kill();
    for i in 0..60 {
        let key = format!("sub/{i:03}");
        let record = client
            .get_object("bucket", &key)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(record.manifest.etag, key);
    }
    for i in 0..40 {
        assert!(
            client
                .get_object("zebra", &format!("{i:03}"))
                .await
                .expect("get")
                .is_some()
        );
    }
    commit("bucket", "after".to_owned()).await;
}

/// The failure detector runs on the cluster group's leader. When that
/// leader dies, the new one resumes detection (a node that falls silent is
/// still found) without declaring the live nodes suspect: silence is
/// counted from its own election, not from the old leader's last word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_leader_resumes_failure_detection_without_flapping_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut replicas = cluster(dir.path());
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let client = connect(&urls).await;
    let silent = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let beats = tokio::spawn({
        let (client, silent, stop) = (client.clone(), silent.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                for id in ["n1", "n2", "n3"] {
                    if id == "n3" && silent.load(Ordering::Relaxed) {
                        continue;
                    }
                    let _ = client.heartbeat(&common::node_status(id)).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.nodes().await.map_or(0, |n| n.len()) < 3 {
        assert!(Instant::now() < deadline, "nodes did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = leader_of(&client, "cluster").await;
    replicas[(old - 1) as usize].kill();
    let new = leader_of(&client, "cluster").await;
    assert_ne!(new, old);
    // n3 falls silent under the new leader: it must be found.
    silent.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = client.events(0).await.unwrap_or_default();
        if events
            .iter()
            .any(|e| e.node.as_str() == "n3" && e.to == cairn_core::placement::NodeState::Suspect)
        {
            // n1 and n2 kept beating: registration is their only change.
            for id in ["n1", "n2"] {
                let changes: Vec<_> = events.iter().filter(|e| e.node.as_str() == id).collect();
                assert_eq!(changes.len(), 1, "{id} flapped: {changes:?}");
                assert_eq!(changes[0].from, None);
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new leader never judged the silent node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    beats.await.expect("heartbeats");
}

/// Four replicas in three racks, three replicas per group: each group
/// lives on three processes in distinct racks, the groups' first leaders
/// are spread over the processes, and the catalogue works on every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_placed_on_three_of_four_replicas_in_distinct_racks_with_leaders_spread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut listeners = Vec::new();
    for _ in 0..4 {
        listeners.push(common::bind().await);
    }
    let replicas: cairn_meta_api::shard_map::Replicas = listeners
        .iter()
        .enumerate()
        .map(|(i, (_, url))| (i as u64 + 1, url.clone()))
        .collect();
    let racks: std::collections::BTreeMap<u64, String> = [(1, "a"), (2, "b"), (3, "c"), (4, "a")]
        .into_iter()
        .map(|(id, rack)| (id, rack.to_owned()))
        .collect();
    let mut processes = Vec::new();
    for (i, (listener, url)) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        let options = cairn_metadata_service::MetaOptions {
            data_dir: dir.path().join(format!("meta-{id}")),
            advertise_url: url,
            replica_id: id,
            replicas: replicas.clone(),
            initial_splits: vec!["g".into(), "n".into(), "t".into()],
            detector: cairn_meta_api::config::DetectorConfig::LOCAL,
            join: false,
            racks: racks.clone(),
            replicas_per_group: 3,
            issuer: None,
        };
        processes.push(common::serve(listener, options).await);
    }
    let urls: Vec<String> = replicas.values().cloned().collect();
    let client = connect(&urls).await;
    let map = client.shard_map();
    assert_eq!(map.shards.len(), 4);
    for bucket in ["apple", "house", "orange", "zebra"] {
        client.create_bucket(bucket, "ann").await.expect("bucket");
        client
            .commit_object(bucket, "k", manifest(1, bucket), Precondition::None)
            .await
            .expect("commit");
        let record = client
            .get_object(bucket, "k")
            .await
            .expect("get")
            .expect("there");
        assert_eq!(record.manifest.etag, bucket);
    }
    // Hosting and leadership, as the processes report them.
    let mut hosts: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut leaders: std::collections::BTreeMap<String, u64> = Default::default();
    for (id, _, status) in client.statuses().await {
        for group in status.expect("status").groups {
            hosts.entry(group.group.clone()).or_default().push(id);
            if group.leader == Some(id) {
                leaders.insert(group.group.clone(), id);
            }
        }
    }
    assert_eq!(
        hosts.len(),
        5,
        "the cluster group and four shards: {hosts:?}"
    );
    for (group, on) in &hosts {
        assert_eq!(on.len(), 3, "{group} on {on:?}");
        let distinct: std::collections::BTreeSet<&String> = on.iter().map(|r| &racks[r]).collect();
        assert_eq!(distinct.len(), 3, "{group} on {on:?} shares a rack");
    }
    let distinct_leaders: std::collections::BTreeSet<u64> = leaders.values().copied().collect();
    assert!(
        distinct_leaders.len() >= 3,
        "leaders are spread over the processes: {leaders:?}"
    );
    for process in processes {
        process.stop().await;
    }
}

/// Sends `kill -<signal>` to a replica's process.
fn signal(replica: &Replica, signal: &str) {
    let pid = replica.child.as_ref().expect("running").id();
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The read lease is bounded: a shard leader that was paused (SIGSTOP)
/// while the others elected a new leader and committed a newer version
/// must not answer a read from its old state once it runs again, even
/// though it held a lease when it was paused. It answers `not_leader`
/// (or, had it stayed leader, the newest version), never the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_whose_lease_ran_out_never_serves_a_stale_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut replicas = cluster(dir.path());
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let client = connect(&urls).await;
    client.create_bucket("bucket", "ann").await.expect("bucket");
    client
        .commit_object("bucket", "k", manifest(1, "old"), Precondition::None)
        .await
        .expect("commit the old version");
    let leader = leader_of(&client, "shard-0").await;
    let old_leader_url = replicas[(leader - 1) as usize].url.clone();
    let http = reqwest::Client::new();
    let read_from_old_leader = || {
        http.get(format!("{old_leader_url}/shards/0/object"))
            .query(&[("bucket", "bucket"), ("key", "k")])
            .header(cairn_service::SECRET_HEADER, common::SECRET)
            .timeout(Duration::from_secs(10))
            .send()
    };
    // Reads on the leader: the first confirms leadership with a quorum and
    // starts a lease, the next ones are served within it.
    for _ in 0..3 {
        let answer = read_from_old_leader().await.expect("read");
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
    }

    signal(&replicas[(leader - 1) as usize], "STOP");
    // Asks the two others directly: `leader_of` goes through
    // `MetaClient::statuses`, which would wait out the paused replica on
    // every round.
    let new_leader = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut found = None;
            for replica in replicas.iter().filter(|r| r.id != leader) {
                let status: Option<cairn_meta_api::model::MetaStatus> = async {
                    http.get(format!("{}/status", replica.url))
                        .header(cairn_service::SECRET_HEADER, common::SECRET)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()
                }
                .await;
                if let Some(status) = status
                    && let Some(g) = status.groups.iter().find(|g| g.group == "shard-0")
                    && g.leader == Some(status.replica_id)
                {
                    found = Some(status.replica_id);
                }
            }
            if let Some(id) = found {
                break id;
            }
            assert!(Instant::now() < deadline, "no new shard-0 leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_ne!(new_leader, leader);
    let survivors: Vec<String> = replicas
        .iter()
        .filter(|r| r.id != leader)
        .map(|r| r.url.clone())
        .collect();
    connect(&survivors)
        .await
        .commit_object("bucket", "k", manifest(1, "new"), Precondition::None)
        .await
        .expect("commit the new version under the new leader");

    // The old leader runs again and is asked at once, before the new
    // leader's heartbeats can have told it about the new term.
    signal(&replicas[(leader - 1) as usize], "CONT");
    let answer = read_from_old_leader().await.expect("read after SIGCONT");
    let status = answer.status();
    let body = answer.text().await.expect("body");
    if status == reqwest::StatusCode::OK {
        let record: cairn_meta_api::model::ObjectRecord =
            serde_json::from_str(&body).expect("an object record");
        assert_eq!(
            record.manifest.etag, "new",
            "the paused leader served its old state"
        );
    } else {
        assert!(
            body.contains("not_leader") || body.contains("no_quorum"),
            "{status}: {body}"
        );
    }
    // And the cluster as a whole reads the new version.
    let current = client
        .get_object("bucket", "k")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(current.manifest.etag, "new");
    replicas.iter_mut().for_each(Replica::kill);
}
