"""Images with the openstack CLI and openstacksdk, as project members use
them: upload and download byte-identically, SCS image properties, sharing
between projects (private, shared with membership, community), tags, and
image data that is never stored in plaintext; bad input is refused with
Glance's errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


def make_member(region, unique: str, prefix: str = "img") -> dict:
    """A project and a member user on it, set up by the administrator."""
    t = {"project": f"{prefix}-{unique}", "user": f"{prefix}-user-{unique}", "password": f"pw-{unique}-Secret!"}
    t["project_id"] = region.cli_json("project", "create", "--domain", "default", t["project"])["id"]
    region.cli_ok("user", "create", "--domain", "default", "--password", t["password"], t["user"])
    region.cli_ok("role", "add", "--project", t["project"], "--user", t["user"], "member")
    t["cloud"] = region.add_user_cloud(f"{prefix}-{unique}", username=t["user"], password=t["password"],
                                       domain="Default", project=t["project"])
    return t


def refused(done, text: str = "") -> None:
    assert done.returncode != 0, f"expected a refusal, got success: {done.stdout}"
    assert text in done.stderr, done.stderr


def image_bytes(path: Path, size: int, marker: bytes) -> bytes:
    """Random bytes with `marker` every 64 KiB, for the plaintext scan."""
    data = bytearray(os.urandom(size))
    for off in range(0, size - len(marker), 65536):
        data[off:off + len(marker)] = marker
    path.write_bytes(bytes(data))
    return bytes(data)


def test_the_catalog_has_the_image_service(region):
    services = region.cli_json("catalog", "list", config=region.clouds_yaml)
    image = [s for s in services if s["Type"] == "image"]
    assert image and image[0]["Name"] == "glance", services
    assert {e["interface"] for e in image[0]["Endpoints"]} == {"public", "internal", "admin"}, image
    assert all(e["url"].endswith("/image") for e in image[0]["Endpoints"]), image


def test_upload_download_round_trip_and_no_plaintext_at_rest(region, unique, tmp_path):
    t = make_member(region, unique)
    marker = f"HIMMEL-IMAGE-MARKER-{unique}".encode()
    src = tmp_path / "disk.raw"
    data = image_bytes(src, 6 * 1024 * 1024 + 123, marker)
    created = region.cli_json("image", "create", "--file", str(src), "--disk-format", "raw",
                              "--container-format", "bare", "--property", "os_distro=debian",
                              f"round-{unique}", cloud=t["cloud"])
    shown = region.cli_json("image", "show", created["id"], cloud=t["cloud"])
    assert shown["status"] == "active", shown
    assert shown["size"] == len(data), shown
    assert shown["checksum"] == hashlib.md5(data).hexdigest(), shown
    props = shown["properties"]
    assert props["os_hash_algo"] == "sha512", shown
    assert props["os_hash_value"] == hashlib.sha512(data).hexdigest(), shown
    assert props["os_distro"] == "debian", shown

    out = tmp_path / "saved.raw"
    region.cli_ok("image", "save", "--file", str(out), created["id"], cloud=t["cloud"])
    assert hashlib.sha512(out.read_bytes()).hexdigest() == hashlib.sha512(data).hexdigest()

    # Neither the data dir (images, and the SQLite store) nor anything
    # else the region wrote holds the plaintext.
    scanned = 0
    for path in region.data_dir.rglob("*"):
        if path.is_file() and not path.is_socket():
            blob = path.read_bytes()
            scanned += len(blob)
            assert marker not in blob, f"plaintext of the image in {path}"
    assert scanned > len(data), "the encrypted image data was scanned"


def test_scs_image_properties_survive_set_and_show(region, unique, tmp_path):
    t = make_member(region, unique)
    src = tmp_path / "tiny.img"
    src.write_bytes(b"\0" * 4096)
    image = region.cli_json("image", "create", "--file", str(src), "--disk-format", "qcow2",
                            "--container-format", "bare", "--min-disk", "1", "--min-ram", "256",
                            f"scs-{unique}", cloud=t["cloud"])
    scs = {
        "os_distro": "ubuntu",
        "os_version": "24.04",
        "architecture": "x86_64",
        "hw_disk_bus": "scsi",
        "hw_scsi_model": "virtio-scsi",
        "image_source": "https://cloud-images.example.org/noble/current/noble-server-cloudimg-amd64.img",
        "image_description": "Ubuntu 24.04 for the sovereign cloud",
        "image_build_date": "2026-11-01",
        "image_original_user": "ubuntu",
        "replace_frequency": "monthly",
        "uuid_validity": "last-3",
        "provided_until": "2029-04-30",
        "hotfix_hours": "72",
        "patchlevel": "20261101",
    }
    args = []
    for k, v in scs.items():
        args += ["--property", f"{k}={v}"]
    region.cli_ok("image", "set", *args, image["id"], cloud=t["cloud"])
    shown = region.cli_json("image", "show", image["id"], cloud=t["cloud"])
    for k, v in scs.items():
        assert shown["properties"].get(k) == v, (k, shown)
    assert shown["min_disk"] == 1 and shown["min_ram"] == 256, shown

    region.cli_ok("image", "unset", "--property", "hotfix_hours", image["id"], cloud=t["cloud"])
    region.cli_ok("image", "set", "--property", "os_version=24.04.1", "--name", f"scs2-{unique}",
                  image["id"], cloud=t["cloud"])
    shown = region.cli_json("image", "show", image["id"], cloud=t["cloud"])
    assert "hotfix_hours" not in shown["properties"], shown
    assert shown["properties"]["os_version"] == "24.04.1" and shown["name"] == f"scs2-{unique}", shown

    # Read-only attributes are refused, unknown images are not found.
    refused(region.cli("image", "set", "--property", "status=queued", image["id"], cloud=t["cloud"]), "403")
    refused(region.cli("image", "show", f"no-such-image-{unique}", cloud=t["cloud"]))


def test_visibility_between_two_projects(region, unique, tmp_path):
    a = make_member(region, unique, "imga")
    b = make_member(region, unique, "imgb")
    src = tmp_path / "shared.img"
    src.write_bytes(os.urandom(100_000))
    common = ["--file", str(src), "--disk-format", "raw", "--container-format", "bare"]
    private = region.cli_json("image", "create", *common, "--private", f"private-{unique}", cloud=a["cloud"])
    shared = region.cli_json("image", "create", *common, "--shared", f"shared-{unique}", cloud=a["cloud"])
    community = region.cli_json("image", "create", *common, "--community", f"community-{unique}",
                                cloud=a["cloud"])

    def names(cloud, *flags):
        return {i["Name"] for i in region.cli_json("image", "list", *flags, cloud=cloud)}

    assert names(b["cloud"]) .isdisjoint({f"private-{unique}", f"shared-{unique}"})
    refused(region.cli("image", "show", private["id"], cloud=b["cloud"]))
    refused(region.cli("image", "show", shared["id"], cloud=b["cloud"]))
    # Only an administrator may publish to everyone.
    refused(region.cli("image", "set", "--public", private["id"], cloud=a["cloud"]), "403")

    # Shared: A adds B's project; B accepts and then sees and downloads it.
    region.cli_ok("image", "add", "project", shared["id"], b["project_id"], cloud=a["cloud"])
    members = region.cli_json("image", "member", "list", shared["id"], cloud=a["cloud"])
    assert [(m["Member ID"], m["Status"]) for m in members] == [(b["project_id"], "pending")], members
    assert f"shared-{unique}" not in names(b["cloud"])
    region.cli_ok("image", "set", "--accept", shared["id"], cloud=b["cloud"])
    assert f"shared-{unique}" in names(b["cloud"])
    assert f"shared-{unique}" in names(b["cloud"], "--shared")
    members = region.cli_json("image", "member", "list", shared["id"], cloud=b["cloud"])
    assert [(m["Member ID"], m["Status"]) for m in members] == [(b["project_id"], "accepted")], members
    out = tmp_path / "b.img"
    region.cli_ok("image", "save", "--file", str(out), shared["id"], cloud=b["cloud"])
    assert out.read_bytes() == src.read_bytes()
    # B cannot change or delete A's image.
    refused(region.cli("image", "set", "--name", "mine", shared["id"], cloud=b["cloud"]), "403")
    refused(region.cli("image", "delete", shared["id"], cloud=b["cloud"]))

    # Community images are listed on request and readable by everyone.
    assert f"community-{unique}" in names(b["cloud"], "--community")
    assert region.cli_json("image", "show", community["id"], cloud=b["cloud"])["visibility"] == "community"

    # Removing the member hides the image again.
    region.cli_ok("image", "remove", "project", shared["id"], b["project_id"], cloud=a["cloud"])
    refused(region.cli("image", "show", shared["id"], cloud=b["cloud"]))


def test_tags_filter_lists(region, unique, tmp_path):
    t = make_member(region, unique)
    gold = region.cli_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                           "--tag", f"gold-{unique}", "--tag", "lts", f"gold-{unique}", cloud=t["cloud"])
    region.cli_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                    "--tag", "lts", f"plain-{unique}", cloud=t["cloud"])
    listed = region.cli_json("image", "list", "--tag", f"gold-{unique}", cloud=t["cloud"])
    assert [i["ID"] for i in listed] == [gold["id"]], listed
    assert len(region.cli_json("image", "list", "--tag", "lts", cloud=t["cloud"])) == 2
    region.cli_ok("image", "unset", "--tag", "lts", gold["id"], cloud=t["cloud"])
    assert [i["Name"] for i in region.cli_json("image", "list", "--tag", "lts", cloud=t["cloud"])] == \
        [f"plain-{unique}"]
    # A protected image cannot be deleted until unprotected.
    region.cli_ok("image", "set", "--protected", gold["id"], cloud=t["cloud"])
    refused(region.cli("image", "delete", gold["id"], cloud=t["cloud"]))
    region.cli_ok("image", "set", "--unprotected", gold["id"], cloud=t["cloud"])
    region.cli_ok("image", "delete", gold["id"], cloud=t["cloud"])
    refused(region.cli("image", "show", gold["id"], cloud=t["cloud"]))


def test_openstacksdk_images(region, unique, tmp_path):
    import openstack.exceptions

    t = make_member(region, unique)
    conn = region.sdk(t["cloud"])
    data = os.urandom(3 * 1024 * 1024 + 7)
    image = conn.image.create_image(name=f"sdk-{unique}", data=data, disk_format="qcow2",
                                    container_format="bare", os_distro="fedora", wait=True)
    image = conn.image.get_image(image.id)
    assert image.status == "active" and image.size == len(data), image
    assert image.hash_algo == "sha512" and image.hash_value == hashlib.sha512(data).hexdigest(), image
    assert image.properties.get("os_distro") == "fedora" or image.os_distro == "fedora", image
    got = conn.image.download_image(image)
    body = got.content if hasattr(got, "content") else got
    assert hashlib.sha512(body).hexdigest() == hashlib.sha512(data).hexdigest()
    assert f"sdk-{unique}" in {i.name for i in conn.image.images()}
    conn.image.update_image(image, min_ram=1024)
    assert conn.image.get_image(image.id).min_ram == 1024

    # Stage and import (glance-direct).
    staged = conn.image.create_image(name=f"sdk-import-{unique}", disk_format="raw", container_format="bare")
    conn.image.stage_image(staged, data=b"imported bytes")
    conn.image.import_image(staged, method="glance-direct")
    assert conn.image.get_image(staged.id).status == "active"

    # Glance's errors, never a 500.
    with pytest.raises(openstack.exceptions.ResourceNotFound):
        conn.image.get_image("00000000-0000-4000-8000-000000000000")
    resp = conn.image.put(f"/images/{image.id}/file", data=b"again",
                          headers={"Content-Type": "application/octet-stream"}, raise_exc=False)
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"].startswith("409"), resp.text
    resp = conn.image.patch(f"/images/{image.id}", data='[{"op": "replace", "path": "/name"',
                            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                            raise_exc=False)
    assert resp.status_code == 400, resp.text
    resp = conn.image.patch(f"/images/{image.id}", data="[]", headers={"Content-Type": "text/plain"},
                            raise_exc=False)
    assert resp.status_code == 415, resp.text
    resp = conn.image.get("/images/not-a-uuid", raise_exc=False)
    assert resp.status_code == 404, resp.text
    conn.image.delete_image(image)
    conn.image.delete_image(staged)
