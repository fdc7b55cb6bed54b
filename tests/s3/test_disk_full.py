"""A storage node on a full disk: its chunk write fails cleanly (ENOSPC,
no partial chunk left, the chunk recorded missing), it reports itself
nearly full in its heartbeat, placement leaves it out, and PUTs keep
succeeding and read back exact.

The node's data dir is a size-limited tmpfs mounted before `cairn dev`
starts (root is needed to mount it; CI runs as root)."""

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Cluster

NODE = "node-05"
CAPACITY_MIB = 6


@pytest.fixture
def small_disk_cluster(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    data = tmp_path / "data"
    mount = data / "nodes" / NODE
    mount.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={CAPACITY_MIB}m", "tmpfs", str(mount)], check=True)
    try:
        cluster = Cluster(data)
        yield cluster, mount
        cluster.stop()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def chunk_nodes(cluster, key):
    manifest = cluster.cairn("inspect", f"full/{key}", "--json")
    return [(c["node"], c["state"]) for part in manifest["manifest"]["parts"] for c in part["chunks"]]


def test_a_full_node_fails_cleanly_reports_itself_full_and_is_left_out(small_disk_cluster):
    cluster, mount = small_disk_cluster
    s3 = cluster.client(read_timeout=120)
    s3.create_bucket(Bucket="full")
    # 8+4 on 12 nodes: every blob puts one chunk (size / 8) on NODE. Each
    # 16 MiB object puts 2 MiB there, so the third or fourth fills it.
    bodies = {}
    for i in range(6):
        body = os.urandom(16 * 1024 * 1024)
        key = f"obj-{i}"
        s3.put_object(Bucket="full", Key=key, Body=body)
        bodies[key] = hashlib.sha256(body).hexdigest()
    # Every object reads back exact, whether or not NODE holds its chunk.
    for key, digest in bodies.items():
        got = s3.get_object(Bucket="full", Key=key)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == digest, key
    # The node says it is (nearly) full, and the last PUTs left it out: no
    # chunk of theirs is stored there.
    deadline = time.monotonic() + 30
    while True:
        nodes = {n["id"]: n for n in cluster.cairn("nodes", "--json")}
        if nodes[NODE]["free_bytes"] < 2 * 1024 * 1024:
            break
        assert time.monotonic() < deadline, nodes[NODE]
        time.sleep(0.5)
    stored_there = [
        key for key in bodies
        if (NODE, "stored") in [(n, s.lower()) for n, s in chunk_nodes(cluster, key)]
    ]
    assert stored_there, "the node took chunks while it had room"
    # Once a chunk write failed there, the node is left out of placement:
    # the last object has no chunk on it at all. (boto3's aws-chunked PUTs
    # declare no size, so the free-space check alone cannot exclude it; the
    # gateway's penalty after the failed write does.)
    failed = [key for key in bodies if (NODE, "missing") in [(n, s.lower()) for n, s in chunk_nodes(cluster, key)]]
    assert failed, "no write to the full node failed"
    assert NODE not in [n for n, _ in chunk_nodes(cluster, "obj-5")], "a full node was given a chunk"
    # No partial chunk or temp file is left on the full disk.
    leftovers = [p.name for p in Path(mount).rglob(".tmp-*")]
    assert not leftovers, leftovers
