//! The cluster secret that every internal request must carry.

use std::path::Path;

use subtle::ConstantTimeEq;

use crate::tls::ClusterTls;

/// The shared secret. Incoming candidates are checked against its blake3
/// digest in constant time, so neither the secret's bytes nor its length
/// leak through response timing; the text itself is kept only to
/// authenticate this service's own outgoing requests.
///
/// It also carries this process's TLS identity when the cluster uses TLS
/// ([`ClusterSecret::with_tls`]): the two are what a process proves
/// membership with, and every server and client that is handed the secret
/// thereby speaks mutual TLS, with the secret as a second factor inside it.
#[derive(Clone)]
pub struct ClusterSecret {
    digest: [u8; 32],
    text: std::sync::Arc<str>,
    tls: Option<ClusterTls>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the cluster secret is empty")]
    Empty,
    #[error("cannot read cluster secret file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no cluster secret: pass --secret, set CAIRN_CLUSTER_SECRET or CAIRN_CLUSTER_SECRET_FILE, or name a secret_file in the config"
    )]
    Missing,
}

impl ClusterSecret {
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self {
            digest: *blake3::hash(secret.as_bytes()).as_bytes(),
            text: secret.into(),
            tls: None,
        })
    }

    /// This secret with the process's TLS identity: its servers then demand
    /// client certificates from the cluster CA and its clients present one
    /// and refuse `http://` peers.
    pub fn with_tls(mut self, tls: Option<ClusterTls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn tls(&self) -> Option<&ClusterTls> {
        self.tls.as_ref()
    }

    /// The server side of [`Self::tls`], for this process's listeners.
    pub fn server_tls(&self) -> Option<std::sync::Arc<rustls::ServerConfig>> {
        self.tls.as_ref().map(ClusterTls::server_config)
    }

    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(&text)
    }

    /// Resolves the secret the same way in every Cairn binary, first match
    /// wins: the `--secret` flag, the `CAIRN_CLUSTER_SECRET` variable, the
    /// file named by `CAIRN_CLUSTER_SECRET_FILE`, then the config file's
    /// `secret_file`. The flag is for tests (command lines are visible to
    /// other users); the environment overrides a config so that a
    /// supervisor can hand a secret to a service without rewriting it.
    pub fn resolve(
        explicit: Option<&str>,
        config_file: Option<&Path>,
    ) -> Result<Self, SecretError> {
        if let Some(secret) = explicit {
            return Self::new(secret);
        }
        if let Ok(secret) = std::env::var("CAIRN_CLUSTER_SECRET") {
            return Self::new(&secret);
        }
        if let Ok(path) = std::env::var("CAIRN_CLUSTER_SECRET_FILE") {
            return Self::from_file(Path::new(&path));
        }
        if let Some(path) = config_file {
            return Self::from_file(path);
        }
        Err(SecretError::Missing)
    }

    /// The secret to present on outgoing requests.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Constant-time check of a presented secret.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let digest = blake3::hash(candidate);
        bool::from(self.digest.ct_eq(digest.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_exact_secret() {
        let secret = ClusterSecret::new("correct horse").expect("secret");
        assert!(secret.matches(b"correct horse"));
        assert!(!secret.matches(b"correct hors"));
        assert!(!secret.matches(b"correct horse "));
        assert!(!secret.matches(b""));
        assert!(ClusterSecret::new("  ").is_err());
    }
}
