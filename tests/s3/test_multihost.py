"""A cluster on several "hosts": every metadata replica, every rack of
storage nodes and the gateway + scrubber host in a network namespace of its
own, with its own address on a bridge, bootstrapped and joined the way the
README's "Deploying on several hosts" says (`cairn cluster init`, `cairn
cluster join-token`, `cairn meta|node|gateway|scrubber join`), all traffic
over TLS. S3 clients (boto3) use HTTPS with the cluster CA; a whole rack is
then cut off (its link down): reads keep working, and repair starts after
the grace period."""

import hashlib
import json
import os
import re
import subprocess
import time
import urllib.request
import ssl
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import BIN_DIR, require_binaries

SUBNET = "10.204.0"
RACKS = 4
NODES_PER_RACK = 3
REPAIR_AFTER_MS = 4000


class Hosts:
    """A bridge in the root namespace (address .1) and one namespace per
    host, each joined to the bridge by a veth pair."""

    def __init__(self, names):
        tag = f"{os.getpid() % 10000:04d}"
        self.bridge = f"cmh{tag}"
        self.hosts = {}
        for i, name in enumerate(names):
            self.hosts[name] = {
                "ns": f"cmh{tag}{name}",
                "veth": f"cmh{tag}v{i}",
                "ip": f"{SUBNET}.{11 + i}",
            }
        self.created = False

    @staticmethod
    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def setup(self):
        self.ip("link", "add", self.bridge, "type", "bridge")
        self.created = True
        self.ip("addr", "add", f"{SUBNET}.1/24", "dev", self.bridge)
        self.ip("link", "set", self.bridge, "up")
        for host in self.hosts.values():
            inner = host["veth"] + "i"
            self.ip("netns", "add", host["ns"])
            self.ip("link", "add", host["veth"], "type", "veth", "peer", "name", inner)
            self.ip("link", "set", inner, "netns", host["ns"])
            self.ip("link", "set", host["veth"], "master", self.bridge, "up")
            self.ip("-n", host["ns"], "addr", "add", f"{host['ip']}/24", "dev", inner)
            self.ip("-n", host["ns"], "link", "set", inner, "up")
            self.ip("-n", host["ns"], "link", "set", "lo", "up")

    def link(self, name, up):
        self.ip("link", "set", self.hosts[name]["veth"], "up" if up else "down")

    def teardown(self):
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host["ns"]], capture_output=True)
        if self.created:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class Deployment:
    def __init__(self, root, hosts):
        self.root = root
        self.net = hosts
        self.processes = []
        self.logs = root / "logs"
        self.logs.mkdir()

    def host_ip(self, name):
        return self.net.hosts[name]["ip"]

    def etc(self, name):
        path = self.root / name / "etc"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_on(self, name, *args, env=None, timeout=60):
        """A `cairn` command on host `name` (in its namespace)."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.net.hosts[name]["ns"], str(BIN_DIR / "cairn"), *args],
            capture_output=True, text=True, timeout=timeout, env=env)
        assert result.returncode == 0, f"cairn {' '.join(args)} on {name}: {result.stderr}"
        return result.stdout

    def start_on(self, name, binary, config, label):
        log = open(self.logs / f"{label}.log", "w")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.net.hosts[name]["ns"], str(BIN_DIR / binary),
             "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})
        self.processes.append((label, process))
        return process

    def admin_env(self):
        etc = self.etc("m1")
        return {**os.environ,
                "CAIRN_META_URL": ",".join(f"https://{self.host_ip(m)}:7300" for m in self.metas),
                "CAIRN_CLUSTER_SECRET_FILE": str(etc / "cluster-secret"),
                "CAIRN_TLS_DIR": str(etc / "tls"),
                "CAIRN_SCRUBBER_URL": f"https://{self.host_ip('front')}:7500",
                "CAIRN_CLUSTER_FILE": str(self.root / "no-cluster.json")}

    def admin(self, *args, timeout=60):
        """`cairn` from the root namespace (the operator's machine)."""
        result = subprocess.run([str(BIN_DIR / "cairn"), *args], capture_output=True, text=True,
                                timeout=timeout, env=self.admin_env())
        assert result.returncode == 0, f"cairn {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout) if "--json" in args else result.stdout

    def healthy(self, url):
        """`url`/health answers, to a client with the admin certificate."""
        tls = self.etc("m1") / "tls"
        context = ssl.create_default_context(cafile=str(tls / "ca.pem"))
        context.load_cert_chain(str(tls / "admin.pem"), str(tls / "admin.key"))
        secret = (self.etc("m1") / "cluster-secret").read_text().strip()
        request = urllib.request.Request(f"{url}/health", headers={"x-cairn-secret": secret})
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return response.status == 200

    def token(self, role):
        return self.admin("cluster", "join-token", "--role", role, "--ttl", "10m").strip()

    def stop(self):
        for _, process in self.processes:
            if process.poll() is None:
                process.terminate()
        for _, process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs_tail(self):
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.logs.iterdir()))


def wait_for(what, check, timeout=90, every=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = e
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s (last error: {last})")


@pytest.fixture
def deployment(tmp_path):
    require_binaries()
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    metas = ["m1", "m2", "m3"]
    racks = [f"r{i}" for i in range(1, RACKS + 1)]
    hosts = Hosts(metas + racks + ["front"])
    try:
        hosts.setup()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        hosts.teardown()
        pytest.skip(f"cannot make network namespaces: {getattr(e, 'stderr', e)}")
    d = Deployment(tmp_path, hosts)
    d.metas = ["m1"]
    d.racks = racks
    try:
        yield d
    finally:
        d.stop()
        hosts.teardown()


def test_hosts_bootstrap_and_join_over_tls_and_survive_a_rack_cut_off(deployment):
    d = deployment
    # ---- the first metadata host ----
    m1 = d.etc("m1")
    out = subprocess.run(
        [str(BIN_DIR / "cairn"), "cluster", "init", "--address", d.host_ip("m1"),
         "--rack", "meta-a", "--dir", str(m1), "--data-dir", str(d.root / "m1" / "meta")],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (m1 / "tls" / "ca.key").stat().st_mode & 0o077 == 0
    assert (m1 / "cluster-secret").stat().st_mode & 0o077 == 0
    d.start_on("m1", "cairn-meta", m1 / "meta.toml", "meta-1")
    wait_for("meta-1 answers", lambda: d.healthy(f"https://{d.host_ip('m1')}:7300"))

    # ---- two more metadata replicas join ----
    for index, (name, rack) in enumerate([("m2", "meta-b"), ("m3", "meta-c")], start=2):
        etc = d.etc(name)
        d.run_on(name, "meta", "join", "--token", d.token("meta"), "--id", str(index),
                 "--address", d.host_ip(name), "--rack", rack, "--dir", str(etc),
                 "--data-dir", str(d.root / name / "meta"))
        assert (etc / "tls" / "ca.key").exists(), "a joined replica can admit hosts too"
        d.start_on(name, "cairn-meta", etc / "meta.toml", f"meta-{index}")
        url = f"https://{d.host_ip(name)}:7300"
        wait_for(f"meta-{index} listening", lambda: d.healthy(url))
        d.admin("meta", "add-replica", "--id", str(index), "--url", url, "--rack", rack,
                timeout=120)
        d.metas.append(name)
    status = d.admin("meta", "status", "--json")
    assert json.dumps(status).count("https://") >= 3, status

    # ---- racks of storage nodes ----
    for r, rack in enumerate(d.racks, start=1):
        etc = d.etc(rack)
        for disk in range(1, NODES_PER_RACK + 1):
            node_id = f"node-{r}-{disk}"
            d.run_on(rack, "node", "join", "--token", d.token("node"), "--id", node_id,
                     "--rack", f"rack-{r}", "--address", d.host_ip(rack), "--port", str(7400 + disk),
                     "--dir", str(etc), "--data-dir", str(d.root / rack / node_id))
            d.start_on(rack, "cairn-node", etc / f"node-{node_id}.toml", node_id)

    def all_nodes_up():
        nodes = d.admin("nodes", "--json")
        return len(nodes) == RACKS * NODES_PER_RACK and all(n["state"] == "up" for n in nodes)

    wait_for("every node up", all_nodes_up)

    # ---- the gateway and the scrubber ----
    front = d.etc("front")
    d.run_on("front", "gateway", "join", "--token", d.token("gateway"), "--address",
             d.host_ip("front"), "--s3-name", "s3.cairn.test", "--dir", str(front))
    d.run_on("front", "scrubber", "join", "--token", d.token("scrubber"), "--address",
             d.host_ip("front"), "--dir", str(front), "--data-dir", str(d.root / "front" / "scrubber"))
    scrubber_toml = front / "scrubber.toml"
    scrubber_toml.write_text(re.sub(r"(?m)^repair_after_ms = \d+", f"repair_after_ms = {REPAIR_AFTER_MS}",
                                    scrubber_toml.read_text()))
    d.start_on("front", "cairn-gateway", front / "gateway.toml", "gateway")
    d.start_on("front", "cairn-scrubber", scrubber_toml, "scrubber")
    user = d.admin("user", "create", "alice", "--json")
    ca = str(m1 / "tls" / "ca.pem")
    endpoint = f"https://{d.host_ip('front')}:9000"
    s3 = boto3.client("s3", endpoint_url=endpoint, verify=ca, region_name="us-east-1",
                      aws_access_key_id=user["access_key"],
                      aws_secret_access_key=user["secret_key"],
                      config=Config(s3={"addressing_style": "path"},
                                    retries={"max_attempts": 1, "mode": "standard"},
                                    connect_timeout=5, read_timeout=60))
    wait_for("the gateway serves S3 over HTTPS", lambda: s3.create_bucket(Bucket="hosts") or True,
             timeout=60)

    bodies = {f"obj-{size}": os.urandom(size)
              for size in (3 * 1024, 200 * 1024, 1024 * 1024, 3 * 1024 * 1024 + 5)}
    for key, body in bodies.items():
        s3.put_object(Bucket="hosts", Key=key, Body=body)
    for key, body in bodies.items():
        assert s3.get_object(Bucket="hosts", Key=key)["Body"].read() == body, key

    # ---- rack 4 is cut off: reads go on, repair starts ----
    d.net.link("r4", up=False)
    try:
        for key, body in bodies.items():
            got = s3.get_object(Bucket="hosts", Key=key)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), key

        def rack_down():
            nodes = d.admin("nodes", "--json")
            return all(n["state"] == "down" for n in nodes if n["rack"] == "rack-4")

        wait_for("rack-4's nodes marked down", rack_down, timeout=60)

        def repair_started():
            status = d.admin("repair", "status", "--json")
            return status["queued"] + status["in_progress"] + status["repaired_chunks"] > 0 and status

        status = wait_for("repair of rack-4's chunks started", repair_started, timeout=90)
        # Objects written while the rack is away are readable too.
        s3.put_object(Bucket="hosts", Key="during", Body=b"written while rack-4 is away")
        assert s3.get_object(Bucket="hosts", Key="during")["Body"].read() == b"written while rack-4 is away"
    finally:
        d.net.link("r4", up=True)
    print("repair status while rack-4 is away:", json.dumps(status))
    assert status["lost_nodes"] or status["repaired_chunks"] or status["queued"], status
