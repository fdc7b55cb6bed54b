//! The `cairn` binary refuses what it cannot do before it does anything.
//! (Its admin commands against a real metadata service are tested in the
//! `tests` crate, `tests/tests/cli_admin.rs`, so that this crate does not
//! build RocksDB even for its tests.)

use std::process::Command;

fn cairn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env_remove("CAIRN_CLUSTER_SECRET")
        .output()
        .expect("run cairn")
}

#[test]
fn a_dev_cluster_that_cannot_survive_a_rack_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = cairn(&[
        "dev",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        "--racks",
        "2",
        "--port",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("2 racks cannot hold 12 chunks"), "{stderr}");
    assert!(!data.join("cluster.json").exists());
}

#[test]
fn durations_and_sizes_are_checked_when_parsed() {
    for (args, expected) in [
        (
            &["scrub", "schedule", "--every", "5y"][..],
            "invalid duration unit",
        ),
        (&["bench", "--size", "12 parsecs"][..], "unknown size unit"),
    ] {
        let out = cairn(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
