"""Inline objects: bodies up to `inline_max` (32 KiB in `cairn dev`) live in
their manifest, in the replicated catalogue, instead of as k+m chunks. Every
S3 operation that reads or writes a body must treat them exactly like chunked
objects, with a real client (boto3) against a real cluster."""

import hashlib
import os
import signal
import time

import pytest
from botocore.exceptions import ClientError

from test_chunked_sigv4 import crc32_b64, signed_chunked_put, unsigned_trailer_put

INLINE_MAX = 32 * 1024


def body(size, seed=0):
    """Deterministic, incompressible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def manifest(cluster, bucket, key):
    return cluster.cairn("inspect", f"{bucket}/{key}", "--json")["manifest"]


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.mark.parametrize("size", [0, 1, 4096, INLINE_MAX])
def test_inline_reads(cluster, s3, bucket, size):
    """Small objects are inline and read back through every read operation."""
    data = body(size, seed=size)
    put = s3.put_object(Bucket=bucket, Key="small", Body=data, ContentType="text/x-small",
                        Metadata={"colour": "teal"})
    m = manifest(cluster, bucket, "small")
    assert m["parts"] == [] and "inline" in m, m
    assert m["size"] == size

    got = s3.get_object(Bucket=bucket, Key="small")
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert got["ContentType"] == "text/x-small"
    assert got["Metadata"] == {"colour": "teal"}
    head = s3.head_object(Bucket=bucket, Key="small")
    assert head["ContentLength"] == size

    # Ranges, as S3 answers them.
    if size >= 100:
        for spec, want in [("bytes=0-0", data[:1]), ("bytes=10-99", data[10:100]),
                           ("bytes=-5", data[-5:]), (f"bytes={size - 7}-", data[-7:]),
                           (f"bytes=50-{size + 1000}", data[50:])]:
            r = s3.get_object(Bucket=bucket, Key="small", Range=spec)
            assert r["Body"].read() == want, spec
            assert r["ContentRange"].endswith(f"/{size}")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="small", Range=f"bytes={size + 10}-{size + 20}")
    assert error_code(e) == "InvalidRange"

    # Conditional GETs.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="small", IfNoneMatch=put["ETag"])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="small", IfMatch='"0123"')
    assert error_code(e) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="small", IfMatch=put["ETag"])["Body"].read() == data

    # Listing sizes and ETags.
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("small", size, put["ETag"])]


def test_the_threshold_is_inclusive_and_larger_or_undeclared_bodies_are_chunked(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="at", Body=body(INLINE_MAX))
    s3.put_object(Bucket=bucket, Key="above", Body=body(INLINE_MAX + 1))
    assert manifest(cluster, bucket, "at")["parts"] == []
    above = manifest(cluster, bucket, "above")
    assert len(above["parts"]) == 1 and "inline" not in above
    assert s3.get_object(Bucket=bucket, Key="above")["Body"].read() == body(INLINE_MAX + 1)

    # aws-chunked uploads (signed chunks; unsigned with a trailing
    # checksum) arrive in many pieces: small ones are assembled inline, a
    # wrong trailer stores nothing.
    for key, size in [("signed-small", 5000), ("signed-large", 3 * INLINE_MAX)]:
        data = body(size, seed=7)
        status, reply = signed_chunked_put(cluster, bucket, key, data, chunk_size=1000)
        assert status == 200, reply
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
        assert (manifest(cluster, bucket, key)["parts"] == []) == (size <= INLINE_MAX), key
    data = body(6000, seed=8)
    status, reply = unsigned_trailer_put(cluster, bucket, "trailer", data, crc32_b64(data), chunk_size=999)
    assert status == 200, reply
    assert s3.get_object(Bucket=bucket, Key="trailer")["Body"].read() == data
    assert manifest(cluster, bucket, "trailer")["parts"] == []
    status, reply = unsigned_trailer_put(cluster, bucket, "bad-trailer", data, crc32_b64(b"other"))
    assert b"BadDigest" in reply, (status, reply)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad-trailer")


def test_refused_small_bodies_store_nothing(cluster, s3, bucket):
    data = body(1000, seed=3)
    wrong_md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="  # MD5 of the empty string
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-md5", Body=data, ContentMD5=wrong_md5)
    assert error_code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-sha", Body=data,
                      ChecksumSHA256="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert error_code(e) == "BadDigest"
    for key in ["bad-md5", "bad-sha"]:
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key=key)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # A correct checksum is stored and answered.
    put = s3.put_object(Bucket=bucket, Key="good-sha", Body=data, ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"]
    assert s3.get_object(Bucket=bucket, Key="good-sha")["Body"].read() == data


def test_copies_of_inline_objects_and_overwrites_across_the_threshold(cluster, s3, bucket):
    small = body(2000, seed=11)
    s3.put_object(Bucket=bucket, Key="src", Body=small, Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == small
    assert s3.head_object(Bucket=bucket, Key="dst")["Metadata"] == {"a": "1"}
    assert manifest(cluster, bucket, "dst")["parts"] == []
    # Copy onto itself with new metadata.
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   Metadata={"b": "2"}, MetadataDirective="REPLACE")
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"b": "2"}
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == small

    # Overwrites: inline -> chunked -> inline, each read back exactly.
    large = body(200_000, seed=12)
    s3.put_object(Bucket=bucket, Key="src", Body=large)
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == large
    assert len(manifest(cluster, bucket, "src")["parts"]) == 1
    s3.put_object(Bucket=bucket, Key="src", Body=small)
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == small
    assert manifest(cluster, bucket, "src")["parts"] == []
    # A copy of a large source is chunked too.
    s3.put_object(Bucket=bucket, Key="big", Body=large)
    s3.copy_object(Bucket=bucket, Key="big-copy", CopySource={"Bucket": bucket, "Key": "big"})
    assert s3.get_object(Bucket=bucket, Key="big-copy")["Body"].read() == large
    assert len(manifest(cluster, bucket, "big-copy")["parts"]) == 1


def test_multipart_parts_are_never_inline(cluster, s3, bucket):
    first, last = body(5 * 1024 * 1024, seed=21), body(100, seed=22)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    parts = []
    for number, data in [(1, first), (2, last)]:
        etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=number,
                              Body=data)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                 MultipartUpload={"Parts": parts})
    m = manifest(cluster, bucket, "mp")
    assert "inline" not in m and len(m["parts"]) == 2
    assert m["parts"][1]["size"] == 100
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == first + last
    r = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={len(first) - 3}-{len(first) + 2}")
    assert r["Body"].read() == first[-3:] + last[:3]


def test_inline_objects_write_no_chunk_files(cluster, s3, bucket):
    before = len(cluster.chunk_files())
    for i in range(40):
        s3.put_object(Bucket=bucket, Key=f"tiny/{i}", Body=body(3000, seed=i))
    assert len(cluster.chunk_files()) <= before
    for i in range(40):
        assert s3.get_object(Bucket=bucket, Key=f"tiny/{i}")["Body"].read() == body(3000, seed=i)


def test_inline_objects_survive_the_loss_of_a_metadata_replica(fresh_cluster):
    cluster = fresh_cluster
    s3 = cluster.client()
    s3.create_bucket(Bucket="keep")
    objects = {f"k/{i}": body(500 + 97 * i, seed=100 + i) for i in range(30)}
    for key, data in objects.items():
        s3.put_object(Bucket="keep", Key=key, Body=data)
    # Kill the replica leading the object shard: its copy is gone and a
    # new leader serves from its own.
    status = cluster.cairn("meta", "status", "--json")
    leaders = {g["leader"] for replica in status if replica.get("status")
               for g in replica["status"]["groups"] if g["group"] == "shard-0"}
    leader = next(iter(leaders - {None}))
    url = next(r["url"] for r in status if r["replica"] == leader)
    pid = next(m["pid"] for m in cluster.info["metadata"] if m["address"] == url)
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while True:
        try:
            for key, data in objects.items():
                assert s3.get_object(Bucket="keep", Key=key)["Body"].read() == data
            break
        except ClientError:
            assert time.time() < deadline, "inline objects unreadable after a replica loss"
            time.sleep(0.5)
    # Writes go on with two of three.
    s3.put_object(Bucket="keep", Key="after", Body=b"written with one replica down")
    assert s3.get_object(Bucket="keep", Key="after")["Body"].read() == b"written with one replica down"


def test_cairn_durability_states_what_inline_objects_get(cluster):
    report = cluster.cairn("durability", "--json")
    classes = {c["name"].split(" ")[0]: c for c in report["classes"]}
    rs, inline = classes["RS(8,4)"], classes["inline"]
    assert (rs["pieces"], rs["racks"], rs["losses_readable"], rs["racks_readable"]) == (12, 4, 4, 1)
    assert rs["overhead"] == 1.5
    # Three metadata replicas in three racks: readable while a majority
    # lives, kept while one copy does.
    assert (inline["pieces"], inline["racks"], inline["losses_readable"], inline["losses_kept"]) == (3, 3, 1, 2)
    assert 0 < inline["p_lost"] < inline["p_unreadable"] < 1
    # Replicated blobs: three copies in three racks, readable after any two
    # losses (two whole racks included).
    copies = classes["3"]
    assert (copies["pieces"], copies["racks"], copies["losses_readable"], copies["racks_readable"]) == (3, 3, 2, 2)
    assert copies["overhead"] == 3.0
    text = cluster.cairn("durability")
    assert "inline" in text and "RS(8,4)" in text


def apply_on_catalogue(cluster, command):
    """Commits `command` on whichever replica leads the shard that owns it
    (the internal API, with the cluster secret): a test's way to put a
    record in the catalogue that no gateway would write."""
    import json
    import urllib.error
    import urllib.request
    import uuid
    body = json.dumps({"request_id": str(uuid.uuid4()), "command": command}).encode()
    answers = []
    for replica in cluster.info["metadata"]:
        for shard in range(8):
            request = urllib.request.Request(
                f"{replica['address']}/shards/{shard}/apply", data=body, method="POST",
                headers={"content-type": "application/json", "x-cairn-secret": cluster.info["cluster_secret"]})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                answers.append((replica["address"], shard, e.code))
    raise AssertionError(f"no replica applied it: {answers}")


def test_a_damaged_inline_body_is_never_served_and_the_scrub_reports_it(cluster, s3, bucket):
    import base64
    s3.put_object(Bucket=bucket, Key="good", Body=b"intact inline body")
    record = cluster.cairn("inspect", f"{bucket}/good", "--json")
    manifest_json = record["manifest"]
    # The same record with one byte of the body changed, as a damaged
    # catalogue row would read.
    damaged = bytearray(base64.b64decode(manifest_json["inline"]["data"]))
    damaged[3] ^= 0x01
    manifest_json["inline"]["data"] = base64.b64encode(bytes(damaged)).decode()
    apply_on_catalogue(cluster, {"op": "commit_object", "bucket": bucket, "key": "damaged",
                                 "manifest": manifest_json, "precondition": "none"})
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="damaged")["Body"].read()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert s3.get_object(Bucket=bucket, Key="good")["Body"].read() == b"intact inline body"
    assert "CORRUPT" in cluster.cairn("inspect", f"{bucket}/damaged")

    cluster.cairn("scrub", "start", "--bucket", bucket, "--wait")
    results = cluster.cairn("scrub", "jobs", "--json")[-1]["last"]["results"]
    assert results["inline_checked"] == 2, results
    assert results["inline_corrupt"] == [f"{bucket}/damaged"], results


def test_cairn_durability_describes_the_cluster_it_was_started_as(make_cluster):
    cluster = make_cluster("--nodes", "6", "--racks", "3", "-k", "4", "-m", "2",
                           "--replicated-max", "0", "--inline-max", "8KiB")
    names = [c["name"] for c in cluster.cairn("durability", "--json")["classes"]]
    assert any(n.startswith("RS(4,2)") for n in names), names
    assert not any("copies" in n for n in names), names
    assert any(n.startswith("inline (size <= 8192 B)") for n in names), names
