//! Block hashes and per-chunk Merkle trees.
//!
//! Every block is hashed with blake3. A chunk's blocks (one per stripe) are
//! the leaves of a Merkle tree built with `rs_merkle` over a blake3 hasher;
//! its root is recorded in the manifest, so a storage node can prove a whole
//! chunk intact by sending 32 bytes. When roots disagree, comparing leaves
//! ([`diff_leaves`]) names exactly the rotten blocks. The object's integrity
//! root is a Merkle tree over its chunk roots ([`root_of_roots`]).
//!
//! Interior nodes are hashed as `blake3(0x01 ‖ left ‖ right)` so that an
//! interior node can never be confused with a block hash (a leaf), and a lone
//! last node is promoted unchanged, as `rs_merkle` does.

use std::fmt;
use std::str::FromStr;

use rs_merkle::{Hasher, MerkleProof, MerkleTree};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Domain-separation prefix of interior Merkle nodes.
const INTERIOR_NODE_TAG: u8 = 0x01;

macro_rules! hash_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..16])
            }
        }

        impl FromStr for $name {
            type Err = hex::FromHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s, &mut bytes)?;
                Ok(Self(bytes))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash_type!(
    /// blake3 of one block's bytes: a Merkle leaf.
    BlockHash
);
hash_type!(
    /// Root of a Merkle tree (of a chunk's blocks, or of an object's chunks).
    MerkleRoot
);

impl MerkleRoot {
    /// Root of a tree with no leaves (a chunk of an empty blob).
    pub const EMPTY: Self = Self([0; 32]);
}

/// blake3 of one block.
pub fn hash_block(block: &[u8]) -> BlockHash {
    BlockHash(*blake3::hash(block).as_bytes())
}

/// `rs_merkle` hasher: blake3, with tagged interior nodes.
#[derive(Debug, Clone, Copy)]
pub struct Blake3Merkle;

impl Hasher for Blake3Merkle {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> Self::Hash {
        *blake3::hash(data).as_bytes()
    }

    fn concat_and_hash(left: &Self::Hash, right: Option<&Self::Hash>) -> Self::Hash {
        match right {
            Some(right) => {
                let mut hasher = blake3::Hasher::new();
                hasher.update(&[INTERIOR_NODE_TAG]);
                hasher.update(left);
                hasher.update(right);
                *hasher.finalize().as_bytes()
            }
            None => *left,
        }
    }

    fn hash_size() -> usize {
        32
    }
}

/// The Merkle tree of one chunk, built from its block hashes.
#[derive(Clone)]
pub struct ChunkTree {
    leaves: Vec<BlockHash>,
    tree: MerkleTree<Blake3Merkle>,
}

impl fmt::Debug for ChunkTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkTree")
            .field("leaves", &self.leaves.len())
            .field("root", &self.root())
            .finish()
    }
}

impl ChunkTree {
    pub fn new(leaves: Vec<BlockHash>) -> Self {
        let raw: Vec<[u8; 32]> = leaves.iter().map(|l| l.0).collect();
        Self {
            tree: MerkleTree::from_leaves(&raw),
            leaves,
        }
    }

    pub fn root(&self) -> MerkleRoot {
        self.tree.root().map_or(MerkleRoot::EMPTY, MerkleRoot)
    }

    pub fn leaves(&self) -> &[BlockHash] {
        &self.leaves
    }

    /// A proof that block `index` belongs to this tree.
    pub fn proof(&self, index: usize) -> BlockProof {
        BlockProof {
            index,
            leaf_count: self.leaves.len(),
            proof_bytes: self.tree.proof(&[index]).to_bytes(),
        }
    }
}

/// Merkle root over block hashes, without keeping the tree.
pub fn merkle_root(leaves: &[BlockHash]) -> MerkleRoot {
    ChunkTree::new(leaves.to_vec()).root()
}

/// The object's integrity root: a Merkle root over its chunk roots, in chunk
/// index order.
pub fn root_of_roots(chunk_roots: &[MerkleRoot]) -> MerkleRoot {
    let leaves: Vec<BlockHash> = chunk_roots.iter().map(|r| BlockHash(r.0)).collect();
    merkle_root(&leaves)
}

/// Proof that one block belongs to a chunk with a known root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockProof {
    pub index: usize,
    pub leaf_count: usize,
    pub proof_bytes: Vec<u8>,
}

impl BlockProof {
    /// Whether `block_hash` is block `index` of the chunk whose root is `root`.
    pub fn verify(&self, root: MerkleRoot, block_hash: BlockHash) -> bool {
        MerkleProof::<Blake3Merkle>::from_bytes(&self.proof_bytes)
            .map(|proof| proof.verify(root.0, &[self.index], &[block_hash.0], self.leaf_count))
            .unwrap_or(false)
    }
}

/// Indices of the blocks whose actual hash differs from the expected one. A
/// block present on one side only counts as different.
pub fn diff_leaves(expected: &[BlockHash], actual: &[BlockHash]) -> Vec<usize> {
    let longest = expected.len().max(actual.len());
    (0..longest)
        .filter(|&i| expected.get(i) != actual.get(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; 100 + i]).collect()
    }

    fn leaves(blocks: &[Vec<u8>]) -> Vec<BlockHash> {
        blocks.iter().map(|b| hash_block(b)).collect()
    }

    #[test]
    fn a_flipped_byte_in_any_block_changes_the_root_and_is_pinpointed() {
        for n in [1, 2, 3, 7, 8, 33] {
            let original = blocks(n);
            let expected = leaves(&original);
            let root = merkle_root(&expected);
            for target in 0..n {
                for offset in [0, 50, original[target].len() - 1] {
                    let mut damaged = original.clone();
                    damaged[target][offset] ^= 0x01;
                    let actual = leaves(&damaged);
                    assert_ne!(merkle_root(&actual), root, "n={n} block {target}");
                    assert_eq!(diff_leaves(&expected, &actual), vec![target]);
                }
            }
        }
    }

    #[test]
    fn empty_chunk_has_the_empty_root() {
        assert_eq!(merkle_root(&[]), MerkleRoot::EMPTY);
    }

    #[test]
    fn single_leaf_root_is_the_leaf() {
        let leaf = hash_block(b"only");
        assert_eq!(merkle_root(&[leaf]).0, leaf.0);
    }

    #[test]
    fn leaf_order_matters() {
        let a = hash_block(b"a");
        let b = hash_block(b"b");
        assert_ne!(merkle_root(&[a, b]), merkle_root(&[b, a]));
    }

    #[test]
    fn proofs_verify_their_block_only() {
        let tree = ChunkTree::new(leaves(&blocks(11)));
        let root = tree.root();
        for i in 0..11 {
            let proof = tree.proof(i);
            assert!(proof.verify(root, tree.leaves()[i]), "block {i}");
            let other = tree.leaves()[(i + 1) % 11];
            assert!(!proof.verify(root, other), "block {i} accepted a stranger");
        }
    }

    #[test]
    fn diff_counts_missing_and_extra_leaves() {
        let l = leaves(&blocks(4));
        assert_eq!(diff_leaves(&l, &l[..2]), vec![2, 3]);
        assert_eq!(diff_leaves(&l[..3], &l), vec![3]);
        assert!(diff_leaves(&l, &l).is_empty());
    }

    #[test]
    fn hashes_round_trip_through_hex_and_serde() {
        let root = merkle_root(&leaves(&blocks(3)));
        assert_eq!(root.to_hex().parse::<MerkleRoot>(), Ok(root));
        let json = serde_json::to_string(&root).expect("serialize");
        assert_eq!(
            serde_json::from_str::<MerkleRoot>(&json).expect("parse"),
            root
        );
    }
}
