"""TLS everywhere (`cairn dev --tls`): HTTPS for S3 clients with the cluster
CA's certificate, mutual TLS between every Cairn process, and a capture of
all loopback traffic that finds neither object bytes nor the cluster secret."""

import contextlib
import hashlib
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, SSLError

from conftest import BIN_DIR
from test_awscli import AWS

# Sizes that take each storage path: inline in the catalogue, 3 copies, 8+4
# chunks over several stripes.
SIZES = {"inline": 4 * 1024, "copies": 300 * 1024, "striped": 3 * 1024 * 1024 + 17}


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    from conftest import Cluster

    c = Cluster(tmp_path_factory.mktemp("tls") / "data", ["--tls"])
    yield c
    c.stop()


def internal_context(cluster, with_client_cert=True):
    """What another Cairn process would use: trusts the cluster CA, presents
    the admin certificate (or, to test refusal, none)."""
    tls = cluster.info["tls"]
    context = ssl.create_default_context(cafile=tls["ca"])
    if with_client_cert:
        context.load_cert_chain(tls["cert"], tls["key"])
    return context


def internal_get(cluster, url, context):
    request = urllib.request.Request(url, headers={"x-cairn-secret": cluster.info["cluster_secret"]})
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return response.status, response.read()


def test_every_endpoint_of_a_tls_cluster_is_https(tls_cluster):
    info = tls_cluster.info
    urls = [info["s3_endpoint"], info["gateway_admin_endpoint"], info["scrubber_endpoint"],
            *info["admin_endpoint"].split(","), *(n["address"] for n in info["nodes"])]
    assert all(url.startswith("https://") for url in urls), urls
    # The registry (what the gateway and scrubber dial) says so too.
    nodes = tls_cluster.cairn("nodes", "--json")
    assert len(nodes) == 12
    assert all(n["address"].startswith("https://") for n in nodes), nodes
    assert all(n["state"] == "up" for n in nodes), nodes


def test_boto3_over_https_with_the_cluster_ca(tls_cluster):
    s3 = tls_cluster.client()
    s3.create_bucket(Bucket="tls-boto")
    bodies = {name: os.urandom(size) for name, size in SIZES.items()}
    for name, body in bodies.items():
        s3.put_object(Bucket="tls-boto", Key=name, Body=body)
    for name, body in bodies.items():
        got = s3.get_object(Bucket="tls-boto", Key=name)["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), name
    # A range from the middle of the striped object.
    ranged = s3.get_object(Bucket="tls-boto", Key="striped", Range="bytes=1000000-1000999")
    assert ranged["Body"].read() == bodies["striped"][1000000:1001000]
    # Multipart over TLS.
    upload = s3.create_multipart_upload(Bucket="tls-boto", Key="mp")["UploadId"]
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1234)]
    etags = [s3.upload_part(Bucket="tls-boto", Key="mp", UploadId=upload, PartNumber=i + 1,
                            Body=part)["ETag"] for i, part in enumerate(parts)]
    s3.complete_multipart_upload(
        Bucket="tls-boto", Key="mp", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    assert s3.get_object(Bucket="tls-boto", Key="mp")["Body"].read() == b"".join(parts)


def test_a_client_that_does_not_trust_the_cluster_ca_is_refused(tls_cluster):
    import boto3

    untrusting = boto3.client(
        "s3", endpoint_url=tls_cluster.endpoint, region_name=tls_cluster.info["region"],
        aws_access_key_id=tls_cluster.info["access_key"],
        aws_secret_access_key=tls_cluster.info["secret_key"])
    with pytest.raises(SSLError):
        untrusting.list_buckets()
    # Plain HTTP to the HTTPS port gets no S3 answer.
    plain = tls_cluster.endpoint.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError, http_client_errors())):
        urllib.request.urlopen(plain + "/", timeout=10).read()


def http_client_errors():
    import http.client

    return http.client.HTTPException


def test_aws_cli_over_https_with_ca_bundle(tls_cluster, tmp_path):
    env = {**os.environ,
           "AWS_ACCESS_KEY_ID": tls_cluster.info["access_key"],
           "AWS_SECRET_ACCESS_KEY": tls_cluster.info["secret_key"],
           "AWS_DEFAULT_REGION": tls_cluster.info["region"]}
    base = [str(AWS), "--endpoint-url", tls_cluster.endpoint, "--ca-bundle", tls_cluster.ca()]
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(9 * 1024 * 1024))  # multipart in aws-cli's default 8 MiB parts
    run = lambda *args: subprocess.run([*base, *args], env=env, capture_output=True, text=True,
                                       timeout=120)
    made = run("s3", "mb", "s3://tls-cli")
    assert made.returncode == 0, made.stderr
    up = run("s3", "cp", str(source), "s3://tls-cli/up.bin")
    assert up.returncode == 0, up.stderr
    down = run("s3", "cp", "s3://tls-cli/up.bin", str(tmp_path / "down.bin"))
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "down.bin").read_bytes() == source.read_bytes()
    # Without the bundle, aws-cli refuses the certificate.
    untrusted = subprocess.run([str(AWS), "--endpoint-url", tls_cluster.endpoint, "s3", "ls"],
                               env=env, capture_output=True, text=True, timeout=60)
    assert untrusted.returncode != 0
    assert "SSL" in untrusted.stderr or "certificate" in untrusted.stderr, untrusted.stderr


def test_internal_endpoints_demand_a_certificate_from_the_cluster_ca(tls_cluster):
    node = tls_cluster.info["nodes"][0]["address"]
    scrubber = tls_cluster.info["scrubber_endpoint"]
    meta = tls_cluster.info["admin_endpoint"].split(",")[0]
    admin = tls_cluster.info["gateway_admin_endpoint"]
    # With the cluster's client certificate (and the secret): answered.
    context = internal_context(tls_cluster)
    for url in (f"{node}/metrics", f"{scrubber}/metrics", f"{meta}/metrics", f"{admin}/metrics"):
        status, _ = internal_get(tls_cluster, url, context)
        assert status == 200, url
    # Without a client certificate, even with the secret: the handshake (or
    # the first read after it, in TLS 1.3) fails; nothing is answered.
    anonymous = internal_context(tls_cluster, with_client_cert=False)
    for url in (f"{node}/metrics", f"{meta}/metrics"):
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            internal_get(tls_cluster, url, anonymous)
    # The gateway's admin listener also serves the console to browsers,
    # which have no client certificate: it completes their handshake, and
    # answers its internal routes 401.
    for path in ("/metrics", "/health"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            internal_get(tls_cluster, admin + path, anonymous)
        assert refused.value.code == 401, path
    # A certificate from another CA is refused the same way.
    stranger = ssl.create_default_context(cafile=tls_cluster.ca())
    other_ca = Path(tls_cluster.data_dir).parent / "other-ca"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", "/CN=stranger", "-days", "1",
         "-keyout", str(other_ca) + ".key", "-out", str(other_ca) + ".pem"],
        capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    stranger.load_cert_chain(str(other_ca) + ".pem", str(other_ca) + ".key")
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        internal_get(tls_cluster, f"{node}/metrics", stranger)
    # Plain HTTP to an internal port gets nothing either.
    with pytest.raises((urllib.error.URLError, ConnectionError, http_client_errors())):
        urllib.request.urlopen(node.replace("https://", "http://") + "/metrics", timeout=10).read()


def test_console_over_https_signs_in_with_the_secret_not_a_certificate(tls_cluster):
    import requests
    admin = tls_cluster.info["gateway_admin_endpoint"]
    ca = tls_cluster.ca()
    assert requests.get(admin + "/console/api/cluster", verify=ca, timeout=10).status_code == 401
    # (`verify` on each call: requests lets REQUESTS_CA_BUNDLE override a
    # session's.)
    session = requests.Session()
    login = session.post(admin + "/console/api/login", timeout=10, verify=ca,
                         json={"user": "admin", "password": tls_cluster.info["cluster_secret"]})
    assert login.status_code == 200, login.text
    # Over HTTPS the session cookie is never sent in clear text.
    assert "Secure" in login.headers["set-cookie"]
    racks = session.get(admin + "/console/api/cluster", timeout=10, verify=ca).json()["racks"]
    assert sum(len(r["nodes"]) for r in racks) == 12
    # Repair and scrub come from the scrubber over mutual TLS.
    assert session.get(admin + "/console/api/repair", timeout=10, verify=ca).json()["status"]["queued"] == 0


def test_policies_see_secure_transport(tls_cluster):
    s3 = tls_cluster.client()
    s3.create_bucket(Bucket="tls-policy")
    s3.put_object(Bucket="tls-policy", Key="k", Body=b"over tls")
    s3.put_bucket_policy(Bucket="tls-policy", Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::tls-policy/*",
                       "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    assert s3.get_object(Bucket="tls-policy", Key="k")["Body"].read() == b"over tls"
    s3.put_bucket_policy(Bucket="tls-policy", Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::tls-policy/*",
                       "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}))
    with pytest.raises(ClientError) as denied:
        s3.get_object(Bucket="tls-policy", Key="k")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_cairn_bench_and_admin_commands_over_tls(tls_cluster):
    result = subprocess.run(
        [str(BIN_DIR / "cairn"), "--cluster-file", str(tls_cluster.data_dir / "cluster.json"),
         "bench", "--op", "put", "--size", "64KiB", "--count", "24", "--concurrency", "4", "--json"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["total"]["ops"] == 24 and report["total"]["errors"] == 0, report["total"]
    status = tls_cluster.cairn("repair", "status", "--json")
    assert {"queued", "in_progress", "repaired_chunks"} <= status.keys(), status


class LoopbackCapture:
    """Every packet on `lo` (an AF_PACKET socket: root, no tcpdump needed)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind(("lo", 0))
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 256 * 1024 * 1024)  # SO_RCVBUFFORCE
        self.sock.settimeout(0.2)
        self.packets = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping.is_set():
            try:
                self.packets.append(self.sock.recv(70000))
            except TimeoutError:
                continue
            except socket.timeout:
                continue

    def stop(self):
        time.sleep(0.5)
        self.stopping.set()
        self.thread.join()
        self.sock.close()
        return b"\x00".join(self.packets)


def test_a_capture_of_all_cluster_traffic_finds_no_object_bytes_and_no_secret(tls_cluster):
    s3 = tls_cluster.client()
    s3.create_bucket(Bucket="tls-capture")
    body = os.urandom(2 * 1024 * 1024 + 4096)
    small = os.urandom(200 * 1024)
    secret = tls_cluster.info["cluster_secret"].encode()
    capture = LoopbackCapture()
    try:
        # Control: bytes sent in clear on loopback during the capture are seen.
        marker = b"cairn-capture-marker-" + os.urandom(8).hex().encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(marker, ("127.0.0.1", 9))
        s3.put_object(Bucket="tls-capture", Key="big", Body=body)
        s3.put_object(Bucket="tls-capture", Key="small", Body=small)
        assert s3.get_object(Bucket="tls-capture", Key="big")["Body"].read() == body
        assert s3.get_object(Bucket="tls-capture", Key="small")["Body"].read() == small
        tls_cluster.cairn("nodes", "--json")  # the CLI's calls, with the secret
        time.sleep(1.5)  # heartbeats (every node sends the secret each second)
    finally:
        traffic = capture.stop()
    assert marker in traffic, "the capture saw nothing: the test would prove nothing"
    # Enough traffic was captured to have carried the objects (several times:
    # client, chunk writes, chunk reads).
    assert len(traffic) > 3 * len(body), len(traffic)
    assert secret not in traffic, "the cluster secret crossed loopback in clear text"
    for name, data in (("big", body), ("small", small)):
        samples = [data[offset:offset + 32] for offset in range(0, len(data) - 32, len(data) // 97)]
        seen = [i for i, sample in enumerate(samples) if sample in traffic]
        assert not seen, f"{len(seen)} of {len(samples)} samples of {name} crossed loopback in clear text"


def test_the_same_capture_of_a_plain_cluster_finds_both(cluster):
    """The control of the test above: without --tls, the capture sees the
    object's bytes and the secret (so not finding them there means TLS)."""
    s3 = cluster.client()
    s3.create_bucket(Bucket="plain-capture")
    body = os.urandom(2 * 1024 * 1024 + 4096)
    capture = LoopbackCapture()
    try:
        s3.put_object(Bucket="plain-capture", Key="big", Body=body)
        assert s3.get_object(Bucket="plain-capture", Key="big")["Body"].read() == body
        time.sleep(1.5)
    finally:
        traffic = capture.stop()
    assert cluster.info["cluster_secret"].encode() in traffic
    samples = [body[offset:offset + 32] for offset in range(0, len(body) - 32, len(body) // 97)]
    seen = sum(sample in traffic for sample in samples)
    assert seen > len(samples) // 2, f"only {seen} of {len(samples)} samples seen"


def test_joining_takes_a_valid_token_for_the_role(tls_cluster, tmp_path):
    """`cairn node join` against the dev cluster's replicas: a token for
    another role, an edited one or an expired one gets no certificate; a
    good one does, and the certificate is the cluster CA's."""
    cairn = [str(BIN_DIR / "cairn"), "--cluster-file", str(tls_cluster.data_dir / "cluster.json")]

    def token(role, ttl="10m"):
        out = subprocess.run([*cairn, "cluster", "join-token", "--role", role, "--ttl", ttl],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def join(text, where):
        return subprocess.run(
            [str(BIN_DIR / "cairn"), "node", "join", "--token", text, "--id", "node-99",
             "--rack", "rack-9", "--address", "127.0.0.1", "--dir", str(tmp_path / where),
             "--data-dir", str(tmp_path / where / "data")],
            capture_output=True, text=True, timeout=60)

    refused = join(token("gateway"), "wrong-role")
    assert refused.returncode != 0 and "gateway" in refused.stderr, refused.stderr
    edited = token("gateway").replace(".gateway.", ".node.", 1)
    refused = join(edited, "edited")
    assert refused.returncode != 0 and "not valid for this cluster" in refused.stderr, refused.stderr
    short = token("node", "1s")
    time.sleep(1.5)
    refused = join(short, "expired")
    assert refused.returncode != 0 and "expired" in refused.stderr, refused.stderr
    assert not (tmp_path / "expired" / "cluster-secret").exists()

    # S3 names are a gateway's: a node asking for them is refused, not ignored.
    meta = tls_cluster.info["admin_endpoint"].split(",")[0]
    request = urllib.request.Request(
        f"{meta}/join", method="POST", headers={"content-type": "application/json"},
        data=json.dumps({"token": token("node"), "role": "node", "name": "node-98",
                         "addresses": ["127.0.0.1"], "s3_names": ["s3.example"]}).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=ssl.create_default_context(cafile=tls_cluster.ca()),
                               timeout=10)
    assert refused.value.code == 400

    joined = join(token("node"), "good")
    assert joined.returncode == 0, joined.stderr
    good = tmp_path / "good"
    assert (good / "tls" / "ca.pem").read_text() == Path(tls_cluster.ca()).read_text()
    assert (good / "cluster-secret").read_text().strip() == tls_cluster.info["cluster_secret"]
    assert (good / "tls" / "node-99.key").stat().st_mode & 0o077 == 0
    config = (good / "node-node-99.toml").read_text()
    assert 'advertise_url = "https://127.0.0.1:7401"' in config and "[tls]" in config, config
    verified = subprocess.run(["openssl", "verify", "-CAfile", tls_cluster.ca(),
                               str(good / "tls" / "node-99.pem")], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The joined identity is a member: it is answered by a node.
    context = ssl.create_default_context(cafile=tls_cluster.ca())
    context.load_cert_chain(str(good / "tls" / "node-99.pem"), str(good / "tls" / "node-99.key"))
    status, _ = internal_get(tls_cluster, tls_cluster.info["nodes"][0]["address"] + "/metrics", context)
    assert status == 200


def test_sse_c_works_over_https(tls_cluster):
    """Over HTTPS the customer's key is protected in transit, so SSE-C is
    served (a plain-HTTP gateway refuses it: tests/tests/data_path.rs)."""
    s3 = tls_cluster.client()
    s3.create_bucket(Bucket="tls-ssec")
    key = os.urandom(32)
    body = os.urandom(300 * 1024)
    s3.put_object(Bucket="tls-ssec", Key="k", Body=body, SSECustomerAlgorithm="AES256",
                  SSECustomerKey=key)
    got = s3.get_object(Bucket="tls-ssec", Key="k", SSECustomerAlgorithm="AES256",
                        SSECustomerKey=key)
    assert got["Body"].read() == body
    assert got["SSECustomerAlgorithm"] == "AES256"
