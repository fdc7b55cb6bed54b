"""Peak RSS of the gateway process over a 2 GiB PUT and a streamed GET.

    python tests/s3/gateway_rss.py [cairn-data/cluster.json] [size GiB]

Run against a `cairn dev` cluster. Reads the gateway pid from cluster.json
and its VmRSS / VmHWM (peak) from /proc. The object is a file of repeated
random 8 MiB blocks (boto3 needs a seekable body to checksum it)."""

import hashlib
import json
import os
import sys
import tempfile
import time

import boto3
from botocore.config import Config

path = sys.argv[1] if len(sys.argv) > 1 else "cairn-data/cluster.json"
gib = int(sys.argv[2]) if len(sys.argv) > 2 else 2
c = json.load(open(path))
pid = c["gateway"]["pid"]


def rss_mib():
    status = open(f"/proc/{pid}/status").read().splitlines()
    field = lambda k: int(next(l for l in status if l.startswith(k)).split()[1]) // 1024
    return field("VmRSS:"), field("VmHWM:")


s3 = boto3.client("s3", endpoint_url=c["s3_endpoint"], aws_access_key_id=c["access_key"],
                  aws_secret_access_key=c["secret_key"], region_name=c["region"],
                  config=Config(s3={"addressing_style": "path"}))
try:
    s3.create_bucket(Bucket="rss-probe")
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
block = os.urandom(8 * 1024 * 1024)
expected = hashlib.md5()
with tempfile.NamedTemporaryFile() as source:
    for _ in range(gib * 128):
        source.write(block)
        expected.update(block)
    source.flush()
    print(f"gateway pid {pid}: idle rss {rss_mib()[0]} MiB")
    started = time.time()
    with open(source.name, "rb") as body:
        s3.put_object(Bucket="rss-probe", Key="big", Body=body)
    rss, peak = rss_mib()
    print(f"PUT {gib} GiB in {time.time() - started:.1f} s: rss {rss} MiB, peak {peak} MiB")
started = time.time()
got = hashlib.md5()
for chunk in s3.get_object(Bucket="rss-probe", Key="big")["Body"].iter_chunks(1 << 20):
    got.update(chunk)
rss, peak = rss_mib()
assert got.digest() == expected.digest(), "GET returned different bytes"
print(f"GET {gib} GiB in {time.time() - started:.1f} s (MD5 ok): rss {rss} MiB, peak {peak} MiB")
s3.delete_object(Bucket="rss-probe", Key="big")
