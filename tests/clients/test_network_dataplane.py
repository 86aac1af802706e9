"""The network dataplane driven through the Networking API: a port created with the openstack
CLI, plugged into a namespace, gets its address by DHCP; the region is killed mid-change and
restarted, a namespace is deleted by hand, and the dataplane converges again.

Runs as root with iproute2, nftables, dnsmasq and busybox (scripts/test-deps installs them);
skips with the reason otherwise."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import string
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import dataplane_leftovers

HOST = "dataplane-test-host"
CONVERGE_S = 20


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, bridges, nftables)"
    for tool in ("ip", "nft", "dnsmasq", "busybox"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            return f"`{tool}` is missing (scripts/test-deps installs it)"
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        return "br_netfilter is not loaded"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=30)


UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in bound|renew)
  ip addr flush dev "$interface"
  ip addr add "$ip/$mask" dev "$interface"
  for r in $router; do ip route replace default via "$r" dev "$interface"; done
esac
"""


def dhcp_lease(netns: str, script: Path) -> bool:
    done = subprocess.run(["ip", "netns", "exec", netns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f",
                           "-t", "4", "-T", "1", "-s", str(script)], capture_output=True, timeout=30)
    return done.returncode == 0


def addresses(netns: str) -> str:
    return sh("ip", "-n", netns, "-4", "addr", "show", "dev", "eth0").stdout


def wait_for(what: str, check, timeout: float = CONVERGE_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class Lab:
    """The prefix the region's dataplane uses, the instance namespaces the test makes, and a
    cleanup that leaves nothing behind even when the region died."""

    def __init__(self, data_dir: Path):
        self.prefix = "c" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(2))
        self.data_dir = data_dir
        self.namespaces: list[str] = []
        self.uplink = f"{self.prefix}up"

    def instance(self, device_id: str) -> str:
        ns = f"{self.prefix}-instance-{device_id}"
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.namespaces.append(ns)
        return ns

    def internet(self, address: str) -> str:
        """A namespace standing for the internet, on a veth whose other end is the operator's
        external interface."""
        ns = f"{self.prefix}-internet"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "add", self.uplink, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", self.uplink, "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "addr", "add", address, "dev", "eth0")
        return ns

    def cleanup(self) -> None:
        dataplane_leftovers.remove(self.prefix, extra_links=(self.uplink,))


@pytest.fixture
def lab(new_region, monkeypatch, tmp_path):
    region = new_region()
    lab = Lab(region.data_dir)
    monkeypatch.setenv("HIMMEL_DATAPLANE_PREFIX", lab.prefix)
    monkeypatch.setenv("HIMMEL_HOST_NAME", HOST)
    monkeypatch.setenv("HIMMEL_EXTERNAL_INTERFACE", lab.uplink)
    monkeypatch.delenv("HIMMEL_NO_DATAPLANE", raising=False)
    lab.region = region
    lab.script = tmp_path / "udhcpc.script"
    lab.script.write_text(UDHCPC_SCRIPT)
    lab.script.chmod(0o755)
    try:
        yield lab
    finally:
        region.stop()
        lab.cleanup()


def port_status(region, port_id: str) -> str:
    return region.cli_json("port", "show", port_id)["status"]


def create_instance_port(region, lab: Lab, unique: str, name: str, ip: str) -> tuple[dict, str]:
    device = str(uuid.uuid4())
    port = region.cli_json("port", "create", "--network", f"net-{unique}", "--device", device,
                           "--device-owner", "compute:nova", "--host", HOST,
                           "--fixed-ip", f"subnet=sub-{unique},ip-address={ip}", f"{name}-{unique}")
    return port, device


def test_a_cli_port_gets_its_lease_and_the_dataplane_survives_kill_and_manual_deletion(lab, unique):
    region = lab.region
    region.spawn()
    region.wait_healthy()

    net = region.cli_json("network", "create", f"net-{unique}")
    region.cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.71.0.0/24", f"sub-{unique}")
    port, device = create_instance_port(region, lab, unique, "vm1", "10.71.0.50")
    assert port["status"] == "DOWN", "not plugged anywhere yet"

    ns = lab.instance(device)
    wait_for("the port to become ACTIVE once plugged", lambda: port_status(region, port["id"]) == "ACTIVE")
    assert dhcp_lease(ns, lab.script), "udhcpc got a lease"
    assert "10.71.0.50/24" in addresses(ns), addresses(ns)
    assert "default via 10.71.0.1" in sh("ip", "-n", ns, "route", "show", "default").stdout

    # Kill the region in the middle of a change: a second port created, then kill -9 at once.
    port2, device2 = create_instance_port(region, lab, unique, "vm2", "10.71.0.51")
    ns2 = lab.instance(device2)
    region.process.send_signal(signal.SIGKILL)
    region.process.wait(timeout=10)
    # ... and somebody deletes the DHCP namespace by hand meanwhile.
    dhcp_ns = f"{lab.prefix}-dhcp-{net['id']}"
    sh("ip", "netns", "del", dhcp_ns)
    sh("ip", "-n", ns, "addr", "flush", "dev", "eth0")

    region.spawn()
    region.wait_healthy()
    wait_for("the DHCP namespace to come back", lambda: dhcp_ns in sh("ip", "netns", "list").stdout)
    wait_for("the second port to become ACTIVE", lambda: port_status(region, port2["id"]) == "ACTIVE")
    assert wait_for("a lease for the first port again", lambda: dhcp_lease(ns, lab.script)), "DHCP is back"
    assert "10.71.0.50/24" in addresses(ns)
    assert dhcp_lease(ns2, lab.script), "the port created before the kill is served too"
    assert "10.71.0.51/24" in addresses(ns2)
    ping = sh("ip", "netns", "exec", ns2, "ping", "-c1", "-W1", "10.71.0.50", check=False)
    assert ping.returncode == 0, f"the two ports talk (same default group): {ping.stdout}"

    # Deleting the resources through the API removes their dataplane.
    region.cli_ok("port", "delete", port["id"], port2["id"])
    region.cli_ok("subnet", "delete", f"sub-{unique}")
    region.cli_ok("network", "delete", net["id"])
    wait_for("the DHCP namespace to go", lambda: dhcp_ns not in sh("ip", "netns", "list").stdout)
    # A pass removes namespaces before bridges, so the bridge may outlive the namespace briefly.
    wait_for("the network's bridge to go",
             lambda: f": {lab.prefix}b" not in sh("ip", "-o", "link", "show").stdout)


def pings(netns: str, address: str) -> bool:
    return sh("ip", "netns", "exec", netns, "ping", "-c1", "-W1", address, check=False).returncode == 0


def tcp_answers(netns: str, address: str, port: int) -> bool:
    done = subprocess.run(["ip", "netns", "exec", netns, "busybox", "nc", "-w", "1", address, str(port)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    return "hello" in done.stdout


def test_router_snat_floating_ip_and_security_group_rules_through_the_api(lab, unique):
    region = lab.region
    internet = lab.internet("198.51.100.1/24")
    region.spawn()
    region.wait_healthy()

    ext = region.cli_json("network", "create", "--external", f"ext-{unique}")
    region.cli_json("subnet", "create", "--network", ext["id"], "--subnet-range", "198.51.100.0/24",
                    "--gateway", "198.51.100.1", "--no-dhcp", f"ext-sub-{unique}")
    region.cli_json("network", "create", f"net-{unique}")
    region.cli_json("subnet", "create", "--network", f"net-{unique}", "--subnet-range", "10.72.0.0/24",
                    f"sub-{unique}")
    router = region.cli_json("router", "create", f"router-{unique}")
    region.cli_ok("router", "set", "--external-gateway", ext["id"], router["id"])
    region.cli_ok("router", "add", "subnet", router["id"], f"sub-{unique}")
    port, device = create_instance_port(region, lab, unique, "vm", "10.72.0.50")
    vm = lab.instance(device)
    wait_for("the port to become ACTIVE", lambda: port_status(region, port["id"]) == "ACTIVE")
    assert dhcp_lease(vm, lab.script)
    wait_for("SNAT to the internet through the router", lambda: pings(vm, "198.51.100.1"))
    router_ports = region.cli_json("port", "list", "--router", router["id"])
    assert len(router_ports) == 2, router_ports
    wait_for("the router's ports to become ACTIVE", lambda: all(
        p["Status"] == "ACTIVE" for p in region.cli_json("port", "list", "--router", router["id"])))

    fip = region.cli_json("floating", "ip", "create", ext["id"])
    region.cli_ok("floating", "ip", "set", "--port", port["id"], fip["id"])
    address = fip["floating_ip_address"]
    group = region.cli_json("port", "show", port["id"])["security_group_ids"][0]
    time.sleep(1)
    assert not pings(internet, address), "the default group admits nothing from the internet"

    icmp = region.cli_json("security", "group", "rule", "create", "--protocol", "icmp",
                           "--remote-ip", "198.51.100.0/24", group)
    wait_for("the floating IP to answer from the internet", lambda: pings(internet, address))

    server = subprocess.Popen(["ip", "netns", "exec", vm, "busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hello"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert not tcp_answers(internet, address, 8080), "tcp/8080 closed"
        tcp = region.cli_json("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "8080",
                              "--remote-ip", "198.51.100.1/32", group)
        wait_for("tcp/8080 to open", lambda: tcp_answers(internet, address, 8080))
        region.cli_ok("security", "group", "rule", "delete", tcp["id"])
        wait_for("tcp/8080 to close again", lambda: not tcp_answers(internet, address, 8080))
    finally:
        server.kill()
        server.wait()

    region.cli_ok("security", "group", "rule", "delete", icmp["id"])
    wait_for("icmp to close again", lambda: not pings(internet, address))
    region.cli_ok("floating", "ip", "unset", "--port", fip["id"])
    region.cli_ok("router", "set", "--disable-snat", "--external-gateway", ext["id"], router["id"])
    wait_for("no way out without SNAT or a floating IP", lambda: not pings(vm, "198.51.100.1"))
