//! A whole Cairn cluster in one test process: the real metadata service,
//! storage nodes, gateway and scrubber, each serving real HTTP on an
//! ephemeral port, with RocksDB and chunk files in a temp dir.
//!
//! A test reads like the scenario it checks:
//!
//! ```no_run
//! # async fn example() {
//! let mut cluster = cairn_tests::TestCluster::start(6, 3).await;
//! let s3 = cluster.s3();
//! // … put objects, then:
//! cluster.hang(2);          // the node's API stops answering; it still heartbeats
//! cluster.stop(4).await;    // the node is gone (heartbeats stop too)
//! cluster.restart(4).await; // back, same data dir, same address
//! # }
//! ```
//!
//! Every node is reached through a small TCP proxy owned by the harness, so
//! the address the cluster knows stays the same across restarts and the
//! harness can freeze a node's API (a hung disk behind a live process)
//! while its heartbeats go on. Real processes that are SIGKILLed are tested
//! in the crates' own tests and in `tests/s3` (`cairn dev`).
//!
//! The proxies make the nodes other hosts as far as the gateway is
//! concerned, so the gateway reads and writes chunks over HTTP
//! (`ClusterSpec::short_circuit` off); a spec with it on has the gateway use
//! the nodes' local sockets, which `hang` does not freeze.

mod proxy;

use std::path::PathBuf;
use std::time::Duration;

use cairn_cli::bench::client::{S3Client, S3Target};
use cairn_core::ids::{ChunkId, NodeId, RackId};
use cairn_core::placement::NodeState;
use cairn_gateway::config::{Credential, GatewayConfig};
use cairn_gateway::server::Gateway;
use cairn_meta_api::MetaClient;
use cairn_meta_api::config::DetectorConfig;
use cairn_metadata_service::{MetaOptions, MetaServer};
use cairn_node_api::NodeConfig;
use cairn_scrubber::Scrubber;
use cairn_scrubber_api::ScrubberConfig;
use cairn_service::ClusterSecret;
use cairn_storage_node::StorageNode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::proxy::Proxy;

pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key";

/// How a test cluster is laid out.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    pub racks: usize,
    pub k: usize,
    pub m: usize,
    /// Failure detection, short so that tests see `suspect`/`down` quickly.
    pub detector: DetectorConfig,
    /// A node down this long has its chunks rebuilt by the scrubber.
    pub repair_after: Duration,
    /// Garbage is deleted this long after it became garbage (an hour:
    /// tests of garbage collection shorten it).
    pub gc_grace: Duration,
    /// How often the scrubber sweeps nodes for unreferenced chunks.
    pub gc_sweep_interval: Duration,
    /// A client silent this long mid-body gets `RequestTimeout`.
    pub client_idle_timeout: Duration,
    /// Blobs up to this size are stored as copies (the gateway's default;
    /// 0: every blob in k+m, for tests that need every node to hold a
    /// chunk of every blob).
    pub replicated_max: u64,
    /// The gateway reads and writes chunks in the nodes' files through
    /// their local sockets (off: over HTTP, through the proxies).
    pub short_circuit: bool,
}

impl ClusterSpec {
    /// `nodes` in `racks`, coded k+m = nodes with m = nodes / 3.
    pub fn new(nodes: usize, racks: usize) -> Self {
        let m = (nodes / 3).max(1);
        Self {
            nodes,
            racks,
            k: nodes - m,
            m,
            detector: DetectorConfig {
                suspect_after: Duration::from_millis(600),
                down_after: Duration::from_millis(1500),
            },
            repair_after: Duration::from_secs(3600),
            gc_grace: Duration::from_secs(3600),
            gc_sweep_interval: Duration::from_secs(600),
            client_idle_timeout: Duration::from_secs(20),
            replicated_max: GatewayConfig::new("").replicated_max_bytes,
            short_circuit: false,
        }
    }
}

/// A service running in a task of this process.
#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn spawn<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Self
    where
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        Self {
            stop,
            task: tokio::spawn(run(stopped)),
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result.expect("service stopped with an error"),
            Err(err) => panic!("service task failed: {err}"),
        }
    }
}

/// Resolves when the sender fires or is dropped.
async fn stopped(receiver: oneshot::Receiver<()>) {
    let _ = receiver.await;
}

/// One storage node of a test cluster.
#[derive(Debug)]
pub struct TestNode {
    pub id: NodeId,
    pub rack: RackId,
    /// The node's data directory (chunk files under `chunks/`).
    pub dir: PathBuf,
    config: NodeConfig,
    proxy: Proxy,
    /// Between the node and the metadata service, when its answers are
    /// delayed ([`TestCluster::delay_metadata_answers`]).
    meta_proxy: Option<Proxy>,
    server: Option<Running>,
}

/// A running cluster. Dropping it stops every task with the runtime; call
/// [`TestCluster::shutdown`] to stop it cleanly and check that each
/// service stopped without error.
#[derive(Debug)]
pub struct TestCluster {
    pub spec: ClusterSpec,
    pub secret: ClusterSecret,
    pub meta_url: String,
    pub s3_url: String,
    /// The gateway's `/metrics` and `/health`.
    pub gateway_admin_url: String,
    pub scrubber_url: String,
    /// A catalogue client, connected.
    pub meta: MetaClient,
    pub nodes: Vec<TestNode>,
    meta_server: Option<Running>,
    gateway: Option<Running>,
    scrubber: Option<Running>,
    /// Owns the cluster's files: removed when the cluster is dropped.
    _dir: tempfile::TempDir,
}

async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

impl TestCluster {
    /// [`ClusterSpec::new`]`(nodes, racks)`.
    pub async fn start(nodes: usize, racks: usize) -> Self {
        Self::start_with(ClusterSpec::new(nodes, racks)).await
    }

    /// Starts the metadata service (two shards, split at `m`), the nodes
    /// (waiting until every one is `up`), the gateway and the scrubber.
    pub async fn start_with(spec: ClusterSpec) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = ClusterSecret::new("test-cluster-secret").expect("secret");

        let (listener, meta_url) = bind().await;
        let options =
            MetaOptions::single(dir.path().join("meta"), &meta_url, &["m"], spec.detector);
        let server = MetaServer::open(options, secret.clone(), listener)
            .await
            .expect("metadata service");
        let meta_server = Running::spawn(|stop| server.run(stopped(stop)));
        let meta = MetaClient::connect(&meta_url, &secret)
            .await
            .expect("catalogue client");

        let per_rack = spec.nodes.div_ceil(spec.racks);
        let mut nodes = Vec::with_capacity(spec.nodes);
        for i in 0..spec.nodes {
            let id = NodeId::new(format!("node-{:02}", i + 1)).expect("node id");
            let rack = RackId::new(format!("rack-{}", i / per_rack + 1)).expect("rack id");
            let node_dir = dir.path().join(id.as_str());
            let proxy = Proxy::start().await;
            let mut config = NodeConfig::new(id.clone(), rack.clone(), node_dir.clone());
            config.metadata_url = Some(meta_url.clone());
            config.advertise_url = Some(format!("http://{}", proxy.addr()));
            config.heartbeat_interval_ms = 100;
            let mut node = TestNode {
                id,
                rack,
                dir: node_dir,
                config,
                proxy,
                meta_proxy: None,
                server: None,
            };
            start_node(&mut node, &secret).await;
            nodes.push(node);
        }

        let (s3_listener, s3_url) = bind().await;
        let (admin_listener, gateway_admin_url) = bind().await;
        let mut config = GatewayConfig::new(&meta_url);
        config.k = spec.k;
        config.m = spec.m;
        config.client_idle_timeout_ms = spec.client_idle_timeout.as_millis() as u64;
        config.replicated_max_bytes = spec.replicated_max;
        config.short_circuit = spec.short_circuit;
        config.credentials = vec![Credential {
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
        }];
        let gateway = Gateway::open(&config, &secret, s3_listener, Some(admin_listener))
            .await
            .expect("gateway");
        let gateway = Running::spawn(|stop| gateway.run(stopped(stop)));

        let (scrub_listener, scrubber_url) = bind().await;
        let mut config = ScrubberConfig::new(&meta_url, dir.path().join("scrubber"));
        config.poll_interval_ms = 100;
        config.repair_after_ms = spec.repair_after.as_millis() as u64;
        config.gc_grace_ms = spec.gc_grace.as_millis() as u64;
        config.gc_sweep_interval_ms = spec.gc_sweep_interval.as_millis() as u64;
        let scrubber = Scrubber::open(config, secret.clone(), scrub_listener)
            .await
            .expect("scrubber");
        let scrubber = Running::spawn(|stop| scrubber.run(stopped(stop)));

        let cluster = Self {
            spec,
            secret,
            meta_url,
            s3_url,
            gateway_admin_url,
            scrubber_url,
            meta,
            nodes,
            meta_server: Some(meta_server),
            gateway: Some(gateway),
            scrubber: Some(scrubber),
            _dir: dir,
        };
        cluster
            .wait_for_states(|state| state == NodeState::Up, "every node up")
            .await;
        cluster
    }

    /// An S3 client (SigV4, path style) for this cluster's gateway.
    pub fn s3(&self) -> S3Client {
        S3Client::new(S3Target {
            endpoint: self.s3_url.clone(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            region: "us-east-1".into(),
            tls: None,
        })
    }

    /// A counter or gauge from the gateway's `/metrics` (0 when absent):
    /// `name` sums its series, `name{labels}` is one series.
    pub async fn gateway_metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.gateway_admin_url))
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("gateway metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|line| {
                if name.contains('{') {
                    line.rsplit_once(' ').map(|(series, _)| series) == Some(name)
                } else {
                    line.split([' ', '{']).next() == Some(name)
                }
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Node `i`'s state in the registry.
    pub async fn state(&self, i: usize) -> Option<NodeState> {
        let nodes = self.meta.nodes().await.expect("registry");
        let id = &self.nodes[i].id;
        nodes.iter().find(|n| &n.id == id).map(|n| n.state)
    }

    /// Waits (up to 30 s) until every node's state satisfies `ok`.
    pub async fn wait_for_states(&self, ok: impl Fn(NodeState) -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let nodes = self.meta.nodes().await.expect("registry");
            if nodes.len() >= self.nodes.len() && nodes.iter().all(|n| ok(n.state)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                nodes.iter().map(|n| (&n.id, n.state)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 30 s) until node `i` is in `state`.
    pub async fn wait_for_state(&self, i: usize, state: NodeState) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.state(i).await != Some(state) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never became {state:?}",
                self.nodes[i].id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops node `i` (its API and its heartbeats): a crashed node.
    pub async fn stop(&mut self, i: usize) {
        if let Some(server) = self.nodes[i].server.take() {
            server.stop().await;
        }
    }

    /// Starts node `i` again on its data dir, at the same address.
    pub async fn restart(&mut self, i: usize) {
        self.stop(i).await;
        let secret = self.secret.clone();
        start_node(&mut self.nodes[i], &secret).await;
    }

    /// Node `i` is restarted talking to the metadata service through a
    /// proxy that delivers every answer `delay` late (its requests arrive
    /// on time): a catalogue slow to commit, as that node sees it.
    pub async fn delay_metadata_answers(&mut self, i: usize, delay: Duration) {
        let target = self
            .meta_url
            .trim_start_matches("http://")
            .parse()
            .expect("metadata address");
        let proxy = Proxy::start_with_answer_delay(delay).await;
        proxy.set_target(target);
        self.nodes[i].config.metadata_url = Some(format!("http://{}", proxy.addr()));
        self.nodes[i].meta_proxy = Some(proxy);
        self.restart(i).await;
    }

    /// Node `i`'s API stops answering (requests are accepted and then
    /// nothing moves), while the process keeps heartbeating: a hung disk
    /// behind a live process.
    pub fn hang(&self, i: usize) {
        self.nodes[i].proxy.hang(true);
    }

    /// Node `i` answers again.
    pub fn unhang(&self, i: usize) {
        self.nodes[i].proxy.hang(false);
    }

    /// The file holding `chunk` on node `i`.
    pub fn chunk_file(&self, i: usize, chunk: &ChunkId) -> PathBuf {
        self.nodes[i]
            .dir
            .join("chunks")
            .join(&chunk.blob.to_hex()[..2])
            .join(chunk.file_name())
    }

    /// Flips one byte inside block `block` of `chunk` on node `i`, as rot
    /// on a disk would.
    pub fn corrupt(&self, i: usize, chunk: &ChunkId, block: u64) {
        use cairn_core::chunk_file::ChunkHeader;
        let path = self.chunk_file(i, chunk);
        let mut bytes = std::fs::read(&path).expect("read chunk file");
        let header = ChunkHeader::decode(&bytes).expect("chunk header");
        let at = header.header_len as usize + (block * u64::from(header.block_size)) as usize;
        bytes[at] ^= 0xff;
        std::fs::write(&path, bytes).expect("write chunk file");
    }

    /// Stops the gateway, the scrubber, the nodes and the metadata
    /// service, checking that each stopped cleanly.
    pub async fn shutdown(mut self) {
        for service in [self.gateway.take(), self.scrubber.take()]
            .into_iter()
            .flatten()
        {
            service.stop().await;
        }
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
        if let Some(meta) = self.meta_server.take() {
            meta.stop().await;
        }
    }
}

async fn start_node(node: &mut TestNode, secret: &ClusterSecret) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server =
        StorageNode::open(node.config.clone(), secret.clone(), listener).expect("storage node");
    node.proxy.set_target(addr);
    node.server = Some(Running::spawn(|stop| server.run(stopped(stop))));
}
