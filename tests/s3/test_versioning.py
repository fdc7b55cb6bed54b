"""S3 versioning with a real client (boto3) against a real cluster: version
ids on writes, reads and deletes by version, delete markers, the `null`
version of unversioned and suspended writes, ListObjectVersions with its
markers, DeleteObjects with versions, copies from a version, conditional
writes, and every version surviving a node's loss."""

import datetime
import hashlib
import os
import time

import pytest
from botocore.exceptions import ClientError

from test_inline import body, error_code, manifest

# One body of each storage class `cairn dev` uses: inline, 3 copies, 8+4.
SIZES = [1000, 200_000, 3_000_000]


def versioned(s3, bucket, status="Enabled"):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def all_versions(s3, bucket, **kw):
    """Every version and delete marker, following the listing's markers."""
    versions, markers, prefixes, pages = [], [], [], 0
    args = dict(kw)
    while True:
        page = s3.list_object_versions(Bucket=bucket, **args)
        pages += 1
        versions += page.get("Versions", [])
        markers += page.get("DeleteMarkers", [])
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            return versions, markers, prefixes, pages
        args["KeyMarker"] = page["NextKeyMarker"]
        if page.get("NextVersionIdMarker"):
            args["VersionIdMarker"] = page["NextVersionIdMarker"]
        else:
            args.pop("VersionIdMarker", None)


def test_versioning_status_round_trip(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    versioned(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    versioned(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    with pytest.raises(ClientError) as bad:
        versioned(s3, bucket, "Off")
    assert error_code(bad) == "MalformedXML"
    with pytest.raises(ClientError) as missing:
        s3.get_bucket_versioning(Bucket="no-such-bucket-here")
    assert error_code(missing) == "NoSuchBucket"


def test_unversioned_writes_report_no_version_id(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"plain")
    assert "VersionId" not in put
    got = s3.get_object(Bucket=bucket, Key="k")
    assert "VersionId" not in got
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert "VersionId" not in deleted and "DeleteMarker" not in deleted
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_code(gone) == "NoSuchKey"


def test_every_overwrite_is_a_version_read_back_byte_exact(s3, bucket):
    versioned(s3, bucket)
    written = []
    for i, size in enumerate(SIZES + [500]):
        data = body(size, seed=i)
        put = s3.put_object(Bucket=bucket, Key="doc", Body=data)
        assert put["VersionId"] and put["VersionId"] != "null"
        written.append((put["VersionId"], data))
    assert len({v for v, _ in written}) == len(written)
    for version_id, data in written:
        got = s3.get_object(Bucket=bucket, Key="doc", VersionId=version_id)
        assert got["VersionId"] == version_id
        assert got["Body"].read() == data
        head = s3.head_object(Bucket=bucket, Key="doc", VersionId=version_id)
        assert head["ContentLength"] == len(data)
        assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        ranged = s3.get_object(Bucket=bucket, Key="doc", VersionId=version_id, Range="bytes=10-99")
        assert ranged["Body"].read() == data[10:100]
    latest = s3.get_object(Bucket=bucket, Key="doc")
    assert latest["VersionId"] == written[-1][0]
    assert latest["Body"].read() == written[-1][1]

    versions, markers, _, _ = all_versions(s3, bucket)
    assert markers == []
    assert [v["VersionId"] for v in versions] == [v for v, _ in reversed(written)]
    assert [v["IsLatest"] for v in versions] == [True] + [False] * (len(written) - 1)
    assert [v["Size"] for v in versions] == [len(d) for _, d in reversed(written)]
    # A plain listing shows the key once, at its current version.
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("doc", 500)]


def test_delete_marker_hides_the_key_and_deleting_it_brings_it_back(s3, bucket):
    versioned(s3, bucket)
    data = body(200_000, seed=7)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data)
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker_id = deleted["VersionId"]
    assert marker_id not in ("null", put["VersionId"])

    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_code(gone) == "NoSuchKey"
    headers = gone.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("x-amz-delete-marker") == "true"
    with pytest.raises(ClientError) as head_gone:
        s3.head_object(Bucket=bucket, Key="k")
    assert head_gone.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    with pytest.raises(ClientError) as named:
        s3.get_object(Bucket=bucket, Key="k", VersionId=marker_id)
    assert named.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
    assert error_code(named) == "MethodNotAllowed"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    # The old version is still there, by id.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=put["VersionId"])["Body"].read() == data

    versions, markers, _, _ = all_versions(s3, bucket)
    assert [(m["VersionId"], m["IsLatest"]) for m in markers] == [(marker_id, True)]
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(put["VersionId"], False)]

    # Deleting the marker (by its id) makes the object current again.
    undone = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker_id)
    assert undone["DeleteMarker"] is True and undone["VersionId"] == marker_id
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["VersionId"] == put["VersionId"] and got["Body"].read() == data
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_deleting_a_version_removes_only_it(s3, bucket):
    versioned(s3, bucket)
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())["VersionId"] for i in range(3)]
    # A noncurrent version.
    assert s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[0])["VersionId"] == ids[0]
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=bucket, Key="k", VersionId=ids[0])
    assert error_code(gone) == "NoSuchVersion"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    # The current version: the next newest becomes current.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[2])
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["VersionId"] == ids[1] and got["Body"].read() == b"v1"
    versions, _, _, _ = all_versions(s3, bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(ids[1], True)]
    # A version id that was never issued, and one that is malformed.
    with pytest.raises(ClientError) as bad:
        s3.get_object(Bucket=bucket, Key="k", VersionId="not-a-version")
    assert error_code(bad) == "InvalidArgument"
    with pytest.raises(ClientError) as unknown:
        s3.get_object(Bucket=bucket, Key="k", VersionId="00000000000fffff")
    assert error_code(unknown) == "NoSuchVersion"


def test_null_version_before_versioning_and_while_suspended(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")
    versioned(s3, bucket)
    enabled = s3.put_object(Bucket=bucket, Key="k", Body=b"enabled")["VersionId"]
    versions, _, _, _ = all_versions(s3, bucket)
    assert [v["VersionId"] for v in versions] == [enabled, "null"]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before"

    versioned(s3, bucket, "Suspended")
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"suspended")
    assert "VersionId" not in put  # S3 reports no id for a null version
    # The new null version replaced the old one; the enabled one stays.
    versions, _, _, _ = all_versions(s3, bucket)
    assert [v["VersionId"] for v in versions] == ["null", enabled]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"suspended"
    # A delete while suspended is a null delete marker, replacing the null version.
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    versions, markers, _, _ = all_versions(s3, bucket)
    assert [v["VersionId"] for v in versions] == [enabled]
    assert [(m["VersionId"], m["IsLatest"]) for m in markers] == [("null", True)]
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="k")


def test_list_object_versions_pages_prefixes_and_markers(s3, bucket):
    versioned(s3, bucket)
    expected = []
    for key in ["a", "b/1", "b/2", "c", "d/x/y"]:
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=key.encode() * (i + 1))["VersionId"]
               for i in range(3)]
        expected += [(key, v) for v in reversed(ids)]
    marker = s3.delete_object(Bucket=bucket, Key="c")["VersionId"]
    whole, markers, _, pages = all_versions(s3, bucket)
    assert pages == 1
    assert [(v["Key"], v["VersionId"]) for v in whole] == expected
    assert [(m["Key"], m["VersionId"]) for m in markers] == [("c", marker)]
    # Every entry names its owner: the bucket's (ACLs are disabled).
    owner = s3.get_bucket_acl(Bucket=bucket)["Owner"]["ID"]
    assert {v["Owner"]["ID"] for v in whole} | {m["Owner"]["ID"] for m in markers} == {owner}
    # Any page size gives the same versions, in order, with no repeats.
    for size in (1, 2, 3, 4, 7):
        versions, markers, _, pages = all_versions(s3, bucket, MaxKeys=size)
        entries = sorted([(v["Key"], v["VersionId"]) for v in versions]
                         + [(m["Key"], m["VersionId"]) for m in markers],
                         key=lambda e: (e[0], -int(e[1], 16)))
        assert entries == sorted(expected + [("c", marker)],
                                 key=lambda e: (e[0], -int(e[1], 16))), size
        assert pages >= (len(expected) + 1) // size
    # Prefix and delimiter.
    versions, markers, prefixes, _ = all_versions(s3, bucket, Delimiter="/")
    assert prefixes == ["b/", "d/"]
    assert {v["Key"] for v in versions} == {"a", "c"}
    versions, _, prefixes, _ = all_versions(s3, bucket, Prefix="b/", Delimiter="/")
    assert prefixes == [] and {v["Key"] for v in versions} == {"b/1", "b/2"}
    versions, _, prefixes, _ = all_versions(s3, bucket, Delimiter="/", MaxKeys=1)
    assert prefixes == ["b/", "d/"]
    # A key marker alone skips every version of that key.
    page = s3.list_object_versions(Bucket=bucket, KeyMarker="b/1")
    assert page["Versions"][0]["Key"] == "b/2"
    with pytest.raises(ClientError) as bad:
        s3.list_object_versions(Bucket=bucket, VersionIdMarker=expected[0][1])
    assert error_code(bad) == "InvalidArgument"


def test_delete_objects_with_versions(s3, bucket):
    versioned(s3, bucket)
    a = [s3.put_object(Bucket=bucket, Key="a", Body=f"a{i}".encode())["VersionId"] for i in range(2)]
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "VersionId": a[0]},
        {"Key": "b"},
    ]})
    by_key = {d["Key"]: d for d in result["Deleted"]}
    assert by_key["a"]["VersionId"] == a[0]
    assert by_key["b"]["DeleteMarker"] is True and by_key["b"]["DeleteMarkerVersionId"]
    assert result.get("Errors", []) == []
    versions, markers, _, _ = all_versions(s3, bucket)
    assert [(v["Key"], v["VersionId"]) for v in versions] == [("a", a[1]), ("b", versions[1]["VersionId"])]
    assert [m["Key"] for m in markers] == ["b"]


def test_copy_from_a_version(s3, bucket):
    versioned(s3, bucket)
    old = s3.put_object(Bucket=bucket, Key="src", Body=b"old body")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"new body")
    copied = s3.copy_object(Bucket=bucket, Key="dst",
                            CopySource={"Bucket": bucket, "Key": "src", "VersionId": old})
    assert copied["CopySourceVersionId"] == old
    assert copied["VersionId"] not in (None, "null", old)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"old body"
    # Restoring an old version onto its own key is a copy, not a refusal.
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src", "VersionId": old})
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"old body"
    assert len(all_versions(s3, bucket, Prefix="src")[0]) == 3


def test_conditional_writes_are_atomic_checks(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    with pytest.raises(ClientError) as exists:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch="*")
    assert error_code(exists) == "PreconditionFailed"
    with pytest.raises(ClientError) as stale:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_code(stale) == "PreconditionFailed"
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=first["ETag"])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    with pytest.raises(ClientError) as missing:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=second["ETag"])
    assert error_code(missing) == "NoSuchKey"
    # A delete marker is no current version: If-None-Match: * may write.
    versioned(s3, bucket)
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"three", IfNoneMatch="*")
    # On CompleteMultipartUpload too; a refused completion keeps the upload.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"p")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    with pytest.raises(ClientError) as refused:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload,
                                     MultipartUpload=parts, IfNoneMatch="*")
    assert error_code(refused) == "PreconditionFailed"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload,
                                        MultipartUpload=parts, IfMatch=s3.head_object(Bucket=bucket, Key="k")["ETag"])
    assert done["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"p"


def test_if_none_match_with_an_etag_and_conditional_deletes(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    with pytest.raises(ClientError) as same:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch=first["ETag"])
    assert error_code(same) == "PreconditionFailed"
    s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    s3.put_object(Bucket=bucket, Key="new", Body=b"x", IfNoneMatch=first["ETag"])
    head = s3.head_object(Bucket=bucket, Key="k")
    # DeleteObject If-Match / size / last-modified: a mismatch is 412 and
    # deletes nothing; a match deletes.
    for bad in ({"IfMatch": first["ETag"]}, {"IfMatchSize": 999},
                {"IfMatchLastModifiedTime": datetime.datetime(2015, 1, 1)}):
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=bucket, Key="k", **bad)
        assert error_code(refused) == "PreconditionFailed", bad
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=head["ETag"], IfMatchSize=3,
                     IfMatchLastModifiedTime=head["LastModified"])
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="k")
    # No object: a conditional delete does nothing, without an error.
    assert s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")["ResponseMetadata"]["HTTPStatusCode"] == 204
    # DeleteObjects carries the same conditions per key.
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "new", "ETag": first["ETag"]},
    ]})
    assert [e["Code"] for e in result["Errors"]] == ["PreconditionFailed"]
    assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == b"x"


def test_conditional_deletes_when_a_delete_marker_is_current(s3, bucket):
    versioned(s3, bucket)
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    marker = s3.delete_object(Bucket=bucket, Key="k", IfMatch=put["ETag"])
    assert marker["DeleteMarker"]
    # A marker has no ETag, size or time: a condition naming one fails…
    for bad in ({"IfMatch": put["ETag"]}, {"IfMatchSize": 1},
                {"IfMatchLastModifiedTime": datetime.datetime(2015, 1, 1)}):
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=bucket, Key="k", **bad)
        assert error_code(refused) == "PreconditionFailed", bad
    # …`*` finds no object and does nothing.
    s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    versions = s3.list_object_versions(Bucket=bucket)
    assert len(versions["DeleteMarkers"]) == 1 and len(versions["Versions"]) == 1
    # A key that never existed: nothing to fail, nothing done.
    assert s3.delete_object(Bucket=bucket, Key="never", IfMatch=put["ETag"])[
        "ResponseMetadata"]["HTTPStatusCode"] == 204


def test_a_bucket_with_versions_is_not_empty(s3, bucket):
    versioned(s3, bucket)
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=1, Body=b"part")
    with pytest.raises(ClientError) as full:
        s3.delete_bucket(Bucket=bucket)
    assert error_code(full) == "BucketNotEmpty"
    # A refused delete aborts nothing.
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]
    s3.delete_object(Bucket=bucket, Key="k", VersionId=put)
    with pytest.raises(ClientError):
        s3.delete_bucket(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    # Only an upload in progress is left: S3 deletes the bucket with it.
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as gone:
        s3.head_bucket(Bucket=bucket)
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_deleting_a_version_frees_its_chunks(make_cluster):
    cluster = make_cluster("--gc-grace", "1s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="gc-versions")
    versioned(s3, "gc-versions")
    before = len(cluster.chunk_files())
    ids = [s3.put_object(Bucket="gc-versions", Key="k", Body=body(3_000_000, seed=i))["VersionId"] for i in range(2)]
    assert len(cluster.chunk_files()) == before + 24
    s3.delete_object(Bucket="gc-versions", Key="k")  # a marker frees nothing
    s3.delete_object(Bucket="gc-versions", Key="k", VersionId=ids[0])
    deadline = time.time() + 60
    while len(cluster.chunk_files()) != before + 12 and time.time() < deadline:
        time.sleep(0.5)
    assert len(cluster.chunk_files()) == before + 12
    assert s3.get_object(Bucket="gc-versions", Key="k", VersionId=ids[1])["Body"].read() == body(3_000_000, seed=1)


def test_every_version_survives_a_lost_node_and_is_repaired(make_cluster):
    from test_scrub_repair import repair_status, wait_until
    cluster = make_cluster("--repair-after", "2s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="kept")
    versioned(s3, "kept")
    written = {}
    for i in range(6):
        for size in SIZES:
            data = os.urandom(size)
            key = f"o/{i}"
            written[(key, s3.put_object(Bucket="kept", Key=key, Body=data)["VersionId"])] = data
    # The node holding the most chunks of noncurrent versions.
    counts = {}
    for (key, version), _ in written.items():
        for part in cluster.cairn("inspect", f"kept/{key}", "--version", version, "--json")["manifest"]["parts"]:
            for chunk in part["chunks"]:
                counts[chunk["node"]] = counts.get(chunk["node"], 0) + 1
    victim = max(counts, key=counts.get)
    cluster.kill9(victim)
    for (key, version), data in written.items():
        assert s3.get_object(Bucket="kept", Key=key, VersionId=version)["Body"].read() == data
    status = wait_until("the repair of every version's chunks", lambda: (
        (s := repair_status(cluster))["repaired_chunks"] >= counts[victim]
        and s["queued"] + s["in_progress"] == 0 and s
    ), timeout=180)
    assert status["failures"] == 0, status
    for (key, version), data in written.items():
        parts = cluster.cairn("inspect", f"kept/{key}", "--version", version, "--json")["manifest"]["parts"]
        assert all(c["node"] != victim for p in parts for c in p["chunks"]), (key, version)
        assert s3.get_object(Bucket="kept", Key=key, VersionId=version)["Body"].read() == data


def test_a_scrub_finds_and_repairs_a_flipped_byte_in_a_noncurrent_version(make_cluster):
    from test_scrub_repair import BLOCK, chunk_path, repair_status, wait_until
    cluster = make_cluster()
    s3 = cluster.client()
    s3.create_bucket(Bucket="rot-versions")
    versioned(s3, "rot-versions")
    old = body(3_000_000, seed=11)
    old_id = s3.put_object(Bucket="rot-versions", Key="k", Body=old)["VersionId"]
    s3.put_object(Bucket="rot-versions", Key="k", Body=body(3_000_000, seed=12))
    part = cluster.cairn("inspect", "rot-versions/k", "--version", old_id, "--json")["manifest"]["parts"][0]
    chunk = part["chunks"][3]
    path = chunk_path(cluster, chunk["node"], part["blob"], chunk["index"])
    raw = bytearray(path.read_bytes())
    header_len = int.from_bytes(raw[10:12], "little")
    raw[header_len + BLOCK + 17] ^= 0x5A
    path.write_bytes(bytes(raw))

    cluster.cairn("scrub", "start", "--bucket", "rot-versions", "--wait")
    results = [j for j in cluster.cairn("scrub", "jobs", "--json") if j["spec"]["kind"] == "scrub"][-1]["last"]["results"]
    assert results["objects_checked"] == 2  # both versions
    assert [(f["key"], f["blob"], f["index"], f["blocks"]) for f in results["corrupt"]] == \
        [("k", part["blob"], chunk["index"], [1])]
    wait_until("the repair", lambda: (s := repair_status(cluster))["repaired_chunks"] >= 1
               and s["queued"] + s["in_progress"] == 0)
    assert s3.get_object(Bucket="rot-versions", Key="k", VersionId=old_id)["Body"].read() == old
    cluster.cairn("scrub", "start", "--bucket", "rot-versions", "--wait")
    again = [j for j in cluster.cairn("scrub", "jobs", "--json") if j["spec"]["kind"] == "scrub"][-1]["last"]["results"]
    assert again["chunks_corrupt"] == 0 and again["chunks_healthy"] == 24
