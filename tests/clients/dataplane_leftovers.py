"""What a region that died (or was stopped) leaves of its dataplane on this host, and how the
dataplane tests remove it: instances (they outlive the region on purpose), dnsmasq processes,
namespaces, links, nftables tables and the runtime directory, all named after the region's
dataplane prefix."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


def _sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=30)


def runtime_dir(prefix: str) -> Path:
    """The region's dataplane runtime directory (dnsmasq files and pids)."""
    return Path(f"/run/himmel-{prefix}")


CGROUP_ROOT = Path("/sys/fs/cgroup")


def instance_cgroup_parents(prefix: str) -> list[Path]:
    """Where the region's instance cgroups live: `himmel-<prefix>` at the root of a cgroup v2
    host, or in each v1 hierarchy."""
    group = f"himmel-{prefix}"
    parents = [CGROUP_ROOT / group] + [c / group for c in CGROUP_ROOT.iterdir() if c.is_dir()]
    return [p for p in parents if p.is_dir()]


def kill_instances(prefix: str) -> None:
    """Kills every process of the region's instances and removes their cgroups, so that no
    instance of a failed test keeps running (and spinning) after it."""
    parents = instance_cgroup_parents(prefix)
    for cgroup in [d for p in parents for d in p.iterdir() if d.is_dir()]:
        for _ in range(50):
            # a frozen task cannot die: thaw first (v2, then v1's freezer hierarchy)
            for knob, thawed in (("cgroup.freeze", "0"), ("freezer.state", "THAWED")):
                try:
                    (cgroup / knob).write_text(thawed)
                except OSError:
                    pass
            try:
                pids = (cgroup / "cgroup.procs").read_text().split()
            except OSError:
                break
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        try:
            cgroup.rmdir()
        except OSError:
            pass
    for parent in parents:
        try:
            parent.rmdir()
        except OSError:
            pass


def remove(prefix: str, extra_links: tuple[str, ...] = ()) -> None:
    kill_instances(prefix)
    state = f"{runtime_dir(prefix)}/"
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "dnsmasq" in cmdline and state in cmdline:
            os.kill(int(proc.name), signal.SIGTERM)
    for ns in _sh("ip", "netns", "list").stdout.split():
        if ns.startswith(f"{prefix}-"):
            _sh("ip", "netns", "del", ns)
    for line in _sh("ip", "-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        # the dataplane's links are the prefix, a kind letter and 11 characters of an id
        if name.startswith(prefix) and len(name) == len(prefix) + 12:
            _sh("ip", "link", "del", name)
    for name in extra_links:
        _sh("ip", "link", "del", name)
    for family, table in (("inet", "conntrack"), ("bridge", "security_groups")):
        _sh("nft", "delete", "table", family, f"{prefix}_{table}")
    shutil.rmtree(runtime_dir(prefix), ignore_errors=True)
