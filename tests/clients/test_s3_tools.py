"""rclone and s3cmd against the region's S3 endpoint: copy, sync, listings
(including rclone's listing with an empty delimiter), check, and
multipart uploads."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_s3 import client, s3_tenant

MIB = 1024 * 1024


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed (scripts/test-deps installs it when run as root)")
    return path


@pytest.fixture
def tenant(region, unique):
    return s3_tenant(region, unique)


def rclone(t: dict, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        "[himmel]\ntype = s3\nprovider = Other\nenv_auth = false\n"
        f"access_key_id = {t['access']}\nsecret_access_key = {t['secret']}\n"
        f"endpoint = {t['endpoint']}\nregion = {t['s3_region']}\nforce_path_style = true\n"
        # multipart above 5 MiB, in parts of the smallest size S3 allows
        "upload_cutoff = 5Mi\nchunk_size = 5Mi\n")
    # rclone's S3 client reads AWS_* settings (a CA bundle, a profile) from the environment
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run([need("rclone"), "--config", str(conf), "--retries", "1", "--low-level-retries", "1",
                           *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"rclone {' '.join(args)} failed:\n{done.stderr}"
    return done


def s3cmd(t: dict, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    host = t["endpoint"].split("://", 1)[1]
    conf = tmp_path / "s3cmd.cfg"
    conf.write_text(
        "[default]\n"
        f"access_key = {t['access']}\nsecret_key = {t['secret']}\n"
        f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
        f"bucket_location = {t['s3_region']}\nsignature_v2 = False\nmultipart_chunk_size_mb = 5\n")
    done = subprocess.run([need("s3cmd"), "-c", str(conf), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"s3cmd {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def tree(root: Path) -> None:
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "readme.txt").write_text("hello")
    (root / "docs" / "a.txt").write_text("a" * 1000)
    (root / "docs" / "deep" / "b.bin").write_bytes(os.urandom(12 * MIB))  # multipart


def test_rclone_copy_sync_ls_lsd_check(tenant, unique, tmp_path):
    need("rclone")
    bucket = f"rcl-{unique}"
    src = tmp_path / "src"
    tree(src)
    rclone(tenant, tmp_path, "mkdir", f"himmel:{bucket}")
    rclone(tenant, tmp_path, "copy", str(src), f"himmel:{bucket}/copy")
    rclone(tenant, tmp_path, "sync", str(src), f"himmel:{bucket}/sync")
    rclone(tenant, tmp_path, "check", str(src), f"himmel:{bucket}/sync")
    listed = rclone(tenant, tmp_path, "ls", f"himmel:{bucket}").stdout
    assert "copy/docs/deep/b.bin" in listed and "sync/readme.txt" in listed, listed
    dirs = rclone(tenant, tmp_path, "lsd", f"himmel:{bucket}").stdout
    assert "copy" in dirs and "sync" in dirs, dirs
    # --fast-list lists recursively with an empty delimiter
    flat = rclone(tenant, tmp_path, "lsf", "-R", "--fast-list", f"himmel:{bucket}/sync").stdout.split()
    assert sorted(flat) == ["docs/", "docs/a.txt", "docs/deep/", "docs/deep/b.bin", "readme.txt"], flat
    s3 = client(tenant)
    head = s3.head_object(Bucket=bucket, Key="sync/docs/deep/b.bin")
    assert head["ContentLength"] == 12 * MIB and head["ETag"].strip('"').endswith("-3"), head

    (src / "readme.txt").unlink()
    rclone(tenant, tmp_path, "sync", str(src), f"himmel:{bucket}/sync")
    rclone(tenant, tmp_path, "check", str(src), f"himmel:{bucket}/sync")
    out = tmp_path / "out"
    rclone(tenant, tmp_path, "copy", f"himmel:{bucket}/sync", str(out))
    assert (out / "docs" / "deep" / "b.bin").read_bytes() == (src / "docs" / "deep" / "b.bin").read_bytes()
    assert not (out / "readme.txt").exists()


def test_s3cmd_put_get_ls_sync_del(tenant, unique, tmp_path):
    need("s3cmd")
    bucket = f"s3c-{unique}"
    src = tmp_path / "src"
    tree(src)
    s3cmd(tenant, tmp_path, "mb", f"s3://{bucket}")
    s3cmd(tenant, tmp_path, "put", str(src / "readme.txt"), f"s3://{bucket}/readme.txt")
    s3cmd(tenant, tmp_path, "sync", str(src) + "/", f"s3://{bucket}/tree/")
    listed = s3cmd(tenant, tmp_path, "ls", "--recursive", f"s3://{bucket}").stdout
    assert "tree/docs/deep/b.bin" in listed and f"s3://{bucket}/readme.txt" in listed, listed
    top = s3cmd(tenant, tmp_path, "ls", f"s3://{bucket}").stdout
    assert "DIR" in top and f"s3://{bucket}/tree/" in top, top
    s3cmd(tenant, tmp_path, "get", f"s3://{bucket}/tree/docs/deep/b.bin", str(tmp_path / "b.bin"))
    assert (tmp_path / "b.bin").read_bytes() == (src / "docs" / "deep" / "b.bin").read_bytes()
    s3cmd(tenant, tmp_path, "del", "--recursive", "--force", f"s3://{bucket}/tree/")
    assert "tree/" not in s3cmd(tenant, tmp_path, "ls", "--recursive", f"s3://{bucket}").stdout
    s3cmd(tenant, tmp_path, "del", f"s3://{bucket}/readme.txt")
    s3cmd(tenant, tmp_path, "rb", f"s3://{bucket}")
