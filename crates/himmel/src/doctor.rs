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

/// The network dataplane's own checks (root, tools, kernel features), and a verdict.
fn dataplane() -> Vec<Check> {
    let checks = himmel_agent::host::checks();
    let verdict = match himmel_agent::host::can_run() {
        Ok(()) => Check {
            what: "network dataplane",
            ok: true,
            detail: "can run: tenant networks get real bridges, DHCP, routers, security groups"
                .into(),
        },
        Err(missing) => Check {
            what: "network dataplane",
            ok: false,
            detail: format!("off (the Networking API still works): {missing}"),
        },
    };
    checks
        .into_iter()
        .map(|c| Check {
            what: c.what,
            ok: c.ok,
            detail: if c.required || c.ok {
                c.detail
            } else {
                format!(
                    "{}; optional: without it removed rules do not cut established flows",
                    c.detail
                )
            },
        })
        .chain([verdict])
        .collect()
}

pub fn report() {
    let kvm = Path::new("/dev/kvm").exists();
    let mut checks = vec![Check {
        what: "identity, audit (SQLite)",
        ok: true,
        detail: "built in".into(),
    }];
    checks.extend(dataplane());
    checks.extend([
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
    ]);
    for c in &checks {
        println!(
            "{:<4} {:<26} {}",
            if c.ok { "ok" } else { "no" },
            c.what,
            c.detail
        );
    }
}
