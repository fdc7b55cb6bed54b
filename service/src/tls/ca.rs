//! The cluster's certificate authority: one self-signed CA per cluster,
//! created once (by `cairn dev`, later `cairn cluster init`), whose key
//! issues every service's certificate. Services trust this CA and nothing
//! else, so holding a certificate it issued is what makes a process a member.
//!
//! Keys are ECDSA P-256 (rcgen's default, fast handshakes with ring). The
//! CA's issuer identity (its name and key-identifier method) is rebuilt from
//! [`ca_params`] when the CA is loaded again, so loading needs only its key
//! and certificate files, no X.509 parser.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::{PemFile, TlsError};

/// How long the CA and the certificates it issues are valid. Re-issuing a
/// certificate is cheap (a new one from the same CA); replacing the CA means
/// re-issuing every certificate, so it lives longer.
const CA_VALIDITY: Duration = Duration::days(3650);
const LEAF_VALIDITY: Duration = Duration::days(825);
/// Clocks on a real network disagree a little; a certificate issued on one
/// host must already be valid on another.
const BACKDATE: Duration = Duration::hours(1);

const CA_COMMON_NAME: &str = "Cairn cluster CA";

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

impl Issued {
    /// Writes `<stem>.pem` and `<stem>.key` into `dir`, the key readable by
    /// its owner only.
    pub fn write(&self, dir: &Path, stem: &str) -> std::io::Result<()> {
        std::fs::write(dir.join(format!("{stem}.pem")), &self.cert_pem)?;
        write_private(&dir.join(format!("{stem}.key")), &self.key_pem)
    }
}

/// The cluster CA: its certificate and signing key.
pub struct ClusterCa {
    cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl ClusterCa {
    /// A new CA with a fresh key.
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// The CA written by [`ClusterCa::write`]: `ca.pem` and `ca.key` in `dir`.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        Self::from_files(&dir.join("ca.pem"), &dir.join("ca.key"))
    }

    /// The CA from its certificate and key files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::from_pem(&PemFile::read(cert)?, &PemFile::read(key)?)
    }

    /// The CA from PEM text in hand (a joining metadata replica's grant).
    pub fn from_pem(cert: &PemFile, key: &PemFile) -> Result<Self, TlsError> {
        let key = KeyPair::from_pem(&key.text).map_err(|e| key.error("CA key", e))?;
        Ok(Self {
            cert_pem: cert.text.clone(),
            key,
        })
    }

    /// Writes `ca.pem` (give it to every host and client) and `ca.key` (keep
    /// it where certificates are issued, owner-readable only).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("ca.pem"), &self.cert_pem)?;
        write_private(&dir.join("ca.key"), &self.key.serialize_pem())
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, PEM (for a metadata replica that joins: every replica
    /// can then admit hosts).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for `name` (its common name), valid for `addresses`
    /// (IP addresses and DNS names its peers dial), usable both as a server
    /// and as a client certificate: every Cairn process is both.
    pub fn issue(&self, name: &str, addresses: &[String]) -> Result<Issued, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(addresses.to_vec())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
