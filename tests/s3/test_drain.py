"""Node lifecycle: `cairn node drain` moves every chunk off a node while it
keeps serving reads and receives nothing new, the node is then retired and
can be removed; `--cancel` stops a drain; `cairn node remove` refuses a node
that still holds chunks not rebuilt elsewhere."""

import collections
import os
import subprocess
import time

from conftest import BIN_DIR
from test_inline import manifest
from test_scrub_repair import wait_until

VICTIM = "node-01"


def nodes(cluster):
    return {n["id"]: n for n in cluster.cairn("nodes", "--json")}


def chunk_nodes(cluster, bucket, key):
    return [c["node"] for p in manifest(cluster, bucket, key)["parts"] for c in p["chunks"]]


def cairn_fails(cluster, *args):
    result = subprocess.run(
        [str(BIN_DIR / "cairn"), "--cluster-file", str(cluster.data_dir / "cluster.json"), *args],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, f"cairn {' '.join(args)} succeeded: {result.stdout}"
    return result.stderr


def test_a_drained_node_gives_up_every_chunk_keeps_serving_and_is_retired(make_cluster):
    # 16 nodes: room to move an 8+4 blob's chunk to a node holding none of
    # it (on 12 nodes every node holds one of each blob).
    cluster = make_cluster("--nodes", "16", "--gc-grace", "3s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="drain")
    bodies = {}
    for i in range(10):
        bodies[f"striped-{i}"] = os.urandom(2 * 1024 * 1024 + i)  # 8+4
    for i in range(10):
        bodies[f"copies-{i}"] = os.urandom(200 * 1024 + i)  # 3 copies
    bodies["inline"] = os.urandom(1000)
    for key, body in bodies.items():
        s3.put_object(Bucket="drain", Key=key, Body=body)
    on_victim = [k for k in bodies if VICTIM in chunk_nodes(cluster, "drain", k)]
    assert len(on_victim) >= 5, on_victim

    # Refused while it holds chunks; an unknown node is named.
    assert "drain it first" in cairn_fails(cluster, "node", "remove", VICTIM)
    assert "no node" in cairn_fails(cluster, "node", "drain", "node-99")

    started = cluster.cairn("node", "drain", VICTIM)
    assert "draining" in started, started
    # The console shows it (draining, or retired already if it was quick).
    console, api = cluster.console()

    def console_state():
        racks = console.get(api + "/cluster", timeout=10).json()["racks"]
        return next(n["state"] for r in racks for n in r["nodes"] if n["id"] == VICTIM)

    assert console_state() in ("draining", "retired")
    time.sleep(1.2)  # the gateway's registry copy lives 1 s
    # While it drains: reads work (the node still serves), new writes avoid it.
    for key, body in bodies.items():
        assert s3.get_object(Bucket="drain", Key=key)["Body"].read() == body, key
    for i in range(6):
        key = f"during-{i}"
        bodies[key] = os.urandom(1024 * 1024 + 7 * i)
        s3.put_object(Bucket="drain", Key=key, Body=bodies[key])
        assert VICTIM not in chunk_nodes(cluster, "drain", key), key

    watched = cluster.cairn("node", "drain", VICTIM, "--watch")
    assert "retired" in watched, watched
    assert console_state() == "retired"
    # Nothing is left on it: the repair page no longer lists it as draining.
    assert VICTIM not in [n["node"] for n in console.get(api + "/repair", timeout=10).json()["lost"]]
    # Each chunk was copied from the draining node, not rebuilt from k.
    moved = cluster.cairn("repair", "status", "--json")
    assert moved["repaired_chunks"] >= len(on_victim), moved
    assert moved["read_amplification"] == 1.0, moved
    assert nodes(cluster)[VICTIM]["lifecycle"] == "retired"
    racks = {n["id"]: n["rack"] for n in nodes(cluster).values()}
    for key, body in bodies.items():
        assert s3.get_object(Bucket="drain", Key=key)["Body"].read() == body, key
        placed = chunk_nodes(cluster, "drain", key)
        assert VICTIM not in placed, key
        # Still rack-safe: at most m = 4 chunks of a blob in any rack, and
        # the 3 copies of a small blob in 3 racks.
        per_rack = collections.Counter(racks[n] for n in placed)
        assert max(per_rack.values(), default=0) <= (1 if len(placed) == 3 else 4), (key, per_rack)

    # Its files become garbage and are collected.
    victim_dir = cluster.node(VICTIM)["data_dir"]

    def emptied():
        files = [p for p in (os.path.join(d, f) for d, _, fs in os.walk(os.path.join(victim_dir, "chunks"))
                             for f in fs)]
        return not files

    wait_until("the drained node's chunk files collected", emptied, timeout=60)

    # Retired, then stopped and removed.
    cluster.kill9(VICTIM)
    removed = cluster.cairn("node", "remove", VICTIM)
    assert "removed" in removed, removed
    assert VICTIM not in nodes(cluster)


def test_a_drain_can_be_cancelled(make_cluster):
    cluster = make_cluster()
    s3 = cluster.client()
    s3.create_bucket(Bucket="cancel")
    s3.put_object(Bucket="cancel", Key="k", Body=os.urandom(3 * 1024 * 1024))
    cluster.cairn("node", "drain", "node-02")
    assert nodes(cluster)["node-02"]["lifecycle"] == "draining"
    cancelled = cluster.cairn("node", "drain", "node-02", "--cancel")
    assert "cancelled" in cancelled, cancelled
    assert nodes(cluster)["node-02"]["lifecycle"] == "active"
    # A retired node cannot be un-drained; an active one with chunks cannot
    # be removed.
    assert "drain it first" in cairn_fails(cluster, "node", "remove", "node-03")


def test_rebalance_moves_chunks_onto_added_nodes(make_cluster, tmp_path):
    """Four nodes join a loaded 12-node cluster; `cairn rebalance` moves
    chunks from the old nodes (above the mean use) onto them, keeping the
    rack rule, and every object reads back byte-exact."""
    cluster = make_cluster("--gc-grace", "3s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="spread")
    bodies = {f"obj-{i}": os.urandom(4 * 1024 * 1024 + i) for i in range(40)}
    for key, body in bodies.items():
        s3.put_object(Bucket="spread", Key=key, Body=body)

    # Four more nodes, one per rack, started as an operator would.
    env = {**os.environ, "CAIRN_CLUSTER_SECRET": cluster.info["cluster_secret"]}
    added = []
    try:
        for i, rack in enumerate(["rack-1", "rack-2", "rack-3", "rack-4"], start=13):
            node_id = f"node-{i}"
            log = open(tmp_path / f"{node_id}.log", "w")
            added.append(subprocess.Popen(
                [str(BIN_DIR / "cairn-node"), "--id", node_id, "--rack", rack,
                 "--data-dir", str(tmp_path / node_id), "--listen", "127.0.0.1:0",
                 "--metadata-url", cluster.info["admin_endpoint"]],
                env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_until("16 nodes up", lambda: len([n for n in nodes(cluster).values()
                                               if n["state"] == "up"]) == 16, timeout=60)

        def placed():
            return {k: chunk_nodes(cluster, "spread", k) for k in bodies}

        before = collections.Counter(n for ns in placed().values() for n in ns)
        assert not any(f"node-{i}" in before for i in range(13, 17))
        time.sleep(1.5)  # a heartbeat reports the new nodes' use
        done = cluster.cairn("rebalance", "--watch")
        assert "queued to move" in done and "rebalance done" in done, done
        moved = cluster.cairn("repair", "status", "--json")
        assert moved["repaired_chunks"] > 0 and moved["read_amplification"] == 1.0, moved
        after_placement = placed()
        after = collections.Counter(n for ns in after_placement.values() for n in ns)
        new = [after[f"node-{i}"] for i in range(13, 17)]
        assert all(count > 0 for count in new), after
        assert max(after.values()) < max(before.values()), (before, after)
        racks = {n["id"]: n["rack"] for n in nodes(cluster).values()}
        for key, placed_on in after_placement.items():
            per_rack = collections.Counter(racks[n] for n in placed_on)
            assert max(per_rack.values()) <= 4, (key, per_rack)
            assert s3.get_object(Bucket="spread", Key=key)["Body"].read() == bodies[key], key
        # Planned again at once: the old copies are not collected yet, so
        # the plan may queue more; cancelling leaves nothing queued.
        cluster.cairn("rebalance")
        cluster.cairn("rebalance", "--cancel")
        assert "0 rebalance moves queued" in cluster.cairn("rebalance", "--status")
    finally:
        for process in added:
            process.kill()
            process.wait()
