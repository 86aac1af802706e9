//! Whether this host can run the dataplane, for `himmel doctor` and for the reconciler, which
//! stays off (and says so once) when it cannot.

use std::path::Path;

/// One capability and what was found.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: &'static str,
    pub ok: bool,
    /// Needed to run at all (false: only a part is missing, e.g. cutting flows).
    pub required: bool,
    pub detail: String,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Where a program is found: PATH, then the sbin directories a non-root PATH often lacks.
pub fn find_program(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(Into::into))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

fn tool(what: &'static str, program: &str, package: &str, required: bool) -> Check {
    match find_program(program) {
        Some(p) => Check {
            what,
            ok: true,
            required,
            detail: p,
        },
        None => Check {
            what,
            ok: false,
            required,
            detail: format!("`{program}` not found (Debian package {package})"),
        },
    }
}

/// A kernel feature is there when it is built in or its module is loaded.
fn kernel_feature(what: &'static str, present: bool, missing: &str) -> Check {
    Check {
        what,
        ok: present,
        required: true,
        detail: if present {
            "available".into()
        } else {
            missing.into()
        },
    }
}

/// Everything the dataplane needs, checked.
pub fn checks() -> Vec<Check> {
    let root = is_root();
    vec![
        Check {
            what: "root privileges",
            ok: root,
            required: true,
            detail: if root {
                "running as root".into()
            } else {
                "not root: namespaces, bridges and nftables need root".into()
            },
        },
        tool("iproute2", "ip", "iproute2", true),
        tool("nftables", "nft", "nftables", true),
        tool("dnsmasq", "dnsmasq", "dnsmasq-base", true),
        tool("sysctl", "sysctl", "procps", true),
        tool("conntrack", "conntrack", "conntrack", false),
        kernel_feature(
            "VXLAN",
            Path::new("/sys/module/vxlan").exists(),
            "no vxlan module loaded or built in (modprobe vxlan)",
        ),
        kernel_feature(
            "bridge netfilter",
            Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists(),
            "br_netfilter not loaded (modprobe br_netfilter): security groups need it",
        ),
    ]
}

/// `Ok` when the dataplane can run here, else what is missing.
pub fn can_run() -> Result<(), String> {
    let missing: Vec<String> = checks()
        .into_iter()
        .filter(|c| c.required && !c.ok)
        .map(|c| format!("{}: {}", c.what, c.detail))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}
