//! `cairn dev`: a whole local cluster in the foreground. The metadata
//! service, every storage node, the gateway and the scrubber each run as
//! their own OS process (the `cairn-meta`, `cairn-node`, `cairn-gateway`
//! and `cairn-scrubber` binaries next to `cairn`), so a user can `kill -9` a
//! node and watch the cluster heal. Configuration is generated into the data
//! directory from the services' own config types ([`configs`]); data
//! survives a restart.
//!
//! Start-up order: every fixed port is bound first ([`ports`]), then the
//! metadata service, the nodes (on OS-chosen ports), the gateway and the
//! scrubber, each handed its sockets ([`process`]).

mod configs;
mod ports;
mod process;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_core::placement::NodeState;
use cairn_gateway::config::Credential;
use cairn_meta_api::MetaClient;
use cairn_node_api::NodeConfig;
use cairn_service::ClusterSecret;
use cairn_service::tls::TlsFiles;
use cairn_service::tls::join::JoinRole;

use crate::cluster_file::{ClusterFile, NodeInfo, ProcessInfo};
use ports::Ports;
use process::{
    START_PATIENCE, Spawn, Supervised, describe, fresh, spawn, terminate, wait_for_addr,
};

/// Well-known credentials of a dev cluster (override with
/// `CAIRN_ACCESS_KEY` / `CAIRN_SECRET_KEY`).
pub const DEV_ACCESS_KEY: &str = "cairn-dev";
pub const DEV_SECRET_KEY: &str = "cairn-dev-secret-key";

#[derive(Debug, Clone)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    /// The address every service binds and advertises (127.0.0.1 keeps the
    /// cluster on this machine).
    pub host: std::net::IpAddr,
    /// S3 port; the gateway admin port is `port + 1`, the metadata service
    /// `port + 2` (it keeps its first address across restarts), the
    /// scrubber `port + 3`. 0 lets the OS choose every one of them.
    pub port: u16,
    pub nodes: usize,
    pub racks: usize,
    /// Metadata replicas (1, 3 or 5): every Raft group on each.
    pub meta_replicas: usize,
    pub k: usize,
    pub m: usize,
    /// Where `cairn-meta`, `cairn-node`, `cairn-gateway` and `cairn-scrubber` are.
    pub bin_dir: PathBuf,
    /// Base domain for virtual-host-style S3 addressing (`bucket.<domain>`).
    pub s3_domain: Option<String>,
    /// A node down this long has its chunks rebuilt elsewhere.
    pub repair_after: Duration,
    /// Unreferenced chunks are deleted after this long.
    pub gc_grace: Duration,
    /// A lifecycle "day", and how often the lifecycle job runs.
    pub lifecycle_day: Duration,
    /// The S3 region the gateway serves (GetBucketLocation, signatures).
    pub region: String,
    /// Object Ownership of buckets created without naming one.
    pub default_object_ownership: cairn_core::acl::ObjectOwnership,
    pub lifecycle_every: Duration,
    /// Failure detector timeouts (short, so a killed node shows up fast).
    pub suspect_after: Duration,
    pub down_after: Duration,
    /// Objects up to this size are stored in their manifest (0: never).
    pub inline_max: u64,
    /// Blobs up to this size are stored as 3 copies (0: never).
    pub replicated_max: u64,
    /// The gateway reads and writes chunks of the (local) nodes in their
    /// files (short-circuit).
    pub short_circuit: bool,
    /// S3 users besides the cluster's own (`--user`).
    pub users: Vec<cairn_gateway::config::Credential>,
    /// HTTPS on the S3 endpoint and mutual TLS between every process, with
    /// certificates from a cluster CA made in `<data-dir>/tls/`.
    pub tls: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(
        "{binary} not found in {dir}: build all binaries first (`cargo build --release --bins`, or use `./dev run`)"
    )]
    MissingBinary { binary: &'static str, dir: PathBuf },
    #[error("invalid options: {0}")]
    Options(String),
    #[error("cannot listen on {addr} for {what} ({hint}): {source}")]
    Port {
        what: &'static str,
        addr: SocketAddr,
        hint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} did not start within {START_PATIENCE:?}; see {log}")]
    StartTimeout { name: String, log: String },
    #[error("{name} exited during start-up ({status}); see {log}")]
    StartFailed {
        name: String,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("metadata service: {0}")]
    Meta(#[from] cairn_meta_api::MetaError),
    #[error(transparent)]
    Secret(#[from] cairn_service::secret::SecretError),
    #[error(transparent)]
    ClusterFile(#[from] crate::cluster_file::ClusterFileError),
    #[error("TLS: {0}")]
    Tls(#[from] cairn_service::tls::TlsError),
    #[error("joining: {0}")]
    Join(#[from] crate::join::JoinCommandError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevError {
    let what = what.into();
    move |source| DevError::Io { what, source }
}

/// A running dev cluster.
#[derive(Debug)]
pub struct DevCluster {
    pub info: ClusterFile,
    pub cluster_file: PathBuf,
    /// The metadata replicas, in replica-id order; `None` once one exited.
    meta: Vec<Option<Supervised>>,
    nodes: Vec<Supervised>,
    gateway: Supervised,
    scrubber: Supervised,
    gateway_bin: PathBuf,
    scrubber_bin: PathBuf,
    /// Held for restarts of the gateway and the scrubber.
    ports: Ports,
    secret: String,
    run_dir: PathBuf,
}

impl DevOptions {
    fn validate(&self) -> Result<(), DevError> {
        let bad = |m: String| Err(DevError::Options(m));
        if self.racks == 0 || self.nodes < self.racks {
            return bad(format!(
                "need at least one node per rack ({} nodes, {} racks)",
                self.nodes, self.racks
            ));
        }
        if ![1, 3, 5].contains(&self.meta_replicas) {
            return bad(format!(
                "--meta-replicas must be 1, 3 or 5 (a majority must survive), not {}",
                self.meta_replicas
            ));
        }
        if self.k == 0 || self.m == 0 || self.k + self.m > self.nodes {
            return bad(format!(
                "k={} m={} needs at least k+m = {} nodes, have {}",
                self.k,
                self.m,
                self.k + self.m,
                self.nodes
            ));
        }
        // Placement spreads chunks evenly over racks; losing one rack must
        // cost at most m chunks.
        let per_rack_chunks = (self.k + self.m).div_ceil(self.racks);
        if per_rack_chunks > self.m {
            return bad(format!(
                "{} racks cannot hold {} chunks with at most m = {} per rack; add racks or parity",
                self.racks,
                self.k + self.m,
                self.m
            ));
        }
        if self.port > u16::MAX - 3 {
            return bad(format!(
                "--port {} leaves no room for --port + 3",
                self.port
            ));
        }
        Ok(())
    }

    fn binary(&self, name: &'static str) -> Result<PathBuf, DevError> {
        let path = self.bin_dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(DevError::MissingBinary {
                binary: name,
                dir: self.bin_dir.clone(),
            })
        }
    }
}

/// Node `i` (0-based): its id and rack. Racks are filled in order, so
/// node-01..03 share rack-1 in the default 12 nodes over 4 racks.
pub fn node_identity(index: usize, nodes: usize, racks: usize) -> (String, String) {
    let per_rack = nodes.div_ceil(racks);
    (
        format!("node-{:02}", index + 1),
        format!("rack-{}", index / per_rack + 1),
    )
}

/// The cluster secret of a data directory: generated on first start, kept
/// in `<data-dir>/cluster-secret` (owner-only).
fn cluster_secret(data_dir: &Path) -> Result<String, DevError> {
    if let Ok(secret) = std::env::var("CAIRN_CLUSTER_SECRET") {
        return Ok(secret);
    }
    let text = owner_only_file(&data_dir.join("cluster-secret"), || {
        use rand::Rng;
        let bytes: [u8; 24] = rand::rng().random();
        hex::encode(bytes)
    })?;
    Ok(text.trim().to_owned())
}

/// The gateways' SSE-S3 keyring of a data directory: one master key made
/// on first start, kept in `<data-dir>/sse-keyring` (owner-only).
fn sse_keyring(data_dir: &Path) -> Result<PathBuf, DevError> {
    let path = data_dir.join("sse-keyring");
    owner_only_file(&path, || {
        format!(
            "# SSE-S3 master keys (ID:BASE64); the highest id encrypts new objects\n{}\n",
            cairn_gateway::sse::Keyring::new_key_line(1)
        )
    })?;
    Ok(path)
}

/// The contents of a file only its owner may read, written (and synced)
/// by `make` the first time.
fn owner_only_file(path: &Path, make: impl FnOnce() -> String) -> Result<String, DevError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(text);
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = make();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("create {}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(format!("write {}", path.display())))?;
    Ok(text)
}

impl DevCluster {
    /// Binds the cluster's ports, starts the metadata service, the storage
    /// nodes, the gateway and the scrubber, and writes `cluster.json`. On
    /// error, whatever started is stopped again (children are killed when
    /// dropped), and a port that cannot be had fails before anything starts.
    pub async fn start(options: &DevOptions) -> Result<Self, DevError> {
        options.validate()?;
        let meta_bin = options.binary("cairn-meta")?;
        let node_bin = options.binary("cairn-node")?;
        let gateway_bin = options.binary("cairn-gateway")?;
        let scrubber_bin = options.binary("cairn-scrubber")?;
        let data = &options.data_dir;
        for dir in [data.clone(), data.join("logs"), data.join("run")] {
            std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        }
        let data = std::fs::canonicalize(data).map_err(io("resolve the data dir"))?;
        let secret = cluster_secret(&data)?;
        let tls = if options.tls {
            Some(tls::DevTls::ensure(&data)?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Every process is reached at the cluster's host address.
        let host_names = vec![options.host.to_string(), "localhost".to_owned()];
        let issue = |name: &str| -> Result<Option<TlsFiles>, DevError> {
            tls.as_ref().map(|t| t.issue(name, &host_names)).transpose()
        };
        // The identity of `cairn` itself (admin commands, the bench).
        let admin_tls = issue("admin")?;
        let cluster_secret =
            ClusterSecret::new(&secret)?.with_tls(cairn_service::tls::load(admin_tls.as_ref())?);
        let run = data.join("run");
        let logs = data.join("logs");

        // Every fixed port first: nothing this cluster starts later (nodes
        // on OS-chosen ports) can take one of them.
        let meta_configs: Vec<PathBuf> = (1..=options.meta_replicas)
            .map(|id| data.join(format!("meta-{id}.toml")))
            .collect();
        let previous: Vec<Option<SocketAddr>> = meta_configs
            .iter()
            .map(|path| configs::previous_meta_addr(path))
            .collect();
        let mut ports = Ports::bind(options.host, options.port, &previous)?;
        let s3_addr = ports::addr(&ports.s3)?;
        let admin_addr = ports::addr(&ports.admin)?;
        let meta_addrs = ports
            .meta
            .iter()
            .map(ports::addr)
            .collect::<Result<Vec<_>, _>>()?;
        let scrubber_addr = ports::addr(&ports.scrubber)?;
        // Clients are given every replica: any of them leads them on.
        let meta_url = meta_addrs
            .iter()
            .map(|a| format!("{scheme}://{a}"))
            .collect::<Vec<_>>()
            .join(",");

        // All replicas at once: the cluster needs a quorum to start.
        let mut metas = Vec::with_capacity(options.meta_replicas);
        for (index, path) in meta_configs.iter().enumerate() {
            let id = index as u64 + 1;
            let mut config = configs::meta(options, &data, id, &meta_addrs, scheme);
            // Replicas get their certificates from the CA directly (as
            // `cairn cluster init` gives the first one) and hold its key:
            // every other process joins through them with a token.
            config.tls = issue(&format!("meta-{id}"))?;
            config.ca_key = tls.as_ref().map(tls::DevTls::ca_key_path);
            configs::write(path, &config)?;
            let addr_file = fresh(run.join(format!("meta-{id}.addr")));
            let process = spawn(Spawn {
                name: &format!("metadata replica {id}"),
                binary: &meta_bin,
                args: vec![
                    "--config".into(),
                    path.display().to_string(),
                    "--addr-file".into(),
                    addr_file.display().to_string(),
                ],
                secret: &secret,
                log: logs.join(format!("meta-{id}.log")),
                listeners: vec![ports::handoff(&ports.meta[index])?],
            })?;
            metas.push((process, addr_file));
        }
        let mut meta = Vec::with_capacity(metas.len());
        let mut meta_infos = Vec::with_capacity(metas.len());
        for (index, (mut process, addr_file)) in metas.into_iter().enumerate() {
            wait_for_addr(&mut process, &addr_file).await?;
            meta_infos.push(ProcessInfo {
                pid: process.pid(),
                address: format!("{scheme}://{}", meta_addrs[index]),
                data_dir: Some(data.join(format!("meta-{}", index + 1))),
                log: process.log.clone(),
            });
            meta.push(Some(process));
        }
        // Each replica holds its own socket now. Unlike the scrubber's,
        // cairn dev does not keep a copy: a replica restarted by hand (as
        // after a crash) binds its configured address again.
        drop(std::mem::take(&mut ports.meta));

        // Everything else joins the way a new host does (`cairn node join`):
        // a token per role, a certificate from a metadata replica.
        let joiner = match &tls {
            Some(tls) => Some(tls::Joiner::new(
                tls,
                &cluster_secret,
                &meta_url,
                &data,
                host_names.clone(),
            )?),
            None => None,
        };
        let join = |role, name: String, s3_names: Vec<String>| {
            let joiner = joiner.clone();
            async move {
                match joiner {
                    Some(joiner) => joiner.join(role, &name, s3_names).await.map(Some),
                    None => Ok(None),
                }
            }
        };

        // Storage nodes, racks filled in order, on ports the OS picks
        // (nodes re-register their address on every heartbeat).
        let mut nodes = Vec::with_capacity(options.nodes);
        let mut node_infos = Vec::with_capacity(options.nodes);
        for index in 0..options.nodes {
            let (id, rack) = node_identity(index, options.nodes, options.racks);
            let node_dir = data.join("nodes").join(&id);
            let addr_file = fresh(run.join(format!("{id}.addr")));
            let log = logs.join(format!("{id}.log"));
            let config_path = data.join(format!("{id}.toml"));
            let mut config = NodeConfig::new(
                id.parse()
                    .map_err(|e| DevError::Options(format!("node id {id}: {e}")))?,
                rack.parse()
                    .map_err(|e| DevError::Options(format!("rack {rack}: {e}")))?,
                node_dir.clone(),
            );
            config.listen = SocketAddr::new(options.host, 0);
            config.metadata_url = Some(meta_url.clone());
            config.tls = join(JoinRole::Node, id.clone(), Vec::new())
                .await?
                .map(|joined| joined.0);
            configs::write(&config_path, &config)?;
            let process = spawn(Spawn {
                name: &id,
                binary: &node_bin,
                args: vec![
                    "--config".into(),
                    config_path.display().to_string(),
                    "--addr-file".into(),
                    addr_file.display().to_string(),
                ],
                secret: &secret,
                log: log.clone(),
                listeners: Vec::new(),
            })?;
            nodes.push((process, addr_file));
            node_infos.push(NodeInfo {
                id,
                rack,
                address: String::new(),
                pid: 0,
                data_dir: node_dir,
                log,
            });
        }
        let mut supervised_nodes = Vec::with_capacity(nodes.len());
        for ((mut process, addr_file), info) in nodes.into_iter().zip(node_infos.iter_mut()) {
            info.address = format!(
                "{scheme}://{}",
                wait_for_addr(&mut process, &addr_file).await?
            );
            info.pid = process.pid();
            supervised_nodes.push(process);
        }
        wait_for_nodes_up(&meta_url, &cluster_secret, options.nodes).await?;

        // Gateway.
        let credential = match (
            std::env::var("CAIRN_ACCESS_KEY"),
            std::env::var("CAIRN_SECRET_KEY"),
        ) {
            (Ok(access_key), Ok(secret_key)) => Credential {
                access_key,
                secret_key,
            },
            _ => Credential {
                access_key: DEV_ACCESS_KEY.to_owned(),
                secret_key: DEV_SECRET_KEY.to_owned(),
            },
        };
        let gateway_config = data.join("gateway.toml");
        let mut gateway_settings =
            configs::gateway(options, &meta_url, s3_addr, admin_addr, credential.clone());
        gateway_settings.sse_keyring_file = Some(sse_keyring(&data)?);
        gateway_settings.scrubber_url = Some(format!("{scheme}://{scrubber_addr}"));
        // The S3 certificate also names the virtual-host domain.
        let mut s3_names = host_names.clone();
        if let Some(domain) = &options.s3_domain {
            s3_names.extend([domain.clone(), format!("*.{domain}")]);
        }
        match join(JoinRole::Gateway, "gateway".into(), s3_names).await? {
            Some((identity, s3)) => {
                gateway_settings.tls = Some(identity);
                gateway_settings.s3_tls = s3;
            }
            None => {
                // Loopback in clear text, asked for; SSE-C works there too
                // (`--tls` for the real thing).
                gateway_settings.s3_plain_http = true;
                gateway_settings.sse_c_over_plain_http = true;
            }
        }
        configs::write(&gateway_config, &gateway_settings)?;
        let gateway = spawn_gateway(&gateway_bin, &data, &secret, &ports).await?;

        let mut scrubber_settings = configs::scrubber(options, &data, &meta_url, scrubber_addr);
        scrubber_settings.tls = join(JoinRole::Scrubber, "scrubber".into(), Vec::new())
            .await?
            .map(|joined| joined.0);
        configs::write(&data.join("scrubber.toml"), &scrubber_settings)?;
        let scrubber = spawn_scrubber(&scrubber_bin, &data, &secret, &ports).await?;

        let info = ClusterFile {
            s3_endpoint: format!("{scheme}://{s3_addr}"),
            admin_endpoint: meta_url.clone(),
            gateway_admin_endpoint: format!("{scheme}://{admin_addr}"),
            scrubber_endpoint: format!("{scheme}://{scrubber_addr}"),
            tls: admin_tls,
            region: options.region.clone(),
            access_key: credential.access_key,
            secret_key: credential.secret_key,
            cluster_secret: secret.clone(),
            k: options.k,
            m: options.m,
            inline_max: Some(options.inline_max),
            replicated_max: Some(options.replicated_max),
            metadata: meta_infos,
            gateway: ProcessInfo {
                pid: gateway.pid(),
                address: format!("{scheme}://{s3_addr}"),
                data_dir: None,
                log: gateway.log.clone(),
            },
            scrubber: ProcessInfo {
                pid: scrubber.pid(),
                address: format!("{scheme}://{scrubber_addr}"),
                data_dir: Some(data.join("scrubber")),
                log: scrubber.log.clone(),
            },
            nodes: node_infos,
        };
        let cluster_file = ClusterFile::path_in(&data);
        info.store(&cluster_file)?;
        Ok(Self {
            info,
            cluster_file,
            meta,
            nodes: supervised_nodes,
            gateway,
            scrubber,
            gateway_bin,
            scrubber_bin,
            ports,
            secret,
            run_dir: data.clone(),
        })
    }

    /// Runs until `shutdown` resolves (or a gateway or scrubber that died
    /// cannot be started again: they are restarted on their sockets). A
    /// storage node or a metadata replica that exits is reported and left
    /// down: that is what a user killing one wants to watch (the metadata
    /// groups carry on while a majority of replicas lives).
    pub async fn supervise(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), String> {
        tokio::pin!(shutdown);
        let mut reported = vec![false; self.nodes.len()];
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                (index, status) = wait_any(&mut self.meta) => {
                    let id = index + 1;
                    let log = self.meta[index].as_ref().map(|m| m.log.display().to_string()).unwrap_or_default();
                    self.meta[index] = None;
                    let alive = self.meta.iter().filter(|m| m.is_some()).count();
                    eprintln!(
                        "cairn dev: metadata replica {id} exited ({}; see {log}); {alive} of {} replicas remain{}",
                        describe(status),
                        self.meta.len(),
                        if alive * 2 > self.meta.len() { "" } else { ": no quorum, the catalogue is unavailable until one returns" }
                    );
                }
                status = self.gateway.child.wait() => {
                    // Stateless: restart it on the same sockets, as a
                    // service manager would.
                    eprintln!("cairn dev: the gateway exited ({}; see {}); restarting it", describe(status), self.gateway.log.display());
                    match spawn_gateway(&self.gateway_bin, &self.run_dir, &self.secret, &self.ports).await {
                        Ok(gateway) => {
                            self.info.gateway.pid = gateway.pid();
                            self.gateway = gateway;
                            self.save_info();
                        }
                        Err(err) => return Err(format!("cannot restart the gateway: {err}")),
                    }
                }
                status = self.scrubber.child.wait() => {
                    // The scrubber keeps its state in its store: restart it
                    // on the same socket.
                    eprintln!("cairn dev: the scrubber exited ({}); restarting it", describe(status));
                    match spawn_scrubber(&self.scrubber_bin, &self.run_dir, &self.secret, &self.ports).await {
                        Ok(scrubber) => {
                            self.info.scrubber.pid = scrubber.pid();
                            self.scrubber = scrubber;
                            self.save_info();
                        }
                        Err(err) => return Err(format!("cannot restart the scrubber: {err}")),
                    }
                }
                _ = tick.tick() => {
                    for (node, reported) in self.nodes.iter_mut().zip(reported.iter_mut()) {
                        if !*reported && let Ok(Some(status)) = node.child.try_wait() {
                            *reported = true;
                            eprintln!("cairn dev: {} exited ({status}); the cluster carries on without it", node.name);
                        }
                    }
                }
            }
        }
    }

    /// Writes `cluster.json` again (a restarted process has a new pid).
    fn save_info(&self) {
        if let Err(err) = self.info.store(&self.cluster_file) {
            eprintln!("cairn dev: {err}");
        }
    }

    /// Stops the scrubber and the gateway, then the nodes, then the
    /// metadata service: SIGTERM, then SIGKILL after a grace period.
    /// Removes `cluster.json` (its pids are gone).
    pub async fn stop(mut self) {
        terminate(&mut self.scrubber).await;
        terminate(&mut self.gateway).await;
        futures_util::future::join_all(self.nodes.iter_mut().map(terminate)).await;
        futures_util::future::join_all(self.meta.iter_mut().flatten().map(terminate)).await;
        let _ = std::fs::remove_file(&self.cluster_file);
    }
}

/// Waits until one of the live processes exits: its index and status.
/// Pends forever when none is left.
async fn wait_any(
    processes: &mut [Option<Supervised>],
) -> (usize, std::io::Result<std::process::ExitStatus>) {
    let waits: Vec<_> = processes
        .iter_mut()
        .enumerate()
        .filter_map(|(i, p)| p.as_mut().map(|p| (i, p)))
        .map(|(i, p)| Box::pin(async move { (i, p.child.wait().await) }))
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(waits).await.0
}

/// Starts the gateway on the config `start` wrote and the cluster's S3 and
/// admin sockets, and waits until it listens.
async fn spawn_gateway(
    binary: &Path,
    data: &Path,
    secret: &str,
    ports: &Ports,
) -> Result<Supervised, DevError> {
    // The gateway takes them in this order: S3, then admin.
    let listeners = vec![ports::handoff(&ports.s3)?, ports::handoff(&ports.admin)?];
    spawn_service("gateway", binary, data, secret, listeners).await
}

/// Starts the scrubber on the config `start` wrote and the cluster's
/// scrubber socket, and waits until it listens.
async fn spawn_scrubber(
    binary: &Path,
    data: &Path,
    secret: &str,
    ports: &Ports,
) -> Result<Supervised, DevError> {
    let listeners = vec![ports::handoff(&ports.scrubber)?];
    spawn_service("scrubber", binary, data, secret, listeners).await
}

/// Starts a service that `cairn dev` restarts when it dies: its config is
/// `<data>/<name>.toml`, its log `<data>/logs/<name>.log`, its sockets the
/// cluster's own.
async fn spawn_service(
    name: &'static str,
    binary: &Path,
    data: &Path,
    secret: &str,
    listeners: Vec<std::os::fd::OwnedFd>,
) -> Result<Supervised, DevError> {
    let addr_file = fresh(data.join("run").join(format!("{name}.addr")));
    let mut service = spawn(Spawn {
        name,
        binary,
        args: vec![
            "--config".into(),
            data.join(format!("{name}.toml")).display().to_string(),
            "--addr-file".into(),
            addr_file.display().to_string(),
        ],
        secret,
        log: data.join("logs").join(format!("{name}.log")),
        listeners,
    })?;
    wait_for_addr(&mut service, &addr_file).await?;
    Ok(service)
}

/// Waits until `count` nodes are registered and up.
async fn wait_for_nodes_up(
    meta_url: &str,
    secret: &ClusterSecret,
    count: usize,
) -> Result<(), DevError> {
    let client = MetaClient::connect(meta_url, secret).await?;
    let started = Instant::now();
    loop {
        let nodes = client.nodes().await?;
        let up = nodes.iter().filter(|n| n.state == NodeState::Up).count();
        if up >= count {
            return Ok(());
        }
        if started.elapsed() > START_PATIENCE {
            let states: BTreeMap<String, String> = nodes
                .iter()
                .map(|n| (n.id.to_string(), format!("{:?}", n.state)))
                .collect();
            return Err(DevError::StartTimeout {
                name: format!("{count} storage nodes (registered: {states:?})"),
                log: "the node logs".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_three_nodes_per_rack() {
        let racks: Vec<String> = (0..12).map(|i| node_identity(i, 12, 4).1).collect();
        for rack in 1..=4 {
            assert_eq!(
                racks
                    .iter()
                    .filter(|r| **r == format!("rack-{rack}"))
                    .count(),
                3
            );
        }
        assert_eq!(node_identity(0, 12, 4).0, "node-01");
        assert_eq!(node_identity(11, 12, 4).1, "rack-4");
    }

    fn options(nodes: usize, racks: usize, k: usize, m: usize) -> DevOptions {
        DevOptions {
            data_dir: "x".into(),
            host: [127, 0, 0, 1].into(),
            port: 9000,
            nodes,
            racks,
            meta_replicas: 3,
            k,
            m,
            bin_dir: "x".into(),
            s3_domain: None,
            repair_after: Duration::from_secs(10),
            gc_grace: Duration::from_secs(10),
            lifecycle_day: Duration::from_secs(86_400),
            region: "us-east-1".into(),
            default_object_ownership: Default::default(),
            lifecycle_every: Duration::from_secs(3600),
            suspect_after: Duration::from_secs(1),
            down_after: Duration::from_secs(2),
            inline_max: 32 * 1024,
            replicated_max: 1024 * 1024,
            short_circuit: true,
            users: Vec::new(),
            tls: false,
        }
    }

    #[test]
    fn options_that_cannot_survive_a_rack_are_refused() {
        assert!(options(12, 4, 8, 4).validate().is_ok());
        assert!(options(12, 2, 8, 4).validate().is_err()); // 6 chunks per rack > m
        assert!(options(10, 4, 8, 4).validate().is_err()); // fewer nodes than k+m
        assert!(options(3, 4, 1, 1).validate().is_err()); // a rack without nodes
    }
}
