"""aws-chunked uploads built from the SigV4 spec (boto3 sends neither of
these forms for in-memory bodies):

- STREAMING-AWS4-HMAC-SHA256-PAYLOAD, the signed form the Java, Go and Rust
  SDKs use: every chunk carries a signature chained from the previous, and a
  forged one must be refused and store nothing;
- STREAMING-UNSIGNED-PAYLOAD-TRAILER with an `x-amz-checksum-crc32`
  trailer, the form current SDKs use for streams: a wrong trailing checksum
  is BadDigest and stores nothing."""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import zlib

import pytest
from botocore.exceptions import ClientError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _scope(cluster):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    region = cluster.info["region"]
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + cluster.info["secret_key"]).encode(), day), region), "s3"), "aws4_request")
    return amz_date, f"{day}/{region}/s3/aws4_request", key


def _authorize(cluster, path, headers, payload, amz_date, scope, key_bytes):
    """Adds the seed SigV4 Authorization for a PUT; returns the signature."""
    signed = sorted(headers)
    canonical = "\n".join([
        "PUT", path, "",
        "".join(f"{h}:{headers[h]}\n" for h in signed),
        ";".join(signed),
        payload,
    ])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={cluster.info['access_key']}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return signature


def _send(cluster, path, headers, body):
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=60)
    conn.request("PUT", path, body=bytes(body), headers={k.title(): v for k, v in headers.items()})
    response = conn.getresponse()
    return response.status, response.read()


def signed_chunked_put(cluster, bucket, key, data, chunk_size=64 * 1024, forge_chunk=None):
    amz_date, scope, key_bytes = _scope(cluster)
    path = f"/{bucket}/{key}"
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    # Encoded length: each chunk is "<hex size>;chunk-signature=<64 hex>\r\n<data>\r\n".
    encoded_length = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    headers = {
        "host": f"127.0.0.1:{cluster.port}",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-date": amz_date,
        "x-amz-decoded-content-length": str(len(data)),
        "content-encoding": "aws-chunked",
        "content-length": str(encoded_length),
    }
    previous = _authorize(cluster, path, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, key_bytes)
    body = bytearray()
    for index, chunk in enumerate(chunks):
        chunk_to_sign = "\n".join([
            "AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256,
            hashlib.sha256(chunk).hexdigest(),
        ])
        signature = hmac.new(key_bytes, chunk_to_sign.encode(), hashlib.sha256).hexdigest()
        previous = signature
        if index == forge_chunk:
            signature = "0" * 64
        body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
    assert len(body) == encoded_length
    return _send(cluster, path, headers, body)


def test_signed_chunked_upload_round_trips(cluster, s3, bucket):
    data = os.urandom(3 * 1024 * 1024 + 321)
    status, reply = signed_chunked_put(cluster, bucket, "chunked", data)
    assert status == 200, reply
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["ContentLength"] == len(data)
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_a_forged_chunk_signature_is_refused_and_stores_nothing(cluster, s3, bucket):
    data = os.urandom(1024 * 1024)
    status, reply = signed_chunked_put(cluster, bucket, "forged", data, forge_chunk=5)
    assert status == 403, reply
    assert b"SignatureDoesNotMatch" in reply
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="forged")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def unsigned_trailer_put(cluster, bucket, key, data, crc32, chunk_size=64 * 1024):
    amz_date, scope, key_bytes = _scope(cluster)
    path = f"/{bucket}/{key}"
    body = bytearray()
    for i in range(0, len(data), chunk_size):
        chunk = data[i : i + chunk_size]
        body += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    body += f"0\r\nx-amz-checksum-crc32:{crc32}\r\n\r\n".encode()
    headers = {
        "host": f"127.0.0.1:{cluster.port}",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-date": amz_date,
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "content-encoding": "aws-chunked",
        "content-length": str(len(body)),
    }
    _authorize(cluster, path, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", amz_date, scope, key_bytes)
    return _send(cluster, path, headers, body)


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_trailing_checksum_is_verified(cluster, s3, bucket):
    data = os.urandom(2 * 1024 * 1024 + 5)
    status, reply = unsigned_trailer_put(cluster, bucket, "trailer-ok", data, crc32_b64(data))
    assert status == 200, reply
    assert s3.get_object(Bucket=bucket, Key="trailer-ok")["Body"].read() == data

    status, reply = unsigned_trailer_put(cluster, bucket, "trailer-bad", data, crc32_b64(b"other"))
    assert status == 400 and b"BadDigest" in reply, reply
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="trailer-bad")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_checksum_header_is_verified(s3, bucket):
    data = b"checksummed body"
    put = s3.put_object(Bucket=bucket, Key="crc-ok", Body=data, ChecksumCRC32=crc32_b64(data))
    assert put["ChecksumCRC32"] == crc32_b64(data)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="crc-bad", Body=data, ChecksumCRC32=crc32_b64(b"nope"))
    assert e.value.response["Error"]["Code"] == "BadDigest"
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert s3.put_object(Bucket=bucket, Key="sha-ok", Body=data, ChecksumSHA256=sha)["ChecksumSHA256"] == sha
