//! TLS material of a dev cluster started with `--tls`: the cluster CA in
//! `<data-dir>/tls/` (made on first start, kept across restarts), and a
//! certificate per process, issued again at every start (cheap, and it
//! follows a changed `--host`).

use std::path::{Path, PathBuf};

use cairn_service::tls::TlsFiles;
use cairn_service::tls::ca::ClusterCa;

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
