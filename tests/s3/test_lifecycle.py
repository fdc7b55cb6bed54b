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


def expiry(response):
    """(expiry time, rule id) of an `x-amz-expiration` header, or None."""
    header = response.get("Expiration")
    if header is None:
        return None
    found = re.fullmatch(r'expiry-date="([^"]+)", rule-id="([^"]*)"', header)
    assert found, header
    when = datetime.datetime.strptime(found.group(1), "%a, %d %b %Y %H:%M:%S GMT")
    return when.replace(tzinfo=datetime.timezone.utc), found.group(2)


def test_writes_and_reads_report_when_a_rule_will_expire_the_object(s3, bucket):
    rules = [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 2}},
        {"ID": "tagged", "Status": "Enabled", "Filter": {"Tag": {"Key": "class", "Value": "scratch"}},
         "Expiration": {"Days": 1}},
        {"ID": "dated", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
         "Expiration": {"Date": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)}},
        {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})

    def midnight(key):
        """The start of the UTC day the object was written."""
        written = s3.head_object(Bucket=bucket, Key=key)["LastModified"].astimezone(datetime.timezone.utc)
        return datetime.datetime.combine(written.date(), datetime.time(), datetime.timezone.utc)

    # Days after creation, rounded up to the next midnight UTC (as S3 does).
    put = s3.put_object(Bucket=bucket, Key="logs/a", Body=b"x" * 100)
    assert expiry(put) == (midnight("logs/a") + datetime.timedelta(days=3), "logs")
    assert expiry(s3.head_object(Bucket=bucket, Key="logs/a")) == expiry(put)
    assert expiry(s3.get_object(Bucket=bucket, Key="logs/a")) == expiry(put)
    # No enabled rule that expires: no header.
    assert expiry(s3.put_object(Bucket=bucket, Key="data/x", Body=b"x")) is None
    assert expiry(s3.head_object(Bucket=bucket, Key="data/x")) is None
    # A tag filter follows the object's tags as they change.
    s3.put_object_tagging(Bucket=bucket, Key="data/x",
                          Tagging={"TagSet": [{"Key": "class", "Value": "scratch"}]})
    assert expiry(s3.head_object(Bucket=bucket, Key="data/x")) == (
        midnight("data/x") + datetime.timedelta(days=2), "tagged")
    # The earliest matching rule is reported.
    tagged_log = s3.put_object(Bucket=bucket, Key="logs/t", Body=b"x", Tagging="class=scratch")
    assert expiry(tagged_log)[1] == "tagged"
    # A rule with a date reports that date.
    assert expiry(s3.put_object(Bucket=bucket, Key="tmp/a", Body=b"x")) == (
        datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc), "dated")
    # Copies and completed multipart uploads report it too.
    copied = s3.copy_object(Bucket=bucket, Key="logs/copy", CopySource={"Bucket": bucket, "Key": "logs/a"})
    assert expiry(copied)[1] == "logs"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="logs/big")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="logs/big", UploadId=upload, PartNumber=1, Body=b"p" * 1000)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="logs/big", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert expiry(done) == (midnight("logs/big") + datetime.timedelta(days=3), "logs")
    # Without the rules, no header, at once on the gateway that removed them.
    s3.delete_bucket_lifecycle(Bucket=bucket)
    assert expiry(s3.head_object(Bucket=bucket, Key="logs/a")) is None
    assert expiry(s3.put_object(Bucket=bucket, Key="logs/b", Body=b"x")) is None


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
