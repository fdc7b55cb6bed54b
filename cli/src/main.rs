//! `cairn`: run a local Cairn cluster (`cairn dev`) and administer one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use cairn_cli::bench::client::S3Target;
use cairn_cli::bench::{BenchSpec, Workload};
use cairn_cli::cluster_file::ClusterFile;
use cairn_cli::dev::{DevCluster, DevOptions};
use cairn_cli::table;
use cairn_cli::units::{format_ms, parse_bytes, parse_duration, parse_rate, parse_user};
use cairn_meta_api::MetaClient;
use cairn_scrubber_api::ScrubberClient;
use cairn_scrubber_api::model::{JobSpec, ScrubScope};
use cairn_service::{ClusterSecret, now_ms};

mod admin;
mod durability;
mod nodes;
mod users;
use cairn_service::tls::join::JoinRole;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "Run and administer a Cairn cluster")]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// Where the cluster is and what `cairn` presents to it (every command).
#[derive(Debug, clap::Args)]
struct Globals {
    /// The metadata replicas, comma-separated (default: from the dev cluster's
    /// cluster.json, else http://127.0.0.1:7300).
    #[arg(long, env = "CAIRN_META_URL", global = true)]
    meta_url: Option<String>,
    /// Cluster secret (default: from the dev cluster's cluster.json).
    #[arg(
        long,
        env = "CAIRN_CLUSTER_SECRET",
        hide_env_values = true,
        global = true
    )]
    secret: Option<String>,
    /// The scrubber's admin API (default: from cluster.json, else
    /// http://127.0.0.1:7500).
    #[arg(long, env = "CAIRN_SCRUBBER_URL", global = true)]
    scrubber_url: Option<String>,
    /// File holding the cluster secret (`cairn cluster init` writes one).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE", global = true)]
    secret_file: Option<PathBuf>,
    /// Directory with the cluster CA and the admin certificate (`ca.pem`,
    /// `admin.pem`, `admin.key`; `cairn cluster init` writes them into
    /// <dir>/tls): `cairn` then speaks mutual TLS to the services.
    #[arg(long, env = "CAIRN_TLS_DIR", global = true)]
    tls_dir: Option<PathBuf>,
    /// The cluster.json `cairn dev` wrote, used for defaults.
    #[arg(
        long,
        env = "CAIRN_CLUSTER_FILE",
        default_value = "./cairn-data/cluster.json",
        global = true
    )]
    cluster_file: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a whole local cluster in the foreground: the metadata service,
    /// storage nodes in racks (each its own process) and the S3 gateway.
    Dev(DevArgs),
    /// Bootstrap a cluster on real hosts (`init`) and mint join tokens.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Set up a storage node on this host (`join`).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Set up an S3 gateway on this host (`join`).
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Set up the scrubber on this host (`join`).
    #[command(subcommand)]
    Scrubber(ScrubberCommand),
    /// A bucket's Cairn settings: `cairn bucket class photos LRC(12,2,2)`.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Storage nodes: rack, state, usage, last heartbeat.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// The shard map: which shard owns which key range, and where.
    Shards {
        #[arg(long)]
        json: bool,
    },
    /// Node state changes (the failure detector's change feed).
    Events {
        /// Only changes after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long)]
        json: bool,
    },
    /// Give a directory its own shard, online: `cairn split photos/2024/`
    /// (a catalogue prefix: bucket, '/', key prefix).
    Split { prefix: String },
    /// The metadata replicas and their Raft groups: leaders, terms, logs,
    /// how far each follower lags.
    Meta {
        #[command(subcommand)]
        command: MetaCommand,
    },
    /// Scrub jobs: verify chunks where they live, find rot, queue repairs.
    #[command(subcommand)]
    Scrub(ScrubCommand),
    /// Repair of lost and corrupt chunks.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Even out use across the active nodes (after adding nodes): moves
    /// chunks from nodes above their share to nodes below it, at the
    /// repair rate, behind every real repair, keeping the rack rule.
    Rebalance {
        /// Follow the queued moves with a progress bar until they are done.
        #[arg(long)]
        watch: bool,
        /// Drop the moves still queued.
        #[arg(long)]
        cancel: bool,
        /// Show how many moves are still queued; plan nothing.
        #[arg(long)]
        status: bool,
        #[arg(long)]
        json: bool,
    },
    /// S3 load generator (any endpoint): throughput and latency
    /// percentiles, every GET verified. `cairn bench repair` times a
    /// rebuild on a `cairn dev` cluster.
    Bench(BenchArgs),
    /// What the current topology gives stored data: overhead, losses
    /// survived and the probability of loss, for erasure-coded chunks and
    /// for inline objects (copies on the metadata replicas).
    Durability {
        /// Data blocks per stripe (default: the dev cluster's, else 8).
        #[arg(short, long)]
        k: Option<usize>,
        /// Parity blocks per stripe (default: the dev cluster's, else 4).
        #[arg(short, long)]
        m: Option<usize>,
        /// The gateway's `inline_max_bytes` (default: the dev cluster's,
        /// else the gateway's default).
        #[arg(long, value_parser = parse_bytes)]
        inline_max: Option<u64>,
        /// The gateway's `replicated_max_bytes`, 0 for none (default: the
        /// dev cluster's, else the gateway's default).
        #[arg(long, value_parser = parse_bytes)]
        replicated_max: Option<u64>,
        /// The gateway's `replicas`.
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Report these storage classes instead of the gateway's k+m
        /// (repeatable): `--class RS(8,4) --class LRC(12,2,2)`.
        #[arg(long = "class")]
        classes: Vec<cairn_core::codec::StorageClass>,
        /// Probability that a node fails within one repair window.
        #[arg(long, default_value_t = 0.01)]
        q_node: f64,
        /// Probability that a whole rack fails within one repair window.
        #[arg(long, default_value_t = 0.001)]
        q_rack: f64,
        #[arg(long)]
        json: bool,
    },
    /// S3 users and their access keys (secrets are shown once, at
    /// creation).
    #[command(subcommand)]
    User(UserCommand),
    /// One object's manifest: parts, chunks, nodes, states and roots.
    Inspect {
        /// `bucket/key`
        object: String,
        /// A version id (default: the current version; `null` for the
        /// version written while versioning was off or suspended).
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn parse_ownership(text: &str) -> Result<cairn_core::acl::ObjectOwnership, String> {
    use cairn_core::acl::ObjectOwnership as O;
    match text {
        "bucket-owner-enforced" => Ok(O::BucketOwnerEnforced),
        "bucket-owner-preferred" => Ok(O::BucketOwnerPreferred),
        "object-writer" => Ok(O::ObjectWriter),
        other => Err(format!(
            "unknown Object Ownership {other:?}: bucket-owner-enforced, bucket-owner-preferred or object-writer"
        )),
    }
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// A new user with one access key; prints the key and its secret.
    Create {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Every user and its access keys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Removes a user and all its keys (refused while it owns buckets).
    Delete { name: String },
    /// A user's access keys; `--create` adds one (printing its secret),
    /// `--delete KEY` removes one.
    Keys {
        name: String,
        #[arg(long, conflicts_with = "delete")]
        create: bool,
        #[arg(long, value_name = "ACCESS_KEY")]
        delete: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct DevArgs {
    /// Where all data, configs and logs live (kept across restarts).
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// S3 port (gateway metrics on port+1, metadata service on port+2).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Address every service binds and advertises: a LAN or bridge address
    /// makes the cluster reachable from other hosts or network namespaces.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Storage nodes, each its own process.
    #[arg(long, default_value_t = 12)]
    nodes: usize,
    /// Racks (failure domains) the nodes are spread over.
    #[arg(long, default_value_t = 4)]
    racks: usize,
    /// Data blocks per stripe.
    #[arg(short, long, default_value_t = 8)]
    k: usize,
    /// Parity blocks per stripe.
    #[arg(short, long, default_value_t = 4)]
    m: usize,
    /// Directory of cairn-meta, cairn-node and cairn-gateway (default: next
    /// to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Base domain for virtual-host-style addressing (`bucket.<domain>`);
    /// path style always works.
    #[arg(long)]
    s3_domain: Option<String>,
    /// A node down this long has its chunks rebuilt elsewhere.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    repair_after: Duration,
    /// Unreferenced chunks are deleted after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    gc_grace: Duration,
    /// The length of a lifecycle rule's "day" (scale it down to watch
    /// rules act: `--lifecycle-day 1s`).
    #[arg(long, default_value = "1d", value_parser = parse_duration)]
    lifecycle_day: Duration,
    /// The S3 region the cluster serves (clients sign for it;
    /// GetBucketLocation reports it).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Object Ownership of buckets created without naming one:
    /// bucket-owner-enforced (S3's default, ACLs off), object-writer or
    /// bucket-owner-preferred (ACLs on).
    #[arg(long, default_value = "bucket-owner-enforced", value_parser = parse_ownership)]
    default_object_ownership: cairn_core::acl::ObjectOwnership,
    /// How often the scrubber's lifecycle job runs.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    lifecycle_every: Duration,
    /// Metadata replicas (1, 3 or 5): each holds every shard and the
    /// cluster state; 3 survive the loss of one.
    #[arg(long, default_value_t = 3)]
    meta_replicas: usize,
    /// A node silent this long is suspect (gets no new chunks).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    suspect_after: Duration,
    /// A node silent this long is down.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    down_after: Duration,
    /// Objects up to this size are stored inline, in their manifest in the
    /// replicated catalogue, instead of as k+m chunks (0: never).
    #[arg(long, default_value = "32KiB", value_parser = parse_bytes)]
    inline_max: u64,
    /// Objects above the inline size and up to this one are stored as 3
    /// full copies in distinct racks instead of 8+4 chunks (0: never).
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    replicated_max: u64,
    /// The gateway reads and writes every chunk over HTTP, never in the
    /// files of the nodes on its host (short-circuit; for comparisons).
    #[arg(long)]
    no_short_circuit: bool,
    /// Another S3 user, `ACCESS_KEY:SECRET_KEY` (repeatable): for trying
    /// ownership and bucket policies with a second user.
    #[arg(long = "user", value_name = "ACCESS_KEY:SECRET_KEY", value_parser = parse_user)]
    users: Vec<cairn_gateway::config::Credential>,
    /// HTTPS on the S3 endpoint and mutual TLS between every process, with
    /// a cluster CA made in <data-dir>/tls/ (S3 clients: --ca-bundle
    /// <data-dir>/tls/ca.pem).
    #[arg(long)]
    tls: bool,
}

/// What every `… join` takes.
#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// The join token (`cairn cluster join-token --role …`).
    #[arg(long, env = "CAIRN_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    /// The address other hosts reach this service at (its certificate
    /// names it).
    #[arg(long)]
    address: std::net::IpAddr,
    /// Where its TLS files (`tls/`), secret and config go.
    #[arg(long, default_value = "/etc/cairn")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// On the first metadata host: create the cluster CA, the cluster
    /// secret, the first metadata replica's certificate and config, and the
    /// admin certificate `cairn` uses (`--tls-dir <dir>/tls`).
    Init {
        /// The first replica's address (what every other host dials).
        #[arg(long)]
        address: std::net::IpAddr,
        #[arg(long, default_value_t = 7300)]
        port: u16,
        #[arg(long)]
        rack: Option<String>,
        #[arg(long, default_value = "/etc/cairn")]
        dir: PathBuf,
        #[arg(long, default_value = "/var/lib/cairn/meta")]
        data_dir: PathBuf,
        /// Replicas per metadata group once more replicas join (1, 3 or 5).
        #[arg(long, default_value_t = 3)]
        replicas_per_group: usize,
        /// DNS names of the first replica, besides its address.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Print a token that lets one host of the given role join, until it
    /// expires (needs the cluster secret and the CA certificate: `--tls-dir`
    /// or a dev cluster's cluster.json).
    JoinToken {
        #[arg(long, value_parser = clap::value_parser!(JoinRole))]
        role: JoinRole,
        /// How long the token is valid (e.g. 15m, 1h).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Move every chunk off a node (it keeps serving reads and gets no new
    /// chunks), rate-limited by the scrubber's repair rate; then it is
    /// retired. `--cancel` makes it active again.
    Drain {
        node: cairn_core::ids::NodeId,
        #[arg(long)]
        cancel: bool,
        /// Follow the drain with a progress bar until the node is retired.
        #[arg(long)]
        watch: bool,
    },
    /// Forget a node; refused while it holds chunks not rebuilt elsewhere.
    Remove { node: cairn_core::ids::NodeId },
    /// Obtain this node's certificate and the secret with a join token and
    /// write its config (`<dir>/node-<id>.toml`); then start `cairn-node`.
    Join {
        #[command(flatten)]
        join: JoinArgs,
        #[arg(long)]
        id: cairn_core::ids::NodeId,
        #[arg(long)]
        rack: cairn_core::ids::RackId,
        #[arg(long, default_value_t = 7401)]
        port: u16,
        /// Default: /var/lib/cairn/nodes/<id>.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Obtain the gateway's certificates with a join token and write its
    /// config (`<dir>/gateway.toml`); then start `cairn-gateway`.
    Join {
        #[command(flatten)]
        join: JoinArgs,
        /// Its name (certificate common name).
        #[arg(long, default_value = "gateway")]
        name: String,
        #[arg(long, default_value_t = 9000)]
        port: u16,
        #[arg(long, default_value_t = 9001)]
        admin_port: u16,
        /// Names S3 clients use (DNS names or addresses; the S3 certificate
        /// names them and the address). Without any, `--s3-plain-http` must
        /// say that S3 is served in clear text.
        #[arg(long = "s3-name")]
        s3_names: Vec<String>,
        #[arg(long)]
        s3_plain_http: bool,
        /// The scrubber's admin API (`https://HOST:7500`), for the console's
        /// repair and scrub pages.
        #[arg(long)]
        scrubber_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum BucketCommand {
    /// Show or set the storage class of the bucket's new erasure-coded
    /// blobs: RS(k,m) or LRC(k,l,r) (blobs written before keep theirs).
    /// Refused when the registered nodes cannot place it rack-safely.
    Class {
        bucket: String,
        /// The class to set (none: show the current one).
        class: Option<cairn_core::codec::StorageClass>,
        /// Back to the gateway's k+m.
        #[arg(long, conflicts_with = "class")]
        default: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ScrubberCommand {
    /// Obtain the scrubber's certificate with a join token and write its
    /// config (`<dir>/scrubber.toml`); then start `cairn-scrubber`.
    Join {
        #[command(flatten)]
        join: JoinArgs,
        #[arg(long, default_value_t = 7500)]
        port: u16,
        #[arg(long, default_value = "/var/lib/cairn/scrubber")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum MetaCommand {
    /// Every replica's view of every group it hosts.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Add a metadata replica (already running with `join = true`): every
    /// group seeds it by snapshot, then makes it a voter.
    AddReplica {
        #[arg(long)]
        id: u64,
        /// Its URL, as the other replicas and clients will reach it.
        #[arg(long)]
        url: String,
        /// Its rack (failure domain).
        #[arg(long)]
        rack: Option<String>,
    },
    /// Set up a new metadata replica on this host with a join token: its
    /// certificate, the secret, the CA key and a config with `join = true`.
    /// Start it, then run `cairn meta add-replica` (printed).
    Join {
        #[command(flatten)]
        join: JoinArgs,
        /// Its replica id (unused in the cluster).
        #[arg(long)]
        id: u64,
        #[arg(long, default_value_t = 7300)]
        port: u16,
        #[arg(long)]
        rack: Option<String>,
        #[arg(long, default_value = "/var/lib/cairn/meta")]
        data_dir: PathBuf,
    },
    /// Remove a metadata replica from every group (e.g. a dead host).
    RemoveReplica {
        #[arg(long)]
        id: u64,
    },
    /// Compare every replica's digest of every group: equal applied
    /// indexes must mean equal catalogues. Exits non-zero on divergence.
    Verify,
}

#[derive(Debug, Subcommand)]
enum ScrubCommand {
    /// Start a scrub job now.
    Start {
        #[command(flatten)]
        job: JobArgs,
        /// Wait for it, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// Schedule a job that runs every interval (e.g. `--every 6h`).
    Schedule {
        #[arg(long, value_parser = parse_duration)]
        every: Duration,
        #[command(flatten)]
        job: JobArgs,
    },
    /// All jobs with their state and last results.
    Jobs {
        #[arg(long)]
        json: bool,
    },
    /// One job: progress, findings (corrupt blocks), repairs queued.
    Show {
        id: u64,
        #[arg(long)]
        json: bool,
        /// Follow a running job with a progress bar.
        #[arg(long)]
        watch: bool,
    },
    /// Cancel a pending or running job.
    Cancel { id: u64 },
}

#[derive(Debug, clap::Args)]
struct JobArgs {
    /// Only this bucket.
    #[arg(long)]
    bucket: Option<String>,
    /// Only keys with this prefix (needs --bucket).
    #[arg(long, requires = "bucket")]
    prefix: Option<String>,
    /// Chunk bytes verified per second, e.g. 50MiB/s (default: unlimited).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// Burst above the rate, e.g. 8MiB (default: one second of rate).
    #[arg(long, value_parser = parse_bytes)]
    burst: Option<u64>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    priority: u8,
}

impl JobArgs {
    fn spec(&self, every: Option<Duration>) -> JobSpec {
        JobSpec {
            kind: Default::default(),
            scope: ScrubScope {
                bucket: self.bucket.clone(),
                prefix: self.prefix.clone(),
            },
            rate_bytes_per_sec: self.rate.unwrap_or(0),
            burst_bytes: self.burst,
            every_secs: every.map(|d| d.as_secs().max(1)),
            priority: self.priority,
        }
    }
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    /// Operations to issue.
    #[arg(long, value_enum, default_value = "put")]
    op: Workload,
    /// Object size, e.g. 4KiB, 1MiB, 64MiB.
    #[arg(long, value_parser = parse_bytes, default_value = "1MiB")]
    size: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    duration: Duration,
    /// Stop after this many operations (and at most --duration).
    #[arg(long)]
    count: Option<u64>,
    /// Objects prepared for get, list and mixed (deleted by delete).
    #[arg(long)]
    objects: Option<u64>,
    #[arg(long, default_value = "cairn-bench")]
    bucket: String,
    #[arg(long, default_value = "bench/")]
    prefix: String,
    /// S3 endpoint (default: the dev cluster's).
    #[arg(long, env = "CAIRN_S3_ENDPOINT")]
    endpoint: Option<String>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: Option<String>,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// CA certificate (PEM) to trust for an HTTPS endpoint (default: the dev
    /// cluster's CA when it runs with --tls, else the system's roots).
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// Keep the objects written.
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Fill a `cairn dev` cluster, SIGKILL a node, time the rebuild.
    Repair {
        /// Data to write first, e.g. 1GiB.
        #[arg(long, value_parser = parse_bytes, default_value = "256MiB")]
        fill: u64,
        #[arg(long, value_parser = parse_bytes, default_value = "4MiB")]
        object_size: u64,
        /// The node to kill.
        #[arg(long, default_value = "node-01")]
        node: String,
        /// Client GET latency is sampled this long before the kill.
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        baseline: Duration,
        #[arg(long, value_parser = parse_duration, default_value = "10m")]
        timeout: Duration,
        /// The bucket's storage class (`RS(8,4)`, `LRC(12,2,2)`): the data
        /// goes to a bucket of that class (default: the gateway's code).
        #[arg(long)]
        class: Option<cairn_core::codec::StorageClass>,
        #[arg(long)]
        json: bool,
    },
    /// Single-core rate of each per-byte stage (MD5, encode+blake3,
    /// loopback copy): the machine's limits, to read end-to-end numbers by.
    Stages {
        /// Data each stage processes.
        #[arg(long, value_parser = parse_bytes, default_value = "1GiB")]
        bytes: u64,
        #[arg(long)]
        json: bool,
    },
}

async fn run_bench(args: BenchArgs, cluster: Option<ClusterFile>) -> anyhow::Result<()> {
    if let Some(BenchCommand::Stages { bytes, json }) = args.command {
        let rates =
            tokio::task::spawn_blocking(move || cairn_cli::bench::stages::measure(bytes)).await??;
        if json {
            println!("{}", serde_json::to_string_pretty(&rates)?);
        } else {
            println!("{}", cairn_cli::bench::stages::render(&rates));
        }
        return Ok(());
    }
    if let Some(BenchCommand::Repair {
        fill,
        object_size,
        node,
        baseline,
        timeout,
        class,
        json,
    }) = args.command
    {
        let cluster = cluster
            .context("cairn bench repair needs a `cairn dev` cluster.json (--cluster-file)")?;
        let report = cairn_cli::bench::repair::run(
            &cluster,
            cairn_cli::bench::repair::RepairBenchSpec {
                fill_bytes: fill,
                object_size,
                node,
                baseline,
                timeout,
                class,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("{}", cairn_cli::bench::repair::render(&report));
        }
        return Ok(());
    }
    let target = S3Target {
        endpoint: args
            .endpoint
            .or_else(|| cluster.as_ref().map(|c| c.s3_endpoint.clone()))
            .context("no S3 endpoint: pass --endpoint or run next to a `cairn dev` data dir")?,
        access_key: args
            .access_key
            .or_else(|| cluster.as_ref().map(|c| c.access_key.clone()))
            .context("no access key: pass --access-key or set AWS_ACCESS_KEY_ID")?,
        secret_key: args
            .secret_key
            .or_else(|| cluster.as_ref().map(|c| c.secret_key.clone()))
            .context("no secret key: pass --secret-key or set AWS_SECRET_ACCESS_KEY")?,
        region: args.region,
        tls: bench_tls(args.ca_bundle.or_else(|| {
            cluster
                .as_ref()
                .and_then(|c| c.tls.as_ref())
                .map(|t| t.ca.clone())
        }))?,
    };
    let report = cairn_cli::bench::run(
        target,
        BenchSpec {
            workload: args.op,
            object_size: args.size,
            concurrency: args.concurrency,
            duration: args.duration,
            count: args.count,
            objects: args.objects,
            bucket: args.bucket,
            prefix: args.prefix,
            keep: args.keep,
            progress: !args.json,
        },
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", cairn_cli::bench::render(&report));
    }
    if report.total.verify_failures > 0 {
        anyhow::bail!("{} reads returned wrong data", report.total.verify_failures);
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
enum RepairCommand {
    /// Queue, progress and cost: bytes read, rebuilt, read amplification.
    Status {
        #[arg(long)]
        json: bool,
        /// Follow the queue with a progress bar until it is empty.
        #[arg(long)]
        watch: bool,
    },
}

async fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .context("the cairn binary has no directory")?
            .to_owned(),
    };
    let options = DevOptions {
        data_dir: args.data_dir,
        host: args.host,
        port: args.port,
        nodes: args.nodes,
        racks: args.racks,
        meta_replicas: args.meta_replicas,
        k: args.k,
        m: args.m,
        bin_dir,
        s3_domain: args.s3_domain,
        repair_after: args.repair_after,
        gc_grace: args.gc_grace,
        lifecycle_day: args.lifecycle_day,
        region: args.region,
        default_object_ownership: args.default_object_ownership,
        lifecycle_every: args.lifecycle_every,
        suspect_after: args.suspect_after,
        down_after: args.down_after,
        inline_max: args.inline_max,
        replicated_max: args.replicated_max,
        short_circuit: !args.no_short_circuit,
        users: args.users,
        tls: args.tls,
    };
    eprintln!(
        "cairn dev: starting a metadata service, {} storage nodes in {} racks and the gateway…",
        options.nodes, options.racks
    );
    let mut cluster = DevCluster::start(&options).await?;
    print_banner(&cluster.info, &cluster.cluster_file);
    let outcome = cluster.supervise(shutdown_signal()).await;
    eprintln!("cairn dev: stopping…");
    cluster.stop().await;
    match outcome {
        Ok(()) => {
            eprintln!(
                "cairn dev: stopped; data kept in {}",
                options.data_dir.display()
            );
            Ok(())
        }
        Err(message) => anyhow::bail!(message),
    }
}

/// The secret and TLS identity `cairn` presents to the services: flags and
/// environment first, then a dev cluster's cluster.json.
fn admin_secret(cli: &Globals, cluster: Option<&ClusterFile>) -> anyhow::Result<ClusterSecret> {
    let explicit = cli
        .secret
        .clone()
        .or_else(|| cluster.map(|c| c.cluster_secret.clone()));
    let secret = ClusterSecret::resolve(explicit.as_deref(), cli.secret_file.as_deref()).context(
        "no cluster secret: pass --secret or --secret-file, set CAIRN_CLUSTER_SECRET, or run next to a `cairn dev` data dir",
    )?;
    let tls = match &cli.tls_dir {
        Some(dir) => Some(cairn_cli::join::admin_files(dir)),
        None => cluster.and_then(|c| c.tls.clone()),
    };
    Ok(secret.with_tls(cairn_service::tls::load(tls.as_ref())?))
}

fn cluster_command(
    cli: &Globals,
    cluster: Option<&ClusterFile>,
    command: ClusterCommand,
) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Init {
            address,
            port,
            rack,
            dir,
            data_dir,
            replicas_per_group,
            names,
        } => {
            let done = cairn_cli::join::init(&cairn_cli::join::InitSpec {
                dir,
                address,
                port,
                rack,
                data_dir,
                replicas_per_group,
                names,
            })?;
            println!("Cluster initialised.\n");
            println!("  metadata replica 1   {}", done.meta_url);
            println!("  its config           {}", done.meta_config.display());
            println!("  cluster secret       {}", done.secret_file.display());
            println!("  CA and admin cert    {}", done.tls_dir.display());
            println!("\nNext:\n");
            println!("  cairn-meta --config {}", done.meta_config.display());
            println!(
                "  export CAIRN_META_URL={} CAIRN_CLUSTER_SECRET_FILE={} CAIRN_TLS_DIR={}",
                done.meta_url,
                done.secret_file.display(),
                done.tls_dir.display()
            );
            println!("  cairn cluster join-token --role node   # then on each node host:");
            println!(
                "  cairn node join --token … --id node-01 --rack rack-1 --address <its address>"
            );
            Ok(())
        }
        ClusterCommand::JoinToken { role, ttl } => {
            let secret = admin_secret(cli, cluster)?;
            let ca = match (&cli.tls_dir, cluster.and_then(|c| c.tls.as_ref())) {
                (Some(dir), _) => dir.join("ca.pem"),
                (None, Some(tls)) => tls.ca.clone(),
                (None, None) => anyhow::bail!(
                    "no cluster CA: pass --tls-dir (the directory `cairn cluster init` wrote tls/ into)"
                ),
            };
            let ca_pem = std::fs::read_to_string(&ca)
                .with_context(|| format!("read the CA certificate {}", ca.display()))?;
            let meta_url = cli
                .meta_url
                .clone()
                .or_else(|| cluster.map(|c| c.admin_endpoint.clone()))
                .context("no metadata replicas: pass --meta-url")?;
            println!(
                "{}",
                cairn_cli::join::join_token(&secret, role, ttl, &ca_pem, &meta_url)?
            );
            Ok(())
        }
    }
}

fn addresses(join: &JoinArgs) -> Vec<String> {
    vec![join.address.to_string()]
}

async fn node_join(
    join: JoinArgs,
    id: cairn_core::ids::NodeId,
    rack: cairn_core::ids::RackId,
    port: u16,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let joined = cairn_cli::join::obtain(
        &join.token,
        JoinRole::Node,
        id.as_str(),
        addresses(&join),
        Vec::new(),
        &join.dir,
    )
    .await?;
    let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("/var/lib/cairn/nodes/{id}")));
    let listen = std::net::SocketAddr::new(join.address, port);
    let config = cairn_cli::join::node_config(&joined, id.clone(), rack, listen, data_dir);
    let path = join.dir.join(format!("node-{id}.toml"));
    cairn_cli::join::write_config(&path, &config)?;
    println!(
        "{id} joined: start it with `cairn-node --config {}`",
        path.display()
    );
    Ok(())
}

async fn meta_join(
    join: JoinArgs,
    id: u64,
    port: u16,
    rack: Option<String>,
    data_dir: PathBuf,
) -> anyhow::Result<()> {
    let name = format!("meta-{id}");
    let joined = cairn_cli::join::obtain(
        &join.token,
        JoinRole::Meta,
        &name,
        addresses(&join),
        Vec::new(),
        &join.dir,
    )
    .await?;
    // The replicas as they are now (with the identity just obtained).
    let secret = ClusterSecret::new(&joined.grant.cluster_secret)?
        .with_tls(Some(cairn_service::tls::ClusterTls::load(&joined.tls)?));
    let client = MetaClient::connect(&joined.token.meta_urls, &secret)
        .await
        .context("read the cluster's replicas")?;
    let map = client.shard_map();
    let replicas = map
        .replicas
        .iter()
        .map(|(rid, url)| cairn_meta_api::config::ReplicaEntry {
            id: *rid,
            url: url.clone(),
            rack: map.racks.get(rid).cloned(),
        })
        .collect();
    anyhow::ensure!(
        !map.replicas.contains_key(&id),
        "replica id {id} is taken; pick another --id"
    );
    let listen = std::net::SocketAddr::new(join.address, port);
    let config = cairn_cli::join::meta_config(
        &joined,
        id,
        listen,
        rack.clone(),
        data_dir,
        replicas,
        map.replicas_per_group,
    );
    let path = join.dir.join("meta.toml");
    cairn_cli::join::write_config(&path, &config)?;
    println!(
        "{name} joined: start it with `cairn-meta --config {}`, then:",
        path.display()
    );
    println!(
        "  cairn meta add-replica --id {id} --url https://{listen}{}",
        rack.map(|r| format!(" --rack {r}")).unwrap_or_default()
    );
    Ok(())
}

async fn gateway_join(
    join: JoinArgs,
    name: String,
    port: u16,
    admin_port: u16,
    s3_names: Vec<String>,
    s3_plain_http: bool,
    scrubber_url: Option<String>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !s3_names.is_empty() || s3_plain_http,
        "name the S3 endpoint (--s3-name, for its certificate) or serve S3 in clear text with --s3-plain-http"
    );
    let mut s3 = s3_names;
    if !s3.is_empty() && !s3.contains(&join.address.to_string()) {
        s3.push(join.address.to_string());
    }
    let joined = cairn_cli::join::obtain(
        &join.token,
        JoinRole::Gateway,
        &name,
        addresses(&join),
        s3,
        &join.dir,
    )
    .await?;
    let mut config = cairn_cli::join::gateway_config(
        &joined,
        &name,
        std::net::SocketAddr::new(join.address, port),
        std::net::SocketAddr::new(join.address, admin_port),
        s3_plain_http,
    );
    config.scrubber_url = scrubber_url;
    let path = join.dir.join("gateway.toml");
    cairn_cli::join::write_config(&path, &config)?;
    println!(
        "{name} joined: start it with `cairn-gateway --config {}`",
        path.display()
    );
    Ok(())
}

async fn scrubber_join(join: JoinArgs, port: u16, data_dir: PathBuf) -> anyhow::Result<()> {
    let joined = cairn_cli::join::obtain(
        &join.token,
        JoinRole::Scrubber,
        "scrubber",
        addresses(&join),
        Vec::new(),
        &join.dir,
    )
    .await?;
    let config = cairn_cli::join::scrubber_config(
        &joined,
        std::net::SocketAddr::new(join.address, port),
        data_dir,
    );
    let path = join.dir.join("scrubber.toml");
    cairn_cli::join::write_config(&path, &config)?;
    println!(
        "scrubber joined: start it with `cairn-scrubber --config {}`",
        path.display()
    );
    Ok(())
}

/// A TLS client config trusting `ca` (an HTTPS S3 endpoint), if given.
fn bench_tls(ca: Option<PathBuf>) -> anyhow::Result<Option<rustls::ClientConfig>> {
    ca.map(|ca| cairn_service::tls::client_trusting(&ca))
        .transpose()
        .context("load the CA bundle")
}

fn print_banner(info: &ClusterFile, cluster_file: &Path) {
    let racks: std::collections::BTreeSet<&str> =
        info.nodes.iter().map(|n| n.rack.as_str()).collect();
    println!(
        "\nCairn dev cluster is up: {} storage nodes in {} racks, {}+{} erasure coding\n",
        info.nodes.len(),
        racks.len(),
        info.k,
        info.m
    );
    println!("  S3 endpoint     {}", info.s3_endpoint);
    println!("  access key      {}", info.access_key);
    println!("  secret key      {}", info.secret_key);
    println!("  region          {}", info.region);
    println!(
        "  admin endpoint  {} (cairn nodes, cairn shards, …)",
        info.admin_endpoint
    );
    println!(
        "  console         {}/console/ (user admin, the cluster secret in {})",
        info.gateway_admin_endpoint,
        cluster_file.with_file_name("cluster-secret").display()
    );
    println!("  metrics         {}/metrics", info.gateway_admin_endpoint);
    println!(
        "  scrubber        {} (cairn scrub …, cairn repair status)",
        info.scrubber_endpoint
    );
    println!(
        "  cluster file    {} (nodes, pids, data dirs)",
        cluster_file.display()
    );
    if let Some(tls) = &info.tls {
        println!(
            "  CA certificate  {} (HTTPS and mutual TLS everywhere)",
            tls.ca.display()
        );
    }
    println!("\nPoint aws-cli at it:\n");
    println!(
        "  export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION={}",
        info.access_key, info.secret_key, info.region
    );
    let endpoint = match &info.tls {
        Some(tls) => format!("{} --ca-bundle {}", info.s3_endpoint, tls.ca.display()),
        None => info.s3_endpoint.clone(),
    };
    println!("  aws --endpoint-url {endpoint} s3 mb s3://demo");
    println!("  aws --endpoint-url {endpoint} s3 cp ./some-file s3://demo/");
    println!(
        "\nKill a node to watch the cluster cope: kill -9 {}  ({})",
        info.nodes.first().map_or(0, |n| n.pid),
        info.nodes.first().map_or("", |n| n.id.as_str())
    );
    println!("Ctrl-C stops everything; data stays in the data dir.\n");
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        globals: cli,
        command,
    } = Cli::parse();
    let command = match command {
        Command::Dev(args) => return run_dev(args).await,
        command => command,
    };
    // Defaults from a dev cluster's cluster.json, when there is one.
    let cluster = ClusterFile::load(&cli.cluster_file).ok();
    let command = match command {
        Command::Bench(args) => return run_bench(args, cluster).await,
        // Set-up on a host that is not part of the cluster yet: no secret,
        // no metadata service to connect to first.
        Command::Cluster(command) => return cluster_command(&cli, cluster.as_ref(), command),
        Command::Node(NodeCommand::Join {
            join,
            id,
            rack,
            port,
            data_dir,
        }) => return node_join(join, id, rack, port, data_dir).await,
        Command::Gateway(GatewayCommand::Join {
            join,
            name,
            port,
            admin_port,
            s3_names,
            s3_plain_http,
            scrubber_url,
        }) => {
            return gateway_join(
                join,
                name,
                port,
                admin_port,
                s3_names,
                s3_plain_http,
                scrubber_url,
            )
            .await;
        }
        Command::Scrubber(ScrubberCommand::Join {
            join,
            port,
            data_dir,
        }) => return scrubber_join(join, port, data_dir).await,
        Command::Meta {
            command:
                MetaCommand::Join {
                    join,
                    id,
                    port,
                    rack,
                    data_dir,
                },
        } => return meta_join(join, id, port, rack, data_dir).await,
        command => command,
    };
    let meta_url = cli
        .meta_url
        .clone()
        .or_else(|| cluster.as_ref().map(|c| c.admin_endpoint.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:7300".into());
    let secret = admin_secret(&cli, cluster.as_ref())?;
    let scrubber_url = cli
        .scrubber_url
        .clone()
        .or_else(|| cluster.as_ref().map(|c| c.scrubber_endpoint.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:7500".into());
    let command = match command {
        Command::Scrub(scrub) => {
            return admin::scrub(&ScrubberClient::new(&scrubber_url, &secret), scrub).await;
        }
        Command::Repair(repair) => {
            return admin::repair(&ScrubberClient::new(&scrubber_url, &secret), repair).await;
        }
        Command::Rebalance {
            watch,
            cancel,
            status,
            json,
        } => {
            let scrubber = ScrubberClient::new(&scrubber_url, &secret);
            return nodes::rebalance(&scrubber, watch, cancel, status, json).await;
        }
        command => command,
    };
    let client = MetaClient::connect(&meta_url, &secret)
        .await
        .with_context(|| format!("connect to the metadata service at {meta_url}"))?;
    match command {
        Command::Nodes { json } => {
            let nodes = client.nodes().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                let now = now_ms();
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|n| {
                        vec![
                            n.id.to_string(),
                            n.rack.to_string(),
                            match n.lifecycle {
                                cairn_meta_api::model::NodeLifecycle::Active => {
                                    format!("{:?}", n.state).to_lowercase()
                                }
                                lifecycle => format!("{:?}, {lifecycle:?}", n.state).to_lowercase(),
                            },
                            table::bytes(n.used_bytes),
                            table::bytes(n.capacity_bytes),
                            format!("{} ago", format_ms(now.saturating_sub(n.last_heartbeat_ms))),
                            n.address.clone(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table::render(
                        &[
                            "NODE",
                            "RACK",
                            "STATE",
                            "USED",
                            "CAPACITY",
                            "HEARTBEAT",
                            "ADDRESS"
                        ],
                        &rows
                    )
                );
            }
        }
        Command::Shards { json } => {
            let map = client.shard_map();
            if json {
                println!("{}", serde_json::to_string_pretty(&map)?);
            } else {
                println!("shard map version {}", map.version);
                let rows: Vec<Vec<String>> = map
                    .shards
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.to_string(),
                            format!("{:?}", s.start),
                            s.end
                                .as_ref()
                                .map_or("(end)".to_owned(), |e| format!("{e:?}")),
                            replica_list(&s.replicas),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table::render(&["SHARD", "FROM", "TO", "REPLICAS"], &rows)
                );
            }
        }
        Command::Events { after, json } => {
            let events = client.events(after).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|e| {
                        vec![
                            e.sequence.to_string(),
                            e.at_ms.to_string(),
                            e.node.to_string(),
                            e.from
                                .map_or("(new)".to_owned(), |s| format!("{s:?}").to_lowercase()),
                            format!("{:?}", e.to).to_lowercase(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table::render(&["SEQ", "AT_MS", "NODE", "FROM", "TO"], &rows)
                );
            }
        }
        Command::Node(NodeCommand::Drain {
            node,
            cancel,
            watch,
        }) => nodes::drain(&client, &node, cancel, watch).await?,
        Command::Node(NodeCommand::Remove { node }) => nodes::remove(&client, &node).await?,
        Command::Node(NodeCommand::Join { .. }) => unreachable!("handled above"),
        Command::Dev(_)
        | Command::Scrub(_)
        | Command::Repair(_)
        | Command::Rebalance { .. }
        | Command::Bench(_)
        | Command::Cluster(_)
        | Command::Gateway(_)
        | Command::Scrubber(_) => {
            unreachable!("handled above")
        }
        Command::User(command) => users::user(&client, &secret, command).await?,
        Command::Bucket(BucketCommand::Class {
            bucket,
            class,
            default,
        }) => admin::bucket_class(&client, &bucket, class, default).await?,
        Command::Inspect {
            object,
            version,
            json,
        } => admin::inspect(&client, &object, version.as_deref(), json).await?,
        Command::Durability {
            k,
            m,
            inline_max,
            replicated_max,
            replicas,
            classes: asked,
            q_node,
            q_rack,
            json,
        } => {
            // Flags, else what the dev cluster was started with, else the
            // gateway's defaults: the report must describe the cluster's
            // real classes, not assumed ones.
            let defaults = cairn_gateway::config::GatewayConfig::new("");
            let dev = cluster.as_ref();
            let replicated_max = replicated_max
                .or_else(|| dev.and_then(|c| c.replicated_max))
                .unwrap_or(defaults.replicated_max_bytes);
            let classes = durability::Classes {
                k: k.or(dev.map(|c| c.k)).unwrap_or(defaults.k),
                m: m.or(dev.map(|c| c.m)).unwrap_or(defaults.m),
                inline_max: inline_max
                    .or_else(|| dev.and_then(|c| c.inline_max))
                    .unwrap_or(defaults.inline_max_bytes),
                replicated: (replicated_max > 0).then_some((replicated_max, replicas)),
                asked,
            };
            let model = cairn_core::durability::FailureModel { q_rack, q_node };
            durability::report(&client, &classes, model, json).await?
        }
        Command::Split { prefix } => {
            let map = client.split(&prefix).await?;
            let shard = map.route(&prefix);
            println!(
                "{prefix:?} is now served by {} (map version {}), replicas {}",
                shard.id,
                map.version,
                replica_list(&shard.replicas)
            );
        }
        Command::Meta { command } => match command {
            MetaCommand::Status { json } => admin::meta_status(&client, json).await?,
            MetaCommand::AddReplica { id, url, rack } => {
                let map = client
                    .change_replicas(&cairn_meta_api::model::ReplicaChange::Add { id, url, rack })
                    .await?;
                println!(
                    "replica {id} added; replicas now {:?} (map version {})",
                    map.replicas.keys().collect::<Vec<_>>(),
                    map.version
                );
            }
            MetaCommand::RemoveReplica { id } => {
                let map = client
                    .change_replicas(&cairn_meta_api::model::ReplicaChange::Remove { id })
                    .await?;
                println!(
                    "replica {id} removed; replicas now {:?} (map version {})",
                    map.replicas.keys().collect::<Vec<_>>(),
                    map.version
                );
            }
            MetaCommand::Verify => admin::meta_verify(&client).await?,
            MetaCommand::Join { .. } => unreachable!("handled above"),
        },
    }
    Ok(())
}

fn replica_list(replicas: &[u64]) -> String {
    replicas
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
