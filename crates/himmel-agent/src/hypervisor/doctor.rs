//! What instances this host can run, for `himmel doctor`.

use std::path::Path;

use super::{cgroup, kvm, qemu};
use crate::host::{find_program, Check};

fn is_root() -> bool {
    // SAFETY: geteuid has no side effects.
    unsafe { libc::geteuid() == 0 }
}

fn check(what: &'static str, ok: bool, detail: String) -> Check {
    Check {
        what,
        ok,
        required: true,
        detail,
    }
}

/// QEMU, the KVM probe, and whether each driver can run here (the last two are the verdicts).
pub fn host_checks() -> Vec<Check> {
    let root = is_root();
    let ip_and_tc = find_program("ip").is_some() && find_program("tc").is_some();
    let qemu_path = find_program(qemu::QEMU);
    let kvm = match &qemu_path {
        None => Err("no QEMU".to_string()),
        Some(_) => kvm::probe(&std::env::temp_dir()),
    };
    let cgroups = cgroup::host_support();

    let mut out = vec![
        check(
            "QEMU",
            qemu_path.is_some(),
            qemu_path.clone().unwrap_or_else(|| {
                format!(
                    "`{}` not found (Debian package qemu-system-x86)",
                    qemu::QEMU
                )
            }),
        ),
        check(
            "KVM",
            kvm.is_ok(),
            match &kvm {
                Ok(()) => "a probe guest ran in 64-bit mode".into(),
                Err(why) => format!("{why}: VMs use TCG (much slower)"),
            },
        ),
    ];
    let vm_blockers: Vec<&str> = [
        (!root, "not root"),
        (qemu_path.is_none(), "no QEMU"),
        (!ip_and_tc, "no `ip`/`tc` (iproute2)"),
        (!Path::new("/dev/net/tun").exists(), "no /dev/net/tun"),
    ]
    .into_iter()
    .filter_map(|(blocked, why)| blocked.then_some(why))
    .collect();
    out.push(check(
        "qemu instances",
        vm_blockers.is_empty(),
        if vm_blockers.is_empty() {
            format!("can run ({})", if kvm.is_ok() { "KVM" } else { "TCG" })
        } else {
            format!("cannot run: {}", vm_blockers.join(", "))
        },
    ));
    let ns_blockers: Vec<String> = [
        (!root).then(|| "not root".to_string()),
        (find_program("ip").is_none()).then(|| "no `ip` (iproute2)".to_string()),
        cgroups.as_ref().err().cloned(),
    ]
    .into_iter()
    .flatten()
    .collect();
    out.push(check(
        "namespace instances",
        ns_blockers.is_empty(),
        match (&cgroups, ns_blockers.is_empty()) {
            (Ok(how), true) => format!("can run ({how})"),
            _ => format!("cannot run: {}", ns_blockers.join(", ")),
        },
    ));
    out
}
