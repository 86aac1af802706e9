"""S3 object lock with boto3 and the aws CLI: records that must not be
deleted. COMPLIANCE retention holds against everyone, GOVERNANCE against
everyone but a project admin who asks to bypass it, a legal hold against
everyone until it is lifted; deleting a key without a version id still just
adds a delete marker."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from test_s3 import aws, client, error_of, s3_tenant


def in_days(days: float) -> dt.datetime:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).replace(microsecond=0)


def project_user(region, owner: dict, role: str, name: str) -> dict:
    """Another user of the owner's project holding `role`, with S3 keys."""
    password = f"pw-{name}-Lock!"
    user = region.cli_json("user", "create", "--domain", owner["domain"], "--password", password, name)
    region.cli_ok("role", "add", "--project", owner["project_id"], "--user", user["id"], role)
    cloud = region.add_user_cloud(name, username=name, password=password, domain=owner["domain"],
                                  project=owner["project"])
    cred = region.cli_json("ec2", "credentials", "create", cloud=cloud)
    return {**owner, "access": cred["access"], "secret": cred["secret"]}


@pytest.fixture
def locked(region, unique):
    """A bucket with object lock, its owner (a member) and a project admin."""
    owner = s3_tenant(region, unique)
    bucket = f"lock-{unique}"
    client(owner).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    admin = project_user(region, owner, "admin", f"admin-{unique}")
    return bucket, client(owner), client(admin), owner


def test_lock_bucket_keeps_versioning_and_reports_its_configuration(locked):
    bucket, s3, _, _ = locked
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert error_of(s3.put_bucket_versioning, Bucket=bucket,
                    VersioningConfiguration={"Status": "Suspended"}) == (409, "InvalidBucketState")
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled"}

    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": rule})
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"] == rule
    put = s3.put_object(Bucket=bucket, Key="by-default", Body=b"x")
    retention = s3.get_object_retention(Bucket=bucket, Key="by-default", VersionId=put["VersionId"])["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert in_days(1.99) < retention["RetainUntilDate"] < in_days(2.01)

    for bad in ({"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}},
                {"DefaultRetention": {"Mode": "GOVERNANCE"}}):
        assert error_of(s3.put_object_lock_configuration, Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": bad}) == (400, "MalformedXML")
    assert error_of(s3.put_object_lock_configuration, Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 0}}}
    ) == (400, "InvalidArgument")
    # without a rule, new versions get no retention
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    plain = s3.put_object(Bucket=bucket, Key="plain", Body=b"y")
    assert error_of(s3.get_object_retention, Bucket=bucket, Key="plain") == (404, "NoSuchObjectLockConfiguration")
    s3.delete_object(Bucket=bucket, Key="plain", VersionId=plain["VersionId"])


def test_compliance_retention_holds_against_everyone(locked):
    bucket, s3, admin, _ = locked
    until = in_days(1)
    put = s3.put_object(Bucket=bucket, Key="record", Body=b"keep me", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=until)
    version = put["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="record")
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] == until
    assert head["ObjectLockLegalHoldStatus"] == "OFF"

    for who in (s3, admin):
        assert error_of(who.delete_object, Bucket=bucket, Key="record", VersionId=version) == (403, "AccessDenied")
        assert error_of(who.delete_object, Bucket=bucket, Key="record", VersionId=version,
                        BypassGovernanceRetention=True) == (403, "AccessDenied")
    # shortening or weakening is refused, extending is fine
    assert error_of(admin.put_object_retention, Bucket=bucket, Key="record", VersionId=version,
                    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": in_days(0.5)},
                    BypassGovernanceRetention=True) == (403, "AccessDenied")
    assert error_of(s3.put_object_retention, Bucket=bucket, Key="record", VersionId=version,
                    Retention={"Mode": "GOVERNANCE", "RetainUntilDate": in_days(5)}) == (403, "AccessDenied")
    longer = {"Mode": "COMPLIANCE", "RetainUntilDate": in_days(3)}
    s3.put_object_retention(Bucket=bucket, Key="record", VersionId=version, Retention=longer)
    assert s3.get_object_retention(Bucket=bucket, Key="record", VersionId=version)["Retention"] == longer

    # a delete without a version id only hides the key behind a marker
    gone = s3.delete_object(Bucket=bucket, Key="record")
    assert gone["DeleteMarker"] is True
    assert error_of(s3.get_object, Bucket=bucket, Key="record")[0] == 404
    assert s3.get_object(Bucket=bucket, Key="record", VersionId=version)["Body"].read() == b"keep me"
    s3.delete_object(Bucket=bucket, Key="record", VersionId=gone["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="record")["Body"].read() == b"keep me"

    # delete-multiple reports the refusal per key
    out = admin.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                               Delete={"Objects": [{"Key": "record", "VersionId": version}]})
    assert [e["Code"] for e in out.get("Errors", [])] == ["AccessDenied"]
    assert error_of(s3.delete_bucket, Bucket=bucket) == (409, "BucketNotEmpty")
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in versions] == [version]


def test_governance_yields_only_to_an_admin_who_bypasses_it(locked):
    bucket, s3, admin, _ = locked
    put = s3.put_object(Bucket=bucket, Key="draft", Body=b"v1", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=in_days(1))
    version = put["VersionId"]
    assert error_of(s3.delete_object, Bucket=bucket, Key="draft", VersionId=version) == (403, "AccessDenied")
    assert error_of(s3.delete_object, Bucket=bucket, Key="draft", VersionId=version,
                    BypassGovernanceRetention=True) == (403, "AccessDenied")
    assert error_of(admin.delete_object, Bucket=bucket, Key="draft", VersionId=version) == (403, "AccessDenied")
    # shortening needs the bypass too
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": in_days(0.5)}
    assert error_of(s3.put_object_retention, Bucket=bucket, Key="draft", VersionId=version,
                    Retention=shorter, BypassGovernanceRetention=True) == (403, "AccessDenied")
    admin.put_object_retention(Bucket=bucket, Key="draft", VersionId=version, Retention=shorter,
                               BypassGovernanceRetention=True)
    assert s3.get_object_retention(Bucket=bucket, Key="draft", VersionId=version)["Retention"][
        "RetainUntilDate"] == shorter["RetainUntilDate"]
    admin.delete_object(Bucket=bucket, Key="draft", VersionId=version, BypassGovernanceRetention=True)
    assert error_of(s3.head_object, Bucket=bucket, Key="draft", VersionId=version)[0] == 404


def test_legal_hold_blocks_deletion_until_lifted(locked):
    bucket, s3, admin, _ = locked
    version = s3.put_object(Bucket=bucket, Key="evidence", Body=b"e", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=bucket, Key="evidence")["LegalHold"] == {"Status": "ON"}
    assert error_of(admin.delete_object, Bucket=bucket, Key="evidence", VersionId=version,
                    BypassGovernanceRetention=True) == (403, "AccessDenied")
    s3.put_object_legal_hold(Bucket=bucket, Key="evidence", VersionId=version, LegalHold={"Status": "OFF"})
    assert s3.get_object(Bucket=bucket, Key="evidence")["ObjectLockLegalHoldStatus"] == "OFF"
    s3.put_object_legal_hold(Bucket=bucket, Key="evidence", LegalHold={"Status": "ON"})
    assert error_of(s3.delete_object, Bucket=bucket, Key="evidence", VersionId=version) == (403, "AccessDenied")
    s3.put_object_legal_hold(Bucket=bucket, Key="evidence", LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=bucket, Key="evidence", VersionId=version)


def test_legal_hold_of_a_version_that_never_had_one(locked):
    bucket, s3, _, _ = locked
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p")
    assert error_of(s3.get_object_legal_hold, Bucket=bucket, Key="plain") == (404, "NoSuchObjectLockConfiguration")
    s3.put_object_legal_hold(Bucket=bucket, Key="plain", LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=bucket, Key="plain")["LegalHold"] == {"Status": "OFF"}


LOCK_WRITES = ("PutObjectRetention", "PutObjectLegalHold", "PutObjectLockConfiguration", "PutObject",
               "UploadPart")


def without_integrity_headers(s3, ops=LOCK_WRITES):
    """`s3` with Content-MD5 and checksum headers taken off the operations
    `ops` (boto3 adds them on its own)."""
    def strip(request, **_):
        for name in list(request.headers.keys()):
            lower = name.lower()
            if lower == "content-md5" or lower.startswith(("x-amz-checksum-", "x-amz-sdk-checksum")):
                del request.headers[name]
    for op in ops:
        s3.meta.events.register(f"before-sign.s3.{op}", strip)
    return s3


def test_lock_settings_need_an_integrity_header(locked):
    bucket, s3, _, owner = locked
    s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    bare = without_integrity_headers(client(owner))
    missing = (400, "InvalidRequest")
    assert error_of(bare.put_object_retention, Bucket=bucket, Key="k",
                    Retention={"Mode": "GOVERNANCE", "RetainUntilDate": in_days(1)}) == missing
    assert error_of(bare.put_object_legal_hold, Bucket=bucket, Key="k", LegalHold={"Status": "ON"}) == missing
    assert error_of(bare.put_object_lock_configuration, Bucket=bucket,
                    ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}) == missing
    assert error_of(bare.put_object, Bucket=bucket, Key="new", Body=b"n", ObjectLockMode="GOVERNANCE",
                    ObjectLockRetainUntilDate=in_days(1)) == missing
    assert error_of(bare.put_object, Bucket=bucket, Key="new", Body=b"n", ObjectLockLegalHoldStatus="ON") == missing
    # nothing was changed; a plain write needs no integrity header
    assert error_of(s3.head_object, Bucket=bucket, Key="new")[0] == 404
    bare.put_object(Bucket=bucket, Key="plain", Body=b"p")
    assert error_of(s3.get_object_retention, Bucket=bucket, Key="k")[1] == "NoSuchObjectLockConfiguration"
    assert error_of(s3.get_object_legal_hold, Bucket=bucket, Key="k")[1] == "NoSuchObjectLockConfiguration"


def test_writes_locked_by_the_bucket_default_need_an_integrity_header(locked):
    bucket, s3, _, owner = locked
    bare = without_integrity_headers(client(owner))
    missing = (400, "InvalidRequest")
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    # without a default retention, neither a put nor a part needs one
    bare.put_object(Bucket=bucket, Key="free", Body=b"f")
    bare.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")

    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    assert error_of(bare.put_object, Bucket=bucket, Key="kept", Body=b"k") == missing
    assert error_of(bare.upload_part, Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=2,
                    Body=b"p") == missing
    assert error_of(s3.head_object, Bucket=bucket, Key="kept")[0] == 404
    # with one, both go through and the object takes the default
    put = s3.put_object(Bucket=bucket, Key="kept", Body=b"k")
    assert s3.get_object_retention(Bucket=bucket, Key="kept", VersionId=put["VersionId"])["Retention"][
        "Mode"] == "GOVERNANCE"
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=2, Body=b"p")
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"])


def test_copies_and_multipart_uploads_take_lock_headers(locked):
    bucket, s3, _, _ = locked
    until = in_days(1)
    src = s3.put_object(Bucket=bucket, Key="src", Body=b"source")["VersionId"]
    copied = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "src"},
                            ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    assert s3.get_object_retention(Bucket=bucket, Key="copy")["Retention"]["Mode"] == "COMPLIANCE"
    assert error_of(s3.delete_object, Bucket=bucket, Key="copy", VersionId=copied["VersionId"])[0] == 403
    s3.delete_object(Bucket=bucket, Key="src", VersionId=src)

    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ObjectLockMode="GOVERNANCE",
                                    ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"part")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    head = s3.head_object(Bucket=bucket, Key="mp", VersionId=done["VersionId"])
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"], head["ObjectLockLegalHoldStatus"]) == (
        "GOVERNANCE", until, "ON")
    assert error_of(s3.delete_object, Bucket=bucket, Key="mp", VersionId=done["VersionId"])[0] == 403


def test_lock_requests_are_checked(locked, region, unique):
    bucket, s3, _, owner = locked
    s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    assert error_of(s3.put_object_retention, Bucket=bucket, Key="k",
                    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": in_days(-1)}) == (400, "InvalidArgument")
    assert error_of(s3.put_object, Bucket=bucket, Key="k2", Body=b"",
                    ObjectLockMode="COMPLIANCE")[1] == "InvalidArgument"
    assert error_of(s3.get_object_retention, Bucket=bucket, Key="missing") == (404, "NoSuchKey")

    plain = f"plain-{unique}"
    s3.create_bucket(Bucket=plain)
    assert error_of(s3.get_object_lock_configuration, Bucket=plain) == (404, "ObjectLockConfigurationNotFoundError")
    assert error_of(s3.put_object, Bucket=plain, Key="k", Body=b"", ObjectLockMode="GOVERNANCE",
                    ObjectLockRetainUntilDate=in_days(1)) == (400, "InvalidRequest")
    s3.put_object(Bucket=plain, Key="k", Body=b"")
    assert error_of(s3.put_object_legal_hold, Bucket=plain, Key="k", LegalHold={"Status": "ON"}) == (
        400, "InvalidRequest")
    enable = {"ObjectLockEnabled": "Enabled"}
    assert error_of(s3.put_object_lock_configuration, Bucket=plain, ObjectLockConfiguration=enable) == (
        409, "InvalidBucketState")
    # an existing bucket takes object lock once versioning is on
    s3.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=enable)
    s3.put_object_legal_hold(Bucket=plain, Key="k", LegalHold={"Status": "ON"})
    # another project learns nothing
    other = client(s3_tenant(region, f"{unique}x"))
    assert error_of(other.get_object_retention, Bucket=bucket, Key="k") == (403, "AccessDenied")
    assert error_of(other.put_object_legal_hold, Bucket=bucket, Key="k", LegalHold={"Status": "OFF"}) == (
        403, "AccessDenied")


def test_aws_cli_object_lock(region, unique):
    t = s3_tenant(region, unique)
    bucket = f"cli-lock-{unique}"
    aws(t, "s3api", "create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket")
    aws(t, "s3api", "put-object-lock-configuration", "--bucket", bucket, "--object-lock-configuration",
        json.dumps({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}}))
    put = json.loads(aws(t, "s3api", "put-object", "--bucket", bucket, "--key", "a.txt").stdout)
    retention = json.loads(aws(t, "s3api", "get-object-retention", "--bucket", bucket, "--key", "a.txt").stdout)
    assert retention["Retention"]["Mode"] == "COMPLIANCE"
    aws(t, "s3api", "put-object-legal-hold", "--bucket", bucket, "--key", "a.txt", "--legal-hold", "Status=ON")
    hold = json.loads(aws(t, "s3api", "get-object-legal-hold", "--bucket", bucket, "--key", "a.txt").stdout)
    assert hold["LegalHold"]["Status"] == "ON"
    refused = aws(t, "s3api", "delete-object", "--bucket", bucket, "--key", "a.txt", "--version-id",
                  put["VersionId"], check=False)
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr
    # `aws s3 rm` without a version only adds a delete marker
    aws(t, "s3", "rm", f"s3://{bucket}/a.txt")
    versions = json.loads(aws(t, "s3api", "list-object-versions", "--bucket", bucket).stdout)
    assert [v["VersionId"] for v in versions["Versions"]] == [put["VersionId"]]
    assert len(versions["DeleteMarkers"]) == 1
