"""aws-cli against a `cairn dev` cluster: `s3 cp` of a 50 MiB file is a
multipart upload (8 MiB parts) up, a ranged, parallel download, and a
server-side copy made of UploadPartCopy ranges."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

MiB = 1024 * 1024
AWS = Path(sys.executable).parent / "aws"


def aws(cluster, *args):
    env = dict(os.environ,
               AWS_ACCESS_KEY_ID=cluster.info["access_key"],
               AWS_SECRET_ACCESS_KEY=cluster.info["secret_key"],
               AWS_DEFAULT_REGION=cluster.info["region"],
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    result = subprocess.run(
        [str(AWS), "--endpoint-url", cluster.endpoint, *args],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"aws {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def test_cp_50_mib_up_and_down(cluster, tmp_path):
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(50 * MiB))
    aws(cluster, "s3", "mb", "s3://awscli")
    aws(cluster, "s3", "cp", "--only-show-errors", str(source), "s3://awscli/dir/file.bin")
    listing = aws(cluster, "s3", "ls", "s3://awscli/dir/")
    assert "file.bin" in listing and str(50 * MiB) in listing
    head = aws(cluster, "s3api", "head-object", "--bucket", "awscli", "--key", "dir/file.bin")
    assert '-7\\"' in head, f"not a 7-part multipart ETag: {head}"
    back = tmp_path / "down.bin"
    aws(cluster, "s3", "cp", "--only-show-errors", "s3://awscli/dir/file.bin", str(back))
    assert hashlib.md5(back.read_bytes()).digest() == hashlib.md5(source.read_bytes()).digest()
    # Bucket to bucket: a multipart copy, each part an UploadPartCopy range.
    aws(cluster, "s3", "cp", "--only-show-errors", "s3://awscli/dir/file.bin", "s3://awscli/dir/copy.bin")
    part = aws(cluster, "s3api", "head-object", "--bucket", "awscli", "--key", "dir/copy.bin",
               "--part-number", "1")
    assert '"PartsCount": 7' in part and f'"ContentLength": {8 * MiB}' in part, part
    copied = tmp_path / "copy.bin"
    aws(cluster, "s3", "cp", "--only-show-errors", "s3://awscli/dir/copy.bin", str(copied))
    assert hashlib.md5(copied.read_bytes()).digest() == hashlib.md5(source.read_bytes()).digest()
    aws(cluster, "s3", "rm", "s3://awscli/dir/copy.bin")
    aws(cluster, "s3", "rm", "s3://awscli/dir/file.bin")
    assert "file.bin" not in aws(cluster, "s3", "ls", "s3://awscli/", "--recursive")
    aws(cluster, "s3", "rb", "s3://awscli")
