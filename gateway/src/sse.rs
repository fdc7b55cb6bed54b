//! Server-side encryption at rest: SSE-C (the client's key) and SSE-S3
//! (keys derived from the cluster's master keys).
//!
//! Bytes are encrypted in the gateway before erasure coding, so chunks on
//! disk, repair and the scrubber only ever see ciphertext. The cipher is
//! AES-256 in CTR mode: the ciphertext has the plaintext's length and any
//! byte range can be decrypted on its own, so range reads still fetch only
//! the stripes they need. CTR has no integrity of its own; what is stored
//! is covered by the blake3 block hashes and Merkle roots the catalogue
//! holds, which every read checks.
//!
//! Keys (HKDF-SHA256, RFC 5869):
//! - version key = HKDF(ikm = customer key or master key, salt = the
//!   version's random 32-byte nonce, info = `cairn/sse/version/v1`);
//! - blob key = HKDF(version key, salt = the blob id, info =
//!   `cairn/sse/blob/v1`), counter from zero. Blob ids are random and never
//!   reused for other bytes, so no two blobs share a keystream; an inline
//!   body uses info `cairn/sse/inline/v1` instead.
//! - SSE-C keeps only `key_check` = HKDF(customer key, nonce,
//!   `cairn/sse-c/key-check/v1`), which tells a wrong key from the right one
//!   and reveals nothing about it.

use std::collections::BTreeMap;
use std::path::Path;

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use base64::Engine as _;
use cairn_core::ids::BlobId;
use cairn_core::manifest::{Encryption, EncryptionMode};
use hkdf::Hkdf;
use md5::Digest as _;
use s3s::{S3Result, s3_error};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// AES-256 in CTR mode with a 128-bit big-endian counter.
type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

type Key = Zeroizing<[u8; 32]>;

const VERSION_INFO: &[u8] = b"cairn/sse/version/v1";
const BLOB_INFO: &[u8] = b"cairn/sse/blob/v1";
const INLINE_INFO: &[u8] = b"cairn/sse/inline/v1";
const KEY_CHECK_INFO: &[u8] = b"cairn/sse-c/key-check/v1";
const ETAG_INFO: &[u8] = b"cairn/sse-c/etag/v1";

fn derive(ikm: &[u8], salt: &[u8], info: &[u8]) -> Key {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

fn random_nonce() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

// ---- the cluster's master keys ----

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("keyring line {line}: {reason}")]
    Invalid { line: usize, reason: String },
}

/// The master keys SSE-S3 derives version keys from, by id. New versions
/// use the highest id; a version names the id it was written with, so an
/// old key stays usable for reading until it is removed (rotation:
/// docs/operations.md "Rotating the SSE-S3 master key").
#[derive(Default)]
pub struct Keyring {
    keys: BTreeMap<u32, Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// Reads a keyring file: one `ID:BASE64` line per key (32 bytes),
    /// `#` comments and blank lines ignored.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyringError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |reason: &str| KeyringError::Invalid {
                line: n + 1,
                reason: reason.into(),
            };
            let (id, key) = line
                .split_once(':')
                .ok_or_else(|| invalid("expected ID:BASE64"))?;
            let id: u32 = id
                .trim()
                .parse()
                .map_err(|_| invalid("the id is not a number"))?;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(key.trim())
                    .map_err(|_| invalid("the key is not base64"))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| invalid("a key is 32 bytes"))?;
            if keys.insert(id, Zeroizing::new(key)).is_some() {
                return Err(invalid("the id appears twice"));
            }
        }
        Ok(Self { keys })
    }

    /// A new keyring line with a fresh random key (`cairn sse new-key`).
    pub fn new_key_line(id: u32) -> String {
        let key = Zeroizing::new(rand::random::<[u8; 32]>());
        format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(key.as_slice())
        )
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn newest(&self) -> Option<(u32, &Key)> {
        self.keys.iter().next_back().map(|(id, key)| (*id, key))
    }
}

// ---- what a request asks for ----

/// A customer-provided key (SSE-C), checked against its MD5.
pub struct CustomerKey {
    key: Key,
    /// The base64 MD5 the client sent (returned in responses, as S3 does).
    md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(..)")
    }
}

impl CustomerKey {
    /// The key named by a request's three SSE-C headers, none if it names
    /// none; S3's errors for an incomplete or inconsistent set.
    pub fn from_headers(
        algorithm: Option<&str>,
        key: Option<&str>,
        key_md5: Option<&str>,
    ) -> S3Result<Option<Self>> {
        let (algorithm, key) = match (algorithm, key, key_md5) {
            (None, None, None) => return Ok(None),
            (None, ..) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
                ));
            }
            (Some(_), None, _) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key."
                ));
            }
            (Some(_), Some(_), None) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key."
                ));
            }
            (Some(algorithm), Some(key), Some(_)) => (algorithm, key),
        };
        if algorithm != "AES256" {
            return Err(s3_error!(
                InvalidEncryptionAlgorithmError,
                "The encryption request you specified is not valid. The valid value is AES256."
            ));
        }
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .unwrap_or_default(),
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            s3_error!(
                InvalidArgument,
                "The secret key was invalid for the specified algorithm."
            )
        })?;
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(key));
        let claimed = key_md5.unwrap_or_default().trim();
        if !bool::from(md5.as_bytes().ct_eq(claimed.as_bytes())) {
            return Err(s3_error!(
                InvalidArgument,
                "The calculated MD5 hash of the key did not match the hash that was provided."
            ));
        }
        Ok(Some(Self {
            key: Zeroizing::new(key),
            md5,
        }))
    }

    pub fn md5(&self) -> &str {
        &self.md5
    }

    fn check(&self, nonce: &str) -> String {
        hex::encode(derive(self.key.as_slice(), nonce.as_bytes(), KEY_CHECK_INFO).as_slice())
    }
}

/// The encryption a write asks for.
#[derive(Debug, Default)]
pub enum Requested {
    #[default]
    None,
    /// SSE-C.
    Customer(CustomerKey),
    /// SSE-S3 (`x-amz-server-side-encryption: AES256`, or the bucket's
    /// default encryption).
    Cluster,
}

impl Requested {
    /// From a write's headers: `x-amz-server-side-encryption` and the
    /// SSE-C set. SSE-KMS is refused (there is no key service), never
    /// ignored.
    pub fn from_headers(
        server_side_encryption: Option<&str>,
        kms_key_id: Option<&str>,
        customer: Option<CustomerKey>,
    ) -> S3Result<Self> {
        match (server_side_encryption, customer) {
            (Some(_), Some(_)) => Err(s3_error!(
                InvalidArgument,
                "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
            )),
            (None, Some(customer)) => Ok(Self::Customer(customer)),
            (Some("AES256"), None) if kms_key_id.is_none() => Ok(Self::Cluster),
            (Some("aws:kms" | "aws:kms:dsse"), None) => Err(kms_refused()),
            (Some(_), None) => Err(s3_error!(
                InvalidArgument,
                "The encryption method specified is not supported"
            )),
            (None, None) if kms_key_id.is_some() => Err(kms_refused()),
            (None, None) => Ok(Self::None),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }

    /// The customer's key, for SSE-C.
    pub fn customer(&self) -> Option<&CustomerKey> {
        match self {
            Self::Customer(customer) => Some(customer),
            _ => None,
        }
    }
}

pub fn kms_refused() -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "SSE-KMS is not supported (Cairn has no key management service); use SSE-S3 (AES256) or SSE-C"
    )
}

// ---- keys of a version ----

/// The key of one version (or multipart upload), from which each blob's
/// keystream is derived. Never stored.
pub struct VersionKey {
    key: Key,
    /// SSE-C disguises ETags (an MD5 of the plaintext would let anyone who
    /// can list the bucket test guesses of its content).
    disguise_etag: bool,
}

impl std::fmt::Debug for VersionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VersionKey(..)")
    }
}

impl VersionKey {
    /// A new version's encryption record and key, or none for plaintext.
    pub fn seal(requested: &Requested, keyring: &Keyring) -> S3Result<Option<(Encryption, Self)>> {
        let nonce = random_nonce();
        let (mode, ikm, disguise_etag) = match requested {
            Requested::None => return Ok(None),
            Requested::Customer(customer) => (
                EncryptionMode::CustomerKey {
                    key_check: customer.check(&nonce),
                },
                &customer.key,
                true,
            ),
            Requested::Cluster => {
                let (key_id, master) = keyring.newest().ok_or_else(|| {
                    s3_error!(
                        NotImplemented,
                        "SSE-S3 needs a master key: no sse_keyring_file is configured on this gateway"
                    )
                })?;
                (EncryptionMode::ClusterKey { key_id }, master, false)
            }
        };
        let key = derive(ikm.as_slice(), nonce.as_bytes(), VERSION_INFO);
        Ok(Some((
            Encryption { mode, nonce },
            Self { key, disguise_etag },
        )))
    }

    /// The key to read (or add parts to) an encrypted version. SSE-C needs
    /// the customer's key again: none is S3's 400, a wrong one its 403.
    pub fn open(
        encryption: &Encryption,
        customer: Option<&CustomerKey>,
        keyring: &Keyring,
    ) -> S3Result<Self> {
        let nonce = encryption.nonce.as_bytes();
        match &encryption.mode {
            EncryptionMode::CustomerKey { key_check } => {
                let customer = customer.ok_or_else(|| {
                    s3_error!(
                        InvalidRequest,
                        "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
                    )
                })?;
                let offered = customer.check(&encryption.nonce);
                if !bool::from(offered.as_bytes().ct_eq(key_check.as_bytes())) {
                    return Err(s3_error!(
                        AccessDenied,
                        "The provided SSE-C key does not match the key the object was encrypted with"
                    ));
                }
                Ok(Self {
                    key: derive(customer.key.as_slice(), nonce, VERSION_INFO),
                    disguise_etag: true,
                })
            }
            EncryptionMode::ClusterKey { key_id } => {
                let master = keyring.keys.get(key_id).ok_or_else(|| {
                    s3_error!(
                        InternalError,
                        "master key {key_id} of this object is not in this gateway's keyring"
                    )
                })?;
                Ok(Self {
                    key: derive(master.as_slice(), nonce, VERSION_INFO),
                    disguise_etag: false,
                })
            }
        }
    }

    /// The keystream of one blob of this version, at byte `offset`.
    pub fn blob_cipher(&self, blob: &BlobId, offset: u64) -> Keystream {
        let key = derive(self.key.as_slice(), blob.to_string().as_bytes(), BLOB_INFO);
        Keystream::at(&key, offset)
    }

    /// The keystream of this version's inline body, at byte `offset`.
    pub fn inline_cipher(&self, offset: u64) -> Keystream {
        let key = derive(self.key.as_slice(), b"", INLINE_INFO);
        Keystream::at(&key, offset)
    }

    /// The ETag a body with this MD5 gets: the MD5 itself, except under
    /// SSE-C (a value derived from it and the version key).
    pub fn etag(&self, md5: [u8; 16]) -> [u8; 16] {
        if !self.disguise_etag {
            return md5;
        }
        let derived = derive(self.key.as_slice(), &md5, ETAG_INFO);
        let mut out = [0u8; 16];
        out.copy_from_slice(&derived[..16]);
        out
    }
}

/// An AES-256-CTR keystream positioned at a byte offset; XORs in place
/// (encrypting and decrypting are the same operation).
pub struct Keystream(Aes256Ctr);

impl std::fmt::Debug for Keystream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keystream(..)")
    }
}

impl Keystream {
    fn at(key: &Key, offset: u64) -> Self {
        let key: [u8; 32] = **key;
        let mut cipher = Aes256Ctr::new(&key.into(), &[0u8; 16].into());
        cipher.seek(offset);
        Self(cipher)
    }

    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(key: [u8; 32]) -> CustomerKey {
        let b64 = base64::engine::general_purpose::STANDARD;
        let md5 = b64.encode(md5::Md5::digest(key));
        CustomerKey::from_headers(Some("AES256"), Some(&b64.encode(key)), Some(&md5))
            .expect("present")
            .expect("present")
    }

    #[test]
    fn a_keystream_decrypts_any_range_on_its_own() {
        let keyring = Keyring::default();
        let (_, key) = VersionKey::seal(&Requested::Customer(customer([7; 32])), &keyring)
            .expect("present")
            .expect("present");
        let blob = BlobId::random();
        let plain: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut sealed = plain.clone();
        // Encrypted in uneven pieces, as stripes arrive.
        let mut stream = key.blob_cipher(&blob, 0);
        for piece in sealed.chunks_mut(777) {
            stream.apply(piece);
        }
        assert_ne!(sealed, plain);
        for (start, end) in [(0, 10_000), (1, 2), (15, 17), (4_095, 9_999)] {
            let mut part = sealed[start..end].to_vec();
            key.blob_cipher(&blob, start as u64).apply(&mut part);
            assert_eq!(part, plain[start..end]);
        }
        // Another blob of the same version has another keystream.
        let mut other = plain.clone();
        key.blob_cipher(&BlobId::random(), 0).apply(&mut other);
        assert_ne!(other, sealed);
    }

    #[test]
    fn only_the_customers_key_opens_its_version() {
        let keyring = Keyring::default();
        let right = customer([1; 32]);
        let (record, sealed) = VersionKey::seal(&Requested::Customer(right), &keyring)
            .expect("present")
            .expect("present");
        assert!(
            !serde_json::to_string(&record)
                .expect("present")
                .contains(&hex::encode([1u8; 32]))
        );
        let opened =
            VersionKey::open(&record, Some(&customer([1; 32])), &keyring).expect("present");
        assert_eq!(opened.key.as_slice(), sealed.key.as_slice());
        let wrong =
            VersionKey::open(&record, Some(&customer([2; 32])), &keyring).expect_err("refused");
        assert_eq!(wrong.code().as_str(), "AccessDenied");
        let none = VersionKey::open(&record, None, &keyring).expect_err("refused");
        assert_eq!(none.code().as_str(), "InvalidRequest");
        // SSE-C ETags are not the MD5 of the plaintext.
        assert_ne!(opened.etag([9; 16]), [9; 16]);
    }

    #[test]
    fn sse_s3_uses_the_newest_master_key_and_reads_with_the_one_named() {
        let keyring = Keyring::parse(&format!(
            "# test\n{}\n{}\n",
            Keyring::new_key_line(1),
            Keyring::new_key_line(2)
        ))
        .expect("present");
        let (record, sealed) = VersionKey::seal(&Requested::Cluster, &keyring)
            .expect("present")
            .expect("present");
        assert_eq!(record.mode, EncryptionMode::ClusterKey { key_id: 2 });
        let opened = VersionKey::open(&record, None, &keyring).expect("present");
        assert_eq!(opened.key.as_slice(), sealed.key.as_slice());
        assert_eq!(opened.etag([9; 16]), [9; 16]);
        // Two versions never share a key.
        let (_, again) = VersionKey::seal(&Requested::Cluster, &keyring)
            .expect("present")
            .expect("present");
        assert_ne!(again.key.as_slice(), sealed.key.as_slice());
        // Without a keyring SSE-S3 is refused, not ignored.
        let err = VersionKey::seal(&Requested::Cluster, &Keyring::default()).expect_err("refused");
        assert_eq!(err.code().as_str(), "NotImplemented");
    }

    #[test]
    fn malformed_customer_keys_get_s3s_errors() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = b64.encode([3u8; 32]);
        let md5 = b64.encode(md5::Md5::digest([3u8; 32]));
        let code = |a: Option<&str>, k: Option<&str>, m: Option<&str>| {
            CustomerKey::from_headers(a, k, m)
                .expect_err("refused")
                .code()
                .as_str()
                .to_owned()
        };
        assert_eq!(code(None, Some(&key), Some(&md5)), "InvalidArgument");
        assert_eq!(code(Some("AES256"), None, Some(&md5)), "InvalidArgument");
        assert_eq!(code(Some("AES256"), Some(&key), None), "InvalidArgument");
        assert_eq!(
            code(Some("AES256"), Some(&key), Some("AAAA")),
            "InvalidArgument"
        );
        assert_eq!(
            code(Some("AES256"), Some("c2hvcnQ="), Some(&md5)),
            "InvalidArgument"
        );
        assert_eq!(
            code(Some("DES"), Some(&key), Some(&md5)),
            "InvalidEncryptionAlgorithmError"
        );
        assert!(Keyring::parse("1:AAAA").is_err());
        assert!(Keyring::parse("x:AAAA").is_err());
    }
}
