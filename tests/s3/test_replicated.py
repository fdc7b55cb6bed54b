"""Replicated blobs: objects above the inline threshold and up to
`replicated_max` (1 MiB in `cairn dev`) are stored as 3 full copies,
RS(1,2), on nodes in three racks instead of 8+4 chunks. A GET reads one
copy; a lost copy is read around and rebuilt from one other copy (read
amplification 1). With real processes and a real client."""

import hashlib
import os

from test_inline import body, manifest
from test_scrub_repair import STRIPE, assert_readable, repair_status, wait_until

MiB = 1024 * 1024


def racks_of(cluster, part):
    racks = {n["id"]: n["rack"] for n in cluster.info["nodes"]}
    return [racks[c["node"]] for c in part["chunks"]]


def test_small_blobs_are_three_copies_in_three_racks_and_large_ones_8_plus_4(cluster, s3, bucket):
    sizes = {"just-above-inline": 32 * 1024 + 1, "mid": 300_000, "at-limit": MiB,
             "above-limit": MiB + 1, "large": 3 * STRIPE + 5}
    for key, size in sizes.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body(size, seed=size))
    for key, size in sizes.items():
        part, = manifest(cluster, bucket, key)["parts"]
        codec = (part["codec"]["k"], part["codec"]["m"])
        if size <= MiB:
            assert codec == (1, 2), (key, codec)
            assert len(set(racks_of(cluster, part))) == 3, key
            assert len({c["node"] for c in part["chunks"]}) == 3
        else:
            assert codec == (8, 4), (key, codec)
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.md5(got).digest() == hashlib.md5(body(size, seed=size)).digest(), key
        r = s3.get_object(Bucket=bucket, Key=key, Range="bytes=1000-70000")
        assert r["Body"].read() == body(size, seed=size)[1000:70001]


def test_a_lost_copy_is_read_around_and_rebuilt_from_one_copy(make_cluster):
    cluster = make_cluster("--repair-after", "2s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="copies")
    objects = {f"o/{i}": os.urandom(100_000 + 7919 * i) for i in range(30)}
    for key, data in objects.items():
        s3.put_object(Bucket="copies", Key=key, Body=data)
    # The node holding the first copy of the most objects.
    counts = {}
    for key in objects:
        first = manifest(cluster, "copies", key)["parts"][0]["chunks"][0]["node"]
        counts[first] = counts.get(first, 0) + 1
    victim = max(counts, key=counts.get)
    held = [key for key in objects
            if any(c["node"] == victim for c in manifest(cluster, "copies", key)["parts"][0]["chunks"])]
    cluster.kill9(victim)
    # Reads go to another copy at once (hedged, then avoided).
    assert_readable(s3, "copies", objects)

    status = wait_until("the repair of every copy on the dead node", lambda: (
        (s := repair_status(cluster))["repaired_chunks"] >= len(held)
        and s["queued"] + s["in_progress"] == 0 and s
    ), timeout=120)
    assert status["failures"] == 0
    # One copy read per copy rebuilt.
    assert abs(status["read_amplification"] - 1.0) <= 0.01, status
    for key in held:
        part = manifest(cluster, "copies", key)["parts"][0]
        assert victim not in {c["node"] for c in part["chunks"]}
        assert all(c["state"] == "stored" for c in part["chunks"])
        assert len(set(racks_of(cluster, part))) == 3, key
    assert_readable(s3, "copies", objects)
