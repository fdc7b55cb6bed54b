"""The scrubber under `cairn dev` clusters of real processes: a SIGKILLed
node is rebuilt elsewhere, flipped bytes are found (down to the block) and
repaired, jobs run on schedule and resume after the scrubber is killed, a
node back within the grace period costs nothing, and the rate limit holds
by the job's own counters."""

import collections
import hashlib
import http.client
import io
import os
import random
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from test_history import proc_identity, respawn

MiB = 1024 * 1024
BLOCK = 256 * 1024
STRIPE = 8 * BLOCK


def wait_until(what, predicate, timeout=90, interval=0.2):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def put_objects(s3, bucket, count, seed=1):
    """`count` objects of mixed sizes (empty to a few stripes, one
    multipart); returns {key: bytes}."""
    rng = random.Random(seed)
    s3.create_bucket(Bucket=bucket)
    objects = {}
    sizes = [0, 1, 4096, STRIPE - 1, STRIPE + 1, 3 * STRIPE + 17]
    for i in range(count - 1):
        size = sizes[i % len(sizes)] if i < len(sizes) else rng.randint(1, 2 * STRIPE)
        key = f"obj/{i:03}"
        objects[key] = os.urandom(size)
        s3.put_object(Bucket=bucket, Key=key, Body=objects[key])
    multipart = os.urandom(11 * MiB)
    s3.upload_fileobj(io.BytesIO(multipart), bucket, "obj/multipart",
                      Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    objects["obj/multipart"] = multipart
    return objects


def assert_readable(s3, bucket, objects):
    for key, data in objects.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.md5(body).digest() == hashlib.md5(data).digest(), key


def manifest(cluster, bucket, key):
    return cluster.cairn("inspect", f"{bucket}/{key}", "--json")["manifest"]


def repair_status(cluster):
    return cluster.cairn("repair", "status", "--json")


def chunk_path(cluster, node_id, blob, index):
    node = cluster.node(node_id)
    return Path(node["data_dir"]) / "chunks" / blob[:2] / f"{blob}-{index:03}.chunk"


def test_killed_node_is_rebuilt_elsewhere_with_read_amplification_k(make_cluster):
    # Every blob in 8+4 (no replicated small blobs): the amplification is k.
    cluster = make_cluster("--repair-after", "2s", "--replicated-max", "0")
    s3 = cluster.client()
    objects = put_objects(s3, "heal", 52)
    # 12 nodes and k+m = 12: every node holds one chunk of every blob.
    # The smallest objects (empty, 1 byte, 4 KiB) are inline: no chunks.
    victim = "node-05"
    chunked = [key for key in objects if manifest(cluster, "heal", key)["parts"]]
    held = [key for key in chunked
            if any(c["node"] == victim for p in manifest(cluster, "heal", key)["parts"] for c in p["chunks"])]
    assert held == chunked and len(chunked) >= 48
    blobs = sum(len(manifest(cluster, "heal", key)["parts"]) for key in objects)
    cluster.kill9(victim)

    status = wait_until("the repair of every chunk of the dead node", lambda: (
        (s := repair_status(cluster))["repaired_chunks"] >= blobs and s["queued"] + s["in_progress"] == 0 and s
    ), timeout=120)
    assert status["failures"] == 0
    assert victim in status["lost_nodes"]
    # Read amplification = bytes read / bytes rebuilt = k for Reed-Solomon.
    assert abs(status["read_amplification"] - 8.0) <= 0.08, status
    assert status["bytes_rebuilt"] > 0 and status["cross_rack_bytes"] > 0

    racks = {n["id"]: n["rack"] for n in cluster.info["nodes"]}
    for key in objects:
        for part in manifest(cluster, "heal", key)["parts"]:
            chunks = part["chunks"]
            assert len(chunks) == 12 and all(c["state"] == "stored" for c in chunks), (key, chunks)
            assert all(c["node"] != victim for c in chunks), key
            per_rack = collections.Counter(racks[c["node"]] for c in chunks)
            assert max(per_rack.values()) <= 4, (key, per_rack)
    # Byte-exact with the node still dead, and a scrub finds everything healthy.
    assert_readable(s3, "heal", objects)
    cluster.cairn("scrub", "start", "--bucket", "heal", "--wait")
    job = cluster.cairn("scrub", "jobs", "--json")[-1]
    results = job["last"]["results"]
    assert results["objects_checked"] == len(objects)
    assert results["chunks_corrupt"] == 0 and results["chunks_missing"] == 0, results


def test_flipped_bytes_are_found_to_the_block_and_repaired(fresh_cluster):
    cluster = fresh_cluster
    s3 = cluster.client()
    s3.create_bucket(Bucket="rot")
    objects = {f"file-{i}": os.urandom(3 * STRIPE) for i in range(8)}
    for key, data in objects.items():
        s3.put_object(Bucket="rot", Key=key, Body=data)
    nodes = random.Random(7).sample([n["id"] for n in cluster.info["nodes"]], 5)
    flipped = set()
    for (key, node), block in zip(zip(list(objects)[:5], nodes), [0, 1, 2, 1, 0]):
        part = manifest(cluster, "rot", key)["parts"][0]
        chunk = next(c for c in part["chunks"] if c["node"] == node)
        path = chunk_path(cluster, node, part["blob"], chunk["index"])
        raw = bytearray(path.read_bytes())
        # Blocks start at the header length the file records (64, or 4096
        # for a chunk written with direct I/O: ARCHITECTURE.md, chunk file v2).
        header_len = int.from_bytes(raw[10:12], "little")
        assert header_len in (64, 4096), header_len
        raw[header_len + block * BLOCK + 1000] ^= 0x5A
        path.write_bytes(bytes(raw))
        flipped.add((key, part["blob"], chunk["index"], node, (block,)))

    # The nodes send blocks without re-hashing them; the gateway's check
    # refuses the flipped ones and every GET is byte-exact.
    assert_readable(s3, "rot", objects)
    cluster.cairn("scrub", "start", "--bucket", "rot", "--wait")
    job = cluster.cairn("scrub", "jobs", "--json")[-1]
    results = job["last"]["results"]
    found = {(f["key"], f["blob"], f["index"], f["node"], tuple(f["blocks"])) for f in results["corrupt"]}
    assert found == flipped
    assert results["chunks_corrupt"] == 5 and results["chunks_missing"] == 0
    assert results["repairs_queued"] == 5

    wait_until("the five repairs", lambda: (
        (s := repair_status(cluster))["repaired_chunks"] >= 5 and s["queued"] + s["in_progress"] == 0
    ))
    assert_readable(s3, "rot", objects)
    cluster.cairn("scrub", "start", "--bucket", "rot", "--wait")
    again = cluster.cairn("scrub", "jobs", "--json")[-1]["last"]["results"]
    assert again["chunks_corrupt"] == 0 and again["chunks_missing"] == 0, again
    assert again["chunks_healthy"] == 8 * 12


def restart_scrubber_by_kill(cluster):
    """SIGKILL the scrubber; cairn dev starts it again."""
    old = cluster.info["scrubber"]["pid"]
    os.kill(old, signal.SIGKILL)
    def restarted():
        cluster.reload_info()
        return cluster.info["scrubber"]["pid"] != old
    wait_until("cairn dev to restart the scrubber", restarted)


def test_scheduled_jobs_persist_and_an_interrupted_job_resumes(fresh_cluster):
    cluster = fresh_cluster
    s3 = cluster.client()
    s3.create_bucket(Bucket="sched")
    for i in range(40):
        s3.put_object(Bucket="sched", Key=f"k{i:02}", Body=os.urandom(STRIPE))

    cluster.cairn("scrub", "schedule", "--every", "2s", "--bucket", "sched")
    scheduled = cluster.cairn("scrub", "jobs", "--json")[-1]
    wait_until("two runs", lambda: next(j for j in cluster.cairn("scrub", "jobs", "--json")
                                        if j["id"] == scheduled["id"])["runs"] >= 2)

    # A slow job (1 MiB/s over 40 × 3 MiB of chunks) killed mid-way resumes
    # from its checkpoint and counts every object exactly once.
    cluster.cairn("scrub", "start", "--bucket", "sched", "--rate", "8MiB/s", "--burst", "1MiB", "--priority", "9")
    slow = cluster.cairn("scrub", "jobs", "--json")[-1]
    def midway():
        job = cluster.cairn("scrub", "show", str(slow["id"]), "--json")
        run = job.get("current")
        return run and 5 <= run["results"]["objects_checked"] < 30 and run
    before = wait_until("the slow job to be midway", midway)
    restart_scrubber_by_kill(cluster)
    done = wait_until("the slow job to finish", lambda: (
        (j := cluster.cairn("scrub", "show", str(slow["id"]), "--json"))["state"] == "done" and j
    ), timeout=120)
    run = done["last"]
    assert run["resumed"] >= 1, run
    assert run["results"]["objects_checked"] == 40, run["results"]
    assert run["results"]["chunks_healthy"] == 40 * 12
    assert run["results"]["objects_checked"] >= before["results"]["objects_checked"]

    # The scheduled job survived the restart and keeps running.
    runs = next(j for j in cluster.cairn("scrub", "jobs", "--json") if j["id"] == scheduled["id"])["runs"]
    wait_until("another scheduled run after the restart", lambda: next(
        j for j in cluster.cairn("scrub", "jobs", "--json") if j["id"] == scheduled["id"])["runs"] > runs)
    cluster.cairn("scrub", "cancel", str(scheduled["id"]))


def test_rate_limit_holds_by_the_jobs_own_counters(fresh_cluster):
    cluster = fresh_cluster
    s3 = cluster.client()
    s3.create_bucket(Bucket="metered")
    for i in range(6):
        s3.put_object(Bucket="metered", Key=f"k{i}", Body=os.urandom(4 * STRIPE))
    rate, burst = 4 * MiB, 1 * MiB
    cluster.cairn("scrub", "start", "--bucket", "metered", "--rate", "4MiB/s", "--burst", "1MiB", "--wait")
    run = cluster.cairn("scrub", "jobs", "--json")[-1]["last"]
    checked = run["results"]["bytes_checked"]
    seconds = (run["finished_ms"] - run["started_ms"]) / 1000
    assert checked == 6 * 12 * 4 * BLOCK  # every chunk's bytes, counted once
    assert checked <= rate * seconds + burst, (checked, seconds)


def test_a_node_back_within_the_grace_period_triggers_no_repair(make_cluster):
    cluster = make_cluster("--repair-after", "60s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="grace")
    for i in range(5):
        s3.put_object(Bucket="grace", Key=f"k{i}", Body=os.urandom(STRIPE))
    node = cluster.node("node-07")
    cmdline = Path(f"/proc/{node['pid']}/cmdline").read_bytes().split(b"\0")[:-1]
    cluster.kill9("node-07")
    wait_until("node-07 to be marked down", lambda: next(
        n for n in cluster.cairn("nodes", "--json") if n["id"] == "node-07")["state"] == "down")
    # Restart it as cairn dev started it: same id, data dir and secret.
    env = dict(os.environ, CAIRN_CLUSTER_SECRET=cluster.info["cluster_secret"])
    log = open(cluster.data_dir / "logs" / "node-07-restarted.log", "w")
    process = subprocess.Popen([c.decode() for c in cmdline], env=env, stdout=log, stderr=log)
    try:
        wait_until("node-07 to be up again", lambda: next(
            n for n in cluster.cairn("nodes", "--json") if n["id"] == "node-07")["state"] == "up")
        time.sleep(2)  # several scrubber polls
        status = repair_status(cluster)
        assert status["queued"] == 0 and status["repaired_chunks"] == 0, status
        assert status["lost_nodes"] == []
        for i in range(5):
            part = manifest(cluster, "grace", f"k{i}")["parts"][0]
            assert sum(c["node"] == "node-07" for c in part["chunks"]) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_degraded_put_and_a_deleted_chunk_file_are_repaired(make_cluster):
    """Two nodes down when an object is written: its two unplaceable chunks
    are recorded missing and repaired without being asked. A chunk file
    deleted behind a node's back is found missing by a scrub and repaired."""
    cluster = make_cluster("--repair-after", "600s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="degraded")
    intact = os.urandom(STRIPE)
    s3.put_object(Bucket="degraded", Key="intact", Body=intact)
    for node in ("node-02", "node-11"):
        cluster.kill9(node)
    wait_until("both nodes marked down", lambda: sum(
        n["state"] == "down" for n in cluster.cairn("nodes", "--json")) == 2)
    data = os.urandom(2 * STRIPE + 3)
    s3.put_object(Bucket="degraded", Key="written-degraded", Body=data)
    chunks = manifest(cluster, "degraded", "written-degraded")["parts"][0]["chunks"]
    assert sum(c["state"] == "missing" for c in chunks) == 2, chunks

    wait_until("the two unplaced chunks repaired", lambda: repair_status(cluster)["repaired_chunks"] >= 2)
    chunks = manifest(cluster, "degraded", "written-degraded")["parts"][0]["chunks"]
    assert all(c["state"] == "stored" for c in chunks), chunks
    racks = {n["id"]: n["rack"] for n in cluster.info["nodes"]}
    assert max(collections.Counter(racks[c["node"]] for c in chunks).values()) <= 4
    assert s3.get_object(Bucket="degraded", Key="written-degraded")["Body"].read() == data

    part = manifest(cluster, "degraded", "intact")["parts"][0]
    victim = next(c for c in part["chunks"] if c["node"] not in ("node-02", "node-11"))
    chunk_path(cluster, victim["node"], part["blob"], victim["index"]).unlink()
    cluster.cairn("scrub", "start", "--bucket", "degraded", "--wait")
    results = cluster.cairn("scrub", "jobs", "--json")[-1]["last"]["results"]
    missing = [(f["blob"], f["index"]) for f in results["missing"]]
    assert missing == [(part["blob"], victim["index"])], results
    wait_until("the deleted chunk repaired", lambda: repair_status(cluster)["repaired_chunks"] >= 3)
    chunks = manifest(cluster, "degraded", "intact")["parts"][0]["chunks"]
    assert chunks[victim["index"]]["node"] != victim["node"] or chunk_path(
        cluster, victim["node"], part["blob"], victim["index"]).exists()
    assert s3.get_object(Bucket="degraded", Key="intact")["Body"].read() == intact


def test_garbage_is_collected_after_overwrites_and_from_a_node_back_too_late(make_cluster):
    cluster = make_cluster("--repair-after", "1s", "--gc-grace", "1s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="gcol")
    s3.put_object(Bucket="gcol", Key="k", Body=os.urandom(STRIPE))
    old = manifest(cluster, "gcol", "k")["parts"][0]
    old_files = [chunk_path(cluster, c["node"], old["blob"], c["index"]) for c in old["chunks"]]
    assert all(p.exists() for p in old_files)
    s3.put_object(Bucket="gcol", Key="k", Body=os.urandom(STRIPE))  # overwrite
    wait_until("the overwritten version's chunks to be deleted", lambda: not any(p.exists() for p in old_files))

    # A chunk no manifest references (as a gateway that died between writing
    # chunks and committing leaves behind): swept after the grace period.
    current = manifest(cluster, "gcol", "k")["parts"][0]
    first, second = current["chunks"][0], current["chunks"][1]
    source = chunk_path(cluster, first["node"], current["blob"], first["index"])
    orphan = chunk_path(cluster, second["node"], current["blob"], first["index"])
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(source.read_bytes())
    wait_until("the orphan to be swept", lambda: not orphan.exists(), timeout=60)
    assert source.exists(), "the referenced copy must stay"

    # node-09 dies, its chunk is rebuilt elsewhere; when it comes back its
    # stale copy is garbage.
    current = manifest(cluster, "gcol", "k")["parts"][0]
    stale = next(chunk_path(cluster, "node-09", current["blob"], c["index"])
                 for c in current["chunks"] if c["node"] == "node-09")
    cmdline = Path(f"/proc/{cluster.node('node-09')['pid']}/cmdline").read_bytes().split(b"\0")[:-1]
    cluster.kill9("node-09")
    wait_until("the repair", lambda: repair_status(cluster)["repaired_chunks"] >= 1)
    assert stale.exists(), "a dead node's files are untouched until it returns"
    env = dict(os.environ, CAIRN_CLUSTER_SECRET=cluster.info["cluster_secret"])
    log = open(cluster.data_dir / "logs" / "node-09-restarted.log", "w")
    process = subprocess.Popen([c.decode() for c in cmdline], env=env, stdout=log, stderr=log)
    try:
        wait_until("the stale chunk on the returned node to be deleted", lambda: not stale.exists())
        assert repair_status(cluster)["garbage_deleted"] >= 13
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_an_overwrite_while_a_get_streams_it_does_not_cut_the_get(make_cluster):
    """Garbage's grace period counts from when a chunk became garbage, not
    from the file's age. An object written well over a grace period ago is
    overwritten while a GET streams it (three parts, read slowly, so later
    parts' chunks are fetched after the overwrite) and sweeps run meanwhile:
    the GET completes byte-exact. After the grace period the old chunks go."""
    cluster = make_cluster("--gc-grace", "8s")
    s3 = cluster.client(read_timeout=60)
    s3.create_bucket(Bucket="stream")
    parts = [os.urandom(16 * MiB) for _ in range(3)]
    upload = s3.create_multipart_upload(Bucket="stream", Key="big")["UploadId"]
    etags = [s3.upload_part(Bucket="stream", Key="big", UploadId=upload, PartNumber=n,
                            Body=data)["ETag"] for n, data in enumerate(parts, 1)]
    s3.complete_multipart_upload(
        Bucket="stream", Key="big", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    old_files = [chunk_path(cluster, c["node"], part["blob"], c["index"])
                 for part in manifest(cluster, "stream", "big")["parts"] for c in part["chunks"]]
    assert all(p.exists() for p in old_files)
    time.sleep(9)  # every chunk file is now older than the grace period

    body = s3.get_object(Bucket="stream", Key="big")["Body"]
    got = [body.read(MiB)]
    s3.put_object(Bucket="stream", Key="big", Body=b"replaced")
    time.sleep(4)  # sweeps run every 2 s; the old version is garbage now
    while chunk := body.read(MiB):
        got.append(chunk)
    got = b"".join(got)
    assert len(got) == len(b"".join(parts)) and got == b"".join(parts), "the GET was cut or corrupted"
    assert s3.get_object(Bucket="stream", Key="big")["Body"].read() == b"replaced"
    wait_until("the old version's chunks to be deleted after the grace period",
               lambda: not any(p.exists() for p in old_files), timeout=60)


def test_a_gateway_killed_between_writing_chunks_and_committing_leaves_nothing(make_cluster, tmp_path):
    """kill -9 of the gateway mid-PUT, at the worst moment: every chunk of
    the object is written and the commit cannot be sent (every metadata
    replica was SIGKILLed under it; the gateway is looking for a leader). No
    object becomes visible once the replicas are back, cairn dev restarts
    the gateway, and the orphaned chunks are swept once a sweep has seen
    them unreferenced for the grace period. No temp file is left either."""
    cluster = make_cluster("--gc-grace", "3s")
    s3 = cluster.client(read_timeout=60)
    s3.create_bucket(Bucket="crash")
    s3.put_object(Bucket="crash", Key="kept", Body=b"committed before the crash")
    before = set(cluster.chunk_files())
    metas = [proc_identity(m["pid"]) + (m["pid"],) for m in cluster.info["metadata"]]
    gateway_pid = cluster.info["gateway"]["pid"]
    k_plus_m = cluster.info["k"] + cluster.info["m"]

    def temp_files():
        return [p for p in cluster.chunk_files() if p.name.startswith(".tmp-")]

    # One attempt only (an SDK would retry on the restarted gateway): a
    # presigned PUT over a plain connection.
    url = urllib.parse.urlsplit(s3.generate_presigned_url(
        "put_object", Params={"Bucket": "crash", "Key": "lost"}, ExpiresIn=600))

    def put():
        connection = http.client.HTTPConnection(url.netloc, timeout=120)
        try:
            connection.request("PUT", f"{url.path}?{url.query}", body=os.urandom(192 * MiB))
            connection.getresponse().read()
        except OSError:
            pass  # the gateway dies under it
        finally:
            connection.close()

    writer = threading.Thread(target=put)
    writer.start()
    respawned = []
    log = open(tmp_path / "respawned.log", "w")
    try:
        wait_until("chunk streams to start", temp_files, timeout=60, interval=0.02)
        for *_, pid in metas:
            os.kill(pid, signal.SIGKILL)
        # The chunks finish (nodes need no metadata to store them); the
        # commit finds no metadata replica and keeps looking for a leader.
        wait_until("every chunk written", lambda: not temp_files() and
                   len(set(cluster.chunk_files()) - before) == k_plus_m, timeout=60, interval=0.05)
        os.kill(gateway_pid, signal.SIGKILL)
        writer.join()
        orphans = set(cluster.chunk_files()) - before
        assert len(orphans) == k_plus_m
        for cmdline, environ, _ in metas:
            respawned.append(respawn(cmdline, environ, log))

        def restarted():
            cluster.reload_info()
            return cluster.info["gateway"]["pid"] != gateway_pid
        wait_until("cairn dev to restart the gateway", restarted, timeout=60)

        def head_lost():
            try:
                s3.head_object(Bucket="crash", Key="lost")
                return "visible"
            except ClientError as e:
                return "absent" if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404 else None
            except Exception:
                return None  # the new gateway or a leader is still starting
        assert wait_until("the restarted gateway to answer", head_lost, timeout=60) == "absent"
        assert s3.get_object(Bucket="crash", Key="kept")["Body"].read() == b"committed before the crash"
        wait_until("the orphaned chunks to be swept", lambda: not any(p.exists() for p in orphans),
                   timeout=90)
        assert not temp_files()
        assert set(cluster.chunk_files()) == before
    finally:
        for child in respawned:
            child.kill()
            child.wait()
        log.close()
