"""S3 bucket policies with boto3: public read by policy, grants to another
project, explicit Deny (which wins, also over the owner), the address and
transport conditions, and S3's errors for malformed policies."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from test_s3 import client, error_of, s3_tenant


def anonymous_get(t: dict, bucket: str, key: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"{t['endpoint']}/{bucket}/{key}") as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def owned(region, unique):
    t = s3_tenant(region, unique)
    bucket = f"pol-{unique}"
    s3 = client(t)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="pub/page.html", Body=b"<p>open data</p>")
    s3.put_object(Bucket=bucket, Key="private/notes", Body=b"internal")
    return t, bucket, s3


def test_public_read_by_policy(owned):
    t, bucket, s3 = owned
    assert error_of(s3.get_bucket_policy, Bucket=bucket) == (404, "NoSuchBucketPolicy")
    assert anonymous_get(t, bucket, "pub/page.html")[0] == 403
    doc = policy({"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{bucket}/pub/*"})
    s3.put_bucket_policy(Bucket=bucket, Policy=doc)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(doc)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert anonymous_get(t, bucket, "pub/page.html") == (200, b"<p>open data</p>")
    assert anonymous_get(t, bucket, "private/notes")[0] == 403
    s3.delete_bucket_policy(Bucket=bucket)
    assert anonymous_get(t, bucket, "pub/page.html")[0] == 403
    assert error_of(s3.get_bucket_policy_status, Bucket=bucket) == (404, "NoSuchBucketPolicy")


def test_grant_to_another_project_and_explicit_deny(region, owned, unique):
    t, bucket, s3 = owned
    other = s3_tenant(region, f"{unique}o")
    theirs = client(other)
    assert error_of(theirs.put_object, Bucket=bucket, Key="inbox/x", Body=b"") == (403, "AccessDenied")
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::{other['project_id']}:root"]},
         "Action": ["s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/inbox/*"},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:Delete*", "Resource": f"arn:aws:s3:::{bucket}/*"}))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    theirs.put_object(Bucket=bucket, Key="inbox/report.csv", Body=b"a,b")
    assert error_of(theirs.put_object, Bucket=bucket, Key="elsewhere", Body=b"") == (403, "AccessDenied")
    assert error_of(theirs.get_object, Bucket=bucket, Key="inbox/report.csv") == (403, "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="inbox/report.csv")["Body"].read() == b"a,b"
    # the Deny holds against the owner too, but not over the policy itself
    assert error_of(s3.delete_object, Bucket=bucket, Key="private/notes") == (403, "AccessDenied")
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="private/notes")


def test_address_and_transport_conditions(owned):
    t, bucket, s3 = owned
    everything = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    # the tests reach the region from the loopback address
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": everything,
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}}))
    assert s3.get_object(Bucket=bucket, Key="pub/page.html")["Body"].read() == b"<p>open data</p>"
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": everything,
         "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}}))
    assert error_of(s3.get_object, Bucket=bucket, Key="pub/page.html") == (403, "AccessDenied")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["private/notes", "pub/page.html"]
    # the S3 listener speaks plain HTTP: a policy demanding TLS refuses it
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": everything,
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}))
    assert error_of(s3.list_objects_v2, Bucket=bucket) == (403, "AccessDenied")
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 2


def test_malformed_policies(owned):
    t, bucket, s3 = owned
    good = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    for bad in ("{not json", policy({**good, "Effect": "Perhaps"}),
                policy({**good, "Resource": "arn:aws:s3:::someone-elses-bucket/*"}),
                policy({**good, "Action": "iam:CreateUser"}),
                policy({**good, "Condition": {"IpAddress": {"aws:SourceIp": "300.1.1.1"}}}),
                json.dumps({"Version": "2012-10-17", "Statement": []})):
        assert error_of(s3.put_bucket_policy, Bucket=bucket, Policy=bad) == (400, "MalformedPolicy"), bad
    assert error_of(s3.get_bucket_policy, Bucket=bucket) == (404, "NoSuchBucketPolicy")
