//! `<data-dir>/cluster.json`: what `cairn dev` started and where, so users,
//! scripts and tests can find the endpoints, the credentials, and every
//! storage node's process and chunk directory (to `kill -9` one and look at
//! its files).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFile {
    /// S3 API base URL.
    pub s3_endpoint: String,
    /// The metadata replicas' URLs, comma-separated (any of them leads a
    /// client to each group's leader).
    pub admin_endpoint: String,
    /// Gateway `/metrics` and `/health`.
    pub gateway_admin_endpoint: String,
    /// Scrubber admin API (scrub jobs, repair status, `/metrics`).
    pub scrubber_endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Secret of the internal APIs (`x-cairn-secret`). The file is written
    /// readable by its owner only.
    pub cluster_secret: String,
    /// With `cairn dev --tls`: the cluster CA (which S3 clients trust too:
    /// `--ca-bundle`) and the certificate `cairn` presents to the services.
    #[serde(default)]
    pub tls: Option<cairn_service::tls::TlsFiles>,
    pub k: usize,
    pub m: usize,
    /// The gateway's size classes: bodies up to `inline_max` inline, blobs
    /// up to `replicated_max` as copies (absent in files of older versions).
    #[serde(default)]
    pub inline_max: Option<u64>,
    #[serde(default)]
    pub replicated_max: Option<u64>,
    /// The metadata replicas, in replica-id order (id = position + 1).
    pub metadata: Vec<ProcessInfo>,
    pub gateway: ProcessInfo,
    pub scrubber: ProcessInfo,
    pub nodes: Vec<NodeInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub address: String,
    pub data_dir: Option<PathBuf>,
    pub log: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub rack: String,
    pub address: String,
    pub pid: u32,
    /// Chunk files are under `<data_dir>/chunks/`.
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClusterFile {
    pub const NAME: &'static str = "cluster.json";

    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(Self::NAME)
    }

    pub fn load(path: &Path) -> Result<Self, ClusterFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ClusterFileError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes atomically (temp file, rename), readable by the owner only.
    pub fn store(&self, path: &Path) -> Result<(), ClusterFileError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let write_err = |source| ClusterFileError::Write {
            path: path.to_owned(),
            source,
        };
        let temp = path.with_extension("json.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(write_err)?;
        let text = serde_json::to_string_pretty(self).expect("serializable");
        file.write_all(text.as_bytes()).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        std::fs::rename(&temp, path).map_err(write_err)
    }
}
