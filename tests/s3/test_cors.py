"""CORS with boto3 and plain HTTP as a browser sends it: bucket CORS
configuration, preflight OPTIONS answered by the gateway (path and virtual
host style), and Access-Control-* headers on actual cross-origin requests,
errors included."""

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError


def error_of(raised):
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def call(url, method="GET", headers=None):
    """(status, headers) of a plain, unsigned request."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as err:
        return err.code, err.headers


RULES = {"CORSRules": [
    {"AllowedMethods": ["GET"], "AllowedOrigins": ["*suffix"]},
    {"AllowedMethods": ["GET"], "AllowedOrigins": ["start*end"]},
    {"AllowedMethods": ["PUT", "POST"], "AllowedOrigins": ["https://*.example.com"],
     "AllowedHeaders": ["x-amz-*", "content-type"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
]}


def test_bucket_cors_configuration_round_trips_and_is_validated(s3, bucket):
    with pytest.raises(ClientError) as refused:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_of(refused) == ("NoSuchCORSConfiguration", 404)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rules[2]["AllowedHeaders"] == ["x-amz-*", "content-type"] and rules[2]["MaxAgeSeconds"] == 600
    assert [r["AllowedOrigins"] for r in rules] == [["*suffix"], ["start*end"], ["https://*.example.com"]]
    for bad in ({"AllowedMethods": ["PATCH"], "AllowedOrigins": ["*"]},
                {"AllowedMethods": ["GET"], "AllowedOrigins": ["*a*"]}):
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [bad]})
        assert error_of(refused) == ("InvalidRequest", 400)
    assert len(s3.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 3
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_cors(Bucket=bucket)


def test_preflights_and_cross_origin_reads(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="page.html", Body=b"<p>hi</p>")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    url = f"{cluster.endpoint}/{bucket}/page.html"
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "content-type, x-amz-meta-owner"}

    # No CORS configuration: preflights are refused, reads carry nothing.
    status, _ = call(url, "OPTIONS", preflight)
    assert status == 403
    status, headers = call(url, headers={"Origin": "foo.suffix"})
    assert status == 200 and headers.get("Access-Control-Allow-Origin") is None

    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    status, headers = call(url, "OPTIONS", preflight)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Allow-Methods"] == "PUT, POST"
    assert headers["Access-Control-Allow-Headers"] == "content-type, x-amz-meta-owner"
    assert headers["Access-Control-Max-Age"] == "600"
    # A header, method or origin the rules do not allow.
    for changed in ({"Access-Control-Request-Headers": "authorization"},
                    {"Access-Control-Request-Method": "DELETE"},
                    {"Origin": "https://evil.example.org"}):
        status, headers = call(url, "OPTIONS", {**preflight, **changed})
        assert status == 403 and headers.get("Access-Control-Allow-Origin") is None, changed
    status, _ = call(url, "OPTIONS", {"Origin": "foo.suffix"})
    assert status == 400
    # Virtual-host style names the bucket in the Host header.
    host = f"{bucket}.s3.localhost:{cluster.port}"
    status, headers = call(f"{cluster.endpoint}/page.html", "OPTIONS",
                           {**preflight, "Host": host})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example.com"

    # Actual requests: headers for an allowed origin and method only,
    # on errors too.
    for origin, allowed in (("foo.suffix", True), ("start12end", True), ("0start12end", False),
                            ("foo.bar", False)):
        status, headers = call(url, headers={"Origin": origin})
        assert status == 200
        assert headers.get("Access-Control-Allow-Origin") == (origin if allowed else None), origin
    status, headers = call(f"{cluster.endpoint}/{bucket}/missing", headers={"Origin": "foo.suffix"})
    assert status in (403, 404) and headers["Access-Control-Allow-Origin"] == "foo.suffix"
    status, headers = call(url)
    assert headers.get("Access-Control-Allow-Origin") is None

    s3.delete_bucket_cors(Bucket=bucket)
    status, _ = call(url, "OPTIONS", preflight)
    assert status == 403
