//! Bootstrapping a cluster on real hosts and joining hosts to it
//! (docs/security.md, "Deploying on several hosts" in the README):
//!
//! - [`init`]: on the first metadata host, the cluster CA, the cluster
//!   secret, the first replica's certificate and config, and the admin
//!   identity `cairn` itself uses;
//! - [`join_token`]: a token for one role, minted offline from the secret;
//! - [`obtain`] and the per-role `write_*` helpers: on a new host, ask a
//!   metadata replica for a certificate with the token and write the
//!   service's TLS files, secret and config.
//!
//! Every file holding a key or the secret is written owner-readable only.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_gateway::config::GatewayConfig;
use cairn_meta_api::MetaConfig;
use cairn_meta_api::config::ReplicaEntry;
use cairn_meta_api::join::{IssuedPem, JoinGrant, JoinRequest};
use cairn_node_api::NodeConfig;
use cairn_scrubber_api::ScrubberConfig;
use cairn_service::tls::TlsFiles;
use cairn_service::tls::ca::ClusterCa;
use cairn_service::tls::join::{JoinRole, JoinToken};
use cairn_service::{ClusterSecret, now_ms};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum JoinCommandError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Tls(#[from] cairn_service::tls::TlsError),
    #[error(transparent)]
    Token(#[from] cairn_service::tls::join::JoinTokenError),
    #[error(transparent)]
    Join(#[from] cairn_meta_api::join::JoinError),
    #[error(transparent)]
    Secret(#[from] cairn_service::secret::SecretError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JoinCommandError {
    let what = what.into();
    move |source| JoinCommandError::Io { what, source }
}

/// Writes `text` to `path`, readable by its owner only, synced.
fn write_private(path: &Path, text: &str) -> Result<(), JoinCommandError> {
    write_atomically(path, text, 0o600)
}

fn write_public(path: &Path, text: &str) -> Result<(), JoinCommandError> {
    write_atomically(path, text, 0o644)
}

/// Replaces `path` with `text` in one step: written and synced under a
/// temporary name beside it, then renamed over it. A process reading the
/// file meanwhile (another service starting, while `cairn dev --tls` joins
/// the next one into the same `tls/` directory) sees the old contents or
/// the new, never a truncated file; a crash leaves the old one.
fn write_atomically(path: &Path, text: &str, mode: u32) -> Result<(), JoinCommandError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let what = || format!("write {}", path.display());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(
        ".{name}.{}.{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(io(what()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("sync {}", dir.display())))?;
    }
    Ok(())
}

fn write_toml(path: &Path, config: &impl Serialize) -> Result<(), JoinCommandError> {
    let text = toml::to_string(config)
        .map_err(|e| JoinCommandError::Invalid(format!("render {}: {e}", path.display())))?;
    write_private(path, &text)
}

/// `<dir>/tls/`, created.
fn tls_dir(dir: &Path) -> Result<PathBuf, JoinCommandError> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).map_err(io(format!("create {}", tls.display())))?;
    Ok(tls)
}

fn write_identity(
    tls: &Path,
    name: &str,
    ca_pem: &str,
    issued: &IssuedPem,
) -> Result<TlsFiles, JoinCommandError> {
    let files = TlsFiles {
        ca: tls.join("ca.pem"),
        cert: tls.join(format!("{name}.pem")),
        key: tls.join(format!("{name}.key")),
    };
    write_public(&files.ca, ca_pem)?;
    write_public(&files.cert, &issued.cert_pem)?;
    write_private(&files.key, &issued.key_pem)?;
    Ok(files)
}

fn https(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

/// What `cairn cluster init` was asked for.
#[derive(Debug, Clone)]
pub struct InitSpec {
    /// Where the CA, the secret and the first replica's config go.
    pub dir: PathBuf,
    /// The first metadata replica's address (what other hosts dial).
    pub address: IpAddr,
    pub port: u16,
    pub rack: Option<String>,
    pub data_dir: PathBuf,
    pub replicas_per_group: usize,
    /// More names for the first replica's certificate (DNS names).
    pub names: Vec<String>,
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct Initialised {
    pub meta_config: PathBuf,
    pub meta_url: String,
    pub secret_file: PathBuf,
    /// ca.pem, admin.pem, admin.key: what `cairn --tls-dir` presents.
    pub tls_dir: PathBuf,
}

pub fn init(spec: &InitSpec) -> Result<Initialised, JoinCommandError> {
    let tls = tls_dir(&spec.dir)?;
    if tls.join("ca.key").exists() {
        return Err(JoinCommandError::Invalid(format!(
            "{} already holds a cluster CA: this directory was initialised before",
            tls.display()
        )));
    }
    let ca = ClusterCa::generate()?;
    ca.write(&tls).map_err(io("write the cluster CA"))?;
    let secret_file = spec.dir.join("cluster-secret");
    let secret: [u8; 32] = rand::random();
    write_private(&secret_file, &format!("{}\n", hex::encode(secret)))?;

    let listen = SocketAddr::new(spec.address, spec.port);
    let url = https(listen);
    let mut names = vec![spec.address.to_string()];
    names.extend(spec.names.iter().cloned());
    ca.issue("meta-1", &names)?
        .write(&tls, "meta-1")
        .map_err(io("write meta-1's certificate"))?;
    ca.issue("admin", &["cairn-admin".to_owned()])?
        .write(&tls, "admin")
        .map_err(io("write the admin certificate"))?;

    let config = MetaConfig {
        listen,
        advertise_url: Some(url.clone()),
        data_dir: spec.data_dir.clone(),
        replica_id: 1,
        replicas: vec![ReplicaEntry {
            id: 1,
            url: url.clone(),
            rack: spec.rack.clone(),
        }],
        replicas_per_group: spec.replicas_per_group,
        join: false,
        initial_splits: Vec::new(),
        suspect_after_ms: 3_000,
        down_after_ms: 10_000,
        secret_file: Some(secret_file.clone()),
        tls: Some(TlsFiles {
            ca: tls.join("ca.pem"),
            cert: tls.join("meta-1.pem"),
            key: tls.join("meta-1.key"),
        }),
        ca_key: Some(tls.join("ca.key")),
    };
    let meta_config = spec.dir.join("meta.toml");
    write_toml(&meta_config, &config)?;
    Ok(Initialised {
        meta_config,
        meta_url: url,
        secret_file,
        tls_dir: tls,
    })
}

/// The admin identity `init` wrote into `dir` (`cairn --tls-dir DIR`).
pub fn admin_files(tls_dir: &Path) -> TlsFiles {
    TlsFiles {
        ca: tls_dir.join("ca.pem"),
        cert: tls_dir.join("admin.pem"),
        key: tls_dir.join("admin.key"),
    }
}

/// A join token for `role`, valid for `ttl`.
pub fn join_token(
    secret: &ClusterSecret,
    role: JoinRole,
    ttl: Duration,
    ca_pem: &str,
    meta_urls: &str,
) -> Result<String, JoinCommandError> {
    if meta_urls
        .split(',')
        .any(|u| !u.trim().starts_with("https://"))
    {
        return Err(JoinCommandError::Invalid(format!(
            "join tokens name https:// metadata replicas, not {meta_urls}"
        )));
    }
    JoinToken::mint(secret, role, now_ms(), ttl, ca_pem, meta_urls)
        .map(|t| t.to_string())
        .ok_or_else(|| JoinCommandError::Invalid("the CA file holds no certificate".into()))
}

/// What a joining host obtained and wrote into its directory.
#[derive(Debug, Clone)]
pub struct Joined {
    pub token: JoinToken,
    pub grant: JoinGrant,
    pub tls: TlsFiles,
    pub secret_file: PathBuf,
}

/// Asks the replicas the token names for a certificate for `name` at
/// `addresses` and writes `<dir>/tls/{ca.pem,NAME.pem,NAME.key}` and
/// `<dir>/cluster-secret`.
pub async fn obtain(
    token: &str,
    role: JoinRole,
    name: &str,
    addresses: Vec<String>,
    s3_names: Vec<String>,
    dir: &Path,
) -> Result<Joined, JoinCommandError> {
    let token = JoinToken::parse(token)?;
    let request = JoinRequest {
        token: token.to_string(),
        role,
        name: name.to_owned(),
        addresses,
        s3_names,
    };
    let grant = cairn_meta_api::join::join(&token, &request).await?;
    let tls = tls_dir(dir)?;
    let files = write_identity(&tls, name, &grant.ca_pem, &grant.identity)?;
    let secret_file = dir.join("cluster-secret");
    write_private(&secret_file, &format!("{}\n", grant.cluster_secret))?;
    if let Some(key) = &grant.ca_key_pem {
        write_private(&tls.join("ca.key"), key)?;
    }
    if let Some(s3) = &grant.s3 {
        write_public(&tls.join(format!("{name}-s3.pem")), &s3.cert_pem)?;
        write_private(&tls.join(format!("{name}-s3.key")), &s3.key_pem)?;
    }
    Ok(Joined {
        token,
        grant,
        tls: files,
        secret_file,
    })
}

/// A storage node's config after [`obtain`].
pub fn node_config(
    joined: &Joined,
    id: cairn_core::ids::NodeId,
    rack: cairn_core::ids::RackId,
    listen: SocketAddr,
    data_dir: PathBuf,
) -> NodeConfig {
    let mut config = NodeConfig::new(id, rack, data_dir);
    config.listen = listen;
    config.advertise_url = Some(https(listen));
    config.metadata_url = Some(joined.token.meta_urls.clone());
    config.secret_file = Some(joined.secret_file.clone());
    config.tls = Some(joined.tls.clone());
    config
}

/// A joining metadata replica's config: `join = true`, the cluster's
/// replicas as they are now plus this one.
pub fn meta_config(
    joined: &Joined,
    id: u64,
    listen: SocketAddr,
    rack: Option<String>,
    data_dir: PathBuf,
    mut replicas: Vec<ReplicaEntry>,
    replicas_per_group: usize,
) -> MetaConfig {
    let url = https(listen);
    replicas.retain(|r| r.id != id);
    replicas.push(ReplicaEntry {
        id,
        url: url.clone(),
        rack,
    });
    replicas.sort_by_key(|r| r.id);
    MetaConfig {
        listen,
        advertise_url: Some(url),
        data_dir,
        replica_id: id,
        replicas,
        // The cluster's (its map says), so this replica's config agrees.
        replicas_per_group: match replicas_per_group {
            n @ (1 | 3 | 5) => n,
            _ => 3,
        },
        join: true,
        initial_splits: Vec::new(),
        suspect_after_ms: 3_000,
        down_after_ms: 10_000,
        secret_file: Some(joined.secret_file.clone()),
        tls: Some(joined.tls.clone()),
        ca_key: joined
            .grant
            .ca_key_pem
            .as_ref()
            .map(|_| joined.tls.ca.with_file_name("ca.key")),
    }
}

/// A gateway's config: HTTPS on S3 with the certificate the join issued
/// for its S3 names.
/// S3 in clear text only when `s3_plain_http` says so (then no S3
/// certificate was asked for).
pub fn gateway_config(
    joined: &Joined,
    name: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    s3_plain_http: bool,
) -> GatewayConfig {
    let mut config = GatewayConfig::new(joined.token.meta_urls.clone());
    config.listen = listen;
    config.admin_listen = Some(admin);
    config.secret_file = Some(joined.secret_file.clone());
    config.tls = Some(joined.tls.clone());
    let tls = joined
        .tls
        .ca
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    config.s3_tls = joined
        .grant
        .s3
        .as_ref()
        .map(|_| cairn_service::tls::CertFiles {
            cert: tls.join(format!("{name}-s3.pem")),
            key: tls.join(format!("{name}-s3.key")),
        });
    config.s3_plain_http = s3_plain_http;
    config
}

pub fn scrubber_config(joined: &Joined, listen: SocketAddr, data_dir: PathBuf) -> ScrubberConfig {
    let mut config = ScrubberConfig::new(joined.token.meta_urls.clone(), data_dir);
    config.listen = listen;
    config.secret_file = Some(joined.secret_file.clone());
    config.tls = Some(joined.tls.clone());
    config
}

/// Writes a service config obtained with one of the functions above.
pub fn write_config(path: &Path, config: &impl Serialize) -> Result<(), JoinCommandError> {
    write_toml(path, config)
}
