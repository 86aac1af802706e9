"""S3 CORS with boto3 and a browser's requests: a bucket's CORS rules are
stored, read back and deleted; preflight OPTIONS requests are answered from
them, and actual requests from an admitted origin carry the granted
Access-Control-* headers."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from test_audit_trail import export_events
from test_s3 import client, error_of, s3_tenant
from test_s3_lock import without_integrity_headers

RULES = [
    {"ID": "app", "AllowedOrigins": ["https://*.example.org"], "AllowedMethods": ["GET", "PUT"],
     "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]


@pytest.fixture
def shared(region, unique):
    """A public-read bucket with the CORS rules above and an object."""
    t = s3_tenant(region, unique)
    s3 = client(t)
    bucket = f"cors-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="page.txt", Body=b"hello")
    return t, s3, bucket


def send(method: str, url: str, headers: dict) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_cors_rules_round_trip(shared, region, unique):
    t, s3, bucket = shared
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got[0] == RULES[0]
    assert (got[1]["AllowedOrigins"], got[1]["AllowedMethods"]) == (["*"], ["GET"])
    bad = [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]
    assert error_of(s3.put_bucket_cors, Bucket=bucket, CORSConfiguration={"CORSRules": bad}) == (
        400, "InvalidRequest")
    # S3 wants the rules' Content-MD5 (or a checksum)
    bare = without_integrity_headers(client(t), ops=["PutBucketCors"])
    assert error_of(bare.put_bucket_cors, Bucket=bucket, CORSConfiguration={"CORSRules": RULES[1:]}) == (
        400, "InvalidRequest")
    assert len(s3.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 2
    # another project may neither change nor read them: public-read opens
    # the objects and their listing, not the bucket's configuration
    other = client(s3_tenant(region, f"{unique}o"))
    assert error_of(other.get_bucket_cors, Bucket=bucket) == (403, "AccessDenied")
    assert other.list_objects_v2(Bucket=bucket)["KeyCount"] >= 1
    assert error_of(other.put_bucket_cors, Bucket=bucket, CORSConfiguration={"CORSRules": RULES[1:]}) == (
        403, "AccessDenied")
    assert error_of(other.delete_bucket_cors, Bucket=bucket) == (403, "AccessDenied")
    assert len(s3.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 2
    s3.delete_bucket_cors(Bucket=bucket)
    assert error_of(s3.get_bucket_cors, Bucket=bucket) == (404, "NoSuchCORSConfiguration")


def test_preflight_is_answered_from_the_rules(shared):
    t, s3, bucket = shared
    url = f"{t['endpoint']}/{bucket}/upload.txt"
    status, headers, _ = send("OPTIONS", url, {
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "Content-Type, X-Amz-Meta-Owner"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.org"
    assert headers["access-control-allow-methods"] == "GET, PUT"
    assert headers["access-control-allow-headers"] == "content-type, x-amz-meta-owner"
    assert headers["access-control-max-age"] == "600"
    assert headers["access-control-expose-headers"] == "ETag"
    assert headers["access-control-allow-credentials"] == "true"

    # any origin may GET, under the second rule
    status, headers, _ = send("OPTIONS", url, {"Origin": "https://elsewhere.test",
                                              "Access-Control-Request-Method": "GET"})
    assert (status, headers["access-control-allow-origin"]) == (200, "*")
    assert "access-control-allow-credentials" not in headers

    # no rule admits: a method, a header or an origin outside the rules
    for extra in [{"Origin": "https://elsewhere.test", "Access-Control-Request-Method": "PUT"},
                  {"Origin": "https://app.example.org", "Access-Control-Request-Method": "PUT",
                   "Access-Control-Request-Headers": "authorization"},
                  {"Origin": "https://app.example.org", "Access-Control-Request-Method": "DELETE"}]:
        status, _, body = send("OPTIONS", url, extra)
        assert status == 403 and b"<Code>AccessForbidden</Code>" in body and b"CORSResponse" in body, extra
    status, _, body = send("OPTIONS", url, {"Access-Control-Request-Method": "GET"})
    assert status == 400

    s3.delete_bucket_cors(Bucket=bucket)
    status, _, body = send("OPTIONS", url, {"Origin": "https://app.example.org",
                                           "Access-Control-Request-Method": "GET"})
    assert status == 403 and b"CORS is not enabled" in body


def test_actual_requests_carry_the_granted_headers(shared):
    t, s3, bucket = shared
    url = f"{t['endpoint']}/{bucket}/page.txt"
    status, headers, body = send("GET", url, {"Origin": "https://app.example.org"})
    assert (status, body) == (200, b"hello")
    assert headers["access-control-allow-origin"] == "https://app.example.org"
    assert headers["access-control-expose-headers"] == "ETag"
    # without an Origin, or with one no rule admits for the method, nothing is added
    status, headers, _ = send("GET", url, {})
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _ = send("HEAD", url, {"Origin": "https://elsewhere.test"})
    assert status == 200 and "access-control-allow-origin" not in headers


def test_preflights_are_audited(shared, region, tmp_path):
    t, _, bucket = shared
    status, headers, _ = send("OPTIONS", f"{t['endpoint']}/{bucket}/page.txt", {
        "Origin": "https://elsewhere.test", "Access-Control-Request-Method": "DELETE"})
    assert status == 403
    request_id = headers["x-amz-request-id"]
    deadline = time.monotonic() + 10
    while True:
        events = {e["request_id"]: e for e in export_events(region, tmp_path / "trail.jsonl")}
        if request_id in events or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert events[request_id]["name"] == "s3:PreflightRequest"
    assert events[request_id]["outcome"] == "failure"
