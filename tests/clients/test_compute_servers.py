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
import sys
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
    """A region driving this host's dataplane and instances, with a namespace standing for the
    internet (198.51.100.1/24) on a veth whose other end is the operator's external interface."""
    prefix = "k" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(2))
    uplink = f"{prefix}up"
    monkeypatch.setenv("HIMMEL_DATAPLANE_PREFIX", prefix)
    monkeypatch.setenv("HIMMEL_HOST_NAME", HOST)
    monkeypatch.setenv("HIMMEL_EXTERNAL_INTERFACE", uplink)
    monkeypatch.delenv("HIMMEL_NO_DATAPLANE", raising=False)
    region = new_region()
    region.prefix = prefix
    region.internet = f"{prefix}-internet"
    try:
        sh("ip", "netns", "add", region.internet)
        sh("ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", region.internet)
        sh("ip", "link", "set", uplink, "up")
        sh("ip", "-n", region.internet, "link", "set", "eth0", "up")
        sh("ip", "-n", region.internet, "addr", "add", "198.51.100.1/24", "dev", "eth0")
        region.spawn()
        region.wait_healthy()
        yield region
    finally:
        region.stop()
        # What a region that died could not clean up: its processes and namespaces.
        dataplane_leftovers.remove(prefix, extra_links=(uplink,))
        sh("ip", "netns", "del", region.internet, check=False)


def http_get(netns: str, url: str) -> str | None:
    """The body of `url` fetched from inside `netns`, or None when nothing answers in time."""
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())"
    done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code, url], capture_output=True,
                          text=True, timeout=30)
    return done.stdout.strip() if done.returncode == 0 else None


def console_with(region, server_id: str, marker: str, timeout: float = 60) -> str:
    """The server's console log once it shows `marker`."""
    deadline = time.monotonic() + timeout
    while True:
        text = region.cli_ok("console", "log", "show", server_id)
        if marker in text:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} on the console of {server_id}:\n{text}")
        time.sleep(1)


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

    log = console_with(region, sid, "user_data exit")
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
    log = console_with(region, second["id"], "metadata ok")
    assert f"metadata ok {second['id']}" in log, log
    for server_id in (second["id"], sid):
        region.cli_ok("server", "delete", "--wait", server_id)


@pytest.mark.parametrize("driver", ["namespace", "qemu"])
def test_a_server_is_reached_through_its_router_security_groups_and_floating_ip(lab, test_image, unique, driver,
                                                                                tmp_path):
    """`openstack server create --wait` with each driver on a tenant network behind a router: the
    guest takes its lease, reads its metadata, and its web port answers from the router's namespace
    and through a floating IP from the internet exactly when a security group rule admits it."""
    if driver == "qemu" and not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is missing (scripts/test-deps installs it)")
    region = lab
    cli_json = region.cli_json
    if driver == "namespace":
        image = cli_json("image", "create", "--disk-format", "ari", "--container-format", "ari", "--file",
                         str(test_image / "initramfs.cpio.gz"), "--property", "hypervisor_type=namespace",
                         f"rootfs-{unique}")
    else:
        kernel = cli_json("image", "create", "--disk-format", "aki", "--container-format", "aki", "--file",
                          str(test_image / "vmlinuz"), f"kernel-{unique}")
        ramdisk = cli_json("image", "create", "--disk-format", "ari", "--container-format", "ari", "--file",
                           str(test_image / "initramfs.cpio.gz"), f"ramdisk-{unique}")
        # The machine image of a kernel boot carries no data of its own.
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        image = cli_json("image", "create", "--disk-format", "ami", "--container-format", "ami", "--file",
                         str(empty), "--property", f"kernel_id={kernel['id']}", "--property",
                         f"ramdisk_id={ramdisk['id']}", f"machine-{unique}")
    flavor = cli_json("flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1", f"reach-{unique}")
    ext = cli_json("network", "create", "--external", f"ext-{unique}")
    cli_json("subnet", "create", "--network", ext["id"], "--subnet-range", "198.51.100.0/24", "--gateway",
             "198.51.100.1", "--no-dhcp", f"ext-sub-{unique}")
    net = cli_json("network", "create", f"net-{unique}")
    cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.93.0.0/24", f"sub-{unique}")
    router = cli_json("router", "create", f"router-{unique}")
    region.cli_ok("router", "set", "--external-gateway", ext["id"], router["id"])
    region.cli_ok("router", "add", "subnet", router["id"], f"sub-{unique}")

    name = f"reach-{driver}-{unique}"
    server = cli_json("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network",
                      net["id"], "--wait", name)
    assert server["status"] == "ACTIVE", server
    sid = server["id"]
    boot_timeout = 240 if driver == "qemu" else 60
    log = console_with(region, sid, "metadata ok", timeout=boot_timeout)
    assert f"metadata ok {sid}" in log, log
    ip = cli_json("port", "list", "--server", sid)[0]["Fixed IP Addresses"][0]["ip_address"]
    assert f"lease of {ip}" in log, log

    router_ns = f"{region.prefix}-router-{router['id']}"
    url = f"http://{ip}/"
    assert http_get(router_ns, url) is None, "the default group admits nothing from the router"
    group = cli_json("port", "list", "--server", sid, "--long")[0]["Security Groups"][0]
    from_router = cli_json("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80",
                           "--remote-ip", "10.93.0.1/32", group)
    wait_for("the guest's web port from the router", lambda: http_get(router_ns, url) == name)

    fip = cli_json("floating", "ip", "create", ext["id"])
    region.cli_ok("server", "add", "floating", "ip", sid, fip["floating_ip_address"])
    public = f"http://{fip['floating_ip_address']}/"
    time.sleep(1)
    assert http_get(region.internet, public) is None, "only the router is admitted so far"
    from_internet = cli_json("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80",
                             "--remote-ip", "198.51.100.1/32", group)
    wait_for("the guest through its floating IP", lambda: http_get(region.internet, public) == name)
    region.cli_ok("security", "group", "rule", "delete", from_internet["id"])
    wait_for("the floating IP to close again", lambda: http_get(region.internet, public) is None)
    region.cli_ok("security", "group", "rule", "delete", from_router["id"])

    region.cli_ok("server", "delete", "--wait", sid)
    netns = f"{region.prefix}-instance-{sid}"
    assert netns not in sh("ip", "netns", "list").stdout.split()
    assert not (region.data_dir / "compute" / "instances" / sid).exists()
