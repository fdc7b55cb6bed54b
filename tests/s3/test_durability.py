"""Killing storage nodes with SIGKILL under a `cairn dev` cluster: every
object still reads back byte-exact, through reconstruction from parity."""

import hashlib
import io
import os
import random
import signal
import re
import time
import urllib.request

from boto3.s3.transfer import TransferConfig

MiB = 1024 * 1024
STRIPE = 8 * 256 * 1024


def fill(s3, bucket):
    """Objects of awkward sizes, plus a 3-part multipart object."""
    s3.create_bucket(Bucket=bucket)
    objects = {}
    for size in (0, 1, 1000, STRIPE - 1, STRIPE + 1, 3 * STRIPE + 7, 9 * MiB):
        key = f"obj/{size}"
        objects[key] = os.urandom(size)
        s3.put_object(Bucket=bucket, Key=key, Body=objects[key])
    multipart = os.urandom(12 * MiB + 5)
    s3.upload_fileobj(
        io.BytesIO(multipart), bucket, "obj/multipart",
        Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB),
    )
    objects["obj/multipart"] = multipart
    return objects


def assert_all_readable(s3, bucket, objects):
    for key, data in objects.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.md5(body).digest() == hashlib.md5(data).digest(), key
        if len(data) > 10:
            a, b = len(data) // 3, len(data) // 3 + 2 * STRIPE
            ranged = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={a}-{b}")["Body"].read()
            assert ranged == data[a : b + 1], key


def metric(cluster, name):
    """A gateway counter's value (0 while the series does not exist)."""
    text = urllib.request.urlopen(cluster.info["gateway_admin_endpoint"] + "/metrics", timeout=30).read().decode()
    found = re.search(rf"^{re.escape(name)} (\d+)$", text, re.M)
    return int(found.group(1)) if found else 0


LOCAL_CHUNK_READS = 'cairn_gateway_chunk_reads_total{path="local"}'
HTTP_CHUNK_READS = 'cairn_gateway_chunk_reads_total{path="http"}'


def nodes_counter(cluster, name):
    """A counter of the storage nodes, summed over nodes and labels."""
    total = 0
    for node in cluster.info["nodes"]:
        request = urllib.request.Request(node["address"] + "/metrics",
                                         headers={"x-cairn-secret": cluster.info["cluster_secret"]})
        text = urllib.request.urlopen(request, timeout=30).read().decode()
        total += sum(int(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\d+)$", text, re.M))
    return total


def test_any_two_nodes_killed(fresh_cluster):
    seed = int(os.environ.get("CAIRN_TEST_SEED", time.time_ns() % 10_000))
    victims = random.Random(seed).sample([n["id"] for n in fresh_cluster.info["nodes"]], 2)
    print(f"seed {seed}: killing {victims}")
    s3 = fresh_cluster.client()
    objects = fill(s3, "two-down")
    for node in victims:
        fresh_cluster.kill9(node)
    assert_all_readable(s3, "two-down", objects)
    assert metric(fresh_cluster, "cairn_gateway_degraded_reads_total") > 0, "reads never had to work around the dead nodes"

    # Once the failure detector has marked them, writes carry on too.
    time.sleep(6)
    data = os.urandom(3 * STRIPE)
    s3.put_object(Bucket="two-down", Key="after", Body=data)
    assert s3.get_object(Bucket="two-down", Key="after")["Body"].read() == data
    # Its two unplaceable chunks are recorded missing, owed to repair.
    assert metric(fresh_cluster, "cairn_gateway_degraded_writes_total") >= 1


def test_a_whole_rack_and_one_more_node_killed(fresh_cluster):
    """m = 4 chunks of every stripe gone at once: rack-1 (3 nodes) plus one
    node of another rack."""
    seed = int(os.environ.get("CAIRN_TEST_SEED", time.time_ns() % 10_000))
    nodes = fresh_cluster.info["nodes"]
    rack = [n["id"] for n in nodes if n["rack"] == "rack-1"]
    assert len(rack) == 3
    extra = random.Random(seed).choice([n["id"] for n in nodes if n["rack"] != "rack-1"])
    print(f"seed {seed}: killing rack-1 {rack} and {extra}")
    s3 = fresh_cluster.client()
    objects = fill(s3, "rack-down")
    for node in rack + [extra]:
        fresh_cluster.kill9(node)
    assert_all_readable(s3, "rack-down", objects)


def new_chunks(cluster, before):
    """Chunk files created since `before`, as {(blob, index): path}."""
    out = {}
    for path in set(cluster.chunk_files()) - before:
        blob, index = path.stem.rsplit("-", 1)
        out[(blob, int(index))] = path
    return out


def test_corrupt_data_chunk_is_never_served(cluster, s3, bucket):
    """Bytes flipped on disk in two data chunks: the nodes send blocks
    without re-hashing them, the gateway's blake3 check (the receiver's)
    catches both, and it reconstructs from parity."""
    before = set(cluster.chunk_files())
    data = os.urandom(4 * STRIPE + 99)
    s3.put_object(Bucket=bucket, Key="rotting", Body=data)
    chunks = new_chunks(cluster, before)
    assert len(chunks) == 12, chunks
    for index in (0, 5):
        path = next(p for (blob, i), p in chunks.items() if i == index)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    reconstructed = metric(cluster, "cairn_gateway_reconstructed_stripes_total")
    corrupt = metric(cluster, "cairn_gateway_corrupt_chunks_total")
    local = metric(cluster, LOCAL_CHUNK_READS)
    assert s3.get_object(Bucket=bucket, Key="rotting")["Body"].read() == data
    assert metric(cluster, "cairn_gateway_reconstructed_stripes_total") > reconstructed
    assert metric(cluster, "cairn_gateway_corrupt_chunks_total") == corrupt + 2
    # The nodes run on the gateway's host: the chunks were read from their
    # files (short-circuit), and the gateway's own hash caught the damage.
    assert metric(cluster, LOCAL_CHUNK_READS) >= local + 8


def test_chunks_are_written_and_read_in_local_node_files_unless_told_not_to(cluster, s3, bucket, make_cluster):
    """Same host (short-circuit): each node hands the gateway descriptors of
    its chunk files, the gateway writes new chunks into them (the node checks
    and seals each) and reads chunks from them; with --no-short-circuit every
    chunk goes over HTTP and no node is asked. Same bytes either way, for the
    3-copy and the 8+4 size classes and a range."""
    sizes = {"copies": 300_000, "striped": 3 * STRIPE + 5}
    bodies = {key: os.urandom(size) for key, size in sizes.items()}

    def read_all(client, where):
        for key, body in bodies.items():
            client.put_object(Bucket=where, Key=key, Body=body)
            assert client.get_object(Bucket=where, Key=key)["Body"].read() == body
            got = client.get_object(Bucket=where, Key=key, Range="bytes=1000-250999")["Body"].read()
            assert got == body[1000:251000]

    local, http = metric(cluster, LOCAL_CHUNK_READS), metric(cluster, HTTP_CHUNK_READS)
    grants = nodes_counter(cluster, "cairn_node_local_reads_total")
    sealed = nodes_counter(cluster, "cairn_node_local_writes_total")
    read_all(s3, bucket)
    assert metric(cluster, LOCAL_CHUNK_READS) >= local + 1 + 1 + 8 + 1
    assert metric(cluster, HTTP_CHUNK_READS) == http
    assert nodes_counter(cluster, "cairn_node_local_reads_total") > grants
    # 3 copies + 12 chunks, all sealed by their nodes.
    sealed_now = nodes_counter(cluster, "cairn_node_local_writes_total")
    assert sealed_now >= sealed + 3 + 12
    # Chunks over 4 MiB go over HTTP, where nodes write full blocks with
    # direct I/O as they arrive (a local write would flush it all at the seal).
    big = os.urandom(8 * 5 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    assert nodes_counter(cluster, "cairn_node_local_writes_total") == sealed_now
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == big

    remote = make_cluster("--no-short-circuit")
    client = remote.client()
    client.create_bucket(Bucket="over-http")
    read_all(client, "over-http")
    assert metric(remote, LOCAL_CHUNK_READS) == 0
    assert metric(remote, HTTP_CHUNK_READS) >= 1 + 1 + 8 + 1
    assert nodes_counter(remote, "cairn_node_local_reads_total") == 0
    assert nodes_counter(remote, "cairn_node_local_writes_total") == 0


def test_a_hung_node_is_hedged_around(cluster, s3, bucket):
    """SIGSTOP a node holding a data chunk: the read does not wait for it."""
    before = set(cluster.chunk_files())
    data = os.urandom(2 * STRIPE)
    s3.put_object(Bucket=bucket, Key="slow", Body=data)
    chunks = new_chunks(cluster, before)
    path = next(p for (blob, i), p in chunks.items() if i == 0)
    node = next(n for n in cluster.info["nodes"] if str(path).startswith(n["data_dir"] + "/"))
    hedged = metric(cluster, "cairn_gateway_hedged_reads_total")
    os.kill(node["pid"], signal.SIGSTOP)
    try:
        assert s3.get_object(Bucket=bucket, Key="slow")["Body"].read() == data
    finally:
        os.kill(node["pid"], signal.SIGCONT)
    assert metric(cluster, "cairn_gateway_hedged_reads_total") > hedged


def test_a_stopped_node_does_not_hold_up_puts_written_into_its_files(cluster, s3, bucket):
    """SIGSTOP a node: short-circuit writes to it (create or seal on its
    socket) give up at the write deadline like HTTP ones, the PUT is
    acknowledged by the other copies and reads back exact."""
    node = cluster.info["nodes"][3]
    missing = metric(cluster, "cairn_gateway_degraded_writes_total")
    os.kill(node["pid"], signal.SIGSTOP)
    try:
        # 3 copies, and 8+4 (on 12 nodes every node holds one of its chunks).
        bodies = {f"stopped-{i}": os.urandom(200_000 + i) for i in range(4)}
        bodies.update({f"stopped-striped-{i}": os.urandom(2 * STRIPE + i) for i in range(2)})
        for key, body in bodies.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        for key, body in bodies.items():
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    finally:
        os.kill(node["pid"], signal.SIGCONT)
    # The striped PUTs had a chunk on the stopped node and went on without it.
    assert metric(cluster, "cairn_gateway_degraded_writes_total") > missing


def test_data_survives_a_restart_of_the_whole_cluster(tmp_path):
    """Ctrl-C stops every process cleanly; `cairn dev` on the same data dir
    serves the same objects again."""
    from conftest import Cluster

    data_dir = tmp_path / "data"
    first = Cluster(data_dir)
    s3 = first.client()
    objects = fill(s3, "restart")
    secret = first.info["cluster_secret"]
    assert first.stop() == 0, first.output()
    assert not (data_dir / "cluster.json").exists()

    second = Cluster(data_dir)
    try:
        assert second.info["cluster_secret"] == secret, "the cluster secret is kept"
        assert_all_readable(second.client(), "restart", objects)
    finally:
        assert second.stop() == 0
