//! S3 listing semantics across shard boundaries, against a BTreeMap model.

mod common;

use std::collections::BTreeSet;

use cairn_meta_api::client::ListObjects;
use cairn_meta_api::model::{ListEntry, Precondition};
use cairn_meta_api::shard_map::prefix_successor;
use common::{manifest, primary};
use proptest::prelude::*;

/// The reference: S3 ListObjects over a sorted set of keys. Returns one page
/// and where the next starts.
fn model_page(
    keys: &BTreeSet<String>,
    prefix: &str,
    delimiter: Option<&str>,
    cursor: &str,
    max_keys: usize,
) -> (Vec<ListEntry>, Option<String>) {
    let mut out: Vec<ListEntry> = Vec::new();
    let start = cursor.max(prefix);
    for key in keys.range(start.to_owned()..) {
        if !key.starts_with(prefix) {
            if key.as_str() > prefix {
                break;
            }
            continue;
        }
        let entry = match delimiter.and_then(|d| key[prefix.len()..].find(d).map(|at| (d, at))) {
            Some((d, at)) => ListEntry::Prefix {
                prefix: key[..prefix.len() + at + d.len()].to_owned(),
            },
            None => ListEntry::Object(cairn_meta_api::model::ObjectSummary {
                key: key.clone(),
                size: key.len() as u64,
                etag: format!("etag-{key}"),
                modified_ms: 0,
            }),
        };
        if let (Some(ListEntry::Prefix { prefix: last }), ListEntry::Prefix { prefix: this }) =
            (out.last(), &entry)
            && last == this
        {
            continue;
        }
        out.push(entry);
        if out.len() > max_keys {
            break;
        }
    }
    let next = (out.len() > max_keys).then(|| out[max_keys].resume_cursor().to_owned());
    out.truncate(max_keys);
    (out, next)
}

fn comparable(entries: &[ListEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            ListEntry::Object(o) => format!("key {} {} {}", o.key, o.size, o.etag),
            ListEntry::Prefix { prefix } => format!("prefix {prefix}"),
        })
        .collect()
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![Just('a'), Just('m'), Just('x'), Just('/'), Just('.')],
        1..7,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn listings_match_the_model_across_five_shards(
        keys in prop::collection::btree_set(key_strategy(), 0..60),
        queries in prop::collection::vec(
            (
                prop_oneof![Just(String::new()), key_strategy().prop_map(|k| k[..1].to_owned()), key_strategy()],
                prop_oneof![Just(None), Just(Some("/".to_owned())), Just(Some("m".to_owned())), Just(Some("x".to_owned())), Just(Some("x/".to_owned()))],
                prop_oneof![Just(String::new()), key_strategy()],
                1usize..7,
            ),
            1..6,
        ),
    ) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            // Bucket "bkt" spans shards 1..=4. The cut at "bkt/a/m" splits the
            // directory "a/" between two shards, so its common prefix
            // straddles a boundary; "bkt/x/" does the same for "x" groups.
            let (process, client) = primary(dir.path(), &["bkt/", "bkt/a/m", "bkt/m", "bkt/x/", "bl"]).await;
            client.create_bucket("bkt", "tester").await.expect("bucket");
            for key in &keys {
                client
                    .commit_object("bkt", key, manifest(key.len() as u64, &format!("etag-{key}")), Precondition::None)
                    .await
                    .expect("commit");
            }
            for (prefix, delimiter, start, max_keys) in &queries {
                let mut cursor = start.clone();
                let mut pages = 0;
                loop {
                    let (expected, expected_next) = model_page(&keys, prefix, delimiter.as_deref(), &cursor, *max_keys);
                    let got = client
                        .list_objects(&ListObjects {
                            bucket: "bkt".into(),
                            prefix: prefix.clone(),
                            delimiter: delimiter.clone(),
                            cursor: cursor.clone(),
                            max_keys: *max_keys,
                        })
                        .await
                        .expect("list");
                    assert_eq!(
                        comparable(&got.entries),
                        comparable(&expected),
                        "prefix={prefix:?} delimiter={delimiter:?} cursor={cursor:?} max={max_keys}"
                    );
                    assert_eq!(got.next_cursor, expected_next, "next cursor");
                    assert_eq!(got.truncated, expected_next.is_some());
                    match expected_next {
                        Some(next) => cursor = next,
                        None => break,
                    }
                    pages += 1;
                    assert!(pages < 100, "pagination does not end");
                }
            }
            process.stop().await;
        });
    }
}

#[tokio::test]
async fn a_listing_inside_one_prefix_asks_only_its_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, client) = primary(dir.path(), &["bkt/", "bkt/logs/", "bkt/logs0", "bl"]).await;
    client.create_bucket("bkt", "tester").await.expect("bucket");
    for key in ["a", "logs/1", "logs/2", "logs/3/x", "z"] {
        client
            .commit_object("bkt", key, manifest(1, "e"), Precondition::None)
            .await
            .expect("commit");
    }
    let before = shard_list_counts(&client, &process.url).await;
    let listing = client
        .list_objects(&ListObjects {
            bucket: "bkt".into(),
            prefix: "logs/".into(),
            delimiter: Some("/".into()),
            cursor: String::new(),
            max_keys: 100,
        })
        .await
        .expect("list");
    assert_eq!(comparable(&listing.entries).len(), 3);
    let after = shard_list_counts(&client, &process.url).await;
    let asked: Vec<u32> = after
        .iter()
        .zip(&before)
        .filter(|(a, b)| a.1 > b.1)
        .map(|(a, _)| a.0)
        .collect();
    let logs_shard = client.shard_map().route("bkt/logs/").id.0;
    assert_eq!(asked, vec![logs_shard], "only the logs shard is asked");
    assert_eq!(prefix_successor("bkt/logs/").as_deref(), Some("bkt/logs0"));
    process.stop().await;
}

/// Per-shard counts of list requests, from the process's /metrics.
async fn shard_list_counts(client: &cairn_meta_api::MetaClient, url: &str) -> Vec<(u32, u64)> {
    let text = reqwest::Client::new()
        .get(format!("{url}/metrics"))
        .header("x-cairn-secret", common::SECRET)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    client
        .shard_map()
        .shards
        .iter()
        .map(|s| {
            let needle = format!(
                "cairn_meta_shard_reads_total{{op=\"list\",shard=\"{}\"}} ",
                s.id.0
            );
            let count = text
                .lines()
                .find_map(|l| l.strip_prefix(&needle))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            (s.id.0, count)
        })
        .collect()
}
