"""S3 additional checksums kept and reported, with boto3: a PUT's checksum
comes back on GET/HEAD with ChecksumMode; multipart uploads created with an
algorithm get composite (or, for CRCs, full-object) checksums on Complete;
GetObjectAttributes reports them with the parts, page by page."""

import base64
import hashlib
import os
import struct
import zlib

import pytest
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def b64(raw):
    return base64.b64encode(raw).decode()


def sha256(data):
    return hashlib.sha256(data).digest()


def crc32(data):
    return struct.pack(">I", zlib.crc32(data))


def error_of(raised):
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_put_checksum_is_reported_with_checksum_mode(s3, bucket):
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == b64(sha256(body))
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == b64(sha256(body)) and got["ChecksumType"] == "FULL_OBJECT"
    assert got["Body"].read() == body
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == b64(sha256(body))
    assert "ChecksumSHA256" not in s3.head_object(Bucket=bucket, Key="k")
    # A byte range is not what the checksum describes.
    ranged = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in ranged
    # A copy keeps a full-object checksum (same bytes).
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    copied = s3.head_object(Bucket=bucket, Key="copy", ChecksumMode="ENABLED")
    assert copied["ChecksumSHA256"] == b64(sha256(body))

    attributes = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=[
        "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    assert attributes["ETag"].strip('"') == put["ETag"].strip('"')
    assert attributes["ObjectSize"] == len(body) and attributes["StorageClass"] == "STANDARD"
    assert attributes["Checksum"]["ChecksumSHA256"] == b64(sha256(body))
    assert "ObjectParts" not in attributes


def upload(s3, bucket, key, parts, algorithm, **create):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm,
                                           **create)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        sent = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
                              ChecksumAlgorithm=algorithm)
        done.append({"PartNumber": number, "ETag": sent["ETag"],
                     f"Checksum{algorithm}": sent[f"Checksum{algorithm}"]})
    return upload_id, done


def test_a_multipart_upload_gets_a_composite_checksum(s3, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    upload_id, done = upload(s3, bucket, "mp", parts, "SHA256")
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert listed["ChecksumAlgorithm"] == "SHA256"
    assert [p["ChecksumSHA256"] for p in listed["Parts"]] == [b64(sha256(p)) for p in parts]
    complete = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                            MultipartUpload={"Parts": done})
    composite = b64(sha256(b"".join(sha256(p) for p in parts))) + "-3"
    assert complete["ChecksumSHA256"] == composite and complete["ChecksumType"] == "COMPOSITE"
    # A retried Complete answers alike, checksum included.
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                         MultipartUpload={"Parts": done})
    assert again["ETag"] == complete["ETag"] and again["ChecksumSHA256"] == composite
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == composite and got["ChecksumType"] == "COMPOSITE"
    assert got["Body"].read() == b"".join(parts)
    part2 = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2, ChecksumMode="ENABLED")
    assert part2["ChecksumSHA256"] == b64(sha256(parts[1]))

    attributes = s3.get_object_attributes(Bucket=bucket, Key="mp", MaxParts=2, ObjectAttributes=[
        "Checksum", "ObjectParts", "ObjectSize"])
    assert attributes["Checksum"]["ChecksumSHA256"] == composite
    page = attributes["ObjectParts"]
    assert page["TotalPartsCount"] == 3 and page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in page["Parts"]] == [
        (1, 5 * MiB, b64(sha256(parts[0]))), (2, 5 * MiB, b64(sha256(parts[1])))]
    rest = s3.get_object_attributes(Bucket=bucket, Key="mp", PartNumberMarker=2,
                                    ObjectAttributes=["ObjectParts"])["ObjectParts"]
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and not rest["IsTruncated"]


def test_a_crc_multipart_upload_can_get_a_full_object_checksum(s3, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(777)]
    upload_id, done = upload(s3, bucket, "full", parts, "CRC32", ChecksumType="FULL_OBJECT")
    complete = s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=upload_id,
                                            MultipartUpload={"Parts": done})
    whole = b"".join(parts)
    assert complete["ChecksumCRC32"] == b64(crc32(whole)) and complete["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == b64(crc32(whole))


def test_checksum_mismatches_are_refused(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="m", ChecksumAlgorithm="SHA256")["UploadId"]
    with pytest.raises(ClientError) as refused:
        s3.upload_part(Bucket=bucket, Key="m", UploadId=upload_id, PartNumber=1, Body=b"x",
                       ChecksumAlgorithm="CRC32")
    assert error_of(refused) == ("InvalidRequest", 400)
    sent = s3.upload_part(Bucket=bucket, Key="m", UploadId=upload_id, PartNumber=1, Body=b"x",
                          ChecksumAlgorithm="SHA256")
    with pytest.raises(ClientError) as refused:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=upload_id, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": sent["ETag"], "ChecksumSHA256": b64(sha256(b"y"))}]})
    assert error_of(refused) == ("InvalidPart", 400)
    with pytest.raises(ClientError) as refused:
        s3.create_multipart_upload(Bucket=bucket, Key="m2", ChecksumAlgorithm="SHA256",
                                   ChecksumType="FULL_OBJECT")
    assert error_of(refused) == ("InvalidRequest", 400)


def test_object_attributes_of_versions_and_sse_c_objects(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="v", Body=b"foo")
    s3.put_object(Bucket=bucket, Key="v", Body=b"longer")
    old = s3.get_object_attributes(Bucket=bucket, Key="v", VersionId=first["VersionId"],
                                   ObjectAttributes=["ObjectSize", "ETag"])
    assert old["VersionId"] == first["VersionId"] and old["ObjectSize"] == 3
    assert s3.get_object_attributes(Bucket=bucket, Key="v", ObjectAttributes=["ObjectSize"])["ObjectSize"] == 6

    sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}
    s3.put_object(Bucket=bucket, Key="secret", Body=b"x" * 1000, **sse)
    with pytest.raises(ClientError) as refused:
        s3.get_object_attributes(Bucket=bucket, Key="secret", ObjectAttributes=["ObjectSize"])
    assert error_of(refused)[1] == 400
    # (botocore adds the key's MD5 to reads, not to this call.)
    with_md5 = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": b64(b"k" * 32),
                "SSECustomerKeyMD5": b64(hashlib.md5(b"k" * 32).digest())}
    assert s3.get_object_attributes(Bucket=bucket, Key="secret", ObjectAttributes=["ObjectSize"],
                                    **with_md5)["ObjectSize"] == 1000
    with pytest.raises(ClientError) as refused:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ObjectSize"])
    assert error_of(refused) == ("NoSuchKey", 404)
