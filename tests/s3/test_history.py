"""The history checker that the nemesis soak (test_soak.py) applies, its
own test on hand-made histories, and the metadata quorum's S3 behaviour.

Every operation is recorded with its start and end time; the checker then
asserts, per key:

- no stale read: a GET (or LIST) never returns a value that an
  acknowledged write or delete had already replaced before the GET began;
- no lost write: the final reads (nemesis stopped) obey the same rule;
- no resurrected delete: the same rule, with a delete as the replacing op;
- no invented value: what a GET returns was written by some PUT that began
  before the GET ended.

A failed operation is indeterminate: it may or may not have taken effect,
so it can explain a read but never makes one stale.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import Cluster

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


def check(history, keys=KEYS):
    """The per-key rules in the module docstring (LIST results judged for
    `keys`); returns violations."""
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
            for key in keys:
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
