"""S3 with boto3 and the aws CLI: buckets per project, objects, listings,
ranges, conditions, copies, encryption, and S3's errors for bad input.

The S3 keys are EC2 credentials made with the openstack CLI; the S3 endpoint
and the region to sign for come from the catalog (service type `s3`): S3
accepts only AWS-style region names in signatures, so the S3 endpoints are
listed under the region name in lower case (`regionone`)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from test_identity_admin import create_tenant, user_cloud


def s3_catalog_entry(region) -> dict:
    endpoints = region.cli_json("endpoint", "list", "--service", "s3", "--interface", "public")
    assert len(endpoints) == 1, endpoints
    return endpoints[0]


def s3_endpoint(region) -> str:
    return s3_catalog_entry(region)["URL"]


def s3_tenant(region, unique: str, role: str = "member") -> dict:
    """A project with a user holding `role`, and an EC2 credential of that
    user on the project: the S3 keys."""
    t = create_tenant(region, unique)
    region.cli_ok("role", "add", "--project", t["project_id"], "--user", t["user_id"], role)
    cloud = user_cloud(region, t)
    cred = region.cli_json("ec2", "credentials", "create", cloud=cloud)
    entry = s3_catalog_entry(region)
    t.update(access=cred["access"], secret=cred["secret"], endpoint=entry["URL"], s3_region=entry["Region"],
             cloud=cloud)
    return t


def client(t: dict, **config):
    return boto3.client(
        "s3",
        endpoint_url=t["endpoint"],
        aws_access_key_id=t["access"],
        aws_secret_access_key=t["secret"],
        region_name=t["s3_region"],
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


def error_of(call, *args, **kwargs) -> tuple[int, str]:
    """The HTTP status and S3 error code a call fails with."""
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def aws(t: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=t["access"], AWS_SECRET_ACCESS_KEY=t["secret"], AWS_DEFAULT_REGION=t["s3_region"],
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    beside_python = Path(sys.executable).with_name("aws")
    done = subprocess.run([str(beside_python), "--endpoint-url", t["endpoint"], *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"`aws {' '.join(args)}` failed ({done.returncode}):\n{done.stderr}")
    return done


@pytest.fixture
def tenant(region, unique):
    return s3_tenant(region, unique)


def test_buckets_belong_to_projects(region, unique):
    a = s3_tenant(region, f"{unique}a")
    b = s3_tenant(region, f"{unique}b")
    sa, sb = client(a), client(b)
    bucket = f"bkt-{unique}"
    sa.create_bucket(Bucket=bucket)
    sa.put_object(Bucket=bucket, Key="k", Body=b"secret")

    assert [x["Name"] for x in sa.list_buckets()["Buckets"]] == [bucket]
    assert sb.list_buckets()["Buckets"] == []
    assert sa.get_bucket_location(Bucket=bucket)["LocationConstraint"] == a["s3_region"]
    # the other project can neither see nor touch it
    assert error_of(sb.head_bucket, Bucket=bucket)[0] == 403
    assert error_of(sb.get_object, Bucket=bucket, Key="k") == (403, "AccessDenied")
    assert error_of(sb.put_object, Bucket=bucket, Key="x", Body=b"") == (403, "AccessDenied")
    assert error_of(sb.list_objects_v2, Bucket=bucket) == (403, "AccessDenied")
    assert error_of(sb.delete_bucket, Bucket=bucket) == (403, "AccessDenied")
    # names are unique in the region
    assert error_of(sb.create_bucket, Bucket=bucket) == (409, "BucketAlreadyExists")
    assert error_of(sa.create_bucket, Bucket=bucket) == (409, "BucketAlreadyOwnedByYou")
    assert error_of(sa.create_bucket, Bucket="Bad_Name")[0] == 400
    assert error_of(sa.create_bucket, Bucket=f"loc-{unique}",
                    CreateBucketConfiguration={"LocationConstraint": "elsewhere"})[1] == "InvalidLocationConstraint"
    sa.create_bucket(Bucket=f"loc-{unique}", CreateBucketConfiguration={"LocationConstraint": "RegionOne"})

    assert error_of(sa.delete_bucket, Bucket=bucket) == (409, "BucketNotEmpty")
    sa.delete_object(Bucket=bucket, Key="k")
    sa.delete_bucket(Bucket=bucket)
    assert error_of(sa.head_bucket, Bucket=bucket)[0] == 404
    assert error_of(sa.list_objects_v2, Bucket=bucket) == (404, "NoSuchBucket")


def test_clients_sign_for_the_region_the_catalog_names(region, tenant, unique):
    # the S3 endpoints are listed under the region name in lower case, a
    # child of the OpenStack region
    assert tenant["s3_region"] == "regionone"
    shown = region.cli_json("region", "show", tenant["s3_region"])
    assert shown["parent_region"] == "RegionOne"
    s3 = client(tenant)
    bucket = f"reg-{unique}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": tenant["s3_region"]})
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == tenant["s3_region"]
    assert aws(tenant, "s3", "ls").stdout.split()[-1] == bucket
    # a signature for the OpenStack region's name is refused, saying why
    upper = boto3.client("s3", endpoint_url=tenant["endpoint"], aws_access_key_id=tenant["access"],
                         aws_secret_access_key=tenant["secret"], region_name="RegionOne",
                         config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        upper.list_buckets()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "region" in e.value.response["Error"]["Message"]


def test_readers_read_but_do_not_write(region, unique):
    owner = s3_tenant(region, unique)
    bucket = f"rd-{unique}"
    client(owner).create_bucket(Bucket=bucket)
    client(owner).put_object(Bucket=bucket, Key="doc", Body=b"text")
    password = f"pw-{unique}-Reader!"
    user = region.cli_json("user", "create", "--domain", owner["domain"], "--password", password, f"reader-{unique}")
    region.cli_ok("role", "add", "--project", owner["project_id"], "--user", user["id"], "reader")
    cloud = region.add_user_cloud(f"reader-{unique}", username=f"reader-{unique}", password=password,
                                  domain=owner["domain"], project=owner["project"])
    cred = region.cli_json("ec2", "credentials", "create", cloud=cloud)
    r = client({**owner, "access": cred["access"], "secret": cred["secret"]})
    assert r.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"text"
    assert error_of(r.put_object, Bucket=bucket, Key="x", Body=b"") == (403, "AccessDenied")
    assert error_of(r.delete_object, Bucket=bucket, Key="doc") == (403, "AccessDenied")


def test_objects_round_trip_with_metadata_ranges_and_conditions(tenant, unique):
    s3 = client(tenant)
    bucket = f"obj-{unique}"
    s3.create_bucket(Bucket=bucket)
    body = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB: several encrypted chunks
    put = s3.put_object(Bucket=bucket, Key="dir/file.bin", Body=body, ContentType="application/x-test",
                        Metadata={"owner": "alice", "purpose": "test"}, CacheControl="no-cache")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert put["ServerSideEncryption"] == "AES256"

    got = s3.get_object(Bucket=bucket, Key="dir/file.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test" and got["CacheControl"] == "no-cache"
    assert got["Metadata"] == {"owner": "alice", "purpose": "test"}
    assert got["ETag"] == put["ETag"] and got["ContentLength"] == len(body)
    head = s3.head_object(Bucket=bucket, Key="dir/file.bin")
    assert head["ContentLength"] == len(body) and head["Metadata"]["owner"] == "alice"
    assert head["ServerSideEncryption"] == "AES256"

    # ranges: inside one chunk, across chunk boundaries, suffix, open-ended
    for rng, want in [("bytes=0-4", body[0:5]), ("bytes=262140-262150", body[262140:262151]),
                      ("bytes=-4", body[-4:]), (f"bytes={len(body) - 10}-", body[-10:]),
                      ("bytes=100-99999999", body[100:])]:
        r = s3.get_object(Bucket=bucket, Key="dir/file.bin", Range=rng)
        assert r["Body"].read() == want, rng
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert r["ContentRange"].endswith(f"/{len(body)}"), r["ContentRange"]
    assert error_of(s3.get_object, Bucket=bucket, Key="dir/file.bin", Range=f"bytes={len(body)}-") == \
        (416, "InvalidRange")

    # conditional reads
    etag = put["ETag"]
    assert error_of(s3.get_object, Bucket=bucket, Key="dir/file.bin", IfNoneMatch=etag)[0] == 304
    assert error_of(s3.get_object, Bucket=bucket, Key="dir/file.bin", IfMatch='"nope"') == \
        (412, "PreconditionFailed")
    modified = head["LastModified"]
    assert error_of(s3.get_object, Bucket=bucket, Key="dir/file.bin", IfModifiedSince=modified)[0] == 304
    assert s3.get_object(Bucket=bucket, Key="dir/file.bin", IfMatch=etag,
                         IfUnmodifiedSince=modified.replace(year=2000))["ETag"] == etag
    # response-* overrides
    r = s3.get_object(Bucket=bucket, Key="dir/file.bin", ResponseContentType="text/plain",
                      ResponseContentDisposition="attachment; filename=x")
    assert r["ContentType"] == "text/plain" and r["ContentDisposition"] == "attachment; filename=x"

    # conditional writes
    assert error_of(s3.put_object, Bucket=bucket, Key="dir/file.bin", Body=b"x", IfNoneMatch="*") == \
        (412, "PreconditionFailed")
    s3.put_object(Bucket=bucket, Key="dir/file.bin", Body=b"replaced", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="dir/file.bin")["Body"].read() == b"replaced"

    # empty objects
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""

    s3.delete_object(Bucket=bucket, Key="dir/file.bin")
    assert error_of(s3.get_object, Bucket=bucket, Key="dir/file.bin") == (404, "NoSuchKey")
    assert error_of(s3.head_object, Bucket=bucket, Key="dir/file.bin")[0] == 404
    # deleting what is not there succeeds, as on S3
    s3.delete_object(Bucket=bucket, Key="never-was")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "empty"}, {"Key": "gone"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["empty", "gone"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_listings_v1_and_v2(tenant, unique):
    s3 = client(tenant)
    bucket = f"lst-{unique}"
    s3.create_bucket(Bucket=bucket)
    keys = ["a", "b/1", "b/2", "b/c/3", "c d+e%f", "d/x", "é", "z"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())

    v2 = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in v2["Contents"]] == sorted(keys, key=lambda k: k.encode())
    assert v2["KeyCount"] == len(keys) and not v2["IsTruncated"]
    assert all(o["Size"] == len(o["Key"].encode()) for o in v2["Contents"])

    v2 = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in v2["Contents"]] == ["a", "c d+e%f", "z", "é"]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["b/", "d/"]
    v2 = s3.list_objects_v2(Bucket=bucket, Prefix="b/", Delimiter="/")
    assert [o["Key"] for o in v2["Contents"]] == ["b/1", "b/2"]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["b/c/"]
    # an empty delimiter means no delimiter
    v2 = s3.list_objects_v2(Bucket=bucket, Delimiter="")
    assert len(v2["Contents"]) == len(keys) and "CommonPrefixes" not in v2

    # pages: entries and common prefixes both count
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=2, **kw)
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == sorted(["a", "b/", "c d+e%f", "d/", "z", "é"]) and pages == 3
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, StartAfter="c")["Contents"]] == \
        ["c d+e%f", "d/x", "z", "é"]

    v1 = s3.list_objects(Bucket=bucket, MaxKeys=3)
    assert [o["Key"] for o in v1["Contents"]] == ["a", "b/1", "b/2"] and v1["IsTruncated"]
    v1 = s3.list_objects(Bucket=bucket, Marker="b/2", Delimiter="/")
    assert [o["Key"] for o in v1["Contents"]] == ["c d+e%f", "z", "é"]
    assert [p["Prefix"] for p in v1["CommonPrefixes"]] == ["d/"]
    # paginators drive marker / continuation handling the way tools do
    for op in ("list_objects", "list_objects_v2"):
        got = [o["Key"] for p in s3.get_paginator(op).paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
               for o in p.get("Contents", [])]
        assert got == sorted(keys, key=lambda k: k.encode()), op
    assert error_of(s3.list_objects_v2, Bucket=bucket, ContinuationToken="%%%")[1] == "InvalidArgument"


def test_copy_object(tenant, unique):
    s3 = client(tenant)
    bucket = f"cpy-{unique}"
    s3.create_bucket(Bucket=bucket)
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"original", Metadata={"m": "1"},
                         ContentType="text/plain")["ETag"]
    out = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert out["CopyObjectResult"]["ETag"] == etag
    dst = s3.get_object(Bucket=bucket, Key="dst")
    assert dst["Body"].read() == b"original" and dst["Metadata"] == {"m": "1"} and dst["ContentType"] == "text/plain"

    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   Metadata={"m": "2"}, ContentType="application/octet-stream")
    dst2 = s3.head_object(Bucket=bucket, Key="dst2")
    assert dst2["Metadata"] == {"m": "2"} and dst2["ContentType"] == "application/octet-stream"

    assert error_of(s3.copy_object, Bucket=bucket, Key="src", CopySource=f"{bucket}/src") == \
        (400, "InvalidRequest")
    s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   Metadata={"m": "3"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"m": "3"}
    assert error_of(s3.copy_object, Bucket=bucket, Key="d3", CopySource=f"{bucket}/src",
                    CopySourceIfMatch='"other"') == (412, "PreconditionFailed")
    assert error_of(s3.copy_object, Bucket=bucket, Key="d3", CopySource=f"{bucket}/missing")[1] == "NoSuchKey"


def test_bad_requests_get_s3_errors(tenant, unique):
    s3 = client(tenant)
    bucket = f"bad-{unique}"
    s3.create_bucket(Bucket=bucket)
    wrong_secret = client({**tenant, "secret": "not-the-secret"})
    assert error_of(wrong_secret.list_buckets) == (403, "SignatureDoesNotMatch")
    unknown = client({**tenant, "access": "AKIDONOTEXIST"})
    assert error_of(unknown.list_buckets) == (403, "InvalidAccessKeyId")
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert error_of(s3.put_object, Bucket=bucket, Key="k", Body=b"data", ContentMD5=wrong_md5) == \
        (400, "BadDigest")
    assert error_of(s3.put_object, Bucket=bucket, Key="k", Body=b"data", ContentMD5="bm90LW1kNQ==")[0] == 400
    assert error_of(s3.get_object, Bucket=bucket, Key="k") == (404, "NoSuchKey")
    assert error_of(s3.get_object, Bucket=bucket, Key="k", VersionId="nope")[0] == 404
    assert error_of(s3.get_object, Bucket=f"none-{unique}", Key="k") == (404, "NoSuchBucket")
    # nothing half-written is visible
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    # anonymous requests are refused
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{tenant['endpoint']}/{bucket}")
    assert e.value.code == 403


def sse_c(key: bytes) -> dict:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def test_sse_c_objects_open_only_with_their_key(tenant, unique):
    s3 = client(tenant)
    bucket = f"ssec-{unique}"
    s3.create_bucket(Bucket=bucket)
    key = os.urandom(32)
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"customer data", **sse_c(key))
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="c", **sse_c(key))["Body"].read() == b"customer data"
    assert s3.head_object(Bucket=bucket, Key="c", **sse_c(key))["ContentLength"] == 13
    assert error_of(s3.get_object, Bucket=bucket, Key="c")[0] == 400
    assert error_of(s3.get_object, Bucket=bucket, Key="c", **sse_c(os.urandom(32))) == (403, "AccessDenied")
    # a copy can move it under the project key
    s3.copy_object(Bucket=bucket, Key="plain", CopySource=f"{bucket}/c",
                   CopySourceSSECustomerAlgorithm="AES256",
                   CopySourceSSECustomerKey=sse_c(key)["SSECustomerKey"],
                   CopySourceSSECustomerKeyMD5=sse_c(key)["SSECustomerKeyMD5"])
    assert s3.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"customer data"
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_aws_cli_cp_sync_ls_rm(tenant, unique, tmp_path):
    bucket = f"cli-{unique}"
    aws(tenant, "s3", "mb", f"s3://{bucket}")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_text("one")
    (src / "sub" / "two.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # multipart upload by the CLI
    aws(tenant, "s3", "cp", str(src / "one.txt"), f"s3://{bucket}/one.txt")
    aws(tenant, "s3", "sync", str(src), f"s3://{bucket}/tree")
    listed = aws(tenant, "s3", "ls", "--recursive", f"s3://{bucket}").stdout
    assert "one.txt" in listed and "tree/sub/two.bin" in listed and "tree/one.txt" in listed, listed
    out = tmp_path / "out"
    aws(tenant, "s3", "sync", f"s3://{bucket}/tree", str(out))
    assert (out / "sub" / "two.bin").read_bytes() == (src / "sub" / "two.bin").read_bytes()
    head = json.loads(aws(tenant, "s3api", "head-object", "--bucket", bucket, "--key", "tree/sub/two.bin").stdout)
    assert head["ContentLength"] == 9 * 1024 * 1024 and head["ETag"].strip('"').endswith("-2"), head
    aws(tenant, "s3", "rm", "--recursive", f"s3://{bucket}/tree")
    assert aws(tenant, "s3", "ls", "--recursive", f"s3://{bucket}").stdout.split()[-1] == "one.txt"
    aws(tenant, "s3", "rb", "--force", f"s3://{bucket}")
    assert bucket not in aws(tenant, "s3", "ls").stdout


def test_presigned_get_and_put(tenant, unique):
    s3 = client(tenant, signature_version="s3v4")
    bucket = f"pre-{unique}"
    s3.create_bucket(Bucket=bucket)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    req = urllib.request.Request(put_url, data=b"presigned body", method="PUT")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    with urllib.request.urlopen(get_url) as r:
        assert r.read() == b"presigned body"
    with pytest.raises(urllib.error.HTTPError) as e:
        head, sig = get_url.split("X-Amz-Signature=")
        urllib.request.urlopen(f"{head}X-Amz-Signature={'1' if sig[0] == '0' else '0'}{sig[1:]}")
    assert e.value.code == 403
    # an expired link no longer works
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=1)
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(expired)
    assert e.value.code == 403
