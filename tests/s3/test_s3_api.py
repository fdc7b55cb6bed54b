"""The S3 API through boto3 against a `cairn dev` cluster of real processes."""

import base64
import datetime
import hashlib
import http.client
import io
import os
import re
import time
import urllib.error
import urllib.request

import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

MiB = 1024 * 1024
STRIPE = 8 * 256 * 1024  # k data blocks of 256 KiB


def md5(data):
    return hashlib.md5(data).hexdigest()


def error_of(excinfo):
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def signed_headers(cluster, method, host, path, headers):
    """SigV4 headers for a raw request (what boto3 cannot send: a body cut
    short, a virtual-host Host header)."""
    request = AWSRequest(method=method, url=f"http://{host}{path}", headers=headers)
    creds = Credentials(cluster.info["access_key"], cluster.info["secret_key"])
    SigV4Auth(creds, "s3", cluster.info["region"]).add_auth(request)
    out = dict(request.headers.items())
    out["Host"] = host
    return out


# ---- objects -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, STRIPE - 1, STRIPE + 1])
def test_round_trip_at_stripe_edges(s3, bucket, size):
    data = os.urandom(size)
    put = s3.put_object(Bucket=bucket, Key=f"obj-{size}", Body=data)
    assert put["ETag"] == f'"{md5(data)}"'
    got = s3.get_object(Bucket=bucket, Key=f"obj-{size}")
    body = got["Body"].read()
    assert md5(body) == md5(data) and len(body) == size
    assert got["ContentLength"] == size
    root = got["ResponseMetadata"]["HTTPHeaders"]["x-cairn-merkle-root"]
    assert re.fullmatch(r"[0-9a-f]{64}", root)
    head = s3.head_object(Bucket=bucket, Key=f"obj-{size}")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-cairn-merkle-root"] == root
    assert head["ContentLength"] == size


def test_round_trip_100_mib(s3, bucket):
    data = os.urandom(100 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    body = s3.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert md5(body) == md5(data)


def test_streaming_upload_of_unknown_length(s3, bucket):
    """A non-seekable body: boto3 sends it aws-chunked with a trailing
    checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER)."""

    class Unseekable(io.RawIOBase):
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            chunk = self.inner.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    data = os.urandom(3 * MiB + 17)
    s3.upload_fileobj(Unseekable(data), bucket, "streamed")
    assert md5(s3.get_object(Bucket=bucket, Key="streamed")["Body"].read()) == md5(data)


def test_content_md5_is_checked(cluster, s3, bucket):
    data = b"hello cairn"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="ok", Body=data, ContentMD5=good)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    before = set(cluster.chunk_files())
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, ContentMD5=wrong)
    assert error_of(e) == ("BadDigest", 400)
    # Checked before the chunks are sealed: no node committed anything.
    assert set(cluster.chunk_files()) == before
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad")
    assert error_of(e)[1] == 404


def test_headers_and_user_metadata_are_preserved(s3, bucket):
    expires = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    s3.put_object(
        Bucket=bucket, Key="doc", Body=b"<html/>",
        ContentType="text/html; charset=utf-8", CacheControl="max-age=60",
        ContentDisposition='attachment; filename="doc.html"', ContentEncoding="identity",
        Expires=expires, Metadata={"owner": "alice", "Project": "cairn"},
    )
    for response in (s3.get_object(Bucket=bucket, Key="doc"), s3.head_object(Bucket=bucket, Key="doc")):
        assert response["ContentType"] == "text/html; charset=utf-8"
        assert response["CacheControl"] == "max-age=60"
        assert response["ContentDisposition"] == 'attachment; filename="doc.html"'
        assert response["ContentEncoding"] == "identity"
        assert response["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Thu, 02 Jan 2031 03:04:05 GMT"
        assert response["Metadata"] == {"owner": "alice", "project": "cairn"}


def test_response_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket, Key="f", ResponseContentType="application/json",
        ResponseContentDisposition="inline", ResponseCacheControl="no-store",
        ResponseContentEncoding="gzip", ResponseContentLanguage="fr",
        ResponseExpires=datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc),
    )
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/json"
    assert headers["content-disposition"] == "inline"
    assert headers["cache-control"] == "no-store"
    assert headers["content-encoding"] == "gzip"
    assert headers["content-language"] == "fr"
    assert headers["expires"] == "Tue, 01 Jan 2030 00:00:00 GMT"


def test_ranges(s3, bucket):
    data = os.urandom(3 * STRIPE + 12345)
    s3.put_object(Bucket=bucket, Key="r", Body=data)

    def get(range_header):
        got = s3.get_object(Bucket=bucket, Key="r", Range=range_header)
        return got["Body"].read(), got["ContentRange"], got["ResponseMetadata"]["HTTPStatusCode"]

    assert get("bytes=0-9") == (data[:10], f"bytes 0-9/{len(data)}", 206)
    a, b = STRIPE - 5, 2 * STRIPE + 5  # across two stripe boundaries
    assert get(f"bytes={a}-{b}")[0] == data[a : b + 1]
    assert get(f"bytes={len(data) - 100}-")[0] == data[-100:]
    assert get("bytes=-77") == (data[-77:], f"bytes {len(data) - 77}-{len(data) - 1}/{len(data)}", 206)
    assert get(f"bytes=-{len(data) + 10}")[0] == data  # suffix longer than the object
    assert get(f"bytes=10-{len(data) + 99}")[0] == data[10:]  # end clamped
    for invalid in (f"bytes={len(data)}-", f"bytes={len(data) + 5}-{len(data) + 9}", "bytes=-0"):
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="r", Range=invalid)
        assert error_of(e) == ("InvalidRange", 416), invalid
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="empty", Range="bytes=0-0")
    assert error_of(e) == ("InvalidRange", 416)


def test_conditional_requests(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    etag = put["ETag"]
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    for op in (s3.get_object, s3.head_object):
        assert op(Bucket=bucket, Key="c", IfMatch=etag)["ETag"] == etag
        assert op(Bucket=bucket, Key="c", IfNoneMatch='"other"')["ETag"] == etag
        assert op(Bucket=bucket, Key="c", IfModifiedSince=past)["ETag"] == etag
        assert op(Bucket=bucket, Key="c", IfUnmodifiedSince=future)["ETag"] == etag
        # If-Match true overrides a failing If-Unmodified-Since (S3 rule).
        assert op(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=past)["ETag"] == etag
        cases = [
            ({"IfMatch": '"other"'}, 412),
            ({"IfUnmodifiedSince": past}, 412),
            ({"IfNoneMatch": etag}, 304),
            ({"IfNoneMatch": "*"}, 304),
            ({"IfModifiedSince": future}, 304),
        ]
        for kwargs, status in cases:
            with pytest.raises(ClientError) as e:
                op(Bucket=bucket, Key="c", **kwargs)
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == status, (op, kwargs)


def test_put_if_none_match_star_does_not_overwrite(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert error_of(e) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_overwrite_returns_the_new_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    s3.put_object(Bucket=bucket, Key="k", Body=b"two")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"


def test_copy(s3, bucket):
    other = bucket[:50] + "-dst"
    s3.create_bucket(Bucket=other)
    data = os.urandom(STRIPE + 3)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ContentType="image/png", Metadata={"a": "1"})

    s3.copy_object(Bucket=bucket, Key="same", CopySource={"Bucket": bucket, "Key": "src"})
    copied = s3.get_object(Bucket=bucket, Key="same")
    assert copied["Body"].read() == data
    assert copied["ContentType"] == "image/png" and copied["Metadata"] == {"a": "1"}

    result = s3.copy_object(
        Bucket=other, Key="replaced", CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE", ContentType="text/plain", Metadata={"b": "2"},
    )
    assert result["CopyObjectResult"]["ETag"] == f'"{md5(data)}"'
    replaced = s3.get_object(Bucket=other, Key="replaced")
    assert replaced["Body"].read() == data
    assert replaced["ContentType"] == "text/plain" and replaced["Metadata"] == {"b": "2"}

    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_of(e) == ("InvalidRequest", 400)
    # Onto itself with REPLACE is how S3 users change metadata.
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}

    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert error_of(e) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfMatch='"nope"')
    assert error_of(e) == ("PreconditionFailed", 412)


def test_delete_and_multi_delete(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"d/{i}", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="d/0")
    s3.delete_object(Bucket=bucket, Key="never-existed")  # S3: 204 all the same
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": f"d/{i}"} for i in range(1, 4)] + [{"Key": "missing"}]},
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["d/1", "d/2", "d/3", "missing"]
    assert not result.get("Errors")
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/4"}], "Quiet": True})
    assert not quiet.get("Deleted")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# ---- listing -------------------------------------------------------------


def test_listing_pagination_prefix_delimiter(s3, bucket):
    keys = [f"photos/2024/{i:02}.jpg" for i in range(7)] + [f"photos/2025/{i}.jpg" for i in range(3)]
    keys += ["photos/top.txt", "docs/a.txt", "docs/b.txt", "readme", "a b+c%d/é.txt"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())

    # v2, 3 per page, everything: exact and in order.
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3}))
    assert len(pages) == 5
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == sorted(keys)
    assert all(p["KeyCount"] <= 3 for p in pages)

    # v2 with a delimiter: common prefixes are rolled up, never repeated.
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a b+c%d/", "docs/", "photos/"]
    assert [o["Key"] for o in listed["Contents"]] == ["readme"]
    seen_prefixes, seen_keys = [], []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix="photos/", Delimiter="/", PaginationConfig={"PageSize": 1}
    ):
        seen_prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        seen_keys += [o["Key"] for o in page.get("Contents", [])]
    assert seen_prefixes == ["photos/2024/", "photos/2025/"]
    assert seen_keys == ["photos/top.txt"]

    # start-after, max-keys.
    after = s3.list_objects_v2(Bucket=bucket, Prefix="photos/2024/", StartAfter="photos/2024/04.jpg", MaxKeys=2)
    assert [o["Key"] for o in after["Contents"]] == ["photos/2024/05.jpg", "photos/2024/06.jpg"]
    assert after["IsTruncated"] is False
    assert s3.list_objects_v2(Bucket=bucket, MaxKeys=0)["KeyCount"] == 0

    # v1 with marker pagination and a delimiter.
    v1_prefixes, v1_keys = [], []
    for page in s3.get_paginator("list_objects").paginate(
        Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}
    ):
        v1_prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        v1_keys += [o["Key"] for o in page.get("Contents", [])]
    assert v1_prefixes == ["a b+c%d/", "docs/", "photos/"] and v1_keys == ["readme"]
    v1 = s3.list_objects(Bucket=bucket, Prefix="docs/", Marker="docs/a.txt")
    assert [o["Key"] for o in v1["Contents"]] == ["docs/b.txt"]

    # encoding-type=url: the paginators above asked for it implicitly and
    # botocore decoded the keys; asked explicitly, the raw encoding shows.
    raw = s3.list_objects_v2(Bucket=bucket, Prefix="a b", EncodingType="url")
    assert [o["Key"] for o in raw["Contents"]] == ["a%20b%2Bc%25d/%C3%A9.txt"]


def test_listing_errors(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="no-such-bucket-here")
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="not-a-token")
    assert error_of(e) == ("InvalidArgument", 400)


# ---- multipart -----------------------------------------------------------


def test_multipart_upload_three_parts(s3, bucket):
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB + 1), os.urandom(123)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="video/mp4", Metadata={"m": "1"})
    upload_id = upload["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [("mp", upload_id)]
    etags = []
    for number, data in enumerate(parts_data, start=1):
        part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=data)
        assert part["ETag"] == f'"{md5(data)}"'
        etags.append(part["ETag"])
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [
        (i + 1, etags[i], len(parts_data[i])) for i in range(3)
    ]
    page = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id, MaxParts=2)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": etags[i]} for i in range(3)]},
    )
    expected = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-3"
    assert done["ETag"] == f'"{expected}"'
    whole = b"".join(parts_data)
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["ETag"] == f'"{expected}"' and got["ContentType"] == "video/mp4"
    assert got["Metadata"] == {"m": "1"}
    assert md5(got["Body"].read()) == md5(whole)
    # A range across the part boundary.
    a, b = 5 * MiB - 10, 5 * MiB + 10
    assert s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={a}-{b}")["Body"].read() == whole[a : b + 1]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_multipart_errors(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="e")["UploadId"]
    small = s3.upload_part(Bucket=bucket, Key="e", UploadId=upload_id, PartNumber=1, Body=b"tiny")["ETag"]
    last = s3.upload_part(Bucket=bucket, Key="e", UploadId=upload_id, PartNumber=2, Body=b"last")["ETag"]

    def complete(parts):
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
        return error_of(e)

    assert complete([{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": last}]) == ("EntityTooSmall", 400)
    assert complete([{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]) == ("InvalidPart", 400)
    assert complete([{"PartNumber": 3, "ETag": small}]) == ("InvalidPart", 400)
    assert complete([{"PartNumber": 2, "ETag": last}, {"PartNumber": 1, "ETag": small}]) == ("InvalidPartOrder", 400)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="e", UploadId="no-such-upload", PartNumber=1, Body=b"x")
    assert error_of(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="e", UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert error_of(e)[1] == 400

    s3.abort_multipart_upload(Bucket=bucket, Key="e", UploadId=upload_id)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="e", UploadId=upload_id)
    assert error_of(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="e")
    assert error_of(e)[1] == 404


# ---- buckets -------------------------------------------------------------


def test_bucket_lifecycle_and_errors(s3):
    s3.create_bucket(Bucket="lifecycle")
    assert "lifecycle" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="lifecycle")
    assert s3.get_bucket_location(Bucket="lifecycle").get("LocationConstraint") in (None, "")
    # Re-creating one's own bucket: 200 in us-east-1 (S3's legacy rule,
    # and the default region here), BucketAlreadyOwnedByYou elsewhere.
    assert s3.meta.region_name == "us-east-1"
    s3.put_object(Bucket="lifecycle", Key="kept", Body=b"k")
    s3.create_bucket(Bucket="lifecycle")
    assert s3.get_object(Bucket="lifecycle", Key="kept")["Body"].read() == b"k"
    s3.delete_object(Bucket="lifecycle", Key="kept")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Bad_Name")
    assert error_of(e) == ("InvalidBucketName", 400)
    s3.put_object(Bucket="lifecycle", Key="x", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="lifecycle")
    assert error_of(e) == ("BucketNotEmpty", 409)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="lifecycle", Key="nope")
    assert error_of(e) == ("NoSuchKey", 404)
    s3.delete_object(Bucket="lifecycle", Key="x")
    s3.delete_bucket(Bucket="lifecycle")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="lifecycle")
    assert error_of(e)[1] == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="lifecycle", Key="x")
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="lifecycle", Key="x", Body=b"x")
    assert error_of(e) == ("NoSuchBucket", 404)


def test_virtual_host_style(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="vh.txt", Body=b"virtual")
    host = f"{bucket}.s3.localhost:{cluster.port}"
    headers = signed_headers(cluster, "GET", host, "/vh.txt", {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=30)
    conn.request("GET", "/vh.txt", headers=headers)
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"virtual")


# ---- authentication ------------------------------------------------------


def test_wrong_signature_unknown_key_and_anonymous_are_refused(cluster, bucket):
    with pytest.raises(ClientError) as e:
        cluster.client(secret_key="wrong-secret").list_objects_v2(Bucket=bucket)
    assert error_of(e) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as e:
        cluster.client(access_key="nobody", secret_key="x").list_buckets()
    assert error_of(e) == ("InvalidAccessKeyId", 403)
    anonymous = cluster.client(signature_version=UNSIGNED)
    with pytest.raises(ClientError) as e:
        anonymous.get_object(Bucket=bucket, Key="anything")
    assert error_of(e)[1] == 403


@pytest.mark.parametrize("signature_version", ["s3", "s3v4"])
def test_presigned_urls(cluster, bucket, signature_version):
    s3 = cluster.client(signature_version=signature_version)
    s3.put_object(Bucket=bucket, Key="shared", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=60)
    assert urllib.request.urlopen(url, timeout=30).read() == b"presigned"
    signature = re.search(r"(X-Amz-Signature|Signature)=([^&]+)", url)
    assert signature, url
    forged = "0" * 64 if signature_version == "s3v4" else "AAAAAAAAAAAAAAAAAAAAAAAAAAA%3D"
    tampered = url.replace(signature.group(0), f"{signature.group(1)}={forged}")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(tampered, timeout=30)
    assert e.value.code == 403


# ---- failures ------------------------------------------------------------


def test_interrupted_put_leaves_no_object_and_no_chunks(cluster, s3, bucket):
    before = set(cluster.chunk_files())
    declared = 20 * MiB
    host = f"127.0.0.1:{cluster.port}"
    path = f"/{bucket}/interrupted"
    headers = signed_headers(cluster, "PUT", host, path, {
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(declared),
    })
    sock = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=30)
    sock.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        sock.putheader(name, value)
    sock.endheaders()
    sent = 0
    while sent < 7 * MiB:  # several stripes reach the nodes, then the client dies
        sock.send(os.urandom(MiB))
        sent += MiB
    time.sleep(0.5)
    sock.sock.close()

    deadline = time.time() + 20
    while True:
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key="interrupted")
        assert error_of(e)[1] == 404
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        leftovers = set(cluster.chunk_files()) - before
        if not leftovers:
            break
        assert time.time() < deadline, f"partial chunks left behind: {sorted(map(str, leftovers))[:5]}"
        time.sleep(0.2)


def test_metrics_count_requests_and_bytes(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"12345")
    s3.get_object(Bucket=bucket, Key="m")["Body"].read()
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="missing")
    text = urllib.request.urlopen(cluster.info["gateway_admin_endpoint"] + "/metrics", timeout=30).read().decode()
    assert re.search(r'cairn_gateway_requests_total\{operation="PutObject",status="200"\} [1-9]', text)
    assert re.search(r'cairn_gateway_requests_total\{operation="GetObject",status="404"\} [1-9]', text)
    assert re.search(r"cairn_gateway_bytes_in_total [1-9]", text)
    assert re.search(r"cairn_gateway_request_duration_seconds_bucket", text)

