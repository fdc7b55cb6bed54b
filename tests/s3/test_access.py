"""Who may do what, with real clients against a real cluster: buckets
belong to their creator, a second user is denied, bucket policies grant
and deny (prefixes, users, anonymous access, source address), an explicit
deny beats an allow and binds the owner too, and a public object is served
to plain HTTP without credentials."""

import json
import urllib.error
import urllib.request

import botocore
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def error_of(raised):
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def denied(call, **kw):
    with pytest.raises(ClientError) as refused:
        call(**kw)
    assert error_of(refused) == ("AccessDenied", 403), kw


def anonymous(cluster):
    return boto3.client("s3", endpoint_url=cluster.endpoint, region_name=cluster.info["region"],
                        config=Config(signature_version=botocore.UNSIGNED, s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1, "mode": "standard"}))


def http_get(url):
    """(status, body) of a plain HTTP GET, no credentials."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def put_policy(s3, bucket, *statements):
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def test_a_bucket_belongs_to_its_creator(cluster, s3, bob, bucket):
    s3.put_object(Bucket=bucket, Key="mine", Body=b"alice's")
    for call, kw in [
        (bob.get_object, {"Key": "mine"}),
        (bob.head_object, {"Key": "mine"}),
        (bob.put_object, {"Key": "theirs", "Body": b"x"}),
        (bob.delete_object, {"Key": "mine"}),
        (bob.list_objects_v2, {}),
        (bob.list_object_versions, {}),
        (bob.head_bucket, {}),
        (bob.get_bucket_versioning, {}),
        (bob.put_bucket_versioning, {"VersioningConfiguration": {"Status": "Enabled"}}),
        (bob.get_bucket_policy, {}),
        (bob.put_bucket_policy, {"Policy": json.dumps({"Statement": {
            "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/*"}})}),
        (bob.delete_bucket, {}),
        (bob.create_multipart_upload, {"Key": "mp"}),
        (bob.copy_object, {"Key": "copy", "CopySource": {"Bucket": bucket, "Key": "mine"}}),
    ]:
        if call == bob.head_object or call == bob.head_bucket:
            with pytest.raises(ClientError) as refused:
                call(Bucket=bucket, **kw)
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, call
        else:
            denied(call, Bucket=bucket, **kw)
    # Nothing bob tried changed anything.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["mine"]
    assert s3.get_object(Bucket=bucket, Key="mine")["Body"].read() == b"alice's"
    # The name is taken for everyone else; bob's listing shows only his own.
    with pytest.raises(ClientError) as taken:
        bob.create_bucket(Bucket=bucket)
    assert error_of(taken) == ("BucketAlreadyExists", 409)
    assert bucket not in [b["Name"] for b in bob.list_buckets()["Buckets"]]
    # Copying out of a bucket bob cannot read, into his own: refused too.
    bob.create_bucket(Bucket="bobs-own")
    denied(bob.copy_object, Bucket="bobs-own", Key="stolen", CopySource={"Bucket": bucket, "Key": "mine"})
    # x-amz-expected-bucket-owner guards a write against a bucket someone
    # else owns: the owner's own request naming another owner is refused.
    denied(s3.put_object, Bucket=bucket, Key="guarded", Body=b"x", ExpectedBucketOwner="bob")
    s3.put_object(Bucket=bucket, Key="guarded", Body=b"x", ExpectedBucketOwner=cluster.info["access_key"])
    denied(s3.delete_objects, Bucket=bucket, Delete={"Objects": [{"Key": "guarded"}]}, ExpectedBucketOwner="bob")
    denied(s3.copy_object, Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "guarded"},
           ExpectedSourceBucketOwner="bob")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "guarded"},
                   ExpectedSourceBucketOwner=cluster.info["access_key"])
    # Anonymous requests get nothing without a grant.
    anon = anonymous(cluster)
    denied(anon.list_buckets)
    denied(anon.get_object, Bucket=bucket, Key="mine")
    denied(anon.create_bucket, Bucket="anon-bucket")
    assert http_get(f"{cluster.endpoint}/{bucket}/mine")[0] == 403


def test_a_public_read_policy_serves_plain_http_without_credentials(cluster, s3, bucket):
    put_policy(s3, bucket, {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                            "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/site/*"})
    s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"<h1>hello</h1>", ContentType="text/html")
    s3.put_object(Bucket=bucket, Key="private/notes", Body=b"secret")
    status, body = http_get(f"{cluster.endpoint}/{bucket}/site/index.html")
    assert (status, body) == (200, b"<h1>hello</h1>")
    assert http_get(f"{cluster.endpoint}/{bucket}/private/notes")[0] == 403
    # A missing key is a 403 to whoever may not list the bucket (as S3:
    # a public object must not reveal which other keys exist)…
    assert http_get(f"{cluster.endpoint}/{bucket}/site/missing")[0] == 403
    # …and a 404 to whoever may.
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="site/missing")
    assert error_of(missing) == ("NoSuchKey", 404)
    anon = anonymous(cluster)
    assert anon.get_object(Bucket=bucket, Key="site/index.html")["Body"].read() == b"<h1>hello</h1>"
    denied(anon.put_object, Bucket=bucket, Key="site/defaced", Body=b"x")
    denied(anon.list_objects_v2, Bucket=bucket)
    status = s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]
    assert status["IsPublic"] is True
    s3.delete_bucket_policy(Bucket=bucket)
    assert http_get(f"{cluster.endpoint}/{bucket}/site/index.html")[0] == 403


def test_a_policy_allows_one_prefix_and_denies_another(s3, bob, bucket):
    arn = f"arn:aws:s3:::{bucket}"
    put_policy(
        s3, bucket,
        {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::000000000000:user/bob"]},
         "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"{arn}/shared/*"},
        {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:ListBucket", "Resource": arn,
         "Condition": {"StringLike": {"s3:prefix": "shared/*"}}},
        {"Effect": "Deny", "Principal": {"AWS": "bob"}, "Action": "s3:*", "Resource": f"{arn}/shared/secret/*"},
        {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:DeleteObject", "Resource": f"{arn}/shared/tmp/*"},
    )
    bob.put_object(Bucket=bucket, Key="shared/report", Body=b"from bob")
    assert s3.get_object(Bucket=bucket, Key="shared/report")["Body"].read() == b"from bob"
    s3.put_object(Bucket=bucket, Key="shared/secret/plan", Body=b"owner only")
    s3.put_object(Bucket=bucket, Key="other/x", Body=b"x")
    assert bob.get_object(Bucket=bucket, Key="shared/report")["Body"].read() == b"from bob"
    denied(bob.get_object, Bucket=bucket, Key="shared/secret/plan")
    denied(bob.put_object, Bucket=bucket, Key="shared/secret/overwrite", Body=b"x")
    denied(bob.get_object, Bucket=bucket, Key="other/x")
    denied(bob.delete_object, Bucket=bucket, Key="shared/report")
    # DeleteObjects checks each key: none of these may bob delete.
    result = bob.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "shared/report"}, {"Key": "other/x"}]})
    assert sorted((e["Key"], e["Code"]) for e in result["Errors"]) == [
        ("other/x", "AccessDenied"), ("shared/report", "AccessDenied")]
    assert result.get("Deleted", []) == []
    bob.put_object(Bucket=bucket, Key="shared/tmp/t", Body=b"t")
    result = bob.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "shared/tmp/t"}, {"Key": "other/x"}]})
    assert [d["Key"] for d in result["Deleted"]] == ["shared/tmp/t"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("other/x", "AccessDenied")]
    listed = bob.list_objects_v2(Bucket=bucket, Prefix="shared/")
    assert {o["Key"] for o in listed["Contents"]} == {"shared/report", "shared/secret/plan"}
    denied(bob.list_objects_v2, Bucket=bucket)
    denied(bob.list_objects_v2, Bucket=bucket, Prefix="other/")
    # The Deny names bob only: the owner still reads the secret.
    assert s3.get_object(Bucket=bucket, Key="shared/secret/plan")["Body"].read() == b"owner only"


def test_an_explicit_deny_binds_the_owner_who_can_still_remove_it(s3, bucket):
    arn = f"arn:aws:s3:::{bucket}"
    s3.put_object(Bucket=bucket, Key="locked/a", Body=b"a")
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject", "s3:GetObject"],
                            "Resource": f"{arn}/locked/*"})
    denied(s3.delete_object, Bucket=bucket, Key="locked/a")
    denied(s3.get_object, Bucket=bucket, Key="locked/a")
    # Everything the policy does not name is the owner's as before.
    s3.put_object(Bucket=bucket, Key="open/b", Body=b"b")
    assert s3.get_object(Bucket=bucket, Key="open/b")["Body"].read() == b"b"
    # Even a policy denying everything leaves its owner able to fix it.
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                            "Resource": [arn, f"{arn}/*"]})
    denied(s3.list_objects_v2, Bucket=bucket)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]["Effect"] == "Deny"
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="locked/a")["Body"].read() == b"a"


def test_source_address_and_transport_conditions(s3, bucket):
    arn = f"arn:aws:s3:::{bucket}"
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    # Tests run from 127.0.0.1: a deny for that address applies…
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"{arn}/*",
                            "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}})
    denied(s3.get_object, Bucket=bucket, Key="k")
    # …one for another network does not.
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"{arn}/*",
                            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    # The usual "deny plain HTTP" policy: the endpoint is HTTP, so it denies.
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"{arn}/*",
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    denied(s3.get_object, Bucket=bucket, Key="k")
    s3.delete_bucket_policy(Bucket=bucket)


def test_policies_are_validated_when_put(s3, bucket):
    with pytest.raises(ClientError) as none:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_of(none) == ("NoSuchBucketPolicy", 404)
    arn = f"arn:aws:s3:::{bucket}"
    for bad in [
        "not json",
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                   "Resource": "arn:aws:s3:::someone-elses-bucket/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{arn}/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                   "Resource": f"{arn}/*",
                                   "Condition": {"DateLessThan": {"aws:CurrentTime": "next tuesday"}}}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                   "Resource": f"{arn}/*",
                                   "Condition": {"BinaryEquals": {"s3:x": "AA=="}}}]}),
    ]:
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_policy(Bucket=bucket, Policy=bad)
        assert error_of(refused) == ("MalformedPolicy", 400), bad
    with pytest.raises(ClientError):
        s3.get_bucket_policy(Bucket=bucket)
    text = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "x", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"{arn}/*"}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=text)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(text)


def test_acls_are_disabled_as_on_s3_by_default(cluster, s3, bucket):
    owner = cluster.info["access_key"]
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"] == owner
    assert [(g["Grantee"]["ID"], g["Permission"]) for g in acl["Grants"]] == [(owner, "FULL_CONTROL")]
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    # As on S3: writes take no ACL or the owner's full control, a bucket
    # ACL only as a body granting the owner full control; anything else
    # is refused, never stored to be ignored.
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy={
        "Owner": {"ID": owner},
        "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"}]})
    for canned in ("private", "public-read"):
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_acl(Bucket=bucket, ACL=canned)
        assert error_of(refused) == ("AccessControlListNotSupported", 400)
    with pytest.raises(ClientError) as private_object:
        s3.put_object(Bucket=bucket, Key="o", Body=b"x", ACL="private")
    assert error_of(private_object) == ("AccessControlListNotSupported", 400)
    with pytest.raises(ClientError) as public_object:
        s3.put_object(Bucket=bucket, Key="o", Body=b"x", ACL="public-read")
    assert error_of(public_object) == ("AccessControlListNotSupported", 400)
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="o")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ACL="bucket-owner-full-control")
    grants = s3.get_object_acl(Bucket=bucket, Key="o")["Grants"]
    assert [(g["Grantee"]["ID"], g["Permission"]) for g in grants] == [(owner, "FULL_CONTROL")]
    with pytest.raises(ClientError) as grant:
        s3.put_object_acl(Bucket=bucket, Key="o", GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"')
    assert error_of(grant) == ("AccessControlListNotSupported", 400)
    assert http_get(f"{cluster.endpoint}/{bucket}/o")[0] == 403
    with pytest.raises(ClientError) as created:
        s3.create_bucket(Bucket=f"{bucket}-pub", ACL="public-read")
    assert error_of(created) == ("InvalidBucketAclWithObjectOwnership", 400)


def test_block_public_access_refuses_or_voids_public_policies(cluster, s3, bob, bucket):
    arn = f"arn:aws:s3:::{bucket}"
    public = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"{arn}/*"}
    with pytest.raises(ClientError) as none:
        s3.get_public_access_block(Bucket=bucket)
    assert error_of(none) == ("NoSuchPublicAccessBlockConfiguration", 404)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"BlockPublicPolicy": True})
    config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert config["BlockPublicPolicy"] is True and config["RestrictPublicBuckets"] is False
    with pytest.raises(ClientError) as blocked:
        put_policy(s3, bucket, public)
    assert error_of(blocked) == ("AccessDenied", 403)
    # A policy naming a user is not public.
    put_policy(s3, bucket, dict(public, Principal={"AWS": "bob"}))
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert bob.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    # RestrictPublicBuckets: a public policy's grants reach no one else.
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
    put_policy(s3, bucket, public)
    assert http_get(f"{cluster.endpoint}/{bucket}/k")[0] == 403
    denied(bob.get_object, Bucket=bucket, Key="k")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    s3.delete_public_access_block(Bucket=bucket)
    assert http_get(f"{cluster.endpoint}/{bucket}/k") == (200, b"v")
    s3.delete_bucket_policy(Bucket=bucket)


def test_policy_conditions_on_object_tags_and_numbers(s3, bob, bucket):
    arn = f"arn:aws:s3:::{bucket}"
    put_policy(
        s3, bucket,
        {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:GetObject", "Resource": f"{arn}/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/visibility": "shared"}}},
        {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:PutObject", "Resource": f"{arn}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/team": "bob"}}},
        {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:ListBucket", "Resource": arn,
         "Condition": {"NumericLessThanEquals": {"s3:max-keys": "10"}}})
    s3.put_object(Bucket=bucket, Key="shared", Body=b"s", Tagging="visibility=shared")
    s3.put_object(Bucket=bucket, Key="private", Body=b"p")
    assert bob.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"s"
    denied(bob.get_object, Bucket=bucket, Key="private")
    # The object's tags as they are now, not as they were.
    s3.put_object_tagging(Bucket=bucket, Key="private", Tagging={"TagSet": [{"Key": "visibility", "Value": "shared"}]})
    assert bob.get_object(Bucket=bucket, Key="private")["Body"].read() == b"p"
    bob.put_object(Bucket=bucket, Key="bobs", Body=b"b", Tagging="team=bob")
    denied(bob.put_object, Bucket=bucket, Key="untagged", Body=b"b")
    assert bob.list_objects_v2(Bucket=bucket, MaxKeys=5)["KeyCount"] == 3
    denied(bob.list_objects_v2, Bucket=bucket, MaxKeys=100)
    denied(bob.list_objects_v2, Bucket=bucket)
