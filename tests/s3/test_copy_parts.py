"""Multipart copies and part reads with boto3: UploadPartCopy with and
without ranges (from another version, from SSE-C sources, under the copy
conditions and the source's access rules), and GetObject / HeadObject of
one part with `partNumber`."""

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def error_of(raised):
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_multipart_object_made_of_copied_ranges_reads_back_part_by_part(s3, bucket):
    source = os.urandom(12 * MiB)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    first = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "source"},
                                CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    second = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload, PartNumber=2,
                                 CopySource={"Bucket": bucket, "Key": "source"},
                                 CopySourceRange=f"bytes={5 * MiB}-{12 * MiB - 1}")
    tail = b"and a plain part at the end"
    third = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=upload, PartNumber=3, Body=tail)
    # A copied part's ETag is the MD5 of its bytes, like an uploaded one's.
    assert first["CopyPartResult"]["ETag"] == f'"{hashlib.md5(source[:5 * MiB]).hexdigest()}"'
    assert "LastModified" in second["CopyPartResult"]
    listed = s3.list_parts(Bucket=bucket, Key="assembled", UploadId=upload)["Parts"]
    assert [p["Size"] for p in listed] == [5 * MiB, 7 * MiB, len(tail)]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]},
                  {"PartNumber": 3, "ETag": third["ETag"]}]})
    whole = source + tail
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == whole

    offsets = [(0, 5 * MiB), (5 * MiB, 12 * MiB), (12 * MiB, len(whole))]
    for number, (start, end) in enumerate(offsets, start=1):
        got = s3.get_object(Bucket=bucket, Key="assembled", PartNumber=number)
        assert got["PartsCount"] == 3 and got["ETag"] == done["ETag"]
        assert got["ContentLength"] == end - start
        assert got["ContentRange"] == f"bytes {start}-{end - 1}/{len(whole)}"
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["Body"].read() == whole[start:end]
        head = s3.head_object(Bucket=bucket, Key="assembled", PartNumber=number)
        assert head["PartsCount"] == 3 and head["ContentLength"] == end - start
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=bucket, Key="assembled", PartNumber=4)
    assert error_of(refused) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=bucket, Key="assembled", PartNumber=1, Range="bytes=0-1")
    assert error_of(refused) == ("InvalidRequest", 400)

    # An object of one PUT is its own part 1.
    got = s3.get_object(Bucket=bucket, Key="source", PartNumber=1)
    assert got["Body"].read() == source and "PartsCount" not in got
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=bucket, Key="source", PartNumber=2)
    assert error_of(refused) == ("InvalidPartNumber", 416)


def test_upload_part_copy_refuses_bad_ranges_and_failed_conditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="five", Body=b"12345")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dest")["UploadId"]
    copy = dict(Bucket=bucket, Key="dest", UploadId=upload, PartNumber=1,
                CopySource={"Bucket": bucket, "Key": "five"})
    for bad in ["0-2", "bytes=0", "bytes=hello-world", "bytes=0-bar", "bytes=0-2,3-4", "bytes=3-1"]:
        with pytest.raises(ClientError) as refused:
            s3.upload_part_copy(**copy, CopySourceRange=bad)
        assert error_of(refused) == ("InvalidArgument", 400), bad
    with pytest.raises(ClientError) as refused:
        s3.upload_part_copy(**copy, CopySourceRange="bytes=0-21")
    assert error_of(refused) == ("InvalidRange", 416)
    with pytest.raises(ClientError) as refused:
        s3.upload_part_copy(**copy, CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(refused) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as refused:
        s3.upload_part_copy(**dict(copy, UploadId="no-such-upload"))
    assert error_of(refused) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as refused:
        s3.upload_part_copy(**dict(copy, CopySource={"Bucket": bucket, "Key": "missing"}))
    assert error_of(refused)[1] == 404
    # Nothing refused left a part behind.
    assert s3.list_parts(Bucket=bucket, Key="dest", UploadId=upload).get("Parts", []) == []
    whole = s3.upload_part_copy(**copy)
    assert whole["CopyPartResult"]["ETag"] == f'"{hashlib.md5(b"12345").hexdigest()}"'


def test_upload_part_copy_names_source_versions_and_keys_and_obeys_access(s3, bob, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="v", Body=b"old bytes")["VersionId"]
    s3.put_object(Bucket=bucket, Key="v", Body=b"new bytes")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="from-old")["UploadId"]
    part = s3.upload_part_copy(Bucket=bucket, Key="from-old", UploadId=upload, PartNumber=1,
                               CopySource={"Bucket": bucket, "Key": "v", "VersionId": old})
    assert part["CopySourceVersionId"] == old
    s3.complete_multipart_upload(Bucket=bucket, Key="from-old", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="from-old")["Body"].read() == b"old bytes"

    # An SSE-C source needs its key; the part is encrypted as its upload says.
    sse = dict(SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)
    s3.put_object(Bucket=bucket, Key="secret", Body=b"secret bytes", **sse)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="plain-copy")["UploadId"]
    copy = dict(Bucket=bucket, Key="plain-copy", UploadId=upload, PartNumber=1,
                CopySource={"Bucket": bucket, "Key": "secret"})
    with pytest.raises(ClientError) as refused:
        s3.upload_part_copy(**copy)
    assert error_of(refused)[1] == 400
    part = s3.upload_part_copy(**copy, CopySourceSSECustomerAlgorithm="AES256",
                               CopySourceSSECustomerKey=sse["SSECustomerKey"])
    s3.complete_multipart_upload(Bucket=bucket, Key="plain-copy", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="plain-copy")["Body"].read() == b"secret bytes"

    # Copying needs read access to the source: bob may not copy from here.
    bobs = bucket[:50] + "-bob"
    bob.create_bucket(Bucket=bobs)
    upload = bob.create_multipart_upload(Bucket=bobs, Key="stolen")["UploadId"]
    with pytest.raises(ClientError) as refused:
        bob.upload_part_copy(Bucket=bobs, Key="stolen", UploadId=upload, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "secret"})
    assert error_of(refused) == ("AccessDenied", 403)
    bob.abort_multipart_upload(Bucket=bobs, Key="stolen", UploadId=upload)
    bob.delete_bucket(Bucket=bobs)
