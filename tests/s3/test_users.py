"""Users and access keys made with `cairn user`, kept in the replicated
catalogue: a new user signs with its key at once, owns what it creates and
nothing else, can hold several keys, loses access when a key or the user is
deleted, and its secret is shown once and stored only sealed."""

import json
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import BIN_DIR

# A deleted key is trusted by a gateway for at most this long (its cache).
KEY_CACHE_SECONDS = 5


def cairn_raw(cluster, *args):
    return subprocess.run(
        [str(BIN_DIR / "cairn"), "--cluster-file", str(cluster.data_dir / "cluster.json"), *args],
        capture_output=True, text=True, timeout=120)


def code_of(raised):
    return raised.value.response["Error"]["Code"]


def wait_refused(client, code, what):
    """Polls until `client` is refused with `code` (a gateway may trust a
    deleted key for KEY_CACHE_SECONDS)."""
    deadline = time.time() + KEY_CACHE_SECONDS + 5
    while True:
        try:
            client.list_buckets()
        except ClientError as err:
            assert err.response["Error"]["Code"] == code, err.response
            return
        assert time.time() < deadline, f"{what} still works after {KEY_CACHE_SECONDS + 5} s"
        time.sleep(0.5)


def test_a_user_made_with_the_cli_signs_owns_and_is_kept_apart(cluster, s3):
    carol = cluster.cairn("user", "create", "carol", "--json")
    assert carol["user"] == "carol"
    assert len(carol["access_key"]) == 20 and len(carol["secret_key"]) == 40
    as_carol = cluster.client(access_key=carol["access_key"], secret_key=carol["secret_key"])

    as_carol.create_bucket(Bucket="carols")
    as_carol.put_object(Bucket="carols", Key="k", Body=b"carol's bytes")
    assert as_carol.get_object(Bucket="carols", Key="k")["Body"].read() == b"carol's bytes"
    listed = as_carol.list_buckets()
    assert [b["Name"] for b in listed["Buckets"]] == ["carols"]
    assert listed["Owner"]["ID"] == "carol"

    # Kept apart both ways.
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="carols", Key="k")
    assert code_of(refused) == "AccessDenied"
    s3.create_bucket(Bucket="not-carols")
    with pytest.raises(ClientError) as refused:
        as_carol.list_objects_v2(Bucket="not-carols")
    assert code_of(refused) == "AccessDenied"
    with pytest.raises(ClientError) as refused:
        as_carol.create_bucket(Bucket="not-carols")
    assert code_of(refused) == "BucketAlreadyExists"

    # A policy names her by user name (her keys are hers alike).
    s3.put_bucket_policy(Bucket="not-carols", Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::cairn:user/carol"},
        "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::not-carols"}]}))
    assert as_carol.list_objects_v2(Bucket="not-carols")["KeyCount"] == 0

    # A wrong secret is a bad signature; an unknown key is unknown.
    wrong = cluster.client(access_key=carol["access_key"], secret_key="x" * 40)
    with pytest.raises(ClientError) as refused:
        wrong.list_buckets()
    assert code_of(refused) == "SignatureDoesNotMatch"
    unknown = cluster.client(access_key="CK" + "Z" * 18, secret_key="x" * 40)
    with pytest.raises(ClientError) as refused:
        unknown.list_buckets()
    assert code_of(refused) == "InvalidAccessKeyId"

    # Listed without secrets; the secret is nowhere in the catalogue's files.
    listing = cairn_raw(cluster, "user", "list", "--json").stdout
    users = {u["name"]: u for u in json.loads(listing)}
    assert [k["access_key"] for k in users["carol"]["keys"]] == [carol["access_key"]]
    assert carol["secret_key"] not in listing
    assert carol["secret_key"] not in cairn_raw(cluster, "user", "list").stdout
    secret = carol["secret_key"].encode()
    scanned = 0
    for path in (cluster.data_dir).rglob("*"):
        if path.is_file() and "meta" in str(path.relative_to(cluster.data_dir)):
            assert secret not in path.read_bytes(), f"plaintext secret in {path}"
            scanned += 1
    assert scanned > 10, "the metadata replicas' files were not found"

    # Creating her again is refused; bad names are refused.
    again = cairn_raw(cluster, "user", "create", "carol")
    assert again.returncode != 0 and "already exists" in again.stderr
    bad = cairn_raw(cluster, "user", "create", "no spaces")
    assert bad.returncode != 0 and "invalid" in bad.stderr


def test_keys_rotate_and_a_deleted_user_loses_access(cluster):
    dave = cluster.cairn("user", "create", "dave", "--json")
    first = cluster.client(access_key=dave["access_key"], secret_key=dave["secret_key"])
    first.create_bucket(Bucket="daves")

    second_key = cluster.cairn("user", "keys", "dave", "--create", "--json")
    assert second_key["access_key"] != dave["access_key"]
    second = cluster.client(access_key=second_key["access_key"], secret_key=second_key["secret_key"])
    # Same user, whichever key signs.
    second.put_object(Bucket="daves", Key="k", Body=b"v")
    assert [b["Name"] for b in second.list_buckets()["Buckets"]] == ["daves"]
    keys = cluster.cairn("user", "keys", "dave", "--json")
    assert sorted(k["access_key"] for k in keys) == sorted([dave["access_key"], second_key["access_key"]])

    # Rotating out the first key: it stops working, the second goes on.
    cluster.cairn("user", "keys", "dave", "--delete", dave["access_key"])
    wait_refused(first, "InvalidAccessKeyId", "a deleted key")
    assert second.get_object(Bucket="daves", Key="k")["Body"].read() == b"v"

    # The owner of a bucket cannot be deleted; once it owns nothing it can.
    refused = cairn_raw(cluster, "user", "delete", "dave")
    assert refused.returncode != 0 and "daves" in refused.stderr
    second.delete_object(Bucket="daves", Key="k")
    second.delete_bucket(Bucket="daves")
    cluster.cairn("user", "delete", "dave")
    wait_refused(second, "InvalidAccessKeyId", "a deleted user's key")
    assert "dave" not in {u["name"] for u in cluster.cairn("user", "list", "--json")}
    missing = cairn_raw(cluster, "user", "keys", "dave", "--create")
    assert missing.returncode != 0 and "no user dave" in missing.stderr
