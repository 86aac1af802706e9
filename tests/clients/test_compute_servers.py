"""Servers that really boot: `openstack server create --wait` of a namespace instance from the
test image (scripts/build-test-image) on a tenant network with the region's dataplane on; stop,
start and reboot work; delete leaves no namespace, files or port behind.

Runs as root with what the dataplane and the namespace driver need (scripts/test-deps installs
it) and with apt-get able to fetch the image's packages; skips with the reason otherwise."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import string
import subprocess
import time
from pathlib import Path

import pytest

import dataplane_leftovers

REPO = Path(__file__).resolve().parents[2]
HOST = "compute-test-host"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, cgroups, nftables)"
    for tool in ("ip", "nft", "dnsmasq"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            return f"`{tool}` is missing (scripts/test-deps installs it)"
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        return "br_netfilter is not loaded"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=60)


@pytest.fixture(scope="session")
def test_image(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("test-image")
    done = subprocess.run([str(REPO / "scripts" / "build-test-image"), str(out)], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"the test image cannot be built here: {done.stderr.strip()[-300:]}")
    return out


def wait_for(what: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def lab(new_region, monkeypatch):
    prefix = "k" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(2))
    monkeypatch.setenv("HIMMEL_DATAPLANE_PREFIX", prefix)
    monkeypatch.setenv("HIMMEL_HOST_NAME", HOST)
    monkeypatch.delenv("HIMMEL_NO_DATAPLANE", raising=False)
    region = new_region()
    region.prefix = prefix
    region.spawn()
    try:
        region.wait_healthy()
        yield region
    finally:
        region.stop()
        # What a region that died could not clean up: its processes and namespaces.
        dataplane_leftovers.remove(prefix)


def test_a_namespace_instance_boots_and_is_removed(lab, test_image, unique):
    region = lab
    cli_json = region.cli_json
    image = cli_json("image", "create", "--disk-format", "ari", "--container-format", "ari", "--file",
                     str(test_image / "initramfs.cpio.gz"), f"rootfs-{unique}")
    flavor = cli_json("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "0", "--property",
                      "himmel:driver=namespace", f"ns-{unique}")
    net = cli_json("network", "create", f"net-{unique}")
    cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.88.0.0/24", f"sub-{unique}")
    user_data = Path(region.data_dir.parent / "user-data.sh")
    user_data.write_text("#!/bin/sh\necho user-data-ran-$(hostname)\n")

    started = time.monotonic()
    server = cli_json("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network",
                      net["id"], "--user-data", str(user_data), "--wait", f"guest-{unique}")
    assert server["status"] == "ACTIVE", server
    print(f"namespace instance ACTIVE after {time.monotonic() - started:.2f} s (CLI included)")
    sid = server["id"]
    netns = f"{region.prefix}-instance-{sid}"
    assert netns in sh("ip", "netns", "list").stdout.split()

    region.cli_ok("server", "stop", sid)
    wait_for("SHUTOFF", lambda: cli_json("server", "show", sid)["status"] == "SHUTOFF")
    region.cli_ok("server", "start", sid)
    wait_for("ACTIVE", lambda: cli_json("server", "show", sid)["status"] == "ACTIVE")
    region.cli_ok("server", "reboot", "--hard", "--wait", sid)
    assert cli_json("server", "show", sid)["status"] == "ACTIVE"

    region.cli_ok("server", "delete", "--wait", sid)
    assert cli_json("port", "list", "--device-id", sid) == []
    assert netns not in sh("ip", "netns", "list").stdout.split()
    assert not (region.data_dir / "compute" / "instances" / sid).exists()


def test_a_namespace_instance_runs_its_user_data_and_is_snapshotted(lab, test_image, unique, tmp_path):
    """The guest reads its metadata and user data (seen in `openstack console log show`); what it
    then writes to its root filesystem is in `openstack server image create`'s image, which
    boots as a new server."""
    region = lab
    cli_json = region.cli_json
    image = cli_json("image", "create", "--disk-format", "ari", "--container-format", "ari", "--file",
                     str(test_image / "initramfs.cpio.gz"), "--property", "hypervisor_type=namespace",
                     f"rootfs-{unique}")
    flavor = cli_json("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "0", f"snap-{unique}")
    net = cli_json("network", "create", f"net-{unique}")
    cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.89.0.0/24", f"sub-{unique}")
    user_data = tmp_path / "user-data.sh"
    user_data.write_text("#!/bin/sh\necho snapshot-marker-$(hostname) >/www/marker.txt\n"
                         "echo user-data-ran-$(hostname)\n")
    server = cli_json("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network",
                      net["id"], "--user-data", str(user_data), "--wait", f"snap-guest-{unique}")
    sid = server["id"]

    def console_with(server_id: str, marker: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = region.cli_ok("console", "log", "show", server_id)
            if marker in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no {marker!r} on the console of {server_id}:\n{text}")
            time.sleep(0.5)

    log = console_with(sid, "user_data exit")
    assert f"metadata ok {sid}" in log, log
    assert f"user-data-ran-snap-guest-{unique}" in log, log
    assert "user_data exit 0" in log, log

    snapshot = cli_json("server", "image", "create", "--wait", "--name", f"snap-{unique}", sid)
    shown = cli_json("image", "show", snapshot["id"])
    assert shown["status"] == "active", shown
    assert (shown["disk_format"], shown["container_format"]) == ("ari", "ari"), shown
    assert shown["properties"]["image_type"] == "snapshot", shown
    assert shown["properties"]["instance_uuid"] == sid, shown
    assert shown["properties"]["hypervisor_type"] == "namespace", "the snapshot boots as its server did"
    saved = tmp_path / "snapshot.cpio.gz"
    region.cli_ok("image", "save", "--file", str(saved), snapshot["id"])
    archive = subprocess.run(["gzip", "-dc", str(saved)], capture_output=True, check=True).stdout
    assert b"www/marker.txt\0" in archive
    assert f"snapshot-marker-snap-guest-{unique}\n".encode() in archive
    assert cli_json("server", "show", sid)["status"] == "ACTIVE", "the server runs on"

    second = cli_json("server", "create", "--flavor", flavor["id"], "--image", snapshot["id"], "--network",
                      net["id"], "--wait", f"from-snap-{unique}")
    assert second["status"] == "ACTIVE", second
    log = console_with(second["id"], "metadata ok")
    assert f"metadata ok {second['id']}" in log, log
    for server_id in (second["id"], sid):
        region.cli_ok("server", "delete", "--wait", server_id)
