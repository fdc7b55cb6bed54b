//! TLS material of a dev cluster started with `--tls`: the cluster CA in
//! `<data-dir>/tls/` (made on first start, kept across restarts), and a
//! certificate per process, issued again at every start (cheap, and it
//! follows a changed `--host`).

use std::path::{Path, PathBuf};

use std::time::Duration;

use cairn_service::tls::ca::ClusterCa;
use cairn_service::tls::join::{JoinRole, JoinToken};
use cairn_service::tls::{CertFiles, TlsFiles};
use cairn_service::{ClusterSecret, now_ms};

use super::{DevError, io};

pub(crate) struct DevTls {
    dir: PathBuf,
    ca: ClusterCa,
}

impl std::fmt::Debug for DevTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevTls")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl DevTls {
    pub(crate) fn ensure(data: &Path) -> Result<Self, DevError> {
        let dir = data.join("tls");
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let ca = if dir.join("ca.key").is_file() {
            ClusterCa::load(&dir)?
        } else {
            let ca = ClusterCa::generate()?;
            ca.write(&dir)
                .map_err(io(format!("write the cluster CA in {}", dir.display())))?;
            ca
        };
        Ok(Self { dir, ca })
    }

    /// The CA certificate every process and client trusts.
    pub(crate) fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub(crate) fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Issues `<name>.pem` / `<name>.key` for a process reached at
    /// `addresses`, and names the files as that process's config does.
    pub(crate) fn issue(&self, name: &str, addresses: &[String]) -> Result<TlsFiles, DevError> {
        let issued = self.ca.issue(name, addresses)?;
        issued
            .write(&self.dir, name)
            .map_err(io(format!("write the certificate of {name}")))?;
        Ok(TlsFiles {
            ca: self.ca_path(),
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        })
    }
}

/// How long the tokens `cairn dev` mints for its own processes live.
const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Joins the dev cluster's processes through its metadata replicas, as
/// `cairn node join` joins a host: one token per role, minted here.
#[derive(Debug, Clone)]
pub(crate) struct Joiner {
    ca_pem: String,
    secret: ClusterSecret,
    meta_url: String,
    data: PathBuf,
    addresses: Vec<String>,
}

impl Joiner {
    pub(crate) fn new(
        tls: &DevTls,
        secret: &ClusterSecret,
        meta_url: &str,
        data: &Path,
        addresses: Vec<String>,
    ) -> Result<Self, DevError> {
        let ca_pem = std::fs::read_to_string(tls.ca_path()).map_err(io("read the cluster CA"))?;
        Ok(Self {
            ca_pem,
            secret: secret.clone(),
            meta_url: meta_url.to_owned(),
            data: data.to_owned(),
            addresses,
        })
    }

    /// The process's mutual-TLS files, and a gateway's S3 certificate.
    pub(crate) async fn join(
        &self,
        role: JoinRole,
        name: &str,
        s3_names: Vec<String>,
    ) -> Result<(TlsFiles, Option<CertFiles>), DevError> {
        let token = JoinToken::mint(
            &self.secret,
            role,
            now_ms(),
            TOKEN_LIFETIME,
            &self.ca_pem,
            &self.meta_url,
        )
        .ok_or_else(|| DevError::Options("the cluster CA file holds no certificate".into()))?;
        let joined = crate::join::obtain(
            &token.to_string(),
            role,
            name,
            self.addresses.clone(),
            s3_names,
            &self.data,
        )
        .await?;
        let tls = self.data.join("tls");
        let s3 = joined.grant.s3.as_ref().map(|_| CertFiles {
            cert: tls.join(format!("{name}-s3.pem")),
            key: tls.join(format!("{name}-s3.key")),
        });
        Ok((joined.tls, s3))
    }
}
