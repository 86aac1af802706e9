"""What a region that died (or was stopped) leaves of its dataplane on this host, and how the
dataplane tests remove it: dnsmasq processes, namespaces, links, nftables tables and the
runtime directory, all named after the region's dataplane prefix."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path


def _sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=30)


def runtime_dir(prefix: str) -> Path:
    """The region's dataplane runtime directory (dnsmasq files and pids)."""
    return Path(f"/run/himmel-{prefix}")


def remove(prefix: str, extra_links: tuple[str, ...] = ()) -> None:
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
