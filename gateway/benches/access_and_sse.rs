//! Per-request and per-byte costs the gateway adds for access control and
//! encryption, each next to a reference:
//! - `sse/keystream` (AES-256-CTR over 1 MiB, what SSE adds per byte to a
//!   PUT and a GET) against `sse/md5` (the most expensive per-byte stage a
//!   PUT already has);
//! - `sse/derive` (the HKDF derivations a blob read or write adds);
//! - `policy/evaluate` (a five-statement bucket policy with conditions,
//!   what a request to a bucket with a policy adds) against
//!   `policy/none` (the owner check alone).
//!
//! Run with `cargo bench -p cairn-gateway --bench access_and_sse`; see
//! BENCHMARKS.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use cairn_core::ids::BlobId;
use cairn_gateway::policy::{Policy, Request};
use cairn_gateway::sse::{Keyring, Requested, VersionKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use md5::Digest;

const MIB: usize = 1024 * 1024;

fn sse(c: &mut Criterion) {
    let keyring = Keyring::parse(&Keyring::new_key_line(1)).expect("keyring");
    let (_, key) = VersionKey::seal(&Requested::Cluster, &keyring)
        .expect("seal")
        .expect("a key");
    let blob = BlobId::random();
    let mut data: Vec<u8> = (0..MIB).map(|i| (i * 131) as u8).collect();
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("keystream", |b| {
        b.iter(|| key.blob_cipher(&blob, 0).apply(black_box(&mut data)))
    });
    group.bench_function("md5", |b| b.iter(|| md5::Md5::digest(black_box(&data))));
    group.throughput(Throughput::Elements(1));
    group.bench_function("derive", |b| {
        b.iter(|| key.blob_cipher(black_box(&blob), black_box(12_345)))
    });
    group.finish();
}

fn policy(c: &mut Criterion) {
    let policy = Policy::parse(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/public/*"},
            {"Effect": "Allow", "Principal": {"AWS": ["alice", "bob"]}, "Action": ["s3:Get*", "s3:Put*"],
             "Resource": "arn:aws:s3:::b/shared/*"},
            {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
             "Condition": {"StringLike": {"s3:prefix": "shared/*"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "127.0.0.0/8"]}}},
            {"Effect": "Deny", "Principal": {"AWS": "bob"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/shared/secret/*"}
        ]}"#,
        "b",
    )
    .expect("policy");
    let context: BTreeMap<String, String> = [
        ("aws:sourceip", "127.0.0.1"),
        ("aws:securetransport", "false"),
        ("aws:useragent", "Boto3/1.35"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut group = c.benchmark_group("policy");
    group.bench_function("evaluate", |b| {
        b.iter(|| {
            policy.evaluate(black_box(&Request {
                principal: Some("bob"),
                action: "s3:GetObject",
                resource: "arn:aws:s3:::b/shared/reports/2026/q4.csv",
                context: &context,
            }))
        })
    });
    let owner = "alice".to_owned();
    group.bench_function("none", |b| {
        b.iter(|| black_box(Some("alice")) == Some(black_box(owner.as_str())))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = sse, policy
}
criterion_main!(benches);
