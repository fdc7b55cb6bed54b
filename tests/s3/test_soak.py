"""The nemesis soak: S3 clients PUT, GET, DELETE and LIST objects with
self-verifying bodies on a real `cairn dev` cluster while a nemesis kills
(SIGKILL), stops (SIGSTOP/SIGCONT), restarts and corrupts storage nodes,
partitions a rack that lives in network namespaces (its links taken down),
kills metadata replicas, the gateway and the scrubber, and starts scrub jobs
so that repair runs under fire.

Budget: at most m - 1 storage nodes unavailable at once (killed, stopped or
partitioned), at most one chunk file corrupted per blob, at most one
metadata replica down. Every failure is one the cluster must hide.

The checker reports operations by type, faults injected by type, p99
latency per phase (healthy / faulted / recovering: up to 10 s after the last
fault ended; the nemesis alternates CHAOS_S seconds of faults with QUIET_S
seconds without new ones), and asserts:
- acknowledged writes lost: 0 (the history rules of test_history: no stale
  read, no lost write, no resurrected delete, no invented value);
- corrupt bytes served: 0 (every body names its value and is regenerated);
- reads failed while at most m of the object's chunks were unavailable
  (Missing, on a faulted node, or corrupted): 0. A GET that fails is
  classified right away from the object's manifest and the nemesis's state;
  GETs that overlap a gateway restart are reported apart (the S3 endpoint
  itself was down).

CI runs 60 s (CAIRN_SOAK_SECONDS); `./dev soak --duration 10m` runs it long
on release binaries. Partitions need root (network namespaces); without it
they are skipped and the report says so.
"""

import hashlib
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import BIN_DIR, Cluster
from test_history import INITIAL, Op, check, kill9, proc_identity, respawn

DURATION = float(os.environ.get("CAIRN_SOAK_SECONDS", "60"))
REPORT = os.environ.get("CAIRN_SOAK_REPORT")
KEYS = [f"k{i:02}" for i in range(24)]
BUCKET = "soak"
RECOVERING_S = 10.0
CHAOS_S = float(os.environ.get("CAIRN_SOAK_CHAOS_SECONDS", "20"))
QUIET_S = float(os.environ.get("CAIRN_SOAK_QUIET_SECONDS", "15"))
CLIENTS = 4
# Body sizes: small objects most, some of several stripes (8 x 256 KiB).
SIZES = [1000] * 4 + [300_000] * 3 + [3_000_000] * 2 + [9_000_000]


def body_of(value):
    """A body that names its value and is regenerated from it."""
    seed = hashlib.blake2b(value.encode(), digest_size=8).digest()
    rng = random.Random(seed)
    return f"{value}\n".encode() + rng.randbytes(rng.choice(SIZES))


def value_of(body):
    """The value a body names, or None if the body is not exactly it."""
    head, sep, _ = body.partition(b"\n")
    try:
        value = head.decode()
    except UnicodeDecodeError:
        return None
    return value if sep and body == body_of(value) else None


class SoakOp(Op):
    """A history operation that also counts corrupt bytes a GET received,
    and why it failed."""
    __slots__ = ("corrupt", "error")

    def __init__(self, kind, key, value=None):
        super().__init__(kind, key, value)
        self.corrupt = 0
        self.error = None


# ---- the cluster's network: a rack in network namespaces ----

class Netns:
    """A bridge on the host and one namespace per partitionable node, each
    joined by a veth pair. A partition takes the host side of the pairs
    down: packets are dropped, connections hang (no reset), as when a rack's
    switch dies."""

    def __init__(self, count):
        tag = f"{os.getpid() % 10000:04d}"
        self.bridge = f"csk{tag}"
        self.host_ip = "10.203.0.1"
        self.names = [f"csk{tag}n{i}" for i in range(count)]
        self.veths = [f"csk{tag}h{i}" for i in range(count)]
        self.ips = [f"10.203.0.{11 + i}" for i in range(count)]
        self.created = False

    @staticmethod
    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def setup(self):
        self.ip("link", "add", self.bridge, "type", "bridge")
        self.created = True
        self.ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        self.ip("link", "set", self.bridge, "up")
        for ns, veth, address in zip(self.names, self.veths, self.ips):
            inner = f"{veth}i"
            self.ip("netns", "add", ns)
            self.ip("link", "add", veth, "type", "veth", "peer", "name", inner)
            self.ip("link", "set", inner, "netns", ns)
            self.ip("link", "set", veth, "master", self.bridge, "up")
            self.ip("-n", ns, "addr", "add", f"{address}/24", "dev", inner)
            self.ip("-n", ns, "link", "set", inner, "up")
            self.ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, up):
        for veth in self.veths:
            self.ip("link", "set", veth, "up" if up else "down")

    def teardown(self):
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if self.created:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def try_netns():
    if os.geteuid() != 0:
        return None, "partitions skipped: network namespaces need root"
    net = Netns(2)
    try:
        net.setup()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        net.teardown()
        return None, f"partitions skipped: {getattr(e, 'stderr', e)}"
    return net, "partitions: a 2-node rack in network namespaces"


def answers(url):
    """Whether anything answers HTTP at `url` (any status)."""
    try:
        urllib.request.urlopen(url, timeout=2)
    except Exception as e:
        return hasattr(e, "code")
    return True


# ---- faults ----

class Faults:
    """What is broken right now, and the timeline of what was."""

    def __init__(self):
        self.lock = threading.Lock()
        self.storage = {}  # node id -> fault kind
        self.meta_down = None
        self.corrupted = {}  # blob -> (node id, chunk index)
        self.timeline = []  # (start, end, kind, target)
        self.open = {}  # (kind, target) -> start
        self.injected = {}

    def start(self, kind, target):
        with self.lock:
            self.open[(kind, target)] = time.monotonic()
            self.injected[kind] = self.injected.get(kind, 0) + 1

    def end(self, kind, target):
        with self.lock:
            started = self.open.pop((kind, target))
            self.timeline.append((started, time.monotonic(), kind, target))

    def storage_faults_between(self, start, end):
        """Storage nodes faulted at any moment of [start, end]."""
        with self.lock:
            hit = {t for (s, e, k, t) in self.timeline
                   if k in ("kill_node", "stop_node", "partition") and s <= end and e >= start}
            hit |= {t for (k, t), s in self.open.items()
                    if k in ("kill_node", "stop_node", "partition") and s <= end}
            return hit

    def overlaps(self, kind, start, end):
        with self.lock:
            return (any(k == kind and s <= end and e >= start for (s, e, k, _) in self.timeline)
                    or any(k == kind and s <= end for (k, _), s in self.open.items()))

    def phase(self, at):
        with self.lock:
            if any(s <= at for s in self.open.values()) or any(
                    s <= at <= e for (s, e, _, _) in self.timeline):
                return "faulted"
            ended = [e for (s, e, _, _) in self.timeline if e <= at]
            if ended and at - max(ended) < RECOVERING_S:
                return "recovering"
            return "healthy"


class Nemesis:
    def __init__(self, cluster, faults, extra_nodes, net, log, seed=11):
        self.cluster, self.faults, self.net = cluster, faults, net
        self.extra_nodes = extra_nodes  # node ids in the namespaces
        self.rng = random.Random(seed)
        self.m = cluster.info["m"]
        self.nodes = {n["id"]: n["pid"] for n in cluster.info["nodes"]}
        self.metas = [m["pid"] for m in cluster.info["metadata"]]
        self.children = []
        self.log = log
        self.restore = []  # (at, action)
        self.stop_event = threading.Event()
        self.errors = []

    def spawn(self, cmdline, environ):
        child = respawn(cmdline, environ, self.log)
        self.children.append(child)
        return child

    def budget(self):
        return (self.m - 1) - len(self.faults.storage)

    def healthy_nodes(self):
        return [n for n in self.nodes if n not in self.faults.storage]

    def run(self):
        """Cycles of CHAOS_S seconds of faults and QUIET_S seconds without
        new ones (what is broken is mended at the start of the quiet), so
        the report has healthy and recovering phases as well as faulted."""
        next_scrub = time.monotonic() + 10
        while not self.stop_event.is_set():
            chaos_until = time.monotonic() + CHAOS_S
            while time.monotonic() < chaos_until and not self.stop_event.is_set():
                try:
                    self.step()
                    if time.monotonic() >= next_scrub:
                        next_scrub = time.monotonic() + 20
                        self.cluster.cairn("scrub", "start")
                        self.faults.injected["scrub_job"] = self.faults.injected.get("scrub_job", 0) + 1
                except Exception as e:  # a fault that could not be injected is reported
                    self.errors.append(repr(e))
                self.stop_event.wait(self.rng.uniform(0.5, 1.5))
            self.heal_all()
            self.stop_event.wait(QUIET_S)
        self.heal_all()

    def due(self, delay, action):
        self.restore.append((time.monotonic() + delay, action))

    def step(self):
        now = time.monotonic()
        for item in [r for r in self.restore if r[0] <= now]:
            self.restore.remove(item)
            item[1]()
        if self.rng.random() < 0.4:
            return  # quiet moments make healthy and recovering phases
        actions = ["kill_node", "stop_node", "corrupt", "kill_meta", "kill_gateway", "kill_scrubber"]
        if self.net:
            actions.append("partition")
        kind = self.rng.choice(actions)
        getattr(self, kind)()

    # -- storage nodes --

    def kill_node(self):
        if self.budget() < 1:
            return
        node = self.rng.choice(self.healthy_nodes())
        pid = self.nodes[node]
        cmdline, environ = proc_identity(pid)
        kill9(pid)
        self.faults.storage[node] = "kill_node"
        self.faults.start("kill_node", node)

        def back():
            self.nodes[node] = self.spawn(cmdline, environ).pid
            del self.faults.storage[node]
            self.faults.end("kill_node", node)
        self.due(self.rng.uniform(2, 6), back)

    def stop_node(self):
        if self.budget() < 1:
            return
        node = self.rng.choice(self.healthy_nodes())
        pid = self.nodes[node]
        os.kill(pid, signal.SIGSTOP)
        self.faults.storage[node] = "stop_node"
        self.faults.start("stop_node", node)

        def back():
            os.kill(pid, signal.SIGCONT)
            del self.faults.storage[node]
            self.faults.end("stop_node", node)
        self.due(self.rng.uniform(2, 6), back)

    def partition(self):
        if self.budget() < len(self.extra_nodes) or any(n in self.faults.storage for n in self.extra_nodes):
            return
        self.net.cut(up=False)
        for node in self.extra_nodes:
            self.faults.storage[node] = "partition"
            self.faults.start("partition", node)

        def back():
            self.net.cut(up=True)
            for node in self.extra_nodes:
                del self.faults.storage[node]
                self.faults.end("partition", node)
        self.due(self.rng.uniform(3, 8), back)

    def corrupt(self):
        """Flips a byte in the middle of one chunk file of a blob not yet
        corrupted, on a node that is up."""
        candidates = [n for n in self.cluster.info["nodes"] if n["id"] not in self.faults.storage]
        node = self.rng.choice(candidates)
        files = [p for p in (Path(node["data_dir"]) / "chunks").rglob("*.chunk")]
        files = [p for p in files if p.name.split("-")[0] not in self.faults.corrupted]
        if not files:
            return
        path = self.rng.choice(files)
        try:
            with open(path, "r+b") as f:
                size = f.seek(0, 2)
                if size < 8192:
                    return  # a small chunk may be all header and trailer
                at = size // 2
                f.seek(at)
                byte = f.read(1)
                f.seek(at)
                f.write(bytes([byte[0] ^ 0xFF]))
        except FileNotFoundError:
            return  # collected meanwhile
        blob, index = path.stem.split("-")
        self.faults.corrupted[blob] = (node["id"], int(index))
        self.faults.injected["corrupt"] = self.faults.injected.get("corrupt", 0) + 1

    # -- metadata, gateway, scrubber --

    def kill_meta(self):
        if self.faults.meta_down is not None:
            return
        index = self.rng.randrange(len(self.metas))
        cmdline, environ = proc_identity(self.metas[index])
        kill9(self.metas[index])
        self.faults.meta_down = index
        self.faults.start("kill_meta", index)

        address = self.cluster.info["metadata"][index]["address"]

        def serving():
            # The fault lasts until the replica answers again, so that a
            # second one is never killed while the first is still starting.
            if not answers(f"{address}/health"):
                return self.due(0.2, serving)
            self.faults.meta_down = None
            self.faults.end("kill_meta", index)

        def back():
            self.metas[index] = self.spawn(cmdline, environ).pid
            serving()
        self.due(self.rng.uniform(1, 4), back)

    def kill_gateway(self):
        self.kill_restarted("gateway", "gateway_admin_endpoint")

    def kill_scrubber(self):
        self.kill_restarted("scrubber", "scrubber_endpoint")

    def kill_restarted(self, what, endpoint):
        """SIGKILLs a process cairn dev restarts; the fault lasts until the
        new one answers on its admin endpoint."""
        kind = f"kill_{what}"
        if (kind, what) in self.faults.open:
            return
        self.cluster.reload_info()
        old_pid = self.cluster.info[what]["pid"]
        url = f"{self.cluster.info[endpoint]}/health"
        kill9(old_pid)
        self.faults.start(kind, what)

        def check():
            self.cluster.reload_info()
            if self.cluster.info[what]["pid"] == old_pid or not answers(url):
                return self.due(0.2, check)
            self.faults.end(kind, what)
        self.due(0.2, check)

    def heal_all(self):
        """Every pending restoration now; then wait for the ones that poll."""
        deadline = time.monotonic() + 60
        while self.restore and time.monotonic() < deadline:
            for item in sorted(self.restore, key=lambda r: r[0]):
                self.restore.remove(item)
                item[1]()
            time.sleep(0.2)

    def stop(self):
        self.stop_event.set()

    def kill_children(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()


# ---- clients ----

def classify_failed_read(cluster, faults, op):
    """Why a GET failed: ('gateway', n), ('budget', unavailable),
    ('within_budget', unavailable) or ('unknown', reason)."""
    if faults.overlaps("kill_gateway", op.start, op.end):
        return "gateway", 0
    try:
        record = cluster.cairn("inspect", f"{BUCKET}/{op.key}", "--json")
    except AssertionError as e:
        return "unknown", f"inspect failed: {str(e)[:200]}"
    manifest = record["manifest"]
    if manifest.get("created_ms", 0) / 1000 > time.time() - (time.monotonic() - op.start):
        return "unknown", "the object was replaced since the GET began"
    down = faults.storage_faults_between(op.start, op.end)
    worst = 0
    for part in manifest["parts"]:
        corrupted = faults.corrupted.get(part["blob"])
        unavailable = 0
        for c in part["chunks"]:
            if c.get("state") == "missing" or c["node"] in down or corrupted == (c["node"], c["index"]):
                unavailable += 1
        worst = max(worst, unavailable)
    return ("within_budget" if worst <= cluster.info["m"] else "budget"), worst


def client_loop(cluster, s3, name, stop, history, lock, faults, failed_reads):
    rng = random.Random(name)
    seq = 0
    while not stop.is_set():
        key = rng.choice(KEYS)
        roll = rng.random()
        if roll < 0.35:
            seq += 1
            op = SoakOp("put", key, f"{name}-{seq}")
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=body_of(op.value))
                op.ok = True
            except Exception as e:
                op.error = repr(e)[:300]
        elif roll < 0.45:
            op = SoakOp("delete", key)
            try:
                s3.delete_object(Bucket=BUCKET, Key=key)
                op.ok = True
            except Exception:
                pass
        elif roll < 0.92:
            op = SoakOp("get", key)
            try:
                body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                op.result = value_of(body)
                if op.result is None:
                    op.corrupt = len(body)
                else:
                    op.ok = True
            except ClientError as e:
                if e.response["Error"]["Code"] == "NoSuchKey":
                    op.result, op.ok = INITIAL, True
                else:
                    op.error = f"{e.response['Error']['Code']}: {e.response['Error'].get('Message', '')}"[:300]
            except Exception as e:
                op.error = repr(e)[:300]
            if not op.ok and not op.corrupt:
                op.end = time.monotonic()
                failed_reads.append((op, classify_failed_read(cluster, faults, op)))
        else:
            op = SoakOp("list", None)
            try:
                listed = s3.list_objects_v2(Bucket=BUCKET)
                op.result = sorted(o["Key"] for o in listed.get("Contents", []))
                op.ok = True
            except Exception:
                pass
        if op.end is None:
            op.end = time.monotonic()
        with lock:
            history.append(op)


def p99(values):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 1)


def report(history, faults, failed_reads, nemesis, partitions, duration):
    done = [op for op in history if op.ok]
    by_kind = {k: sum(1 for op in done if op.kind == k) for k in ("put", "get", "delete", "list")}
    failed = {k: sum(1 for op in history if not op.ok and op.kind == k) for k in ("put", "get", "delete", "list")}
    latency = {}
    for phase in ("healthy", "faulted", "recovering"):
        ops = [op for op in done if faults.phase(op.start) == phase]
        failed_here = [op for op in history if not op.ok and faults.phase(op.start) == phase]
        latency[phase] = {k: {"ops": sum(1 for op in ops if op.kind == k),
                              "failed": sum(1 for op in failed_here if op.kind == k),
                              "p99_ms": p99([op.end - op.start for op in ops if op.kind == k])}
                          for k in ("put", "get", "delete", "list")}
    reasons = {}
    for _, (why, _) in failed_reads:
        reasons[why] = reasons.get(why, 0) + 1
    put_errors = {}
    for op in history:
        if op.kind == "put" and not op.ok and op.error:
            kind = op.error.split("(")[0][:80]
            put_errors[kind] = put_errors.get(kind, 0) + 1
    violations = check(history, KEYS)
    return {
        "seconds": duration,
        "operations_acknowledged": by_kind,
        "operations_failed": failed,
        "faults_injected": dict(sorted(faults.injected.items())),
        "fault_injection_errors": nemesis.errors[:10],
        "partitions": partitions,
        "acknowledged_writes_lost_or_stale_reads": len(violations),
        "violations": violations[:20],
        "corrupt_bytes_served": sum(op.corrupt for op in history),
        "failed_reads_by_cause": reasons,
        "reads_failed_with_at_most_m_chunks_unavailable": reasons.get("within_budget", 0),
        "failed_reads": [
            {"key": op.key, "phase": faults.phase(op.start), "cause": why, "detail": detail,
             "error": op.error, "seconds": round(op.end - op.start, 2)}
            for op, (why, detail) in failed_reads[:30]
        ],
        "put_errors": put_errors,
            "by_phase": latency,
    }


@pytest.fixture
def soak_cluster(tmp_path):
    net, partitions = try_netns()
    args = ["--repair-after", "5s", "--gc-grace", "30s"]
    if net:
        args += ["--host", net.host_ip]
    cluster = Cluster(tmp_path / "data", args)
    extra, extra_ids = [], []
    log = open(tmp_path / "nemesis-children.log", "w")
    try:
        if net:
            env = dict(os.environ, CAIRN_CLUSTER_SECRET=cluster.info["cluster_secret"])
            meta_urls = ",".join(m["address"] for m in cluster.info["metadata"])
            for i, (ns, address) in enumerate(zip(net.names, net.ips)):
                node_id = f"node-ns-{i + 1}"
                data_dir = tmp_path / node_id
                extra.append(subprocess.Popen(
                    ["ip", "netns", "exec", ns, str(BIN_DIR / "cairn-node"), "--id", node_id,
                     "--rack", "rack-ns", "--data-dir", str(data_dir), "--listen", f"{address}:0",
                     "--metadata-url", meta_urls],
                    env=env, stdout=log, stderr=log))
                extra_ids.append(node_id)
            wait_for_nodes(cluster, len(cluster.info["nodes"]) + len(extra_ids))
        yield cluster, net, extra_ids, partitions, log, tmp_path
    finally:
        for child in extra:
            child.kill()
            child.wait()
        cluster.stop()
        log.close()
        if net:
            net.teardown()


def wait_for_nodes(cluster, count, timeout=60):
    deadline = time.time() + timeout
    while True:
        nodes = cluster.cairn("nodes", "--json")
        if sum(1 for n in nodes if n["state"] == "up") >= count:
            return nodes
        assert time.time() < deadline, f"only {nodes} up"
        time.sleep(0.5)


def test_nemesis_soak_loses_nothing_serves_nothing_corrupt_and_reads_within_m(soak_cluster):
    cluster, net, extra_ids, partitions, log, tmp_path = soak_cluster
    s3 = cluster.client()
    s3.create_bucket(Bucket=BUCKET)
    faults = Faults()
    nemesis = Nemesis(cluster, faults, extra_ids, net, log)
    history, lock, failed_reads = [], threading.Lock(), []
    stop = threading.Event()
    clients = [
        threading.Thread(target=client_loop, args=(
            cluster, cluster.client(connect_timeout=5, read_timeout=30), f"c{i}", stop, history, lock,
            faults, failed_reads))
        for i in range(CLIENTS)
    ]
    started = time.monotonic()
    for t in clients:
        t.start()
    nemesis_thread = threading.Thread(target=nemesis.run)
    nemesis_thread.start()
    try:
        time.sleep(DURATION)
        nemesis.stop()
        nemesis_thread.join()
        # Recovering: every process back; the clients keep going a while.
        wait_for_nodes(cluster, len(cluster.info["nodes"]) + len(extra_ids))
        time.sleep(RECOVERING_S / 2)
        stop.set()
        for t in clients:
            t.join()
        final = cluster.client(connect_timeout=5, read_timeout=30)
        for key in KEYS:
            for _ in range(30):
                op = SoakOp("get", key)
                try:
                    body = final.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                    op.result = value_of(body)
                    op.ok = op.result is not None
                    op.corrupt = 0 if op.ok else len(body)
                except ClientError as e:
                    if e.response["Error"]["Code"] == "NoSuchKey":
                        op.result, op.ok = INITIAL, True
                except Exception:
                    pass
                op.end = time.monotonic()
                history.append(op)
                if op.ok or op.corrupt:
                    break
                time.sleep(1)
            assert op.ok, f"final read of {key} kept failing"
    finally:
        nemesis.stop()
        stop.set()
        nemesis.kill_children()
    result = report(history, faults, failed_reads, nemesis, partitions, round(time.monotonic() - started))
    text = json.dumps(result, indent=2)
    print(f"\nsoak report:\n{text}")
    (tmp_path / "soak-report.json").write_text(text)
    if REPORT:
        Path(REPORT).write_text(text)
    assert result["operations_acknowledged"]["put"] > 20 and result["operations_acknowledged"]["get"] > 20, text
    assert sum(faults.injected.values()) > 3, text
    assert result["acknowledged_writes_lost_or_stale_reads"] == 0, text
    assert result["corrupt_bytes_served"] == 0, text
    assert result["reads_failed_with_at_most_m_chunks_unavailable"] == 0, text
