"""A history checker: S3 clients issue random PUT/GET/DELETE/LIST on a few
keys while a nemesis SIGKILLs and restarts metadata replicas and storage
nodes of a real `cairn dev` cluster. Every operation is recorded with its
start and end time; the checker then asserts, per key:

- no stale read: a GET (or LIST) never returns a value that an
  acknowledged write or delete had already replaced before the GET began;
- no lost write: the final reads (nemesis stopped) obey the same rule;
- no resurrected delete: the same rule, with a delete as the replacing op;
- no invented value: what a GET returns was written by some PUT that began
  before the GET ended.

A failed operation is indeterminate: it may or may not have taken effect,
so it can explain a read but never makes one stale.

Short in CI (CAIRN_HISTORY_SECONDS, default 20); `./dev soak` runs it long.
"""

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import Cluster

DURATION = float(os.environ.get("CAIRN_HISTORY_SECONDS", "20"))
KEYS = [f"k{i}" for i in range(6)]
BUCKET = "history"
INITIAL = None  # the state before any write: no object


class Op:
    __slots__ = ("kind", "key", "value", "start", "end", "ok", "result")

    def __init__(self, kind, key, value=None):
        self.kind, self.key, self.value = kind, key, value
        self.start = time.monotonic()
        self.end = None
        self.ok = False
        self.result = None


def get(s3, key):
    """A GET as a history operation (its end time is set by the caller)."""
    op = Op("get", key)
    try:
        op.result = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        op.ok = True
    except ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchKey":
            op.result, op.ok = INITIAL, True
    except Exception:
        pass
    return op


def client_loop(s3, name, stop, history, lock):
    rng = random.Random(name)
    seq = 0
    while not stop.is_set():
        key = rng.choice(KEYS)
        roll = rng.random()
        if roll < 0.4:
            seq += 1
            op = Op("put", key, f"{name}-{seq}")
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=op.value.encode())
                op.ok = True
            except Exception:
                pass
        elif roll < 0.55:
            op = Op("delete", key)
            try:
                s3.delete_object(Bucket=BUCKET, Key=key)
                op.ok = True
            except Exception:
                pass
        elif roll < 0.9:
            op = get(s3, key)
        else:
            op = Op("list", None)
            try:
                listed = s3.list_objects_v2(Bucket=BUCKET)
                op.result = sorted(o["Key"] for o in listed.get("Contents", []))
                op.ok = True
            except Exception:
                pass
        op.end = time.monotonic()
        with lock:
            history.append(op)


def respawn(cmdline, environ, log):
    """Starts a process again as it was started (without the sockets cairn
    dev handed it: it binds its configured address itself)."""
    env = {k: v for k, v in environ.items() if not k.startswith("LISTEN_")}
    return subprocess.Popen(cmdline, env=env, stdout=log, stderr=log)


def proc_identity(pid):
    cmdline = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    environ = dict(
        kv.decode().split("=", 1)
        for kv in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if b"=" in kv
    )
    return cmdline, environ


def kill9(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def nemesis(chaos, stop, events):
    """Every couple of seconds: SIGKILL one metadata replica or one storage
    node, and bring it back a little later. At most one replica is down at a
    time (a majority always lives), so every failure is one the cluster
    must hide."""
    rng = random.Random(7)
    metas = [(m["pid"], m) for m in chaos.cluster.info["metadata"]]
    nodes = [(n["pid"], n) for n in chaos.cluster.info["nodes"]]
    while not stop.is_set():
        time.sleep(rng.uniform(1.0, 2.5))
        if stop.is_set():
            break
        if rng.random() < 0.6:
            index = rng.randrange(len(metas))
            pid, info = metas[index]
            what = f"metadata replica {index + 1}"
        else:
            index = rng.randrange(len(nodes))
            pid, info = nodes[index]
            what = f"storage node {info['id']}"
        cmdline, environ = proc_identity(pid)
        kill9(pid)
        events.append((time.monotonic(), f"killed {what}"))
        time.sleep(rng.uniform(0.5, 2.0))
        child = chaos.respawn(cmdline, environ)
        if what.startswith("metadata"):
            metas[index] = (child.pid, info)
        else:
            nodes[index] = (child.pid, info)
        events.append((time.monotonic(), f"restarted {what}"))


class Chaos:
    """A `cairn dev` cluster whose processes a test kills and restarts; the
    restarted ones are the test's children, stopped with the cluster."""

    def __init__(self, tmp_path):
        self.cluster = Cluster(tmp_path / "data")
        self.spawned = []
        self.log = open(tmp_path / "respawned.log", "w")

    def respawn(self, cmdline, environ):
        child = respawn(cmdline, environ, self.log)
        self.spawned.append(child)
        return child

    def stop(self):
        for child in self.spawned:
            if child.poll() is None:
                child.kill()
                child.wait()
        self.cluster.stop()
        self.log.close()


@pytest.fixture
def chaos(tmp_path):
    c = Chaos(tmp_path)
    yield c
    c.stop()


def check(history):
    """The per-key rules in the module docstring; returns violations."""
    violations = []
    writes = {}  # key -> [(op, value)] for put and delete
    for op in history:
        if op.kind in ("put", "delete"):
            writes.setdefault(op.key, []).append(op)

    def explains(read_start, read_end, key, value):
        """Whether `value` is a legal result for a read over [start, end]."""
        candidates = [w for w in writes.get(key, []) if w.start < read_end]
        sources = [w for w in candidates if (w.value if w.kind == "put" else INITIAL) == value]
        if value is INITIAL:
            sources.append(None)  # the initial state
        if not sources:
            return False, "no write produced it"
        for source in sources:
            source_end = -1.0 if source is None else (source.end if source.ok else float("inf"))
            # Stale if an acknowledged op started after `source` ended and
            # finished before the read began.
            stale = any(
                w.ok and w is not source and w.start > source_end and w.end < read_start
                for w in candidates
            )
            if not stale:
                return True, ""
        return False, "an acknowledged write or delete had replaced it before the read began"

    for op in history:
        if not op.ok:
            continue
        if op.kind == "get":
            legal, why = explains(op.start, op.end, op.key, op.result)
            if not legal:
                violations.append(f"GET {op.key} -> {op.result!r}: {why}")
        elif op.kind == "list":
            for key in KEYS:
                present = key in op.result
                # A listed key must be explained by some put; an absent one
                # by a delete or the initial state.
                candidates = [w for w in writes.get(key, []) if w.start < op.end]
                ok = False
                for source in [None] + candidates:
                    kind = "delete" if source is None else source.kind
                    if (kind == "put") != present:
                        continue
                    source_end = -1.0 if source is None else (source.end if source.ok else float("inf"))
                    if not any(w.ok and w is not source and w.start > source_end and w.end < op.start
                               for w in candidates):
                        ok = True
                        break
                if not ok:
                    violations.append(f"LIST at {op.start:.3f}: {key} {'present' if present else 'absent'} is stale")
    return violations


def test_no_lost_write_no_stale_read_no_resurrected_delete_under_a_nemesis(chaos):
    cluster = chaos.cluster
    s3 = cluster.client()
    s3.create_bucket(Bucket=BUCKET)
    history, lock, events = [], threading.Lock(), []
    stop, stop_nemesis = threading.Event(), threading.Event()
    clients = [
        threading.Thread(target=client_loop, args=(cluster.client(connect_timeout=5, read_timeout=20),
                                                   f"c{i}", stop, history, lock))
        for i in range(4)
    ]
    nemesis_thread = threading.Thread(target=nemesis, args=(chaos, stop_nemesis, events))
    for t in clients:
        t.start()
    nemesis_thread.start()
    time.sleep(DURATION)
    stop_nemesis.set()
    nemesis_thread.join()
    # Let the last restarted process rejoin, then stop the clients.
    time.sleep(3)
    stop.set()
    for t in clients:
        t.join()
    # Final reads, every process back: no acknowledged write is lost.
    final = cluster.client(connect_timeout=5, read_timeout=30)
    for key in KEYS:
        for attempt in range(30):
            op = get(final, key)
            op.end = time.monotonic()
            history.append(op)
            if op.ok:
                break
            time.sleep(1)
        assert op.ok, f"final read of {key} kept failing"

    done = [op for op in history if op.ok]
    kinds = {k: sum(1 for op in done if op.kind == k) for k in ("put", "get", "delete", "list")}
    failed = sum(1 for op in history if not op.ok)
    print(f"history: {len(history)} ops, {kinds} acknowledged, {failed} failed; nemesis: {len(events)} events")
    assert kinds["put"] > 20 and kinds["get"] > 20, f"too little traffic to check: {kinds}"
    assert any("metadata" in e for _, e in events), events
    violations = check(history)
    assert not violations, "\n".join(violations[:20])


def test_the_checker_catches_a_stale_read_and_a_resurrected_delete():
    """The checker itself, on hand-made histories."""
    def op(kind, key, value, start, end, result=None, ok=True):
        o = Op(kind, key, value)
        o.start, o.end, o.ok, o.result = start, end, ok, result
        return o

    legal = [
        op("put", "k0", "a", 0, 1),
        op("get", "k0", None, 0.5, 2, result="a"),  # concurrent with the put
        op("put", "k0", "b", 3, 4),
        op("get", "k0", None, 5, 6, result="b"),
        op("put", "k0", "c", 7, 8, ok=False),
        op("get", "k0", None, 9, 10, result="c"),  # a failed put may have landed
    ]
    assert check(legal) == []
    stale = legal[:4] + [op("get", "k0", None, 5, 6, result="a")]
    assert check(stale), "a read of a replaced value is stale"
    resurrected = [
        op("put", "k1", "x", 0, 1),
        op("delete", "k1", None, 2, 3),
        op("get", "k1", None, 4, 5, result="x"),
    ]
    assert check(resurrected), "a deleted value came back"
    invented = [op("get", "k2", None, 0, 1, result="never")]
    assert check(invented), "a value nobody wrote"
    lost = [op("put", "k3", "y", 0, 1), op("get", "k3", None, 2, 3, result=INITIAL)]
    assert check(lost), "an acknowledged write is gone"


def test_without_a_metadata_quorum_s3_answers_503_quickly_and_recovers(chaos):
    """Two of three metadata replicas SIGKILLed: a PUT fails with S3's 503
    ServiceUnavailable within seconds (no hang, nothing half-written); one
    replica back and PUTs and GETs work again, the object written before
    the outage included."""
    cluster = chaos.cluster
    s3 = cluster.client(connect_timeout=5, read_timeout=60)
    s3.create_bucket(Bucket="quorum")
    s3.put_object(Bucket="quorum", Key="before", Body=b"written with a quorum")
    metas = cluster.info["metadata"]
    identities = [proc_identity(m["pid"]) for m in metas[1:]]
    for m in metas[1:]:
        kill9(m["pid"])
    started = time.monotonic()
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="quorum", Key="during", Body=b"no quorum")
    elapsed = time.monotonic() - started
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503, refused.value.response
    assert refused.value.response["Error"]["Code"] in ("ServiceUnavailable", "SlowDown")
    assert elapsed < 30, f"the refusal took {elapsed:.1f} s"
    # One replica returns: a majority again.
    cmdline, environ = identities[0]
    chaos.respawn(cmdline, environ)
    deadline = time.monotonic() + 60
    while True:
        try:
            s3.put_object(Bucket="quorum", Key="after", Body=b"quorum again")
            break
        except ClientError:
            assert time.monotonic() < deadline, "PUTs did not resume"
            time.sleep(1)
    assert s3.get_object(Bucket="quorum", Key="before")["Body"].read() == b"written with a quorum"
    assert s3.get_object(Bucket="quorum", Key="after")["Body"].read() == b"quorum again"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="quorum").get("Contents", [])]
    assert "before" in keys and "after" in keys
    # The operator's view: replica 3 unreachable, the others agree.
    status = cluster.cairn("meta", "status", "--json")
    assert [r["replica"] for r in status if "error" in r] == [3], status
    report = cluster.cairn("meta", "verify")
    assert "unavailable" in report and "diverged" not in report, report
