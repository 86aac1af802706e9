"""S3 beyond single objects: multipart uploads, versioning, tagging, the
audit trail of S3 requests, and that nothing is stored in plaintext."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import time

import pytest

from test_audit_trail import export_events
from test_s3 import client, error_of, s3_tenant

MIB = 1024 * 1024


@pytest.fixture
def tenant(region, unique):
    return s3_tenant(region, unique)


def test_multipart_upload_complete_list_abort(tenant, unique):
    s3 = client(tenant)
    bucket = f"mp-{unique}"
    s3.create_bucket(Bucket=bucket)
    parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"last part"]
    up = s3.create_multipart_upload(Bucket=bucket, Key="big", ContentType="application/x-big",
                                    Metadata={"kind": "multipart"})
    uid = up["UploadId"]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [uid]
    etags = []
    for n, data in enumerate(parts_data, start=1):
        etags.append(s3.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=n, Body=data)["ETag"])
    assert etags[0] == f'"{hashlib.md5(parts_data[0]).hexdigest()}"'
    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MIB), (2, 5 * MIB), (3, 9)]

    assert error_of(s3.complete_multipart_upload, Bucket=bucket, Key="big", UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": etags[1]},
                                               {"PartNumber": 1, "ETag": etags[0]}]}) == (400, "InvalidPartOrder")
    assert error_of(s3.complete_multipart_upload, Bucket=bucket, Key="big", UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]}) == (400, "InvalidPart")
    assert error_of(s3.complete_multipart_upload, Bucket=bucket, Key="big", UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": etags[2]},
                                               {"PartNumber": 4, "ETag": etags[2]}]})[1] == "InvalidPart"
    assert error_of(s3.upload_part, Bucket=bucket, Key="big", UploadId=uid, PartNumber=10001,
                    Body=b"x")[1] == "InvalidArgument"

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]})
    want_etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts_data)).hexdigest() + "-3"
    assert done["ETag"] == f'"{want_etag}"'
    whole = b"".join(parts_data)
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == whole and got["ContentType"] == "application/x-big"
    assert got["Metadata"] == {"kind": "multipart"} and got["ETag"] == f'"{want_etag}"'
    # a range across the boundary of two parts
    r = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={5 * MIB - 3}-{5 * MIB + 2}")
    assert r["Body"].read() == whole[5 * MIB - 3:5 * MIB + 3]
    assert s3.get_object(Bucket=bucket, Key="big", PartNumber=3)["Body"].read() == b"last part"
    assert error_of(s3.list_parts, Bucket=bucket, Key="big", UploadId=uid) == (404, "NoSuchUpload")

    # too small a part (not the last) is refused at completion
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="small", UploadId=uid2, PartNumber=1, Body=b"a")["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=uid2, PartNumber=2, Body=b"b")["ETag"]
    assert error_of(s3.complete_multipart_upload, Bucket=bucket, Key="small", UploadId=uid2,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                               {"PartNumber": 2, "ETag": e2}]}) == (400, "EntityTooSmall")
    # upload part copy, then abort
    c = s3.upload_part_copy(Bucket=bucket, Key="small", UploadId=uid2, PartNumber=3,
                            CopySource={"Bucket": bucket, "Key": "big"}, CopySourceRange="bytes=0-9")
    assert c["CopyPartResult"]["ETag"] == f'"{hashlib.md5(whole[:10]).hexdigest()}"'
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=uid2)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert error_of(s3.abort_multipart_upload, Bucket=bucket, Key="small", UploadId=uid2) == (404, "NoSuchUpload")
    assert error_of(s3.head_object, Bucket=bucket, Key="small")[0] == 404


def test_multipart_upload_listing_rolls_up_at_the_delimiter(tenant, unique):
    s3 = client(tenant)
    bucket = f"mpd-{unique}"
    s3.create_bucket(Bucket=bucket)
    ids = {k: s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]
           for k in ["a/1", "a/2", "b", "c/x/1", "c/y"]}

    top = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "c/"]
    assert [u["Key"] for u in top["Uploads"]] == ["b"]
    assert top["Delimiter"] == "/" and top["IsTruncated"] is False

    nested = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/", Prefix="c/")
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["c/x/"]
    assert [u["Key"] for u in nested["Uploads"]] == ["c/y"]

    # a common prefix counts as one entry when the listing is paged
    first = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/", MaxUploads=2)
    assert first["IsTruncated"] is True
    assert ([p["Prefix"] for p in first["CommonPrefixes"]], [u["Key"] for u in first["Uploads"]]) == (["a/"], ["b"])
    assert (first["NextKeyMarker"], first["NextUploadIdMarker"]) == ("b", ids["b"])
    rest = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/", MaxUploads=2,
                                     KeyMarker=first["NextKeyMarker"], UploadIdMarker=first["NextUploadIdMarker"])
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["c/"] and "Uploads" not in rest
    assert rest["IsTruncated"] is False

    # without a delimiter (or with an empty one) every upload is listed
    assert len(s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 5
    assert len(s3.list_multipart_uploads(Bucket=bucket, Delimiter="")["Uploads"]) == 5


def test_versioning_keeps_every_version(tenant, unique):
    s3 = client(tenant)
    bucket = f"ver-{unique}"
    s3.create_bucket(Bucket=bucket)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doc", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"two"
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId="null")["Body"].read() == b"before versioning"

    deleted = s3.delete_object(Bucket=bucket, Key="doc")
    assert deleted["DeleteMarker"] is True
    assert error_of(s3.get_object, Bucket=bucket, Key="doc") == (404, "NoSuchKey")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    listed = s3.list_object_versions(Bucket=bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(v2, False), (v1, False),
                                                                              ("null", False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(deleted["VersionId"], True)]
    assert error_of(s3.get_object, Bucket=bucket, Key="doc", VersionId=deleted["VersionId"])[0] == 405
    # removing the marker brings the newest version back
    s3.delete_object(Bucket=bucket, Key="doc", VersionId=deleted["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"two"
    s3.delete_object(Bucket=bucket, Key="doc", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"one"
    assert error_of(s3.get_object, Bucket=bucket, Key="doc", VersionId="no-such-version")[1] == "NoSuchVersion"

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="doc", Body=b"suspended").get("VersionId") == "null"


def test_object_and_bucket_tagging(tenant, unique):
    s3 = client(tenant)
    bucket = f"tag-{unique}"
    s3.create_bucket(Bucket=bucket)
    assert error_of(s3.get_bucket_tagging, Bucket=bucket) == (404, "NoSuchTagSet")
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "records"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "records"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    assert error_of(s3.get_bucket_tagging, Bucket=bucket)[1] == "NoSuchTagSet"

    s3.put_object(Bucket=bucket, Key="o", Body=b"x", Tagging="a=1&b=two%20words")
    assert s3.get_object_tagging(Bucket=bucket, Key="o")["TagSet"] == [{"Key": "a", "Value": "1"},
                                                                      {"Key": "b", "Value": "two words"}]
    assert s3.get_object(Bucket=bucket, Key="o")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="o", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="o")["TagSet"] == [{"Key": "c", "Value": "3"}]
    s3.delete_object_tagging(Bucket=bucket, Key="o")
    assert s3.get_object_tagging(Bucket=bucket, Key="o")["TagSet"] == []
    assert error_of(s3.put_object_tagging, Bucket=bucket, Key="o",
                    Tagging={"TagSet": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]})[1] == "InvalidTag"


def test_s3_requests_are_audited(region, tenant, unique, tmp_path):
    s3 = client(tenant)
    quiet, loud = f"aud-q-{unique}", f"aud-l-{unique}"
    ids = {}
    ids["create"] = s3.create_bucket(Bucket=quiet)["ResponseMetadata"]["RequestId"]
    s3.create_bucket(Bucket=loud)
    s3.put_bucket_tagging(Bucket=loud, Tagging={"TagSet": [{"Key": "himmel:audit-data-events", "Value": "true"}]})
    ids["quiet_put"] = s3.put_object(Bucket=quiet, Key="k", Body=b"x")["ResponseMetadata"]["RequestId"]
    ids["loud_put"] = s3.put_object(Bucket=loud, Key="k", Body=b"x")["ResponseMetadata"]["RequestId"]
    ids["loud_get"] = s3.get_object(Bucket=loud, Key="k")["ResponseMetadata"]["RequestId"]
    ids["list"] = s3.list_objects_v2(Bucket=quiet)["ResponseMetadata"]["RequestId"]
    try:
        client({**tenant, "secret": "wrong"}).list_buckets()
    except Exception:
        pass
    deadline = time.monotonic() + 10
    while True:
        events = {e["request_id"]: e for e in export_events(region, tmp_path / "trail.jsonl")}
        if all(ids[k] in events for k in ("create", "loud_put", "loud_get", "list")) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert events[ids["create"]]["name"] == "s3:CreateBucket"
    assert events[ids["create"]]["initiator"]["id"] == tenant["user_id"]
    assert events[ids["list"]]["name"] == "s3:ListObjectsV2"
    assert events[ids["loud_put"]]["name"] == "s3:PutObject"
    assert events[ids["loud_get"]]["name"] == "s3:GetObject"
    # data events of a bucket that did not ask for them stay out
    assert ids["quiet_put"] not in events
    # a refused signature is recorded too
    assert any(e["name"] == "s3:Unauthenticated" and e["outcome"] == "failure" for e in events.values())


def test_no_plaintext_in_data_dir_or_database(region, tenant, unique):
    s3 = client(tenant)
    bucket = f"scan-{unique}"
    s3.create_bucket(Bucket=bucket)
    marker = f"PLAINTEXT-MARKER-{unique}"
    tagging = f"note={marker}"
    s3.put_object(Bucket=bucket, Key="small", Body=marker.encode() * 3, Metadata={"note": marker},
                  Tagging=tagging)
    s3.put_object(Bucket=bucket, Key="large", Body=(marker.encode() + os.urandom(100)) * 20000)
    s3.put_object_tagging(Bucket=bucket, Key="large", Tagging={"TagSet": [{"Key": marker, "Value": marker}]})
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Metadata={"note": marker}, Tagging=tagging)
    e = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                       Body=marker.encode() * 1000)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "small"})
    # an upload still open keeps its tags too
    s3.create_multipart_upload(Bucket=bucket, Key="open", Metadata={"note": marker}, Tagging=tagging)
    got = s3.get_object(Bucket=bucket, Key="small")
    assert (got["Metadata"], got["TagCount"]) == ({"note": marker}, 1)
    expected = {"small": [{"Key": "note", "Value": marker}], "mp": [{"Key": "note", "Value": marker}],
                "copy": [{"Key": "note", "Value": marker}], "large": [{"Key": marker, "Value": marker}]}
    for key, tags in expected.items():
        assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == tags, key

    needle = marker.encode()
    scanned = 0
    for root, _, files in os.walk(region.data_dir):
        for name in files:
            path = os.path.join(root, name)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue  # the control socket
            with open(path, "rb") as f:
                assert needle not in f.read(), f"plaintext marker found in {path}"
            scanned += 1
    assert scanned > 3
    if region.database:
        # the S3 tables, dumped as text
        from conftest import Postgres  # noqa: PLC0415
        pg = Postgres(region.database.rsplit("/", 1)[0])
        dump = subprocess.run([pg.psql, region.database, "-At", "-c",
                               "SELECT row_to_json(o)::text FROM s3_objects o UNION ALL "
                               "SELECT row_to_json(u)::text FROM s3_uploads u"],
                              capture_output=True, text=True, timeout=30, check=True).stdout
        assert dump.strip() and marker not in dump
    else:
        with sqlite3.connect(region.data_dir / "state.db") as db:
            rows = db.execute("SELECT meta, tags, object_key FROM s3_objects").fetchall()
            rows += db.execute("SELECT meta, tags, object_key FROM s3_uploads").fetchall()
        assert rows and all(marker not in str(r) for r in rows)
