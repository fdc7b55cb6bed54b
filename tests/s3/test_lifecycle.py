"""Bucket lifecycle with a real client (boto3) against a real cluster whose
lifecycle "day" is one second (`cairn dev --lifecycle-day 1s`): the
scrubber's lifecycle job expires current and noncurrent versions, removes
lone delete markers, aborts old uploads, honours prefix and tag filters and
object lock, and reports what it did in `cairn scrub jobs`."""

import datetime
import re
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from test_inline import error_code
from test_scrub_repair import wait_until


@pytest.fixture
def aging(make_cluster):
    cluster = make_cluster("--lifecycle-day", "1s", "--lifecycle-every", "1s")
    return cluster, cluster.client()


def lifecycle_job(cluster):
    return next(j for j in cluster.cairn("scrub", "jobs", "--json") if j["spec"]["kind"] == "lifecycle")


def lifecycle_metric(cluster, action):
    request = urllib.request.Request(cluster.info["scrubber_endpoint"] + "/metrics",
                                     headers={"x-cairn-secret": cluster.info["cluster_secret"]})
    text = urllib.request.urlopen(request, timeout=30).read().decode()
    found = re.search(r'^cairn_lifecycle_actions_total\{action="%s"\} (\d+)' % action, text, re.M)
    return int(found.group(1)) if found else 0


def keys(s3, bucket, **kw):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, **kw).get("Contents", []))


def test_lifecycle_configuration_round_trip_and_refusals(s3, bucket):
    with pytest.raises(ClientError) as none:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(none) == "NoSuchLifecycleConfiguration"
    rules = [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}},
        {"ID": "old", "Status": "Disabled",
         "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "class", "Value": "scratch"}]}},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in got] == ["logs", "old", "uploads"]
    assert got[0]["Expiration"] == {"Days": 30} and got[0]["Filter"] == {"Prefix": "logs/"}
    assert got[1]["Status"] == "Disabled"
    assert got[1]["Filter"]["And"]["Tags"] == [{"Key": "class", "Value": "scratch"}]
    assert got[1]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2}
    assert got[2]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}
    # Transitions are refused, not ignored; so are malformed rules.
    for bad, code in [
        ({"ID": "t", "Status": "Enabled", "Filter": {"Prefix": ""},
          "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}, "NotImplemented"),
        ({"ID": "z", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 0}}, "InvalidArgument"),
        ({"ID": "n", "Status": "Enabled", "Filter": {"Prefix": ""}}, "MalformedXML"),
    ]:
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [bad]})
        assert error_code(refused) == code, bad
    # A rule without an ID is given one; size filters round-trip.
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 100, "ObjectSizeLessThan": 200},
         "Expiration": {"Days": 1}}]})
    [named] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert named["ID"] and named["Filter"] == {"ObjectSizeGreaterThan": 100, "ObjectSizeLessThan": 200}
    with pytest.raises(ClientError) as dup:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rules[0], rules[0]]})
    assert error_code(dup) == "InvalidArgument"
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)


def test_expiration_by_prefix_and_tags_in_an_unversioned_bucket(aging):
    cluster, s3 = aging
    s3.create_bucket(Bucket="aging")
    for key in ["logs/a", "logs/b", "keep/c"]:
        s3.put_object(Bucket="aging", Key=key, Body=b"x")
    s3.put_object(Bucket="aging", Key="tagged/hot", Body=b"x", Tagging="class=hot")
    s3.put_object(Bucket="aging", Key="tagged/cold", Body=b"x", Tagging="class=cold")
    s3.put_object(Bucket="aging", Key="sized/small", Body=b"x" * 10)
    s3.put_object(Bucket="aging", Key="sized/big", Body=b"x" * 2000)
    s3.put_bucket_lifecycle_configuration(Bucket="aging", LifecycleConfiguration={"Rules": [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 3}},
        {"ID": "cold", "Status": "Enabled", "Filter": {"Tag": {"Key": "class", "Value": "cold"}},
         "Expiration": {"Days": 3}},
        {"ID": "big", "Status": "Enabled",
         "Filter": {"And": {"Prefix": "sized/", "ObjectSizeGreaterThan": 1000}}, "Expiration": {"Days": 3}},
    ]})
    wait_until("logs/, the cold and the big object expired",
               lambda: keys(s3, "aging") == ["keep/c", "sized/small", "tagged/hot"], timeout=60)
    # Written after the rule: young, so kept until it is 3 "days" old.
    s3.put_object(Bucket="aging", Key="logs/new", Body=b"x")
    time.sleep(1.5)
    assert "logs/new" in keys(s3, "aging")
    wait_until("the new log expired too", lambda: "logs/new" not in keys(s3, "aging"), timeout=60)
    job = lifecycle_job(cluster)
    counts = [run["results"]["lifecycle"] for run in (job.get("last"), job.get("current")) if run]
    assert max(c["expired_current"] for c in counts) >= 1
    shown = cluster.cairn("scrub", "show", str(job["id"]))
    assert "lifecycle:" in shown, shown
    assert lifecycle_metric(cluster, "expire_current") == 5


def test_versioned_expiration_noncurrent_versions_and_delete_markers(aging):
    cluster, s3 = aging
    s3.create_bucket(Bucket="history")
    s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Enabled"})
    ids = [s3.put_object(Bucket="history", Key="doc", Body=f"v{i}".encode())["VersionId"] for i in range(4)]
    s3.put_bucket_lifecycle_configuration(Bucket="history", LifecycleConfiguration={"Rules": [
        {"ID": "trim", "Status": "Enabled", "Filter": {"Prefix": ""},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 2, "NewerNoncurrentVersions": 1}},
    ]})
    # The current version stays; of the 3 noncurrent ones the newest is kept.
    def versions():
        page = s3.list_object_versions(Bucket="history")
        return ([v["VersionId"] for v in page.get("Versions", [])],
                [m["VersionId"] for m in page.get("DeleteMarkers", [])])
    wait_until("two oldest noncurrent versions gone", lambda: versions()[0] == [ids[3], ids[2]], timeout=60)
    assert s3.get_object(Bucket="history", Key="doc")["Body"].read() == b"v3"

    # Expiring the current version adds a delete marker; once the object's
    # versions are gone too, the lone marker is removed.
    s3.put_bucket_lifecycle_configuration(Bucket="history", LifecycleConfiguration={"Rules": [
        {"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 2}},
        {"ID": "trim", "Status": "Enabled", "Filter": {"Prefix": ""},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": ""},
         "Expiration": {"ExpiredObjectDeleteMarker": True}},
    ]})
    wait_until("everything expired", lambda: versions() == ([], []), timeout=90)
    assert lifecycle_metric(cluster, "expire_noncurrent") == 4  # 2 trimmed, then v2 and v3
    assert lifecycle_metric(cluster, "expire_current") == 1
    assert lifecycle_metric(cluster, "remove_delete_marker") == 1
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket="history", Key="doc")
    assert error_code(gone) == "NoSuchKey"
    s3.delete_bucket(Bucket="history")


def test_lifecycle_aborts_old_uploads_and_respects_object_lock(aging):
    cluster, s3 = aging
    s3.create_bucket(Bucket="locked-aging", ObjectLockEnabledForBucket=True)
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    kept = s3.put_object(Bucket="locked-aging", Key="k", Body=b"kept", ObjectLockMode="COMPLIANCE",
                         ObjectLockRetainUntilDate=until)["VersionId"]
    s3.put_object(Bucket="locked-aging", Key="k", Body=b"newer")
    upload = s3.create_multipart_upload(Bucket="locked-aging", Key="big")["UploadId"]
    s3.put_bucket_lifecycle_configuration(Bucket="locked-aging", LifecycleConfiguration={"Rules": [
        {"ID": "all", "Status": "Enabled", "Filter": {"Prefix": ""},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
    ]})
    wait_until("the old upload aborted",
               lambda: not s3.list_multipart_uploads(Bucket="locked-aging").get("Uploads"), timeout=60)
    wait_until("the locked version refused at least once", lambda: any(
        run and run["results"]["lifecycle"]["locked"] >= 1
        for run in (lifecycle_job(cluster).get("last"), lifecycle_job(cluster).get("current"))), timeout=60)
    assert s3.get_object(Bucket="locked-aging", Key="k", VersionId=kept)["Body"].read() == b"kept"
    assert lifecycle_metric(cluster, "abort_upload") == 1
    assert lifecycle_metric(cluster, "locked") >= 1
    with pytest.raises(ClientError) as none:
        s3.list_parts(Bucket="locked-aging", Key="big", UploadId=upload)
    assert error_code(none) == "NoSuchUpload"
