"""Object lock and tagging with a real client (boto3) against a real
cluster: a locked version survives every way of removing it, the catalogue
(not the gateway) refuses, and the GC never takes its chunks."""

import datetime
import time

import pytest
from botocore.exceptions import ClientError

from test_inline import body, error_code


def future(days=0, seconds=0):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days, seconds=seconds)


def locked_bucket(s3, name):
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_object_lock_configuration(s3, bucket):
    with pytest.raises(ClientError) as none:
        s3.get_object_lock_configuration(Bucket=bucket)
    assert error_code(none) == "ObjectLockConfigurationNotFoundError"
    # Object lock needs versioning.
    config = {"ObjectLockEnabled": "Enabled",
              "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}
    with pytest.raises(ClientError) as unversioned:
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=config)
    assert error_code(unversioned) == "InvalidBucketState"
    with pytest.raises(ClientError) as no_lock:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=future(days=1))
    assert error_code(no_lock) == "InvalidRequest"

    locked = locked_bucket(s3, bucket + "-locked")
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    got = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert got["ObjectLockEnabled"] == "Enabled" and "Rule" not in got
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=config)
    got = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert got["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 1}
    with pytest.raises(ClientError) as both:
        s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}}})
    assert error_code(both) == "MalformedXML"
    with pytest.raises(ClientError) as suspend:
        s3.put_bucket_versioning(Bucket=locked, VersioningConfiguration={"Status": "Suspended"})
    assert error_code(suspend) == "InvalidBucketState"

    # The default retention applies to new versions.
    put = s3.put_object(Bucket=locked, Key="k", Body=b"kept")
    retention = s3.get_object_retention(Bucket=locked, Key="k")["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    left = retention["RetainUntilDate"] - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(hours=23) < left <= datetime.timedelta(days=1)
    head = s3.head_object(Bucket=locked, Key="k")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(ClientError) as denied:
        s3.delete_object(Bucket=locked, Key="k", VersionId=put["VersionId"])
    assert error_code(denied) == "AccessDenied"
    # GOVERNANCE yields to the bypass header.
    s3.delete_object(Bucket=locked, Key="k", VersionId=put["VersionId"], BypassGovernanceRetention=True)


def test_compliance_retention_cannot_be_shortened_or_bypassed(s3, bucket):
    locked = locked_bucket(s3, bucket + "-c")
    until = future(days=2)
    put = s3.put_object(Bucket=locked, Key="k", Body=b"evidence", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=until)
    version = put["VersionId"]
    for bypass in (False, True):
        with pytest.raises(ClientError) as denied:
            s3.delete_object(Bucket=locked, Key="k", VersionId=version, BypassGovernanceRetention=bypass)
        assert error_code(denied) == "AccessDenied"
    result = s3.delete_objects(Bucket=locked, BypassGovernanceRetention=True,
                               Delete={"Objects": [{"Key": "k", "VersionId": version}]})
    assert [e["Code"] for e in result["Errors"]] == ["AccessDenied"]
    with pytest.raises(ClientError) as shorter:
        s3.put_object_retention(Bucket=locked, Key="k", VersionId=version, BypassGovernanceRetention=True,
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": future(days=1)})
    assert error_code(shorter) == "AccessDenied"
    with pytest.raises(ClientError) as weaker:
        s3.put_object_retention(Bucket=locked, Key="k", VersionId=version,
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": future(days=3)})
    assert error_code(weaker) == "AccessDenied"
    # Extending is always allowed.
    s3.put_object_retention(Bucket=locked, Key="k", VersionId=version,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": future(days=3)})
    # A plain DELETE only adds a marker: the locked version stays readable.
    s3.delete_object(Bucket=locked, Key="k")
    got = s3.get_object(Bucket=locked, Key="k", VersionId=version)
    assert got["Body"].read() == b"evidence"
    assert got["ObjectLockMode"] == "COMPLIANCE"
    # A bucket holding it cannot be deleted either.
    with pytest.raises(ClientError) as full:
        s3.delete_bucket(Bucket=locked)
    assert error_code(full) == "BucketNotEmpty"


def test_governance_needs_bypass_to_shorten_and_expired_retention_frees(s3, bucket):
    locked = locked_bucket(s3, bucket + "-g")
    put = s3.put_object(Bucket=locked, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=future(days=1))
    version = put["VersionId"]
    with pytest.raises(ClientError) as shorter:
        s3.put_object_retention(Bucket=locked, Key="k", VersionId=version,
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": future(seconds=2)})
    assert error_code(shorter) == "AccessDenied"
    s3.put_object_retention(Bucket=locked, Key="k", VersionId=version, BypassGovernanceRetention=True,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": future(seconds=2)})
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=locked, Key="k", VersionId=version)
    time.sleep(2.5)
    # Once the retention is over, anyone may delete.
    s3.delete_object(Bucket=locked, Key="k", VersionId=version)
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=locked, Key="k", VersionId=version)
    assert error_code(gone) == "NoSuchVersion"


def test_legal_hold_blocks_even_the_bypass(s3, bucket):
    locked = locked_bucket(s3, bucket + "-h")
    put = s3.put_object(Bucket=locked, Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")
    version = put["VersionId"]
    assert s3.get_object_legal_hold(Bucket=locked, Key="k")["LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError) as held:
        s3.delete_object(Bucket=locked, Key="k", VersionId=version, BypassGovernanceRetention=True)
    assert error_code(held) == "AccessDenied"
    s3.put_object_legal_hold(Bucket=locked, Key="k", VersionId=version, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=locked, Key="k", VersionId=version)["LegalHold"]["Status"] == "OFF"
    s3.delete_object(Bucket=locked, Key="k", VersionId=version)


def test_a_multipart_upload_keeps_the_lock_it_was_started_with(s3, bucket):
    locked = locked_bucket(s3, bucket + "-m")
    until = future(days=2)
    upload = s3.create_multipart_upload(Bucket=locked, Key="big", ObjectLockMode="COMPLIANCE",
                                        ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON")
    part = s3.upload_part(Bucket=locked, Key="big", UploadId=upload["UploadId"], PartNumber=1, Body=b"data")
    done = s3.complete_multipart_upload(Bucket=locked, Key="big", UploadId=upload["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    head = s3.head_object(Bucket=locked, Key="big", VersionId=done["VersionId"])
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockLegalHoldStatus"] == "ON"
    assert abs((head["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1
    with pytest.raises(ClientError) as denied:
        s3.delete_object(Bucket=locked, Key="big", VersionId=done["VersionId"])
    assert error_code(denied) == "AccessDenied"
    # On a bucket without object lock, the headers are refused, not ignored.
    with pytest.raises(ClientError) as refused:
        s3.create_multipart_upload(Bucket=bucket, Key="big", ObjectLockLegalHoldStatus="ON")
    assert error_code(refused) == "InvalidRequest"


def test_a_locked_version_keeps_its_chunks_through_gc(make_cluster):
    cluster = make_cluster("--gc-grace", "1s")
    s3 = cluster.client()
    s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    data = body(3_000_000, seed=3)
    before = len(cluster.chunk_files())
    put = s3.put_object(Bucket="vault", Key="k", Body=data, ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=future(days=1))
    s3.put_object(Bucket="vault", Key="k", Body=b"newer")  # small: inline
    s3.delete_object(Bucket="vault", Key="k")
    for attempt in (dict(), dict(BypassGovernanceRetention=True)):
        with pytest.raises(ClientError):
            s3.delete_object(Bucket="vault", Key="k", VersionId=put["VersionId"], **attempt)
    # A control: an unlocked version deleted alongside is collected, so the
    # GC did run over the locked one's chunks and spared them.
    free = s3.put_object(Bucket="vault", Key="free", Body=body(3_000_000, seed=4))["VersionId"]
    assert len(cluster.chunk_files()) == before + 24
    s3.delete_object(Bucket="vault", Key="free", VersionId=free)
    deadline = time.time() + 60
    while len(cluster.chunk_files()) > before + 12 and time.time() < deadline:
        time.sleep(0.5)
    assert len(cluster.chunk_files()) == before + 12
    time.sleep(2)  # and a few more GC rounds
    locked_chunks = {c["node"] for c in cluster.cairn(
        "inspect", "vault/k", "--version", put["VersionId"], "--json")["manifest"]["parts"][0]["chunks"]}
    assert len(locked_chunks) == 12 and len(cluster.chunk_files()) == before + 12
    assert s3.get_object(Bucket="vault", Key="k", VersionId=put["VersionId"])["Body"].read() == data


def test_object_and_bucket_tagging(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="team=storage&tier=gold%20plus")
    tags = s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "storage", "tier": "gold plus"}
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "only", "Value": "one"}]
    # A copy carries the tags unless told to replace them.
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    assert s3.get_object_tagging(Bucket=bucket, Key="copy")["TagSet"] == [{"Key": "only", "Value": "one"}]
    s3.copy_object(Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "k"},
                   TaggingDirective="REPLACE", Tagging="a=b")
    assert s3.get_object_tagging(Bucket=bucket, Key="copy2")["TagSet"] == [{"Key": "a", "Value": "b"}]
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    with pytest.raises(ClientError) as too_many:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [
            {"Key": f"k{i}", "Value": "v"} for i in range(11)]})
    assert error_code(too_many) == "InvalidTag"
    with pytest.raises(ClientError) as long_key:
        s3.put_object(Bucket=bucket, Key="k2", Body=b"x", Tagging="x" * 129 + "=v")
    assert error_code(long_key) == "InvalidTag"
    with pytest.raises(ClientError) as missing:
        s3.get_object_tagging(Bucket=bucket, Key="absent")
    assert error_code(missing) == "NoSuchKey"
    # Tags per version.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"1", Tagging="gen=1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="v", Body=b"2", Tagging="gen=2")
    s3.put_object_tagging(Bucket=bucket, Key="v", VersionId=v1, Tagging={"TagSet": [{"Key": "gen", "Value": "one"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=v1)["TagSet"] == [{"Key": "gen", "Value": "one"}]
    assert s3.get_object_tagging(Bucket=bucket, Key="v")["TagSet"] == [{"Key": "gen", "Value": "2"}]
    # Bucket tagging.
    with pytest.raises(ClientError) as none:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(none) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "cost", "Value": "ops"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "cost", "Value": "ops"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket=bucket)
