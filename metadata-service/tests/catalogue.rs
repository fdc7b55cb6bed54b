//! Catalogue semantics through the HTTP API: buckets, atomic commits,
//! multipart uploads, the reverse index, garbage, and splitting online.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_core::codec::CodecParams;
use cairn_core::ids::{BlobId, NodeId};
use cairn_core::integrity::MerkleRoot;
use cairn_core::manifest::{BlobManifest, ChunkDescriptor, ChunkState};
use cairn_meta_api::client::{ListObjects, MetaError};
use cairn_meta_api::model::{Command, CompletedPart, ListEntry, PartRecord, Precondition};
use cairn_metadata_service::shard::MIN_PART_SIZE;
use cairn_service::ErrorCode;
use common::{manifest, primary, secret};

fn code(err: &MetaError) -> &'static str {
    err.code().map_or("transport", ErrorCode::as_str)
}

fn blob(nodes: &[&str]) -> BlobManifest {
    BlobManifest {
        blob: BlobId::random(),
        size: 100,
        codec: CodecParams::new(2, 1, 64).expect("params"),
        chunks: nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ChunkDescriptor {
                index: i as u8,
                node: NodeId::new(*n).expect("node"),
                state: ChunkState::Stored,
                merkle_root: MerkleRoot([i as u8; 32]),
            })
            .collect(),
        root: MerkleRoot::EMPTY,
    }
}

#[tokio::test]
async fn bucket_lifecycle_and_s3_error_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &["m"]).await;
    client.create_bucket("alpha", "ann").await.expect("create");
    client.create_bucket("zulu", "ann").await.expect("create");
    assert_eq!(
        code(&client.create_bucket("alpha", "ann").await.expect_err("dup")),
        "BucketAlreadyOwnedByYou"
    );
    assert_eq!(
        code(&client.create_bucket("alpha", "bob").await.expect_err("dup")),
        "BucketAlreadyExists"
    );
    assert_eq!(
        code(
            &client
                .create_bucket("Bad_Name", "ann")
                .await
                .expect_err("name")
        ),
        "InvalidBucketName"
    );
    let names: Vec<String> = client
        .list_buckets()
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["alpha", "zulu"], "buckets from both shards, sorted");
    assert!(client.head_bucket("nope").await.expect("head").is_none());
    assert_eq!(
        code(
            &client
                .commit_object("nope", "k", manifest(1, "e"), Precondition::None)
                .await
                .expect_err("no bucket")
        ),
        "NoSuchBucket"
    );
    client
        .commit_object("alpha", "k", manifest(1, "e"), Precondition::None)
        .await
        .expect("commit");
    assert_eq!(
        code(&client.delete_bucket("alpha").await.expect_err("not empty")),
        "BucketNotEmpty"
    );
    assert!(
        client
            .delete_object("alpha", "k", Precondition::None)
            .await
            .expect("delete")
    );
    assert!(
        !client
            .delete_object("alpha", "k", Precondition::None)
            .await
            .expect("delete again")
    );
    client.delete_bucket("alpha").await.expect("delete bucket");
    assert!(client.head_bucket("alpha").await.expect("head").is_none());
    assert_eq!(
        code(&client.delete_bucket("alpha").await.expect_err("gone")),
        "NoSuchBucket"
    );
    process.stop().await;
}

#[tokio::test]
async fn a_bucket_spanning_shards_is_not_empty_while_another_shard_holds_its_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &["data/m"]).await;
    client.create_bucket("data", "ann").await.expect("create");
    client
        .commit_object("data", "zebra", manifest(1, "e"), Precondition::None)
        .await
        .expect("commit");
    assert_ne!(
        client.shard_map().route("data/").id,
        client.shard_map().route("data/zebra").id
    );
    assert_eq!(
        code(&client.delete_bucket("data").await.expect_err("not empty")),
        "BucketNotEmpty"
    );
    process.stop().await;
}

#[tokio::test]
async fn overwrites_order_by_commit_and_queue_the_old_chunks_as_garbage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    client.create_bucket("b1b", "ann").await.expect("bucket");
    let mut first = manifest(100, "one");
    first.parts.push(blob(&["n1", "n2", "n3"]));
    let (v1, s1) = client
        .commit_object("b1b", "k", first.clone(), Precondition::None)
        .await
        .expect("v1");
    let mut second = manifest(100, "two");
    second.parts.push(blob(&["n2", "n3", "n4"]));
    let (v2, s2) = client
        .commit_object("b1b", "k", second.clone(), Precondition::None)
        .await
        .expect("v2");
    assert!(s2 > s1, "the service orders commits");
    assert_eq!(
        (v1.as_str(), v2.as_str()),
        ("null", "null"),
        "unversioned: S3's null version"
    );
    let current = client
        .get_object("b1b", "k")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(current.manifest.etag, "two");
    let garbage = client
        .garbage(client.shard_map().shards[0].id, None, 100)
        .await
        .expect("garbage");
    assert_eq!(garbage.len(), 1);
    assert_eq!(garbage[0].blob, first.parts[0]);
    // Reverse index: n1 held only the old version.
    assert!(
        client
            .chunks_on_node(&NodeId::new("n1").expect("id"))
            .await
            .expect("index")
            .is_empty()
    );
    let on_n4 = client
        .chunks_on_node(&NodeId::new("n4").expect("id"))
        .await
        .expect("index");
    assert_eq!(on_n4.len(), 1);
    assert_eq!((on_n4[0].blob, on_n4[0].index), (second.parts[0].blob, 2));
    assert_eq!(on_n4[0].owner.key, "k");
    process.stop().await;
}

#[tokio::test]
async fn concurrent_conditional_commits_have_exactly_one_winner_per_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &["m"]).await;
    let client = Arc::new(client);
    client.create_bucket("race", "ann").await.expect("bucket");
    let (_, mut version) = client
        .commit_object("race", "hot", manifest(0, "start"), Precondition::Absent)
        .await
        .expect("first");
    for round in 0..10 {
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let client = client.clone();
            let expected = version;
            tasks.push(tokio::spawn(async move {
                client
                    .commit_object(
                        "race",
                        "hot",
                        manifest(0, &format!("r{round}w{writer}")),
                        Precondition::SequenceIs(expected),
                    )
                    .await
            }));
        }
        let mut winners = Vec::new();
        for (writer, task) in tasks.into_iter().enumerate() {
            match task.await.expect("join") {
                Ok((_, sequence)) => winners.push((writer, sequence)),
                Err(err) => assert_eq!(code(&err), "PreconditionFailed"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let current = client
            .get_object("race", "hot")
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            current.manifest.etag,
            format!("r{round}w{}", winners[0].0),
            "no lost update"
        );
        version = winners[0].1;
    }
    process.stop().await;
}

#[tokio::test]
async fn unconditional_concurrent_puts_all_land_and_the_last_commit_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    let client = Arc::new(client);
    client.create_bucket("race", "ann").await.expect("bucket");
    let mut tasks = Vec::new();
    for writer in 0..16 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = manifest(0, &format!("w{writer}"));
            m.parts.push(blob(&["n1", "n2", "n3"]));
            client
                .commit_object("race", "k", m, Precondition::None)
                .await
                .expect("commit")
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("join"));
    }
    let newest = results.iter().max_by_key(|(_, s)| *s).expect("some");
    let current = client
        .get_object("race", "k")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(&current.version_id, &newest.0);
    let garbage = client
        .garbage(client.shard_map().shards[0].id, None, 100)
        .await
        .expect("garbage");
    assert_eq!(
        garbage.len(),
        15,
        "every overwritten version's chunks are garbage"
    );
    process.stop().await;
}

#[tokio::test]
async fn multipart_upload_completes_atomically_with_the_s3_etag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    client.create_bucket("multi", "ann").await.expect("bucket");
    let upload = client
        .create_upload("multi", "big", manifest(0, ""))
        .await
        .expect("create");
    let md5s = [
        "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210",
        "00112233445566778899aabbccddeeff",
    ];
    for (i, md5) in md5s.iter().enumerate() {
        let part = PartRecord {
            part_number: i as u32 + 1,
            etag: (*md5).into(),
            size: if i < 2 { MIN_PART_SIZE } else { 10 },
            uploaded_ms: 0,
            blob: blob(&["n1", "n2", "n3"]),
            checksum: None,
        };
        client
            .put_part("multi", "big", &upload, part)
            .await
            .expect("part");
    }
    assert_eq!(
        client
            .list_uploads("multi", "", 10)
            .await
            .expect("uploads")
            .len(),
        1
    );
    assert!(
        client
            .get_object("multi", "big")
            .await
            .expect("get")
            .is_none(),
        "invisible until complete"
    );
    let parts = |numbers: &[u32]| -> Vec<CompletedPart> {
        numbers
            .iter()
            .map(|n| CompletedPart {
                part_number: *n,
                etag: format!("\"{}\"", md5s[*n as usize - 1]),
            })
            .collect()
    };
    let err = client
        .complete_upload("multi", "big", &upload, parts(&[2, 1, 3]))
        .await
        .expect_err("order");
    assert_eq!(code(&err), "InvalidPartOrder");
    let mut wrong = parts(&[1, 2, 3]);
    wrong[1].etag = "\"ffffffffffffffffffffffffffffffff\"".into();
    assert_eq!(
        code(
            &client
                .complete_upload("multi", "big", &upload, wrong)
                .await
                .expect_err("etag")
        ),
        "InvalidPart"
    );
    let err = client
        .complete_upload("multi", "big", &upload, parts(&[1, 3, 2]))
        .await
        .expect_err("order");
    assert_eq!(code(&err), "InvalidPartOrder");
    client
        .complete_upload("multi", "big", &upload, parts(&[1, 2, 3]))
        .await
        .expect("complete");
    let object = client
        .get_object("multi", "big")
        .await
        .expect("get")
        .expect("exists");
    let mut concatenated = Vec::new();
    for md5 in md5s {
        concatenated.extend(hex::decode(md5).expect("hex"));
    }
    use md5::Digest;
    let expected = format!("{}-3", hex::encode(md5::Md5::digest(&concatenated)));
    assert_eq!(object.manifest.etag, expected);
    assert_eq!(object.manifest.size, 2 * MIN_PART_SIZE + 10);
    assert_eq!(object.manifest.parts.len(), 3);
    assert!(
        client
            .list_uploads("multi", "", 10)
            .await
            .expect("uploads")
            .is_empty()
    );
    assert_eq!(
        code(
            &client
                .abort_upload("multi", "big", &upload)
                .await
                .expect_err("gone")
        ),
        "NoSuchUpload"
    );
    process.stop().await;
}

#[tokio::test]
async fn small_middle_parts_are_entity_too_small_and_abort_frees_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    client.create_bucket("multi", "ann").await.expect("bucket");
    let upload = client
        .create_upload("multi", "k", manifest(0, ""))
        .await
        .expect("create");
    let md5 = "0123456789abcdef0123456789abcdef";
    for n in 1..=2 {
        let part = PartRecord {
            part_number: n,
            etag: md5.into(),
            size: 1024,
            uploaded_ms: 0,
            blob: blob(&["n1", "n2", "n3"]),
            checksum: None,
        };
        client
            .put_part("multi", "k", &upload, part)
            .await
            .expect("part");
    }
    let parts: Vec<CompletedPart> = (1..=2)
        .map(|n| CompletedPart {
            part_number: n,
            etag: md5.into(),
        })
        .collect();
    assert_eq!(
        code(
            &client
                .complete_upload("multi", "k", &upload, parts)
                .await
                .expect_err("small")
        ),
        "EntityTooSmall"
    );
    client
        .abort_upload("multi", "k", &upload)
        .await
        .expect("abort");
    assert!(
        client
            .list_uploads("multi", "", 10)
            .await
            .expect("uploads")
            .is_empty()
    );
    let garbage = client
        .garbage(client.shard_map().shards[0].id, None, 100)
        .await
        .expect("garbage");
    assert_eq!(garbage.len(), 2, "both parts' chunks are garbage");
    assert!(
        client
            .chunks_on_node(&NodeId::new("n1").expect("id"))
            .await
            .expect("index")
            .is_empty()
    );
    process.stop().await;
}

#[tokio::test]
async fn moving_a_chunk_updates_manifest_and_reverse_index_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    client.create_bucket("moves", "ann").await.expect("bucket");
    let mut m = manifest(100, "e");
    m.parts.push(blob(&["n1", "n2", "n3"]));
    let blob_id = m.parts[0].blob;
    client
        .commit_object("moves", "k", m, Precondition::None)
        .await
        .expect("commit");
    let (n2, n9) = (
        NodeId::new("n2").expect("id"),
        NodeId::new("n9").expect("id"),
    );
    let moved = Command::MoveChunk {
        bucket: "moves".into(),
        key: "k".into(),
        blob: blob_id,
        index: 1,
        from: n2.clone(),
        to: n9.clone(),
        merkle_root: MerkleRoot([1; 32]),
    };
    client.apply(&moved).await.expect("move");
    let object = client
        .get_object("moves", "k")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(object.manifest.parts[0].chunks[1].node, n9);
    assert!(client.chunks_on_node(&n2).await.expect("index").is_empty());
    assert_eq!(client.chunks_on_node(&n9).await.expect("index").len(), 1);
    // The same move again no longer applies: the chunk is not on n2.
    assert_eq!(
        code(&client.apply(&moved).await.expect_err("stale")),
        "conflict"
    );
    process.stop().await;
}

#[tokio::test]
async fn splitting_a_hot_directory_online_loses_no_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &["m"]).await;
    let client = Arc::new(client);
    client.create_bucket("app", "ann").await.expect("bucket");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let client = client.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = BTreeMap::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 50 {
                let dir = if i.is_multiple_of(2) { "logs" } else { "docs" };
                let key = format!("{dir}/w{writer}/{:05}", i % 40);
                let etag = format!("w{writer}-{i}");
                client
                    .commit_object("app", &key, manifest(i as u64, &etag), Precondition::None)
                    .await
                    .expect("every write during the split succeeds");
                acknowledged.insert(key, etag);
                i += 1;
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let old_version = client.shard_map().version;
    let map = client.split("app/logs/").await.expect("split");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut expected = BTreeMap::new();
    for writer in writers {
        expected.extend(writer.await.expect("writer"));
    }
    assert!(map.version > old_version);
    let logs = map.route("app/logs/");
    assert_eq!(
        logs.start, "app/logs/",
        "the directory starts its own shard"
    );
    assert_eq!(map.shards_for_prefix("app/logs/").len(), 1);
    assert_ne!(map.route("app/docs/").id, logs.id);
    for (key, etag) in &expected {
        let record = client
            .get_object("app", key)
            .await
            .expect("get")
            .expect("acknowledged write present");
        assert_eq!(&record.manifest.etag, etag, "{key}");
    }
    let listing = client
        .list_objects(&ListObjects {
            bucket: "app".into(),
            max_keys: 10_000,
            ..Default::default()
        })
        .await
        .expect("list");
    let listed: Vec<&str> = listing
        .entries
        .iter()
        .filter_map(|e| match e {
            ListEntry::Object(o) => Some(o.key.as_str()),
            ListEntry::Prefix { .. } => None,
        })
        .collect();
    assert_eq!(
        listed,
        expected.keys().map(String::as_str).collect::<Vec<_>>()
    );
    process.stop().await;
}

/// A shard outside Raft owning everything, with bucket `logs` holding
/// `keys`.
fn shard_with_objects(
    dir: &std::path::Path,
    keys: &[&str],
) -> cairn_metadata_service::shard::Shard {
    use cairn_meta_api::shard_map::ShardId;
    use cairn_metadata_service::shard::{KeyRange, Shard};
    let everything = KeyRange {
        start: String::new(),
        end: None,
    };
    let shard = Shard::open(ShardId(0), dir, everything).expect("open");
    shard
        .apply(
            &Command::CreateBucket {
                name: "logs".into(),
                owner: "ann".into(),
                object_lock: false,
                settings: Vec::new(),
            },
            0,
        )
        .expect("bucket");
    for key in keys {
        let commit = Command::CommitObject {
            bucket: "logs".into(),
            key: (*key).into(),
            manifest: manifest(1, key),
            precondition: Precondition::None,
            versioning: Default::default(),
            lock: Default::default(),
        };
        shard.apply(&commit, 0).expect("commit");
    }
    shard
}

/// A crash between publishing a split and deleting the moved rows leaves
/// rows outside the source shard's range; opening the shard removes them.
#[test]
fn a_shard_drops_rows_outside_its_range_when_it_opens() {
    use cairn_meta_api::shard_map::ShardId;
    use cairn_metadata_service::shard::{KeyRange, Shard};
    let dir = tempfile::tempdir().expect("tempdir");
    let everything = KeyRange {
        start: String::new(),
        end: None,
    };
    drop(shard_with_objects(dir.path(), &["a", "m", "z"]));
    // Reopen as if a split at "logs/m" had been published.
    let lower = KeyRange {
        start: String::new(),
        end: Some("logs/m".into()),
    };
    drop(Shard::open(ShardId(0), dir.path(), lower).expect("reopen"));
    let shard = Shard::open(ShardId(0), dir.path(), everything).expect("open again");
    assert!(shard.get_object("logs", "a").expect("get").is_some());
    assert!(
        shard.get_object("logs", "m").expect("get").is_none(),
        "moved row was dropped"
    );
    assert!(
        shard.get_object("logs", "z").expect("get").is_none(),
        "moved row was dropped"
    );
}

/// Whole-shard reads state the range they expect, so a client whose map
/// predates a split is told `wrong_shard` and reads again on a fresh map,
/// instead of silently missing the rows that moved to the new shard.
#[tokio::test]
async fn cross_shard_reads_on_a_stale_map_after_a_split_return_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    let primary_url = client.shard_map().replicas[&1].clone();
    let stale = cairn_meta_api::MetaClient::connect(&primary_url, &secret())
        .await
        .expect("second client");
    client.create_bucket("app", "ann").await.expect("bucket");
    let n1 = NodeId::new("n1").expect("id");
    let mut expected = Vec::new();
    for dir in ["docs", "logs", "zips"] {
        for i in 0..4 {
            let mut object = manifest(100, "e");
            object.parts.push(blob(&["n1", "n2", "n3"]));
            expected.push((object.parts[0].blob, 0u8));
            client
                .commit_object("app", &format!("{dir}/{i}"), object, Precondition::None)
                .await
                .expect("commit");
        }
        let upload = client
            .create_upload("app", &format!("{dir}/big"), manifest(0, ""))
            .await
            .expect("upload");
        assert!(!upload.is_empty());
    }
    expected.sort();
    let map_before = stale.shard_map();
    client.split("app/logs/").await.expect("split");
    assert_eq!(
        stale.shard_map(),
        map_before,
        "the second client has not seen the split"
    );

    let mut on_n1: Vec<(BlobId, u8)> = stale
        .chunks_on_node(&n1)
        .await
        .expect("index")
        .into_iter()
        .map(|c| (c.blob, c.index))
        .collect();
    on_n1.sort();
    assert_eq!(on_n1, expected, "every chunk on n1, from every shard");
    assert!(
        stale.shard_map().version > map_before.version,
        "the read refreshed the stale map"
    );

    // The other whole-shard reads, each from a map that predates a split.
    let stale = cairn_meta_api::MetaClient::connect(&primary_url, &secret())
        .await
        .expect("third client");
    client.split("app/zips/").await.expect("split");
    let uploads = stale.list_uploads("app", "", 100).await.expect("uploads");
    assert_eq!(uploads.len(), 3, "{uploads:?}");
    assert_eq!(
        code(&stale.delete_bucket("app").await.expect_err("not empty")),
        "BucketNotEmpty"
    );
    let buckets = stale.list_buckets().await.expect("buckets");
    assert_eq!(buckets.len(), 1);
    process.stop().await;
}

/// A commit whose answer was lost is retried with the same request id: it
/// applies once, and the retry gets the first answer, also when a split
/// moved the key to another shard in between.
#[tokio::test]
async fn a_retried_commit_applies_once_even_across_a_split() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &[]).await;
    client.create_bucket("app", "ann").await.expect("bucket");
    let url = client.shard_map().replicas[&1].clone();
    let http = reqwest::Client::new();
    let request = cairn_meta_api::model::ApplyRequest {
        request_id: "retry-me".into(),
        command: Command::CommitObject {
            bucket: "app".into(),
            key: "logs/x".into(),
            manifest: manifest(1, "first"),
            precondition: Precondition::None,
            versioning: Default::default(),
            lock: Default::default(),
        },
    };
    let send = |shard: u32| {
        let http = http.clone();
        let url = url.clone();
        let request = request.clone();
        async move {
            http.post(format!("{url}/shards/{shard}/apply"))
                .header("x-cairn-secret", common::SECRET)
                .json(&request)
                .send()
                .await
                .expect("send")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    let first = send(0).await;
    assert_eq!(first["result"], "committed", "{first}");
    assert_eq!(send(0).await, first, "a retry gets the first answer");
    let map = client.split("app/logs/").await.expect("split");
    let child = map.route("app/logs/x").id;
    assert_ne!(child.0, 0);
    assert_eq!(send(child.0).await, first, "and so on the split's child");
    let record = client
        .get_object("app", "logs/x")
        .await
        .expect("get")
        .expect("there");
    assert_eq!(
        serde_json::to_value(&record.version_id).expect("json"),
        first["version_id"],
        "applied once: still the first version"
    );
    process.stop().await;
}

/// A row that cannot be read (a key too short for its namespace, an upload
/// record that does not parse) is reported and skipped: the shard still
/// opens, drops what is outside its range, and serves the rest, instead of
/// failing (or panicking) at every start.
#[test]
fn an_unreadable_row_does_not_stop_a_shard_from_opening() {
    use cairn_meta_api::shard_map::ShardId;
    use cairn_metadata_service::shard::{KeyRange, Shard};
    let dir = tempfile::tempdir().expect("tempdir");
    let everything = KeyRange {
        start: String::new(),
        end: None,
    };
    {
        let shard = shard_with_objects(dir.path(), &["a"]);
        // Damage: an object key with no room for its catalogue key, and an
        // upload row whose record is not JSON.
        shard.db().put(b"o", b"{}").expect("short key");
        shard
            .db()
            .put(b"u\0logs/b\0up", b"not json")
            .expect("bad record");
    }
    let lower = KeyRange {
        start: String::new(),
        end: Some("logs/m".into()),
    };
    drop(Shard::open(ShardId(0), dir.path(), lower).expect("reopens despite the damage"));
    let shard = Shard::open(ShardId(0), dir.path(), everything).expect("open again");
    assert!(shard.get_object("logs", "a").expect("get").is_some());
}
