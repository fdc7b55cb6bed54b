"""Server-side encryption with real clients (boto3, aws-cli) against real
clusters: SSE-C (the client's key) and SSE-S3 (the cluster's master keys),
single PUTs, inline bodies, multipart, copies and ranges; no plaintext on
any node's disk; encrypted objects repaired after a node is killed."""

import base64
import contextlib
import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from test_awscli import AWS
from test_scrub_repair import repair_status, wait_until

KEY = os.urandom(32)
OTHER_KEY = os.urandom(32)
SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY}
WRONG_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": OTHER_KEY}


def error_of(raised):
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def marked(size, seed):
    """A body no chunk could hold by accident: a repeated 32-byte marker."""
    marker = hashlib.sha256(seed.encode()).digest()
    return (marker * (size // 32 + 1))[:size], marker


def node_files(cluster):
    """Every file under every node's data directory."""
    return [p for n in cluster.info["nodes"] for p in Path(n["data_dir"]).rglob("*") if p.is_file()]


def assert_no_plaintext(cluster, marker):
    for path in node_files(cluster):
        assert marker not in path.read_bytes(), f"plaintext in {path}"


@contextlib.contextmanager
def extra_headers(s3, operation, headers):
    """Adds raw headers to every `operation` call inside the block."""
    def add(params, **_):
        params["headers"].update(headers)
    s3.meta.events.register_first(f"before-call.s3.{operation}", add)
    try:
        yield
    finally:
        s3.meta.events.unregister(f"before-call.s3.{operation}", add)


def md5_b64(key):
    return base64.b64encode(hashlib.md5(key).digest()).decode()


def test_sse_c_round_trip_needs_the_key_and_leaves_no_plaintext_on_disk(cluster, s3, bucket):
    # The search can find plaintext: an unencrypted control object's marker
    # is on disk.
    control, control_marker = marked(300_000, "control")
    s3.put_object(Bucket=bucket, Key="control", Body=control)
    assert any(control_marker in p.read_bytes() for p in node_files(cluster))
    for size in (100, 300_000, 3 * 2**20 + 17):  # inline, replicated, 8+4
        data, marker = marked(size, f"sse-c-{size}")
        key = f"secret-{size}"
        put = s3.put_object(Bucket=bucket, Key=key, Body=data, **SSE_C)
        assert put["SSECustomerAlgorithm"] == "AES256" and put["SSECustomerKeyMD5"] == md5_b64(KEY)
        # The ETag is not the MD5 of the plaintext (it would let anyone who
        # can list the bucket test guesses of the content).
        assert put["ETag"].strip('"') != hashlib.md5(data).hexdigest()
        got = s3.get_object(Bucket=bucket, Key=key, **SSE_C)
        assert got["Body"].read() == data
        assert got["SSECustomerKeyMD5"] == md5_b64(KEY)
        head = s3.head_object(Bucket=bucket, Key=key, **SSE_C)
        assert head["ContentLength"] == size and head["SSECustomerAlgorithm"] == "AES256"
        # No key: 400; the wrong key: 403; never the bytes.
        for call in (s3.get_object, s3.head_object):
            with pytest.raises(ClientError) as none:
                call(Bucket=bucket, Key=key)
            assert error_of(none)[1] == 400
            with pytest.raises(ClientError) as wrong:
                call(Bucket=bucket, Key=key, **WRONG_C)
            assert error_of(wrong)[1] == 403
        # Ranges decrypt from any offset.
        for start, end in ((0, 0), (1, 16), (15, 33), (size // 2, size - 1)):
            part = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", **SSE_C)
            assert part["Body"].read() == data[start:end + 1], (size, start, end)
        # Neither chunks, nor inline bodies in the catalogue, hold plaintext.
        assert_no_plaintext(cluster, marker)
    # The inline body (in the catalogue, base64 in its JSON) is ciphertext too.
    manifest = cluster.cairn("inspect", f"{bucket}/secret-100", "--json")["manifest"]
    assert manifest["encryption"]["mode"]["kind"] == "customer_key"
    stored = base64.b64decode(manifest["inline"]["data"])
    plain, marker = marked(100, "sse-c-100")
    assert len(stored) == 100 and marker not in stored and stored != plain
    assert base64.b64encode(KEY).decode() not in str(manifest) and KEY.hex() not in str(manifest)


def test_malformed_sse_c_headers_get_s3s_errors_and_store_nothing(cluster, s3, bucket):
    def put_with(headers):
        with extra_headers(s3, "PutObject", headers):
            s3.put_object(Bucket=bucket, Key="bad", Body=b"x" * 100)

    good_key = base64.b64encode(KEY).decode()
    algo = "x-amz-server-side-encryption-customer-algorithm"
    key = "x-amz-server-side-encryption-customer-key"
    md5 = "x-amz-server-side-encryption-customer-key-md5"
    for headers, code in [
        ({algo: "AES256", key: good_key, md5: md5_b64(OTHER_KEY)}, "InvalidArgument"),
        ({algo: "AES256", key: good_key}, "InvalidArgument"),
        ({algo: "AES256", md5: md5_b64(KEY)}, "InvalidArgument"),
        ({key: good_key, md5: md5_b64(KEY)}, "InvalidArgument"),
        ({algo: "AES256", key: base64.b64encode(b"short").decode(), md5: md5_b64(b"short")}, "InvalidArgument"),
        ({algo: "AES128", key: good_key, md5: md5_b64(KEY)}, "InvalidEncryptionAlgorithmError"),
        ({algo: "AES256", key: good_key, md5: md5_b64(KEY), "x-amz-server-side-encryption": "AES256"},
         "InvalidArgument"),
    ]:
        with pytest.raises(ClientError) as refused:
            put_with(headers)
        assert error_of(refused) == (code, 400), headers
    with pytest.raises(ClientError) as kms:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"x", ServerSideEncryption="aws:kms")
    assert error_of(kms) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="bad")
    assert error_of(missing)[1] == 404
    # A plaintext object read with an SSE-C key: 400, as S3.
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    with pytest.raises(ClientError) as plain:
        s3.get_object(Bucket=bucket, Key="plain", **SSE_C)
    assert error_of(plain) == ("InvalidRequest", 400)


def test_sse_s3_and_bucket_default_encryption_with_ranges_and_copies(cluster, s3, bucket):
    data, marker = marked(5 * 2**20 + 3, "sse-s3")
    put = s3.put_object(Bucket=bucket, Key="s3", Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"].strip('"') == hashlib.md5(data).hexdigest()  # as S3 does for SSE-S3
    head = s3.head_object(Bucket=bucket, Key="s3")
    assert head["ServerSideEncryption"] == "AES256"
    # The header belongs to writes: a read naming it is refused, as S3 does.
    with extra_headers(s3, "HeadObject", {"x-amz-server-side-encryption": "AES256"}):
        with pytest.raises(ClientError) as on_read:
            s3.head_object(Bucket=bucket, Key="s3")
    assert error_of(on_read)[1] == 400
    assert s3.get_object(Bucket=bucket, Key="s3")["Body"].read() == data
    # Range reads byte-exact across stripe boundaries and at odd offsets.
    stripe = 8 * 256 * 1024
    for start, end in ((0, 99), (stripe - 5, stripe + 5), (17, 3 * stripe + 1), (len(data) - 1, len(data) - 1)):
        got = s3.get_object(Bucket=bucket, Key="s3", Range=f"bytes={start}-{end}")["Body"].read()
        assert got == data[start:end + 1], (start, end)
    assert_no_plaintext(cluster, marker)

    # Bucket default encryption applies to writes that name none.
    with pytest.raises(ClientError) as none:
        s3.get_bucket_encryption(Bucket=bucket)
    assert error_of(none) == ("ServerSideEncryptionConfigurationNotFoundError", 404)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    with pytest.raises(ClientError) as kms:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    assert error_of(kms) == ("NotImplemented", 501)
    small, small_marker = marked(1000, "default")
    assert s3.put_object(Bucket=bucket, Key="default", Body=small)["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="default")["Body"].read() == small
    assert_no_plaintext(cluster, small_marker)

    # Copies: SSE-C source (needs its key) to the bucket default; SSE-S3 to SSE-C.
    s3.put_object(Bucket=bucket, Key="c-src", Body=small, **SSE_C)
    with pytest.raises(ClientError) as keyless:
        s3.copy_object(Bucket=bucket, Key="c-dst", CopySource={"Bucket": bucket, "Key": "c-src"})
    assert error_of(keyless)[1] == 400
    copied = s3.copy_object(Bucket=bucket, Key="c-dst", CopySource={"Bucket": bucket, "Key": "c-src"},
                            CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY)
    assert copied["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="c-dst")["Body"].read() == small
    s3.copy_object(Bucket=bucket, Key="to-c", CopySource={"Bucket": bucket, "Key": "s3"}, **SSE_C)
    assert s3.get_object(Bucket=bucket, Key="to-c", **SSE_C)["Body"].read() == data
    # Re-encrypting in place (copy onto itself naming an encryption) is allowed.
    s3.copy_object(Bucket=bucket, Key="to-c", CopySource={"Bucket": bucket, "Key": "to-c"},
                   CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY,
                   ServerSideEncryption="AES256")
    assert s3.get_object(Bucket=bucket, Key="to-c")["Body"].read() == data
    s3.delete_bucket_encryption(Bucket=bucket)
    assert "ServerSideEncryption" not in s3.put_object(Bucket=bucket, Key="plain-again", Body=b"x")


def test_sse_c_multipart_parts_must_name_the_uploads_key(cluster, s3, bucket):
    part_size = 5 * 2**20
    data, marker = marked(2 * part_size + 1234, "multipart")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", **SSE_C)
    assert upload["SSECustomerKeyMD5"] == md5_b64(KEY)
    uid = upload["UploadId"]
    with pytest.raises(ClientError) as wrong:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=data[:part_size], **WRONG_C)
    assert error_of(wrong) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as none:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=data[:part_size])
    assert error_of(none)[1] == 400
    parts = []
    for number, start in enumerate(range(0, len(data), part_size), 1):
        part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=number,
                              Body=data[start:start + part_size], **SSE_C)
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    # Completing needs no key (as on S3), but a key named must be the upload's.
    with pytest.raises(ClientError) as wrong:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts},
                                     **WRONG_C)
    assert error_of(wrong)[1] == 400
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="mp", **SSE_C)["Body"].read() == data
    # A range across the part boundary decrypts each side with its own keystream.
    got = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={part_size - 10}-{part_size + 10}", **SSE_C)
    assert got["Body"].read() == data[part_size - 10:part_size + 11]
    with pytest.raises(ClientError) as keyless:
        s3.get_object(Bucket=bucket, Key="mp")
    assert error_of(keyless)[1] == 400
    assert_no_plaintext(cluster, marker)


def test_aws_cli_sse_c_and_sse_s3(cluster, bucket, tmp_path):
    source = tmp_path / "in.bin"
    data, _ = marked(200_000, "cli")
    source.write_bytes(data)
    key_file = tmp_path / "key.bin"
    key_file.write_bytes(KEY)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=cluster.info["access_key"],
               AWS_SECRET_ACCESS_KEY=cluster.info["secret_key"], AWS_DEFAULT_REGION=cluster.info["region"],
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    aws = [str(AWS), "--endpoint-url", cluster.endpoint, "s3"]

    def run(*args):
        result = subprocess.run([*aws, *args], env=env, capture_output=True, text=True, timeout=120)
        return result.returncode, result.stdout + result.stderr

    sse_c = ["--sse-c", "AES256", "--sse-c-key", f"fileb://{key_file}"]
    assert run("cp", str(source), f"s3://{bucket}/cli-c", *sse_c)[0] == 0
    assert run("cp", str(source), f"s3://{bucket}/cli-s3", "--sse", "AES256")[0] == 0
    out = tmp_path / "out.bin"
    assert run("cp", f"s3://{bucket}/cli-c", str(out), *sse_c)[0] == 0
    assert out.read_bytes() == data
    assert run("cp", f"s3://{bucket}/cli-s3", str(out))[0] == 0
    assert out.read_bytes() == data
    code, _ = run("cp", f"s3://{bucket}/cli-c", str(tmp_path / "nokey.bin"))
    assert code != 0


def test_encrypted_objects_are_repaired_after_a_node_is_killed(make_cluster):
    cluster = make_cluster("--repair-after", "2s", "--replicated-max", "0")
    s3 = cluster.client()
    s3.create_bucket(Bucket="vault")
    objects = {}
    for i, size in enumerate((70_000, 2**20, 3 * 2**20 + 5)):
        data, _ = marked(size, f"vault-{i}")
        s3.put_object(Bucket="vault", Key=f"c{i}", Body=data, **SSE_C)
        s3.put_object(Bucket="vault", Key=f"s{i}", Body=data, ServerSideEncryption="AES256")
        objects[i] = data
    cluster.kill9("node-03")
    wait_until("the repair of the dead node's chunks", lambda: (
        (s := repair_status(cluster))["repaired_chunks"] >= 6 and s["queued"] + s["in_progress"] == 0), timeout=120)
    for i, data in objects.items():
        assert s3.get_object(Bucket="vault", Key=f"c{i}", **SSE_C)["Body"].read() == data
        assert s3.get_object(Bucket="vault", Key=f"s{i}")["Body"].read() == data
    cluster.cairn("scrub", "start", "--bucket", "vault", "--wait")
    results = cluster.cairn("scrub", "jobs", "--json")[-1]["last"]["results"]
    assert results["chunks_corrupt"] == 0 and results["chunks_missing"] == 0, results


def test_sse_s3_multipart_complete_reports_its_encryption(s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="AES256")
    assert upload["ServerSideEncryption"] == "AES256"
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 1000)
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload=parts)
    assert done["ServerSideEncryption"] == "AES256"
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload=parts)
    assert again["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"p" * 1000
