//! Versioning in the shard, against a model: any sequence of writes,
//! deletes and version deletes under any versioning state leaves exactly the
//! versions S3 would keep, in S3's order, with the right one current, and
//! every version's chunks either still indexed or queued as garbage.

mod common;

use cairn_core::codec::CodecParams;
use cairn_core::ids::{BlobId, NodeId};
use cairn_core::integrity::MerkleRoot;
use cairn_core::manifest::{BlobManifest, ChunkDescriptor, ChunkState};
use cairn_meta_api::model::{
    Command, ListVersionsRequest, NULL_VERSION, Outcome, Precondition, VersionEntry, Versioning,
};
use cairn_meta_api::shard_map::ShardId;
use cairn_metadata_service::shard::{KeyRange, Shard};
use common::manifest;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Sets the bucket's versioning (never back to unversioned).
    Set(bool),
    Put(usize),
    Delete(usize),
    /// Deletes the `n`-th version (mod the key's count) for good.
    DeleteVersion(usize, usize),
}

const KEYS: [&str; 2] = ["doc", "doc-2"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => any::<bool>().prop_map(Op::Set),
        4 => (0..KEYS.len()).prop_map(Op::Put),
        2 => (0..KEYS.len()).prop_map(Op::Delete),
        2 => (0..KEYS.len(), 0..6usize).prop_map(|(k, n)| Op::DeleteVersion(k, n)),
    ]
}

/// One version as the model keeps it: id, delete marker, body tag.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    id: String,
    marker: bool,
    tag: String,
}

fn with_blob(tag: &str) -> cairn_core::manifest::ObjectManifest {
    let mut m = manifest(1, tag);
    m.parts = vec![BlobManifest {
        blob: BlobId::random(),
        size: 1,
        codec: CodecParams::new(1, 1, 64).expect("params"),
        chunks: vec![ChunkDescriptor {
            index: 0,
            node: NodeId::new("node-01").expect("id"),
            state: ChunkState::Stored,
            merkle_root: MerkleRoot::EMPTY,
        }],
        root: MerkleRoot::EMPTY,
    }];
    m
}

fn listed(shard: &Shard) -> Vec<(String, String, bool, bool, String)> {
    let page = shard
        .list_versions(&ListVersionsRequest {
            bucket: "bkt".into(),
            limit: 1000,
            ..Default::default()
        })
        .expect("list");
    page.entries
        .into_iter()
        .map(|e| match e {
            VersionEntry::Version(v) => (v.key, v.version_id, v.is_latest, v.delete_marker, v.etag),
            VersionEntry::Prefix { prefix } => panic!("no delimiter, got prefix {prefix}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn versions_follow_s3_under_any_sequence(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let everything = KeyRange { start: String::new(), end: None };
        let shard = Shard::open(ShardId(0), dir.path(), everything).expect("open");
        shard.apply(&Command::CreateBucket { name: "bkt".into(), owner: "o".into(), object_lock: false, settings: Vec::new() }, 0).expect("bucket");
        let mut state = Versioning::Unversioned;
        let mut model: Vec<Vec<Version>> = vec![Vec::new(); KEYS.len()];
        let mut blobs_live = 0usize;
        let mut blobs_freed = 0usize;
        for (step, op) in ops.iter().enumerate() {
            let id_of = |outcome: &Outcome| match outcome {
                Outcome::Committed { version_id, .. } => version_id.clone(),
                Outcome::Deleted { version_id, .. } => version_id.clone().unwrap_or_default(),
                other => panic!("unexpected {other:?}"),
            };
            // A new null version replaces the old null one.
            let null_first = |versions: &mut Vec<Version>, new: Version| {
                versions.retain(|v| v.id != NULL_VERSION);
                versions.insert(0, new);
            };
            match op {
                Op::Set(enable) => {
                    state = if *enable { Versioning::Enabled } else { Versioning::Suspended };
                    shard.apply(&Command::SetVersioning { bucket: "bkt".into(), state }, 0).expect("set");
                }
                Op::Put(k) => {
                    let tag = format!("s{step}");
                    let outcome = shard.apply(&Command::CommitObject {
                        bucket: "bkt".into(),
                        key: KEYS[*k].into(),
                        manifest: with_blob(&tag),
                        precondition: Precondition::None,
                        versioning: state,
                        lock: Default::default(),
                    }, 0).expect("commit");
                    let id = id_of(&outcome);
                    let versions = &mut model[*k];
                    let new = Version { id: id.clone(), marker: false, tag };
                    blobs_live += 1;
                    match state {
                        Versioning::Enabled => {
                            prop_assert_ne!(&id, NULL_VERSION);
                            versions.insert(0, new);
                        }
                        Versioning::Suspended => {
                            prop_assert_eq!(&id, NULL_VERSION);
                            let freed = versions.iter().filter(|v| v.id == NULL_VERSION && !v.marker).count();
                            blobs_freed += freed;
                            blobs_live -= freed;
                            null_first(versions, new);
                        }
                        Versioning::Unversioned => {
                            prop_assert_eq!(&id, NULL_VERSION);
                            blobs_freed += versions.len();
                            blobs_live -= versions.len();
                            *versions = vec![new];
                        }
                    }
                }
                Op::Delete(k) => {
                    let outcome = shard.apply(&Command::DeleteObject {
                        bucket: "bkt".into(),
                        key: KEYS[*k].into(),
                        precondition: Precondition::None,
                        versioning: state,
                        version_id: None,
                        bypass_governance: false,
                    }, 0).expect("delete");
                    let versions = &mut model[*k];
                    match state {
                        Versioning::Unversioned => {
                            blobs_freed += versions.len();
                            blobs_live -= versions.len();
                            versions.clear();
                        }
                        Versioning::Enabled => versions.insert(0, Version { id: id_of(&outcome), marker: true, tag: String::new() }),
                        Versioning::Suspended => {
                            let freed = versions.iter().filter(|v| v.id == NULL_VERSION && !v.marker).count();
                            blobs_freed += freed;
                            blobs_live -= freed;
                            prop_assert_eq!(id_of(&outcome), NULL_VERSION);
                            null_first(versions, Version { id: NULL_VERSION.into(), marker: true, tag: String::new() });
                        }
                    }
                }
                Op::DeleteVersion(k, n) => {
                    let versions = &mut model[*k];
                    if versions.is_empty() {
                        continue;
                    }
                    let victim = versions.remove(n % versions.len());
                    if !victim.marker {
                        blobs_freed += 1;
                        blobs_live -= 1;
                    }
                    let outcome = shard.apply(&Command::DeleteObject {
                        bucket: "bkt".into(),
                        key: KEYS[*k].into(),
                        precondition: Precondition::None,
                        versioning: state,
                        version_id: Some(victim.id.clone()),
                        bypass_governance: false,
                    }, 0).expect("delete version");
                    let Outcome::Deleted { existed, delete_marker, .. } = outcome else { panic!("{outcome:?}") };
                    prop_assert!(existed);
                    prop_assert_eq!(delete_marker, victim.marker);
                }
            }

            // The shard agrees with the model, key by key.
            let mut expected = Vec::new();
            for (k, versions) in model.iter().enumerate() {
                let current = shard.get_version("bkt", KEYS[k], None).expect("get");
                prop_assert_eq!(current.as_ref().map(|c| (&c.version_id, c.delete_marker)),
                    versions.first().map(|v| (&v.id, v.marker)), "step {} {:?}", step, op);
                let visible = shard.get_object("bkt", KEYS[k]).expect("get");
                prop_assert_eq!(visible.map(|o| o.manifest.etag),
                    versions.first().filter(|v| !v.marker).map(|v| v.tag.clone()));
                for (i, v) in versions.iter().enumerate() {
                    let found = shard.get_version("bkt", KEYS[k], Some(&v.id)).expect("get").expect("version");
                    prop_assert_eq!(found.delete_marker, v.marker);
                    if !v.marker {
                        prop_assert_eq!(&found.manifest.etag, &v.tag);
                    }
                    expected.push((KEYS[k].to_owned(), v.id.clone(), i == 0, v.marker, v.tag.clone()));
                }
            }
            prop_assert_eq!(listed(&shard), expected, "step {} {:?}", step, op);
            // Every blob is either still indexed or queued as garbage.
            let indexed = shard
                .chunks_on_node(&NodeId::new("node-01").expect("id"), None, usize::MAX, &Default::default())
                .expect("reverse index")
                .len();
            prop_assert_eq!(indexed, blobs_live, "step {} {:?}", step, op);
            let garbage = shard.garbage(None, usize::MAX).expect("garbage").len();
            prop_assert_eq!(garbage, blobs_freed, "step {} {:?}", step, op);
        }
    }
}
