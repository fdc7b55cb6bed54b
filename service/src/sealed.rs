//! Small secrets sealed under the cluster secret, for secrets that must be
//! stored but must not be readable from a copy of the store: S3 users'
//! secret keys live in the replicated catalogue, and the gateway needs them
//! back in plain text to check SigV4 signatures (an HMAC, not a hash).
//!
//! AES-256-GCM (RustCrypto) with a fresh random 96-bit nonce per seal; the
//! key is HKDF-SHA256 of the cluster secret, salted per `purpose`, so a
//! sealed value is useless to whoever holds only the metadata databases,
//! their snapshots or backups. `bound_to` (e.g. the access key) is
//! authenticated data: a sealed secret moved to another record fails to
//! open instead of lending its value. Changing the cluster secret makes
//! everything sealed under the old one unreadable (docs/flows.md, "Users
//! and keys").

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::ClusterSecret;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is not base64 of a nonce and a ciphertext")]
    Malformed,
    #[error(
        "sealed value does not open under this cluster secret (changed secret, or moved value)"
    )]
    WrongKey,
}

fn cipher(secret: &ClusterSecret, purpose: &str) -> Aes256Gcm {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(purpose.as_bytes()), secret.expose().as_bytes())
        .expand(b"cairn sealed secret v1", key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new_from_slice(key.as_ref()).expect("AES-256 takes a 32-byte key")
}

/// Seals `plaintext` for `purpose`, bound to `bound_to`: base64 of
/// nonce ‖ ciphertext ‖ tag.
pub fn seal(secret: &ClusterSecret, purpose: &str, bound_to: &str, plaintext: &[u8]) -> String {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher(secret, purpose)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: bound_to.as_bytes(),
            },
        )
        .expect("AES-GCM seals any message under 64 GiB");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    STANDARD.encode(out)
}

/// Opens what [`seal`] made with the same secret, purpose and binding.
pub fn open(
    secret: &ClusterSecret,
    purpose: &str,
    bound_to: &str,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let bytes = STANDARD.decode(sealed).map_err(|_| SealError::Malformed)?;
    if bytes.len() < NONCE_LEN + 16 {
        return Err(SealError::Malformed);
    }
    let (nonce, body) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce length");
    cipher(secret, purpose)
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: body,
                aad: bound_to.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::WrongKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> ClusterSecret {
        ClusterSecret::new(text).expect("secret")
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_secret_purpose_and_binding() {
        let s = secret("cluster-one");
        let sealed = seal(&s, "s3 user key", "AK1", b"the secret key");
        assert!(!sealed.contains("the secret key"));
        assert_eq!(
            open(&s, "s3 user key", "AK1", &sealed)
                .expect("opens")
                .as_slice(),
            b"the secret key"
        );
        // Fresh nonce every time: sealing twice gives different text.
        assert_ne!(sealed, seal(&s, "s3 user key", "AK1", b"the secret key"));
        for (secret, purpose, binding) in [
            (secret("cluster-two"), "s3 user key", "AK1"),
            (s.clone(), "other purpose", "AK1"),
            (s.clone(), "s3 user key", "AK2"),
        ] {
            assert!(matches!(
                open(&secret, purpose, binding, &sealed),
                Err(SealError::WrongKey)
            ));
        }
        assert!(matches!(
            open(&s, "s3 user key", "AK1", "not base64!"),
            Err(SealError::Malformed)
        ));
        let mut tampered = STANDARD.decode(&sealed).expect("base64");
        *tampered.last_mut().expect("tag") ^= 1;
        assert!(matches!(
            open(&s, "s3 user key", "AK1", &STANDARD.encode(tampered)),
            Err(SealError::WrongKey)
        ));
    }
}
