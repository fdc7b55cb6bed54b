"""STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the signed aws-chunked upload the
Java, Go and Rust SDKs use (boto3 never sends it, so it is built here from
the SigV4 spec). Every chunk carries a signature chained from the previous;
a forged chunk signature must be refused and store nothing."""

import datetime
import hashlib
import hmac
import http.client
import os

import pytest

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed_chunked_put(cluster, bucket, key, data, chunk_size=64 * 1024, forge_chunk=None):
    region, service = cluster.info["region"], "s3"
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/{region}/{service}/aws4_request"
    host = f"127.0.0.1:{cluster.port}"
    path = f"/{bucket}/{key}"

    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    # Encoded length: each chunk is "<hex size>;chunk-signature=<64 hex>\r\n<data>\r\n".
    encoded_length = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    headers = {
        "host": host,
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-date": amz_date,
        "x-amz-decoded-content-length": str(len(data)),
        "content-encoding": "aws-chunked",
        "content-length": str(encoded_length),
    }
    signed = sorted(headers)
    canonical = "\n".join([
        "PUT", path, "",
        "".join(f"{h}:{headers[h]}\n" for h in signed),
        ";".join(signed),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    ])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key_bytes = _hmac(_hmac(_hmac(_hmac(("AWS4" + cluster.info["secret_key"]).encode(), day), region), service), "aws4_request")
    seed = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={cluster.info['access_key']}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={seed}"
    )

    body = bytearray()
    previous = seed
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

    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=60)
    conn.request("PUT", path, body=bytes(body), headers={k.title(): v for k, v in headers.items()})
    response = conn.getresponse()
    return response.status, response.read()


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
