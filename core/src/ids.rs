//! Identifiers shared by every service.
//!
//! Ids that end up in file names or URLs are validated on construction, so
//! once a value of these types exists it is safe to use as a path component:
//! an object key never becomes a path, only a [`BlobId`] (hex) does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("blob id must be 32 lowercase hex characters, got {0:?}")]
    BlobId(String),
    #[error("chunk index must be a decimal number below 256, got {0:?}")]
    ChunkIndex(String),
    #[error(
        "{kind} must be 1-64 characters of lowercase letters, digits, '-' or '_', got {value:?}"
    )]
    Name { kind: &'static str, value: String },
}

/// The unique id of one stored blob: an object version, or one part of a
/// multipart upload. Every blob is erasure coded into its own k+m chunks.
///
/// 128 random bits, rendered as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId([u8; 16]);

impl BlobId {
    /// A fresh random id (collision probability is negligible at 2^-64 after
    /// 2^32 ids).
    pub fn random() -> Self {
        Self(rand::random())
    }

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Lowercase hex form, used in file names and URLs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for BlobId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower_hex = s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lower_hex {
            return Err(IdError::BlobId(s.to_owned()));
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| IdError::BlobId(s.to_owned()))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

impl Serialize for BlobId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlobId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One chunk: the `index`-th block of every stripe of a blob. Index `0..k` are
/// data chunks, `k..k+m` parity chunks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId {
    pub blob: BlobId,
    pub index: u8,
}

impl ChunkId {
    pub const fn new(blob: BlobId, index: u8) -> Self {
        Self { blob, index }
    }

    /// The file name of this chunk on a storage node: `<blob hex>-<index>.chunk`
    /// with a three-digit index, so names sort in (blob, index) order.
    pub fn file_name(&self) -> String {
        format!("{}-{:03}.chunk", self.blob, self.index)
    }

    /// Parses a name produced by [`ChunkId::file_name`].
    pub fn from_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".chunk")?;
        let (blob, index) = stem.split_once('-')?;
        if index.len() != 3 {
            return None;
        }
        Some(Self {
            blob: blob.parse().ok()?,
            index: parse_index(index).ok()?,
        })
    }
}

impl FromStr for ChunkId {
    type Err = IdError;

    /// Parses the display form `<blob hex>/<index>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (blob, index) = s
            .split_once('/')
            .ok_or_else(|| IdError::ChunkIndex(s.to_owned()))?;
        Ok(Self::new(blob.parse()?, parse_index(index)?))
    }
}

/// Parses a chunk index given in a URL or file name.
pub fn parse_index(s: &str) -> Result<u8, IdError> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::ChunkIndex(s.to_owned()));
    }
    s.parse().map_err(|_| IdError::ChunkIndex(s.to_owned()))
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.blob, self.index)
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

/// Checks a bucket name against S3's rules: 3-63 characters of lowercase
/// letters, digits, `.` and `-`, starting and ending with a letter or digit,
/// no `..`, not shaped like an IP address, no `xn--` prefix or `-s3alias`
/// suffix.
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("invalid bucket name {name:?}: {why}"));
    if !(3..=63).contains(&name.len()) {
        return fail("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return fail("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge_ok(name.as_bytes()[0]) || !edge_ok(name.as_bytes()[name.len() - 1]) {
        return fail("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return fail("must not contain two adjacent periods");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("must not be formatted as an IP address");
    }
    if name.starts_with("xn--") || name.ends_with("-s3alias") {
        return fail("reserved prefix or suffix");
    }
    Ok(())
}

/// Checks an object key: 1 to 1024 bytes of UTF-8 without NUL (NUL is the
/// catalogue's separator).
pub fn validate_object_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 1024 {
        return Err(format!(
            "object key must be 1 to 1024 bytes, got {}",
            key.len()
        ));
    }
    if key.contains('\0') {
        return Err("object key must not contain NUL".into());
    }
    Ok(())
}

fn validate_name(kind: &'static str, value: &str) -> Result<(), IdError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdError::Name {
            kind,
            value: value.to_owned(),
        })
    }
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate_name($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_id!(
    /// A storage node's stable name, chosen by the operator (e.g. `node-07`).
    NodeId,
    "node id"
);
name_id!(
    /// A failure domain: nodes that share power or a switch (e.g. `rack-2`).
    RackId,
    "rack id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_id_round_trips_through_hex() {
        let id = BlobId::random();
        assert_eq!(id.to_hex().parse::<BlobId>(), Ok(id));
    }

    #[test]
    fn blob_id_rejects_anything_but_32_lowercase_hex() {
        for bad in [
            "",
            "abc",
            "../../../../etc/passwd0000000000",
            "ABCDEF0123456789ABCDEF0123456789",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef0",
        ] {
            assert!(bad.parse::<BlobId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn chunk_file_names_round_trip_and_sort_by_index() {
        let blob = BlobId::random();
        let a = ChunkId::new(blob, 2);
        let b = ChunkId::new(blob, 11);
        assert_eq!(ChunkId::from_file_name(&a.file_name()), Some(a));
        assert!(a.file_name() < b.file_name());
        assert_eq!(ChunkId::from_file_name("x-001.chunk"), None);
        assert_eq!(a.to_string().parse::<ChunkId>(), Ok(a));
        assert_eq!(
            ChunkId::from_file_name(&format!("{blob}-256.chunk")),
            None,
            "index out of range"
        );
    }

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        for good in ["abc", "my-bucket.2024", "a1b", &"a".repeat(63)] {
            assert!(validate_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "a_b",
            "a/b",
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
        assert!(validate_object_key("photos/2024/a.jpg").is_ok());
        assert!(validate_object_key("").is_err());
        assert!(validate_object_key(&"k".repeat(1025)).is_err());
        assert!(validate_object_key("a\0b").is_err());
    }

    #[test]
    fn names_are_restricted_to_path_safe_characters() {
        assert!(NodeId::new("node-01").is_ok());
        assert!(RackId::new("rack_a").is_ok());
        for bad in ["", "Node", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(NodeId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
