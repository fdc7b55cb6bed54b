"""Everyday S3 details with boto3: ListBuckets pages (max-buckets,
continuation token, prefix), owners in listings (always in v1, with
FetchOwner in v2), the 2 KiB user-metadata limit, RFC 2047 metadata
values, and a retried CompleteMultipartUpload."""

import email.header

import pytest
from botocore.exceptions import ClientError


def error_of(raised):
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_list_buckets_pages_through_a_users_buckets(cluster):
    user = cluster.cairn("user", "create", "pager", "--json")
    s3 = cluster.client(access_key=user["access_key"], secret_key=user["secret_key"])
    names = [f"page-{i:02}" for i in range(7)] + ["other-1"]
    for name in names:
        s3.create_bucket(Bucket=name)
    everything = s3.list_buckets()
    assert [b["Name"] for b in everything["Buckets"]] == sorted(names)
    assert "ContinuationToken" not in everything

    seen, token, pages = [], None, 0
    while True:
        kw = {"MaxBuckets": 3, "Prefix": "page-"}
        if token:
            kw["ContinuationToken"] = token
        page = s3.list_buckets(**kw)
        pages += 1
        seen += [b["Name"] for b in page["Buckets"]]
        assert page["Prefix"] == "page-" and len(page["Buckets"]) <= 3
        token = page.get("ContinuationToken")
        if not token:
            break
    assert seen == sorted(n for n in names if n.startswith("page-")) and pages == 3
    assert s3.list_buckets(BucketRegion="eu-west-9")["Buckets"] == []
    # (boto3 itself refuses 0.)
    with pytest.raises(ClientError) as refused:
        s3.list_buckets(MaxBuckets=10_001)
    assert error_of(refused) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as refused:
        s3.list_buckets(ContinuationToken="not-a-token")
    assert error_of(refused) == ("InvalidArgument", 400)
    for name in names:
        s3.delete_bucket(Bucket=name)
    cluster.cairn("user", "delete", "pager")


def test_listings_name_the_owner_as_s3_does(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    owner = cluster.info["access_key"]
    v1 = s3.list_objects(Bucket=bucket)["Contents"][0]
    assert v1["Owner"]["ID"] == owner
    v2 = s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert "Owner" not in v2
    fetched = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]
    assert fetched["Owner"] == {"ID": owner, "DisplayName": owner}


def test_user_metadata_is_limited_to_2_kib_and_rfc_2047_values_round_trip(s3, bucket):
    # 2 KiB exactly (keys and values, UTF-8) is allowed; one byte more is not.
    fits = {"a": "x" * 1023, "b": "y" * 1023}
    s3.put_object(Bucket=bucket, Key="fits", Body=b"", Metadata=fits)
    assert s3.head_object(Bucket=bucket, Key="fits")["Metadata"] == fits
    too_large = {"a": "x" * 1024, "b": "y" * 1023}
    for call in (lambda: s3.put_object(Bucket=bucket, Key="big", Body=b"", Metadata=too_large),
                 lambda: s3.create_multipart_upload(Bucket=bucket, Key="big", Metadata=too_large),
                 lambda: s3.copy_object(Bucket=bucket, Key="big", CopySource={"Bucket": bucket, "Key": "fits"},
                                        Metadata=too_large, MetadataDirective="REPLACE")):
        with pytest.raises(ClientError) as refused:
            call()
        assert error_of(refused) == ("MetadataTooLarge", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="big")

    # A non-ASCII value travels as an RFC 2047 encoded word, is stored
    # decoded (the limit counts its UTF-8 bytes) and is sent back encoded.
    encoded = "=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?="  # "Hello Worldé"

    def set_header(params, **_):
        params["headers"]["x-amz-meta-greeting"] = encoded

    s3.meta.events.register("before-call.s3.PutObject", set_header)
    try:
        s3.put_object(Bucket=bucket, Key="unicode", Body=b"")
    finally:
        s3.meta.events.unregister("before-call.s3.PutObject", set_header)
    got = s3.head_object(Bucket=bucket, Key="unicode")["Metadata"]["greeting"]
    assert got.startswith("=?") and got.endswith("?="), got
    decoded = "".join(part.decode(charset) if isinstance(part, bytes) else part
                      for part, charset in email.header.decode_header(got))
    assert decoded == "Hello World\u00e9"


def test_a_retried_complete_answers_like_the_first(s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"only part")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    # The client's count of the object's size must be right.
    with pytest.raises(ClientError) as refused:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts,
                                     MpuObjectSize=8)
    assert error_of(refused) == ("InvalidRequest", 400)
    first = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts,
                                         MpuObjectSize=len(b"only part"))
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts)
    assert again["ETag"] == first["ETag"]
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"only part"
    # Once the key holds something else, the old upload id is unknown.
    s3.put_object(Bucket=bucket, Key="mp", Body=b"overwritten")
    with pytest.raises(ClientError) as refused:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts)
    assert error_of(refused) == ("NoSuchUpload", 404)


def test_the_cluster_serves_the_region_it_is_configured_for(make_cluster):
    cluster = make_cluster("--region", "eu-central-1", "--nodes", "6", "--racks", "3", "-k", "2", "-m", "2")
    s3 = cluster.client()
    s3.create_bucket(Bucket="frankfurt", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert s3.get_bucket_location(Bucket="frankfurt")["LocationConstraint"] == "eu-central-1"
    assert s3.list_buckets()["Buckets"][0]["BucketRegion"] == "eu-central-1"
    with pytest.raises(ClientError) as refused:
        s3.create_bucket(Bucket="virginia", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert error_of(refused) == ("InvalidLocationConstraint", 400)
