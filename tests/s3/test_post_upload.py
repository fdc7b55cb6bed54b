"""Browser-based uploads: POST of an HTML form with a policy document
signed by a user (boto3's generate_presigned_post), sent with `requests`
as a browser would send the form."""

import json

import requests


def post(cluster, presigned, body, extra=None):
    fields = dict(presigned["fields"], **(extra or {}))
    return requests.post(presigned["url"], data=fields, files={"file": ("upload.txt", body)}, timeout=30)


def test_a_signed_form_uploads_within_its_policy(cluster, s3, bucket):
    form = s3.generate_presigned_post(
        Bucket=bucket, Key="uploads/upload.txt",
        Fields={"Content-Type": "text/plain", "success_action_status": "201"},
        Conditions=[{"Content-Type": "text/plain"}, {"success_action_status": "201"},
                    ["starts-with", "$key", "uploads/"], ["content-length-range", 1, 1024]],
        ExpiresIn=600)
    answer = post(cluster, form, b"hello from a form")
    assert answer.status_code == 201, answer.text
    assert "<Key>uploads/upload.txt</Key>" in answer.text and "<ETag>" in answer.text
    got = s3.get_object(Bucket=bucket, Key="uploads/upload.txt")
    assert got["Body"].read() == b"hello from a form" and got["ContentType"] == "text/plain"

    # Outside the policy: too large, another key prefix, a tampered policy.
    # (s3s refuses a failed policy condition with 400; S3 says 403.)
    assert post(cluster, form, b"x" * 2000).status_code == 400
    outside = post(cluster, form, b"x", {"key": "elsewhere/x"})
    assert outside.status_code in (400, 403) and "key" in outside.text, outside.text
    tampered = dict(form, fields=dict(form["fields"], policy=form["fields"]["policy"][:-4] + "AAAA"))
    assert post(cluster, tampered, b"x").status_code in (400, 403)
    # Without success_action_status the answer is 204, as on S3.
    plain = s3.generate_presigned_post(Bucket=bucket, Key="plain.txt", ExpiresIn=600)
    answer = post(cluster, plain, b"plain")
    assert answer.status_code == 204, answer.text
    assert s3.get_object(Bucket=bucket, Key="plain.txt")["Body"].read() == b"plain"
    # boto3 signs forms with SigV2 by default; SigV4 forms work alike.
    v4 = cluster.client(signature_version="s3v4").generate_presigned_post(
        Bucket=bucket, Key="v4.txt", ExpiresIn=600)
    assert "x-amz-signature" in v4["fields"]
    answer = post(cluster, v4, b"signed with v4")
    assert answer.status_code == 204, answer.text
    assert s3.get_object(Bucket=bucket, Key="v4.txt")["Body"].read() == b"signed with v4"
    # success_action_redirect: 303 to the page named, with what was stored.
    redirect = s3.generate_presigned_post(
        Bucket=bucket, Key="redirected.txt", Fields={"success_action_redirect": "http://example.com/done"},
        Conditions=[{"success_action_redirect": "http://example.com/done"}], ExpiresIn=600)
    fields = dict(redirect["fields"])
    answer = requests.post(redirect["url"], data=fields, files={"file": ("r.txt", b"r")},
                           timeout=30, allow_redirects=False)
    assert answer.status_code == 303, answer.text
    location = answer.headers["Location"]
    assert location.startswith("http://example.com/done?") and "key=redirected.txt" in location
    assert f"bucket={bucket}" in location and "etag=" in location
    # S3's ${filename} variable is refused, never stored literally.
    variable = s3.generate_presigned_post(Bucket=bucket, Key="in/${filename}", ExpiresIn=600)
    answer = post(cluster, variable, b"x")
    assert answer.status_code == 501 and "filename" in answer.text


def test_a_form_signed_by_someone_without_access_is_refused(cluster, s3, bob, bucket):
    form = bob.generate_presigned_post(Bucket=bucket, Key="intruder.txt", ExpiresIn=600)
    answer = post(cluster, form, b"nope")
    assert answer.status_code == 403 and "AccessDenied" in answer.text
    # A policy granting bob one prefix lets his forms write there only.
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/drop/*"}]}))
    assert post(cluster, form, b"nope").status_code == 403
    allowed = bob.generate_presigned_post(Bucket=bucket, Key="drop/bob.txt", ExpiresIn=600)
    answer = post(cluster, allowed, b"bob's")
    assert answer.status_code == 204, answer.text
    assert s3.get_object(Bucket=bucket, Key="drop/bob.txt")["Body"].read() == b"bob's"
