//! TLS for every Cairn connection (rustls, with ring as the crypto provider).
//!
//! Two kinds of endpoint:
//!
//! - **internal** (nodes, metadata replicas, the scrubber, the gateway's
//!   admin listener): mutual TLS. Every process holds a certificate issued by
//!   the cluster's own CA ([`ca`]) and trusts only that CA, as a server and
//!   as a client, so a peer proves cluster membership before it sends a byte
//!   of a request; the cluster secret still travels inside as a second
//!   factor, now encrypted. [`ClusterTls`] holds both sides.
//! - **the S3 endpoint**: ordinary server TLS with whatever certificate the
//!   operator configures ([`server_only`]); S3 clients do not present one.
//!
//! A process that has a [`ClusterTls`] refuses plain `http://` peers (see
//! [`crate::HttpClient`]), so a misconfigured address cannot send the secret
//! in clear text.

pub mod ca;
pub mod join;
mod listener;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};

pub use listener::{PeerIdentity, ServiceListener};

/// Where a process finds its TLS material: the cluster CA's certificate (the
/// only one it trusts), its own certificate chain and private key, all PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate and its key, PEM (the S3 endpoint's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} in {path}: {message}")]
    Pem {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The provider every config here is built with (explicitly, so nothing
/// depends on process-wide state); [`install_default_provider`] also makes it
/// the process default for libraries that ask for one.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide rustls provider (idempotent). reqwest builds
/// a default TLS config for every client, even one that only speaks
/// `http://`, and needs a provider for it.
pub fn install_default_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// This process's side of the cluster's mutual TLS: a server config that
/// demands a client certificate from the cluster CA, and a client config
/// that trusts only the cluster CA and presents this process's certificate.
#[derive(Clone)]
pub struct ClusterTls {
    server: Arc<ServerConfig>,
    /// The same, but a client may come without a certificate (a host that is
    /// joining); the service then answers such a client only on its join
    /// routes ([`PeerIdentity`]).
    server_admitting_joiners: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterTls(..)")
    }
}

impl ClusterTls {
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        Self::from_pem(
            &PemFile::read(&files.ca)?,
            &PemFile::read(&files.cert)?,
            &PemFile::read(&files.key)?,
        )
    }

    /// From PEM text already read (`ca`, then this process's chain and key).
    pub fn from_pem(ca: &PemFile, cert: &PemFile, key: &PemFile) -> Result<Self, TlsError> {
        let roots = Arc::new(roots(ca)?);
        let chain = certificates(cert)?;
        let key = private_key(key)?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider()).build()?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let optional = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .allow_unauthenticated()
            .build()?;
        let server_admitting_joiners = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(optional)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(Self {
            server: Arc::new(server),
            server_admitting_joiners: Arc::new(server_admitting_joiners),
            client: Arc::new(client),
        })
    }

    /// For this process's listeners: client certificates required.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// For a listener that also serves joining hosts (the metadata
    /// service's): a client certificate is verified when presented, and
    /// [`PeerIdentity::certified`] says whether one was.
    pub fn server_config_admitting_joiners(&self) -> Arc<ServerConfig> {
        self.server_admitting_joiners.clone()
    }

    /// For this process's outgoing calls.
    pub fn client_config(&self) -> &ClientConfig {
        &self.client
    }
}

/// The identity a config names, if it names one.
pub fn load(files: Option<&TlsFiles>) -> Result<Option<ClusterTls>, TlsError> {
    files.map(ClusterTls::load).transpose()
}

/// A server config with no client authentication (the S3 endpoint).
pub fn server_only(files: &CertFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(&PemFile::read(&files.cert)?)?;
    let key = private_key(&PemFile::read(&files.key)?)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // s3s and the gateway speak HTTP/1.1; say so to clients that offer h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client config that trusts only the CA in `ca` and presents no
/// certificate: an S3 client of an HTTPS endpoint (`cairn bench`).
pub fn client_trusting(ca: &Path) -> Result<ClientConfig, TlsError> {
    client_trusting_ca(&PemFile::read(ca)?)
}

/// [`client_trusting`] with the CA's PEM in hand.
pub fn client_trusting_pem(ca_pem: &str) -> Result<ClientConfig, TlsError> {
    client_trusting_ca(&PemFile::from_text("the cluster CA", ca_pem))
}

fn client_trusting_ca(ca: &PemFile) -> Result<ClientConfig, TlsError> {
    let roots = roots(ca)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client config that accepts **any** server certificate. Only for a
/// joining host fetching the cluster CA's certificate before it has it: the
/// certificate is then accepted only if its SHA-256 equals the one in the
/// join token ([`join::JoinToken::check_ca`]), and nothing secret is sent on
/// such a connection.
pub fn client_for_fetching_a_pinned_ca() -> ClientConfig {
    let provider = provider();
    ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth()
}

/// See [`client_for_fetching_a_pinned_ca`]: signatures are still checked
/// (the handshake is real), the certificate's issuer is not.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// PEM text with the path it came from (for error messages).
#[derive(Debug, Clone)]
pub struct PemFile {
    origin: String,
    text: String,
}

impl PemFile {
    pub fn read(path: &Path) -> Result<Self, TlsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            origin: path.display().to_string(),
            text,
        })
    }

    /// PEM held in memory; `origin` names it in errors.
    pub fn from_text(origin: &str, text: impl Into<String>) -> Self {
        Self {
            origin: origin.to_owned(),
            text: text.into(),
        }
    }

    fn error(&self, what: &'static str, message: impl std::fmt::Display) -> TlsError {
        TlsError::Pem {
            what,
            path: self.origin.clone(),
            message: message.to_string(),
        }
    }
}

fn certificates(pem: &PemFile) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem.text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem.error("certificate", e))?;
    if chain.is_empty() {
        return Err(pem.error("certificate", "no CERTIFICATE block"));
    }
    Ok(chain)
}

fn private_key(pem: &PemFile) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.text.as_bytes()).map_err(|e| pem.error("private key", e))
}

fn roots(ca: &PemFile) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(|e| ca.error("CA certificate", e))?;
    }
    Ok(roots)
}
