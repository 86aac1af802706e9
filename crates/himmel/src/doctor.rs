//! `himmel doctor`: what this host can run, and what is missing.

use std::path::Path;

struct Check {
    what: &'static str,
    ok: bool,
    detail: String,
}

fn on_path(bin: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

fn tool(what: &'static str, bin: &str, needed_for: &str) -> Check {
    match on_path(bin) {
        Some(p) => Check {
            what,
            ok: true,
            detail: p,
        },
        None => Check {
            what,
            ok: false,
            detail: format!("`{bin}` not found; needed for {needed_for}"),
        },
    }
}

pub fn report() {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let kvm = Path::new("/dev/kvm").exists();
    let checks = [
        Check {
            what: "identity, audit (SQLite)",
            ok: true,
            detail: "built in".into(),
        },
        Check {
            what: "root privileges",
            ok: root,
            detail: if root {
                "running as root".into()
            } else {
                "not root: the network dataplane and guests need root".into()
            },
        },
        tool("iproute2", "ip", "network namespaces, bridges, VXLAN"),
        tool("nftables", "nft", "security groups, SNAT/DNAT"),
        tool("dnsmasq", "dnsmasq", "DHCP and DNS for tenant networks"),
        tool("QEMU", "qemu-system-x86_64", "virtual machine guests"),
        Check {
            what: "KVM",
            ok: kvm,
            detail: if kvm {
                "/dev/kvm present".into()
            } else {
                "no /dev/kvm: guests fall back to TCG (slower)".into()
            },
        },
    ];
    for c in &checks {
        println!(
            "{:<4} {:<26} {}",
            if c.ok { "ok" } else { "no" },
            c.what,
            c.detail
        );
    }
}
