"""SSE-KMS with boto3: objects encrypted under a key-manager secret the
customer chooses, per request or as the bucket's default encryption. Only
callers allowed to read the secret can write or read such objects; once the
secret is deleted, the objects cannot be read any more."""

from __future__ import annotations

import os

import pytest

from test_s3 import client, error_of, s3_tenant


def aes_key(region, t: dict, name: str) -> str:
    """A 256-bit AES key ordered from the key manager; returns its id."""
    order = region.cli_json("secret", "order", "create", "--name", name, "--algorithm", "aes",
                            "--bit-length", "256", "--mode", "gcm", "key", cloud=t["cloud"])
    shown = region.cli_json("secret", "order", "get", order["Order href"], cloud=t["cloud"])
    assert shown["Status"] == "ACTIVE", shown
    return shown["Secret href"].rsplit("/", 1)[-1]


@pytest.fixture
def kms(region, unique):
    t = s3_tenant(region, unique)
    bucket = f"kms-{unique}"
    client(t).create_bucket(Bucket=bucket)
    return t, bucket, aes_key(region, t, f"s3-{unique}")


def test_objects_under_a_chosen_key(region, kms, unique):
    t, bucket, key_id = kms
    s3 = client(t)
    body = os.urandom(300_000)
    put = s3.put_object(Bucket=bucket, Key="doc", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", key_id)
    got = s3.get_object(Bucket=bucket, Key="doc")
    assert got["Body"].read() == body
    assert (got["ServerSideEncryption"], got["SSEKMSKeyId"]) == ("aws:kms", key_id)
    assert s3.get_object(Bucket=bucket, Key="doc", Range="bytes=1000-1999")["Body"].read() == body[1000:2000]
    assert s3.head_object(Bucket=bucket, Key="doc")["SSEKMSKeyId"] == key_id
    # the key may be named by an ARN too
    arn = s3.put_object(Bucket=bucket, Key="arn", Body=b"a", ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=f"arn:aws:kms:regionone:{t['project_id']}:key/{key_id}")
    assert arn["SSEKMSKeyId"] == key_id

    # copies read the source with its key and write under the one asked for
    copied = s3.copy_object(Bucket=bucket, Key="plain-copy", CopySource={"Bucket": bucket, "Key": "doc"},
                            ServerSideEncryption="AES256")
    assert copied["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="plain-copy")["Body"].read() == body

    # without a key id, aws:kms uses the project key
    managed = s3.put_object(Bucket=bucket, Key="managed", Body=b"m", ServerSideEncryption="aws:kms")
    assert managed["ServerSideEncryption"] == "aws:kms" and "SSEKMSKeyId" not in managed
    assert s3.get_object(Bucket=bucket, Key="managed")["Body"].read() == b"m"

    missing = "00000000-0000-4000-8000-000000000000"
    assert error_of(s3.put_object, Bucket=bucket, Key="x", Body=b"", ServerSideEncryption="aws:kms",
                    SSEKMSKeyId=missing) == (400, "KMS.NotFoundException")
    # another project may not use the key
    other = s3_tenant(region, f"{unique}o")
    theirs = f"kms-other-{unique}"
    client(other).create_bucket(Bucket=theirs)
    assert error_of(client(other).put_object, Bucket=theirs, Key="x", Body=b"", ServerSideEncryption="aws:kms",
                    SSEKMSKeyId=key_id)[0] in (400, 403)

    # deleting the key makes its objects unreadable; the rest stays readable
    region.cli_ok("secret", "delete", key_href(region, t, key_id), cloud=t["cloud"])
    assert error_of(s3.get_object, Bucket=bucket, Key="doc") == (400, "KMS.NotFoundException")
    assert s3.get_object(Bucket=bucket, Key="plain-copy")["Body"].read() == body


def key_href(region, t: dict, key_id: str) -> str:
    listed = region.cli_json("secret", "list", cloud=t["cloud"])
    return next(s["Secret href"] for s in listed if s["Secret href"].endswith(key_id))


def test_bucket_default_encryption_with_a_key(kms):
    t, bucket, key_id = kms
    s3 = client(t)
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}}]})
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}

    put = s3.put_object(Bucket=bucket, Key="by-default", Body=b"d")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", key_id)
    explicit = s3.put_object(Bucket=bucket, Key="explicit", Body=b"e", ServerSideEncryption="AES256")
    assert explicit["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in explicit

    part_body = os.urandom(5 * 1024 * 1024)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    assert (up["ServerSideEncryption"], up["SSEKMSKeyId"]) == ("aws:kms", key_id)
    parts = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=b)
             for n, b in ((1, part_body), (2, b"tail"))]
    assert parts[0]["SSEKMSKeyId"] == key_id
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": n + 1, "ETag": p["ETag"]} for n, p in enumerate(parts)]})
    assert (done["ServerSideEncryption"], done["SSEKMSKeyId"]) == ("aws:kms", key_id)
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["SSEKMSKeyId"] == key_id and got["Body"].read() == part_body + b"tail"

    assert error_of(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": key_id}}]}
    ) == (400, "InvalidArgument")
    assert error_of(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": "00000000-0000-4000-8000-000000000000"}}]}
    ) == (400, "KMS.NotFoundException")
    s3.delete_bucket_encryption(Bucket=bucket)
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.put_object(Bucket=bucket, Key="after", Body=b"a")["ServerSideEncryption"] == "AES256"
