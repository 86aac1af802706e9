//! `himmel doctor`: what this host can run, and what is missing.

struct Check {
    what: &'static str,
    ok: bool,
    detail: String,
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

/// QEMU, KVM (a real probe guest) and whether each instance driver can run here.
fn hypervisor() -> Vec<Check> {
    himmel_agent::hypervisor::host_checks()
        .into_iter()
        .map(|c| Check {
            what: c.what,
            ok: c.ok,
            detail: c.detail,
        })
        .collect()
}

pub fn report() {
    let mut checks = vec![Check {
        what: "identity, audit (SQLite)",
        ok: true,
        detail: "built in".into(),
    }];
    checks.extend(dataplane());
    checks.extend(hypervisor());
    for c in &checks {
        println!(
            "{:<4} {:<26} {}",
            if c.ok { "ok" } else { "no" },
            c.what,
            c.detail
        );
    }
}
