"""A real Cairn cluster for the S3 tests, started the way users start one:
`cairn dev` (a metadata service, 12 storage-node processes in 4 racks, the
gateway), configured through its flags, found through its cluster.json."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("CAIRN_BIN_DIR", REPO / "target" / "debug"))
START_TIMEOUT = 120


def require_binaries():
    missing = [b for b in ("cairn", "cairn-meta", "cairn-node", "cairn-gateway", "cairn-scrubber")
               if not (BIN_DIR / b).is_file()]
    if missing:
        raise RuntimeError(f"{missing} not in {BIN_DIR}: run `cargo test --workspace` first (./dev test does)")


class Cluster:
    """`port=0` (the default) lets `cairn dev` bind every listener on a port
    the OS picks and report them in cluster.json: no port is chosen here and
    then taken by someone else before the cluster binds it."""

    def __init__(self, data_dir, extra_args=(), port=0, wait=True):
        require_binaries()
        self.data_dir = Path(data_dir)
        self.port = port
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}-cairn-dev.log", "w")
        self.process = subprocess.Popen(
            [str(BIN_DIR / "cairn"), "dev", "--data-dir", str(self.data_dir),
             "--port", str(port), "--bin-dir", str(BIN_DIR), *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_started()

    def wait_started(self):
        cluster_file = self.data_dir / "cluster.json"
        deadline = time.time() + START_TIMEOUT
        while not cluster_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"cairn dev exited: {self.output()}")
            if time.time() > deadline:
                raise RuntimeError(f"cairn dev did not start: {self.output()}")
            time.sleep(0.1)
        self.info = json.loads(cluster_file.read_text())
        self.endpoint = self.info["s3_endpoint"]
        # The S3 port as bound (the OS picked it when port=0).
        self.port = int(self.endpoint.rsplit(":", 1)[1])

    def output(self):
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

    def ca(self):
        """The cluster CA's certificate (`cairn dev --tls`), else None."""
        tls = self.info.get("tls")
        return tls["ca"] if tls else None

    def client(self, access_key=None, secret_key=None, **config):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            verify=self.ca(),
            aws_access_key_id=access_key or self.info["access_key"],
            aws_secret_access_key=secret_key or self.info["secret_key"],
            region_name=self.info["region"],
            config=Config(s3={"addressing_style": "path"},
                          retries={"max_attempts": 1, "mode": "standard"}, **config),
        )

    def node(self, node_id):
        return next(n for n in self.info["nodes"] if n["id"] == node_id)

    def kill9(self, node_id):
        """SIGKILL a storage node process and wait until it is gone."""
        pid = self.node(node_id)["pid"]
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # A zombie until cairn dev reaps it: check its state.
            try:
                if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                    return
            except FileNotFoundError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{node_id} (pid {pid}) did not die")

    def cairn(self, *args):
        """Runs the `cairn` command against this cluster; JSON output parsed."""
        result = subprocess.run(
            [str(BIN_DIR / "cairn"), "--cluster-file", str(self.data_dir / "cluster.json"), *args],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, f"cairn {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout) if "--json" in args else result.stdout

    def console(self):
        """A `requests` session signed in to the console (user admin, the
        cluster secret), and the console API's base URL."""
        import requests
        session = requests.Session()
        api = self.info["gateway_admin_endpoint"] + "/console/api"
        r = session.post(api + "/login", timeout=10,
                         json={"user": "admin", "password": self.info["cluster_secret"]})
        assert r.status_code == 200, r.text
        return session, api

    def reload_info(self):
        self.info = json.loads((self.data_dir / "cluster.json").read_text())

    def chunk_files(self):
        files = []
        for node in self.info["nodes"]:
            chunks = Path(node["data_dir"]) / "chunks"
            if chunks.exists():
                files += [p for p in chunks.rglob("*") if p.is_file()]
        return files

    def stop(self):
        """Ctrl-C equivalent; returns cairn dev's exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


# The shared cluster's second user.
BOB = ("bob", "bob-secret-key")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("api") / "data",
                ["--s3-domain", "s3.localhost", "--user", f"{BOB[0]}:{BOB[1]}"])
    yield c
    code = c.stop()
    assert code == 0, f"cairn dev did not stop cleanly ({code}): {c.output()}"
    assert not (c.data_dir / "cluster.json").exists(), "cluster.json outlived the cluster"


@pytest.fixture
def fresh_cluster(tmp_path):
    """A cluster of its own, for tests that kill nodes."""
    c = Cluster(tmp_path / "data")
    yield c
    c.stop()


@pytest.fixture
def make_cluster(tmp_path):
    """Clusters of their own with extra `cairn dev` flags."""
    clusters = []

    def make(*args):
        c = Cluster(tmp_path / f"data{len(clusters)}", list(args))
        clusters.append(c)
        return c

    yield make
    for c in clusters:
        c.stop()


@pytest.fixture(scope="session")
def s3(cluster):
    return cluster.client()


@pytest.fixture(scope="session")
def bob(cluster):
    """A second user of the shared cluster (owns nothing to begin with)."""
    return cluster.client(access_key=BOB[0], secret_key=BOB[1])


@pytest.fixture
def bucket(s3, request):
    name = "t-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-").strip("-")
    s3.create_bucket(Bucket=name)
    return name
