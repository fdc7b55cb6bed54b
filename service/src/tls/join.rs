//! Join tokens: how a new host proves it may join the cluster, and how it
//! knows it is talking to the right cluster before it trusts anything.
//!
//! A token is minted offline by anyone holding the cluster secret (`cairn
//! cluster join-token`) and is valid until it expires (default one hour),
//! for one role (node, meta, gateway, scrubber) — the model of kubeadm's
//! bootstrap tokens. It carries:
//!
//! - the role and expiry, and a random nonce;
//! - an HMAC-SHA256 over those, under a key derived (HKDF) from the cluster
//!   secret: a metadata replica checks it in constant time, and the token
//!   reveals nothing about the secret;
//! - the SHA-256 of the cluster CA's certificate: the joiner fetches the CA
//!   over a connection it cannot verify yet and accepts it only if the hash
//!   matches, then verifies everything else against it;
//! - the metadata replicas to ask.
//!
//! Whoever holds a valid token can obtain a certificate and the cluster
//! secret until it expires: hand tokens over like passwords, with short
//! lifetimes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::ClusterSecret;

const PREFIX: &str = "cairn-join-v1";

/// What a joining host will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinRole {
    Node,
    Meta,
    Gateway,
    Scrubber,
}

impl JoinRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Meta => "meta",
            Self::Gateway => "gateway",
            Self::Scrubber => "scrubber",
        }
    }
}

impl std::str::FromStr for JoinRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "node" => Ok(Self::Node),
            "meta" => Ok(Self::Meta),
            "gateway" => Ok(Self::Gateway),
            "scrubber" => Ok(Self::Scrubber),
            other => Err(format!(
                "unknown role {other:?} (node, meta, gateway, scrubber)"
            )),
        }
    }
}

impl std::fmt::Display for JoinRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinTokenError {
    #[error("not a Cairn join token")]
    Malformed,
    #[error("the join token is not valid for this cluster")]
    BadSignature,
    #[error("the join token expired")]
    Expired,
    #[error("the join token is for a {token} and cannot join a {asked}")]
    WrongRole { token: JoinRole, asked: JoinRole },
    #[error("the cluster CA does not match the one the token names")]
    WrongCa,
}

/// A parsed join token. Its text form is
/// `cairn-join-v1.ROLE.EXPIRES_MS.NONCE.MAC.CA_SHA256.URLS` (URLs base64url).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub role: JoinRole,
    pub expires_ms: u64,
    nonce: [u8; 16],
    mac: [u8; 32],
    /// SHA-256 of the CA certificate (DER).
    pub ca_sha256: [u8; 32],
    /// The metadata replicas to ask, comma-separated.
    pub meta_urls: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("role", &self.role)
            .field("expires_ms", &self.expires_ms)
            .field("meta_urls", &self.meta_urls)
            .finish_non_exhaustive()
    }
}

fn mac_key(secret: &ClusterSecret) -> Hmac<Sha256> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(Some(b"cairn join token"), secret.expose().as_bytes())
        .expand(b"cairn join token v1", key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Hmac::<Sha256>::new_from_slice(key.as_ref()).expect("HMAC takes any key length")
}

fn mac(secret: &ClusterSecret, role: JoinRole, expires_ms: u64, nonce: &[u8; 16]) -> [u8; 32] {
    let mut mac = mac_key(secret);
    mac.update(role.as_str().as_bytes());
    mac.update(&expires_ms.to_be_bytes());
    mac.update(nonce);
    mac.finalize().into_bytes().into()
}

/// SHA-256 of the first certificate in `ca_pem` (what a token pins).
pub fn ca_fingerprint(ca_pem: &str) -> Option<[u8; 32]> {
    let der = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .next()?
        .ok()?;
    Some(Sha256::digest(der.as_ref()).into())
}

impl JoinToken {
    /// A token for `role`, valid for `ttl` from `now_ms`.
    pub fn mint(
        secret: &ClusterSecret,
        role: JoinRole,
        now_ms: u64,
        ttl: Duration,
        ca_pem: &str,
        meta_urls: &str,
    ) -> Option<Self> {
        let nonce: [u8; 16] = rand::random();
        let expires_ms = now_ms.saturating_add(ttl.as_millis() as u64);
        Some(Self {
            role,
            expires_ms,
            nonce,
            mac: mac(secret, role, expires_ms, &nonce),
            ca_sha256: ca_fingerprint(ca_pem)?,
            meta_urls: meta_urls.to_owned(),
        })
    }

    pub fn parse(text: &str) -> Result<Self, JoinTokenError> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let [prefix, role, expires, nonce, mac, ca, urls] = parts[..] else {
            return Err(JoinTokenError::Malformed);
        };
        if prefix != PREFIX {
            return Err(JoinTokenError::Malformed);
        }
        let hex_array = |s: &str| -> Result<Vec<u8>, JoinTokenError> {
            hex::decode(s).map_err(|_| JoinTokenError::Malformed)
        };
        let urls = URL_SAFE_NO_PAD
            .decode(urls)
            .ok()
            .and_then(|u| String::from_utf8(u).ok())
            .ok_or(JoinTokenError::Malformed)?;
        Ok(Self {
            role: role.parse().map_err(|_| JoinTokenError::Malformed)?,
            expires_ms: expires.parse().map_err(|_| JoinTokenError::Malformed)?,
            nonce: hex_array(nonce)?
                .try_into()
                .map_err(|_| JoinTokenError::Malformed)?,
            mac: hex_array(mac)?
                .try_into()
                .map_err(|_| JoinTokenError::Malformed)?,
            ca_sha256: hex_array(ca)?
                .try_into()
                .map_err(|_| JoinTokenError::Malformed)?,
            meta_urls: urls,
        })
    }

    /// The issuer's check: minted under this cluster's secret, not expired,
    /// and for the role asked for.
    pub fn verify(
        &self,
        secret: &ClusterSecret,
        now_ms: u64,
        asked: JoinRole,
    ) -> Result<(), JoinTokenError> {
        let expected = mac(secret, self.role, self.expires_ms, &self.nonce);
        if !bool::from(expected.ct_eq(&self.mac)) {
            return Err(JoinTokenError::BadSignature);
        }
        if now_ms >= self.expires_ms {
            return Err(JoinTokenError::Expired);
        }
        if self.role != asked {
            return Err(JoinTokenError::WrongRole {
                token: self.role,
                asked,
            });
        }
        Ok(())
    }

    /// The joiner's check of a CA it fetched over an unverified connection.
    pub fn check_ca(&self, ca_pem: &str) -> Result<(), JoinTokenError> {
        match ca_fingerprint(ca_pem) {
            Some(found) if bool::from(found.ct_eq(&self.ca_sha256)) => Ok(()),
            _ => Err(JoinTokenError::WrongCa),
        }
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}.{}.{}.{}.{}",
            self.role,
            self.expires_ms,
            hex::encode(self.nonce),
            hex::encode(self.mac),
            hex::encode(self.ca_sha256),
            URL_SAFE_NO_PAD.encode(self.meta_urls.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ca::ClusterCa;

    fn setup() -> (ClusterSecret, String) {
        let ca = ClusterCa::generate().expect("CA");
        (
            ClusterSecret::new("join-secret").expect("secret"),
            ca.cert_pem().to_owned(),
        )
    }

    #[test]
    fn a_token_round_trips_and_verifies_only_for_its_cluster_role_and_lifetime() {
        let (secret, ca) = setup();
        let token = JoinToken::mint(
            &secret,
            JoinRole::Node,
            1_000,
            Duration::from_secs(60),
            &ca,
            "https://10.0.0.1:7300,https://10.0.0.2:7300",
        )
        .expect("mint");
        let parsed = JoinToken::parse(&token.to_string()).expect("parse");
        assert_eq!(parsed, token);
        assert_eq!(
            parsed.meta_urls,
            "https://10.0.0.1:7300,https://10.0.0.2:7300"
        );
        assert_eq!(parsed.verify(&secret, 2_000, JoinRole::Node), Ok(()));
        assert_eq!(
            parsed.verify(&secret, 61_000, JoinRole::Node),
            Err(JoinTokenError::Expired)
        );
        assert!(matches!(
            parsed.verify(&secret, 2_000, JoinRole::Meta),
            Err(JoinTokenError::WrongRole { .. })
        ));
        let other = ClusterSecret::new("another cluster").expect("secret");
        assert_eq!(
            parsed.verify(&other, 2_000, JoinRole::Node),
            Err(JoinTokenError::BadSignature)
        );
        assert_eq!(parsed.check_ca(&ca), Ok(()));
        let (_, other_ca) = setup();
        assert_eq!(parsed.check_ca(&other_ca), Err(JoinTokenError::WrongCa));
    }

    #[test]
    fn a_token_edited_to_live_longer_or_change_role_fails() {
        let (secret, ca) = setup();
        let text = JoinToken::mint(
            &secret,
            JoinRole::Node,
            0,
            Duration::from_secs(60),
            &ca,
            "u",
        )
        .expect("mint")
        .to_string();
        let longer = text.replacen(".60000.", ".99999999999.", 1);
        assert_ne!(longer, text);
        let longer = JoinToken::parse(&longer).expect("parse");
        assert_eq!(
            longer.verify(&secret, 1, JoinRole::Node),
            Err(JoinTokenError::BadSignature)
        );
        let promoted = JoinToken::parse(&text.replacen(".node.", ".meta.", 1)).expect("parse");
        assert_eq!(
            promoted.verify(&secret, 1, JoinRole::Meta),
            Err(JoinTokenError::BadSignature)
        );
        for bad in [
            "",
            "cairn-join-v1",
            "x.node.1.00.00.00.dQ",
            &text[..text.len() - 70],
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
