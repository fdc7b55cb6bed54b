"""Storage classes per bucket (`x-cairn-storage-class` at CreateBucket,
`cairn bucket class`), and the locally repairable code: a killed node's
LRC(12,2,2) chunks are rebuilt from their group (read amplification about
6, not k = 12) with fewer cross-rack bytes than RS(12,4) at the same
overhead on the same data, and every object reads back byte-exact."""

import collections
import hashlib
import os
import subprocess
import time

import pytest

from conftest import BIN_DIR

from test_scrub_repair import manifest, repair_status, wait_until  # noqa: F401

MiB = 1 << 20
LRC = "LRC(12,2,2)"
RS = "RS(12,4)"


def with_class(s3, class_name):
    """Adds the storage-class header to CreateBucket requests (signed)."""
    def add(request, **_):
        request.headers["x-cairn-storage-class"] = class_name
    s3.meta.events.register("before-sign.s3.CreateBucket", add)
    return s3


@pytest.fixture
def wide_cluster(make_cluster):
    # 18 nodes in 6 racks: room for 16 chunks at 3 per rack (an LRC(12,2,2)
    # survives any 3 losses, so any one rack), and a replacement for each.
    return make_cluster("--nodes", "18", "--racks", "6", "--repair-after", "2s",
                        "--replicated-max", "0")


def test_buckets_choose_their_code_and_an_lrc_repairs_from_its_group(wide_cluster):
    cluster = wide_cluster
    lrc_client = with_class(cluster.client(), LRC)
    lrc_client.create_bucket(Bucket="lrc-bucket")
    plain = cluster.client()
    plain.create_bucket(Bucket="rs-bucket")
    assert cluster.cairn("bucket", "class", "rs-bucket").strip() == "rs-bucket: the gateway's default code"
    set_rs = cluster.cairn("bucket", "class", "rs-bucket", RS)
    assert "RS(12,4)" in set_rs and "survives any 4" in set_rs, set_rs
    assert cluster.cairn("bucket", "class", "lrc-bucket").strip() == f"lrc-bucket: {LRC}"

    # The same data in both buckets, every object the same size (3 stripes
    # and a tail), so each rebuilt chunk weighs the same.
    bodies = {f"obj-{i}": os.urandom(3 * 12 * 256 * 1024 + 1000) for i in range(10)}
    for key, body in bodies.items():
        plain.put_object(Bucket="lrc-bucket", Key=key, Body=body)
        plain.put_object(Bucket="rs-bucket", Key=key, Body=body)
    bodies_lrc = bodies

    racks = {n["id"]: n["rack"] for n in cluster.info["nodes"]}
    for key in bodies_lrc:
        for part in manifest(cluster, "lrc-bucket", key)["parts"]:
            codec = part["codec"]
            assert (codec["k"], codec["m"], codec.get("local_groups")) == (12, 4, 2), codec
            per_rack = collections.Counter(racks[c["node"]] for c in part["chunks"])
            assert max(per_rack.values()) <= 3, (key, per_rack)
            # Each local group (6 data + its parity) in 3 racks.
            for group in (list(range(0, 6)) + [12], list(range(6, 12)) + [13]):
                assert len({racks[part["chunks"][i]["node"]] for i in group}) == 3, (key, group)
    for key in bodies:
        codec = manifest(cluster, "rs-bucket", key)["parts"][0]["codec"]
        assert (codec["k"], codec["m"], codec.get("local_groups", 0)) == (12, 4, 0), codec
    inspected = cluster.cairn("inspect", "lrc-bucket/obj-0")
    assert LRC in inspected, inspected

    # `cairn durability --class` compares them on this topology.
    report = cluster.cairn("durability", "--class", RS, "--class", LRC, "--json")
    by_name = {c["name"].split(" ")[0]: c for c in report["classes"]}
    assert by_name[LRC]["repair_reads"] == 6.75 and by_name[RS]["repair_reads"] == 12
    assert by_name[LRC]["losses_readable"] == 3 and by_name[RS]["losses_readable"] == 4
    assert by_name[LRC]["cross_rack_share"] < by_name[RS]["cross_rack_share"]

    # A node holding a chunk of every blob of both buckets dies.
    victim = collections.Counter(
        c["node"] for b in ("lrc-bucket", "rs-bucket") for key in bodies
        for c in manifest(cluster, b, key)["parts"][0]["chunks"]).most_common(1)[0][0]
    held = {b: [k for k in bodies if any(c["node"] == victim for c in manifest(cluster, b, k)["parts"][0]["chunks"])]
            for b in ("lrc-bucket", "rs-bucket")}
    assert held["lrc-bucket"] and held["rs-bucket"], held
    manifest_before = {key: manifest(cluster, "lrc-bucket", key)["parts"][0]["chunks"] for key in bodies}
    cluster.kill9(victim)
    status = wait_until("the dead node's chunks rebuilt", lambda: (
        (s := repair_status(cluster))["queued"] + s["in_progress"] == 0
        and victim in s["lost_nodes"] and s["repaired_chunks"] > 0 and s
    ), timeout=180)
    assert status["failures"] == 0, status
    lrc, rs = status["by_class"][LRC], status["by_class"][RS]
    # A data or local-parity chunk comes back from the 6 others of its
    # group, a global parity from 12 (RS(12,4) always reads 12): the
    # measured amplification is exactly that mix of the chunks lost.
    lost = [c["index"] for key in held["lrc-bucket"] for c in manifest_before[key] if c["node"] == victim]
    expected = sum(6 if index < 14 else 12 for index in lost) / len(lost)
    assert lrc["repaired_chunks"] == len(lost), (lrc, lost)
    assert abs(lrc["bytes_read"] / lrc["bytes_rebuilt"] - expected) < 0.01, (lrc, lost)
    assert expected < 12 and lost.count(14) + lost.count(15) < len(lost)
    assert abs(rs["bytes_read"] / rs["bytes_rebuilt"] - 12.0) < 0.01, rs
    # Per byte rebuilt, LRC reads less across racks than RS on the same data.
    assert lrc["cross_rack_bytes"] / lrc["bytes_rebuilt"] < rs["cross_rack_bytes"] / rs["bytes_rebuilt"], (lrc, rs)
    printed = cluster.cairn("repair", "status")
    assert LRC in printed and "AMPLIFICATION" in printed, printed

    # Every object byte-exact with the node still dead, no chunk on it.
    for bucket, objects in (("lrc-bucket", bodies_lrc), ("rs-bucket", bodies)):
        for key, body in objects.items():
            got = plain.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), (bucket, key)
            for part in manifest(cluster, bucket, key)["parts"]:
                assert all(c["node"] != victim and c["state"] == "stored" for c in part["chunks"]), key


def test_degraded_lrc_reads_and_classes_that_cannot_be_placed(wide_cluster):
    cluster = wide_cluster
    s3 = with_class(cluster.client(), LRC)
    s3.create_bucket(Bucket="degraded")
    body = os.urandom(2 * 12 * 256 * 1024 + 77)
    s3.put_object(Bucket="degraded", Key="k", Body=body)
    chunks = manifest(cluster, "degraded", "k")["parts"][0]["chunks"]
    # Multipart parts follow the bucket's class too.
    parts = [os.urandom(5 * MiB), os.urandom(2 * MiB)]
    upload = s3.create_multipart_upload(Bucket="degraded", Key="multi")
    etags = [s3.upload_part(Bucket="degraded", Key="multi", UploadId=upload["UploadId"], PartNumber=n + 1,
                            Body=part)["ETag"] for n, part in enumerate(parts)]
    s3.complete_multipart_upload(Bucket="degraded", Key="multi", UploadId=upload["UploadId"], MultipartUpload={
        "Parts": [{"ETag": e, "PartNumber": n + 1} for n, e in enumerate(etags)]})
    for part in manifest(cluster, "degraded", "multi")["parts"]:
        assert part["codec"].get("local_groups") == 2, part["codec"]
    # Three chunks of one group down (the most an LRC(12,2,2) is sure to
    # survive): data 0 and 1 and the group's local parity. A read then needs
    # the global parities.
    for index in (0, 1, 12):
        cluster.kill9(chunks[index]["node"])
    assert s3.get_object(Bucket="degraded", Key="k")["Body"].read() == body
    assert s3.get_object(Bucket="degraded", Key="multi")["Body"].read() == b"".join(parts)
    assert s3.get_object(Bucket="degraded", Key="k", Range="bytes=100-300000")["Body"].read() == body[100:300001]

    # A class this topology cannot place is refused, saying why.
    with pytest.raises(Exception) as refused:
        with_class(cluster.client(), "LRC(24,2,2)").create_bucket(Bucket="too-wide")
    assert "InvalidStorageClass" in str(refused.value), refused.value
    with pytest.raises(Exception) as malformed:
        with_class(cluster.client(), "RAID5").create_bucket(Bucket="nonsense")
    assert "InvalidStorageClass" in str(malformed.value), malformed.value
    denied = subprocess.run(
        [str(BIN_DIR / "cairn"), "--cluster-file", str(cluster.data_dir / "cluster.json"),
         "bucket", "class", "degraded", "RS(20,2)"], capture_output=True, text=True, timeout=60)
    assert denied.returncode != 0 and "cannot be placed" in denied.stderr, denied.stderr


@pytest.mark.parametrize("class_name, k, m, groups", [("LRC(8,2,2)", 8, 4, 2), ("RS(4,2)", 4, 2, 0)])
def test_other_classes_on_the_default_cluster(cluster, class_name, k, m, groups):
    # 12 nodes in 4 racks: LRC(8,2,2) places its 12 chunks at 3 per rack.
    s3 = with_class(cluster.client(), class_name)
    bucket = "class-" + class_name.lower().replace("(", "-").replace(")", "").replace(",", "-")
    s3.create_bucket(Bucket=bucket)
    assert cluster.cairn("bucket", "class", bucket).strip() == f"{bucket}: {class_name}"
    body = os.urandom(5 * MiB + 3)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=1000-2000000")["Body"].read() == body[1000:2000001]
    codec = manifest(cluster, bucket, "k")["parts"][0]["codec"]
    assert (codec["k"], codec["m"], codec.get("local_groups", 0)) == (k, m, groups), codec
    # Back to the gateway's code for new blobs; the old one keeps its own.
    assert "default code" in cluster.cairn("bucket", "class", bucket, "--default")
    time.sleep(2.1)  # the gateway trusts a bucket's class for up to 2 s
    s3.put_object(Bucket=bucket, Key="later", Body=body)
    assert manifest(cluster, bucket, "later")["parts"][0]["codec"]["k"] == cluster.info["k"]
    assert manifest(cluster, bucket, "k")["parts"][0]["codec"]["k"] == k


def test_per_object_storage_classes_other_than_standard_are_refused(s3, bucket):
    from botocore.exceptions import ClientError
    s3.put_object(Bucket=bucket, Key="std", Body=b"x", StorageClass="STANDARD")
    refused_calls = [
        lambda: s3.put_object(Bucket=bucket, Key="ia", Body=b"x", StorageClass="STANDARD_IA"),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="ia", StorageClass="GLACIER"),
        lambda: s3.copy_object(Bucket=bucket, Key="ia", CopySource={"Bucket": bucket, "Key": "std"},
                               StorageClass="ONEZONE_IA"),
    ]
    for call in refused_calls:
        with pytest.raises(ClientError) as refused:
            call()
        error = refused.value.response
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidStorageClass", 400)
    # Cairn's bucket-class header on an object write would be ignored: refused.
    def add(request, **_):
        request.headers["x-cairn-storage-class"] = "LRC(8,2,2)"
    s3.meta.events.register("before-sign.s3.PutObject", add)
    try:
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket=bucket, Key="ia", Body=b"x")
        assert refused.value.response["Error"]["Code"] == "InvalidStorageClass"
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObject", add)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="ia")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
