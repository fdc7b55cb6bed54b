//! Manifest types: where the chunks of a stored blob live and how to check
//! them. Persisted by the metadata service and sent to gateways and the
//! scrubber, so these are wire/storage formats: fields are only ever added
//! (with `#[serde(default)]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use bytes::Bytes;

use crate::codec::CodecParams;
use crate::ids::{BlobId, ChunkId, NodeId};
use crate::integrity::{BlockHash, MerkleRoot, hash_block, root_of_roots};
use crate::layout::BlobLayout;

/// Node recorded for a chunk that no node could take when it was written
/// (fewer than k+m nodes up): always [`ChunkState::Missing`], for repair to
/// place.
pub const UNPLACED_NODE: &str = "unplaced";

/// Whether a chunk was made durable where the placement says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkState {
    /// Written and acknowledged by its node.
    Stored,
    /// Not written (the node failed during a degraded PUT): repair owes it.
    Missing,
}

/// One chunk of a blob: its node, and the Merkle root of its blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDescriptor {
    pub index: u8,
    pub node: NodeId,
    pub state: ChunkState,
    pub merkle_root: MerkleRoot,
}

/// One erasure-coded blob: a whole object version, or one multipart part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobManifest {
    pub blob: BlobId,
    /// Data bytes (before coding).
    pub size: u64,
    pub codec: CodecParams,
    /// Exactly k+m entries, in chunk index order.
    pub chunks: Vec<ChunkDescriptor>,
    /// Merkle root over the chunk roots.
    pub root: MerkleRoot,
}

impl BlobManifest {
    pub fn layout(&self) -> BlobLayout {
        BlobLayout::new(self.size, self.codec.k, self.codec.block_size)
    }

    pub fn chunk_id(&self, index: u8) -> ChunkId {
        ChunkId::new(self.blob, index)
    }

    /// Recomputes the root of roots from the chunk descriptors.
    pub fn computed_root(&self) -> MerkleRoot {
        let roots: Vec<MerkleRoot> = self.chunks.iter().map(|c| c.merkle_root).collect();
        root_of_roots(&roots)
    }

    /// Chunks recorded as stored.
    pub fn stored_chunks(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| c.state == ChunkState::Stored)
            .count()
    }
}

/// What a client sees as one object version, and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectManifest {
    pub size: u64,
    /// S3 ETag without quotes: hex MD5, or `md5-of-part-md5s-N`.
    pub etag: String,
    pub content_type: Option<String>,
    /// Standard headers kept verbatim (cache-control, content-disposition,
    /// content-encoding, expires, …), lowercase names.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` values, keyed without the prefix.
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
    pub created_ms: u64,
    /// One blob for a single PUT, one per part for a multipart upload, in
    /// object order. Empty for an inline object.
    pub parts: Vec<BlobManifest>,
    /// The whole body of a small object, kept in the manifest (and so in
    /// the replicated catalogue) instead of in chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineBody>,
    /// The version's tags (S3 object tagging: at most 10).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Server-side encryption: set, the parts and the inline body hold
    /// ciphertext (`size` is the plaintext's, which AES-CTR keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// The S3 additional checksum the client gave (or asked for), over the
    /// plaintext; in a multipart upload's template, the algorithm and type
    /// chosen at creation with an empty value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
    /// Who owns the version when its bucket has ACLs on and it is not the
    /// bucket's owner (ObjectWriter); `None`: the bucket's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The version's ACL (buckets with ACLs on); `None`: private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<crate::acl::Acl>,
}

/// An S3 additional checksum (`x-amz-checksum-*`) kept with a version so
/// that GET, HEAD and GetObjectAttributes can report it. Cairn's own
/// integrity (blake3 blocks, Merkle roots) does not depend on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub kind: ChecksumKind,
    /// Base64 of the digest, as S3 sends it; a composite one ends `-N`.
    pub value: String,
    /// A multipart object's part checksums (base64), in part order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64nvme,
    Sha1,
    Sha256,
}

/// S3's `x-amz-checksum-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumKind {
    /// Over the whole object's bytes (a single PUT, or CRCs of parts
    /// combined).
    FullObject,
    /// The checksum of the parts' checksums, `-N`.
    Composite,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// Lower-case name, as in `x-amz-checksum-<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "crc32",
            Self::Crc32c => "crc32c",
            Self::Crc64nvme => "crc64nvme",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }

    /// From a name in any case (`CRC32`, `crc32`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// CRCs can be combined into a full-object checksum; hashes cannot.
    pub fn is_crc(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64nvme)
    }
}

/// How a version's bytes are encrypted at rest. Everything the storage
/// layer checks (block hashes, Merkle roots, inline hashes) is over the
/// ciphertext, so nodes, repair and scrub never need a key; only a gateway
/// holding the key sees plaintext. Keys are derived per version from
/// `nonce` and per blob from the blob id (docs/formats.md "Encryption").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub mode: EncryptionMode,
    /// 32 random bytes (hex), fixed when the version (or its multipart
    /// upload) was created: the salt of the version's key derivation.
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EncryptionMode {
    /// SSE-C: the customer's key, never stored. `key_check` (hex HMAC of
    /// the nonce under a key derived from it) tells the right key from a
    /// wrong one without revealing it.
    CustomerKey { key_check: String },
    /// SSE-S3: a key derived from the cluster master key `key_id` of the
    /// gateways' keyring.
    ClusterKey { key_id: u32 },
}

impl ObjectManifest {
    /// The object's integrity root: over its parts' roots (an inline
    /// object has none: its body carries its own hash).
    pub fn integrity_root(&self) -> MerkleRoot {
        match self.parts.as_slice() {
            [only] => only.root,
            parts => root_of_roots(&parts.iter().map(|p| p.root).collect::<Vec<_>>()),
        }
    }
}

/// The bytes of an object small enough to be stored in its manifest: one
/// catalogue commit writes it, one catalogue read serves it, and it is as
/// replicated as the catalogue (a copy on each of the shard's replicas).
/// Its hash is checked by every reader, so a damaged catalogue row is never
/// served.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineBody {
    /// The body, base64 in JSON.
    #[serde(with = "base64_bytes")]
    pub data: Bytes,
    /// blake3 of `data`.
    pub hash: BlockHash,
}

impl std::fmt::Debug for InlineBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineBody")
            .field("len", &self.data.len())
            .field("hash", &self.hash)
            .finish()
    }
}

/// An inline body whose bytes do not match its hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inline body of {len} bytes does not match its hash {expected}")]
pub struct InlineCorrupt {
    pub len: usize,
    pub expected: BlockHash,
}

impl InlineBody {
    pub fn new(data: Bytes) -> Self {
        let hash = hash_block(&data);
        Self { data, hash }
    }

    /// The bytes, once they match the hash.
    pub fn verified(&self) -> Result<&Bytes, InlineCorrupt> {
        if hash_block(&self.data) == self.hash {
            Ok(&self.data)
        } else {
            Err(InlineCorrupt {
                len: self.data.len(),
                expected: self.hash,
            })
        }
    }
}

/// Serde for bytes as standard base64 (JSON has no byte strings).
mod base64_bytes {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(data: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_body_round_trips_through_json_and_refuses_a_flipped_byte() {
        let body = InlineBody::new(Bytes::from_static(b"small object \x00\xff bytes"));
        let json = serde_json::to_string(&body).expect("serialize");
        let back: InlineBody = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, body);
        assert_eq!(back.verified().expect("intact"), &body.data);

        let mut damaged = body.data.to_vec();
        damaged[3] ^= 1;
        let damaged = InlineBody {
            data: Bytes::from(damaged),
            hash: body.hash,
        };
        assert!(damaged.verified().is_err());
    }

    #[test]
    fn manifests_without_an_inline_body_keep_their_old_json() {
        let manifest = ObjectManifest {
            size: 0,
            etag: "e".into(),
            content_type: None,
            headers: BTreeMap::new(),
            user_metadata: BTreeMap::new(),
            created_ms: 1,
            parts: Vec::new(),
            inline: None,
            tags: Default::default(),
            encryption: None,
            checksum: None,
            owner: None,
            acl: None,
        };
        let json = serde_json::to_string(&manifest).expect("serialize");
        assert!(
            !json.contains("inline") && !json.contains("encryption"),
            "{json}"
        );
        let parsed: ObjectManifest = serde_json::from_str(&json).expect("parse");
        assert_eq!(parsed, manifest);
    }
}
