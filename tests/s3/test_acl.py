"""ACLs on buckets whose Object Ownership turns them on (ObjectWriter,
BucketOwnerPreferred), with boto3 and plain HTTP: canned ACLs and grants on
buckets and objects, who owns an object, what the owner of a bucket may do
with objects others wrote, Block Public Access on ACLs, and switching ACLs
off again."""

import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def error_of(raised):
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def grants_of(acl):
    return sorted((g["Grantee"].get("ID") or g["Grantee"]["URI"], g["Permission"]) for g in acl["Grants"])


def acl_bucket(s3, name, ownership="ObjectWriter", **kw):
    s3.create_bucket(Bucket=name, ObjectOwnership=ownership, **kw)
    return name


def test_canned_acls_make_buckets_and_objects_public_to_plain_http(cluster, s3, bucket):
    owner = cluster.info["access_key"]
    name = acl_bucket(s3, bucket + "-pub", ACL="public-read")
    assert s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "ObjectWriter"}]
    assert grants_of(s3.get_bucket_acl(Bucket=name)) == [(owner, "FULL_CONTROL"), (ALL_USERS, "READ")]
    s3.put_object(Bucket=name, Key="public.html", Body=b"<h1>hi</h1>", ACL="public-read")
    s3.put_object(Bucket=name, Key="private.txt", Body=b"secret")
    # Anyone may list a public-read bucket and read a public-read object.
    status, listing = http_get(f"{cluster.endpoint}/{name}")
    assert status == 200 and b"public.html" in listing and b"private.txt" in listing
    assert http_get(f"{cluster.endpoint}/{name}/public.html") == (200, b"<h1>hi</h1>")
    curl = subprocess.run(["curl", "-sS", "-f", f"{cluster.endpoint}/{name}/public.html"],
                          capture_output=True, timeout=30)
    assert curl.returncode == 0 and curl.stdout == b"<h1>hi</h1>", curl.stderr
    assert http_get(f"{cluster.endpoint}/{name}/private.txt")[0] == 403
    acl = s3.get_object_acl(Bucket=name, Key="public.html")
    assert acl["Owner"]["ID"] == owner
    assert grants_of(acl) == [(owner, "FULL_CONTROL"), (ALL_USERS, "READ")]
    # Made private again, it is private again.
    s3.put_object_acl(Bucket=name, Key="public.html", ACL="private")
    assert http_get(f"{cluster.endpoint}/{name}/public.html")[0] == 403
    s3.put_bucket_acl(Bucket=name, ACL="private")
    assert http_get(f"{cluster.endpoint}/{name}")[0] == 403

    # Switching ACLs off ends what they granted.
    s3.put_object_acl(Bucket=name, Key="public.html", ACL="public-read")
    assert http_get(f"{cluster.endpoint}/{name}/public.html")[0] == 200
    s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    assert http_get(f"{cluster.endpoint}/{name}/public.html")[0] == 403
    assert grants_of(s3.get_object_acl(Bucket=name, Key="public.html")) == [(owner, "FULL_CONTROL")]
    s3.delete_bucket_ownership_controls(Bucket=name)
    with pytest.raises(ClientError) as gone:
        s3.get_bucket_ownership_controls(Bucket=name)
    assert error_of(gone) == ("OwnershipControlsNotFoundError", 404)
    assert http_get(f"{cluster.endpoint}/{name}/public.html")[0] == 200


def test_objects_written_by_others_belong_to_them(cluster, s3, bob, bucket):
    owner = cluster.info["access_key"]
    name = acl_bucket(s3, bucket + "-rw")
    # Bob may not write until the bucket's ACL lets him.
    with pytest.raises(ClientError) as refused:
        bob.put_object(Bucket=name, Key="bobs", Body=b"x")
    assert error_of(refused) == ("AccessDenied", 403)
    s3.put_bucket_acl(Bucket=name, GrantWrite='id="bob"', GrantFullControl=f'id="{owner}"')
    bob.put_object(Bucket=name, Key="bobs", Body=b"bob's bytes")
    assert bob.get_object_acl(Bucket=name, Key="bobs")["Owner"]["ID"] == "bob"
    # ObjectWriter: the bucket's owner cannot read what bob owns (nor its
    # ACL) unless bob grants it, but may delete it.
    for call in (s3.get_object, s3.get_object_acl):
        with pytest.raises(ClientError) as refused:
            call(Bucket=name, Key="bobs")
        assert error_of(refused) == ("AccessDenied", 403)
    bob.put_object_acl(Bucket=name, Key="bobs", GrantRead=f'id="{owner}"')
    assert s3.get_object(Bucket=name, Key="bobs")["Body"].read() == b"bob's bytes"
    bob.put_object(Bucket=name, Key="shared", Body=b"x", ACL="bucket-owner-full-control")
    assert s3.get_object(Bucket=name, Key="shared")["Body"].read() == b"x"
    s3.delete_object(Bucket=name, Key="bobs")
    # Bob cannot read the bucket's ACL or list it (WRITE only).
    with pytest.raises(ClientError) as refused:
        bob.list_objects_v2(Bucket=name)
    assert error_of(refused) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as refused:
        bob.get_bucket_acl(Bucket=name)
    assert error_of(refused) == ("AccessDenied", 403)

    # BucketOwnerPreferred: bucket-owner-full-control hands the object over.
    preferred = acl_bucket(s3, bucket + "-pref", ownership="BucketOwnerPreferred", GrantWrite='id="bob"')
    bob.put_object(Bucket=preferred, Key="given", Body=b"g", ACL="bucket-owner-full-control")
    bob.put_object(Bucket=preferred, Key="kept", Body=b"k")
    assert s3.get_object_acl(Bucket=preferred, Key="given")["Owner"]["ID"] == owner
    with pytest.raises(ClientError):
        s3.get_object_acl(Bucket=preferred, Key="kept")


def test_grants_are_checked_and_block_public_access_applies(cluster, s3, bob, bucket):
    name = acl_bucket(s3, bucket + "-g")
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    with pytest.raises(ClientError) as refused:
        bob.get_object(Bucket=name, Key="k")
    assert error_of(refused) == ("AccessDenied", 403)
    s3.put_object_acl(Bucket=name, Key="k", GrantRead='id="bob"')
    assert bob.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    assert http_get(f"{cluster.endpoint}/{name}/k")[0] == 403
    for grant, code in (('id="nobody-by-this-name"', "InvalidArgument"),
                        ('emailAddress="bob@example.com"', "UnresolvableGrantByEmailAddress")):
        with pytest.raises(ClientError) as refused:
            s3.put_object_acl(Bucket=name, Key="k", GrantRead=grant)
        assert error_of(refused) == (code, 400)
    with pytest.raises(ClientError) as refused:
        s3.put_object_acl(Bucket=name, Key="k", ACL="public-read", GrantRead='id="bob"')
    assert error_of(refused)[1] == 400

    # An AccessControlPolicy body, as the SDKs send a full ACL.
    owner = cluster.info["access_key"]
    s3.put_object_acl(Bucket=name, Key="k", AccessControlPolicy={
        "Owner": {"ID": owner},
        "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"},
                   {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"}]})
    assert http_get(f"{cluster.endpoint}/{name}/k") == (200, b"v")

    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={"IgnorePublicAcls": True})
    assert http_get(f"{cluster.endpoint}/{name}/k")[0] == 403
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={"BlockPublicAcls": True})
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=name, Key="p", Body=b"x", ACL="public-read")
    assert error_of(refused) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as refused:
        s3.put_bucket_acl(Bucket=name, ACL="public-read-write")
    assert error_of(refused) == ("AccessDenied", 403)


def test_an_object_write_granting_write_is_refused_not_ignored(s3, bucket):
    name = acl_bucket(s3, bucket + "-gw")

    def grant_write(params, **_):
        params["headers"]["x-amz-grant-write"] = 'id="bob"'

    s3.meta.events.register("before-call.s3.PutObject", grant_write)
    try:
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket=name, Key="k", Body=b"v")
    finally:
        s3.meta.events.unregister("before-call.s3.PutObject", grant_write)
    assert error_of(refused) == ("InvalidArgument", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=name, Key="k")
