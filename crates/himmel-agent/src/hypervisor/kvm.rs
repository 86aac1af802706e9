//! Whether QEMU can use KVM here, found by running a guest: a tiny multiboot payload that
//! switches to 64-bit long mode (as every Linux guest does early) and then exits QEMU through
//! the isa-debug-exit device. /dev/kvm existing is not enough: some nested setups accept a
//! KVM guest but never run 64-bit code, so a VM would hang at boot.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::process;

/// The payload, assembled (GNU as, 32-bit, linked flat at 0x100000) from:
/// multiboot header with load addresses (flags bit 16); identity-map the first 2 MiB with a
/// PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000 (one 2 MiB page); CR4.PAE, EFER.LME, CR0.PG|PE;
/// load a GDT with a 64-bit code segment; far jump to it; `out 0xf4, 0x10`; hlt loop.
const LONG_MODE_PROBE: [u8; 166] = [
    0x02, 0xb0, 0xad, 0x1b, 0x00, 0x00, 0x01, 0x00, 0xfe, 0x4f, 0x51, 0xe4, 0x00, 0x00, 0x10, 0x00,
    0x00, 0x00, 0x10, 0x00, 0xa6, 0x00, 0x10, 0x00, 0xa6, 0x00, 0x10, 0x00, 0x20, 0x00, 0x10, 0x00,
    0xbf, 0x00, 0x10, 0x00, 0x00, 0x31, 0xc0, 0xb9, 0x00, 0x0c, 0x00, 0x00, 0xf3, 0xab, 0xc7, 0x05,
    0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, 0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30,
    0x00, 0x00, 0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, 0xb8, 0x00, 0x10, 0x00,
    0x00, 0x0f, 0x22, 0xd8, 0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb9, 0x80, 0x00,
    0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30, 0x0f, 0x20, 0xc0, 0x0d, 0x01,
    0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0x0f, 0x01, 0x15, 0xa0, 0x00, 0x10, 0x00, 0xea, 0x84, 0x00,
    0x10, 0x00, 0x08, 0x00, 0x66, 0xba, 0xf4, 0x00, 0xb0, 0x10, 0xee, 0xf4, 0xeb, 0xfd, 0x66, 0x90,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9a, 0x20, 0x00,
    0x0f, 0x00, 0x90, 0x00, 0x10, 0x00,
];

/// QEMU's exit status for `out 0xf4, 0x10` with isa-debug-exit: (0x10 << 1) | 1.
const PROBE_EXIT: i32 = 33;
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

static KVM: OnceLock<bool> = OnceLock::new();

/// Whether KVM runs 64-bit guests here; probed once per process (`scratch` holds the payload).
pub fn available(scratch: &Path) -> bool {
    *KVM.get_or_init(|| probe(scratch).is_ok())
}

/// Runs the probe; Err says why KVM cannot be used.
pub fn probe(scratch: &Path) -> Result<(), String> {
    if !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".into());
    }
    let payload = scratch.join(format!(".kvm-probe-{}.bin", std::process::id()));
    fs::write(&payload, LONG_MODE_PROBE)
        .map_err(|e| format!("writing {}: {e}", payload.display()))?;
    let result = run(&payload);
    let _ = fs::remove_file(&payload);
    result
}

fn run(payload: &Path) -> Result<(), String> {
    let mut child = Command::new(super::qemu::QEMU)
        .args([
            "-accel",
            "kvm",
            "-machine",
            "pc",
            // The CPU model guests get: some hosts start a default-model KVM guest but refuse
            // `host` (an MSR it cannot set), and that must count as no KVM.
            "-cpu",
            "host",
            "-m",
            "16",
            "-nodefaults",
            "-no-user-config",
        ])
        .args([
            "-display",
            "none",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
            "-kernel",
        ])
        .arg(payload)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", super::qemu::QEMU))?;
    let mut status = None;
    process::wait_until(PROBE_TIMEOUT, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    match status {
        Some(s) if s.code() == Some(PROBE_EXIT) => Ok(()),
        Some(s) => Err(format!("a KVM guest failed to start ({s})")),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "a KVM guest did not reach 64-bit mode within {}s (nested virtualization without long mode?)",
                PROBE_TIMEOUT.as_secs()
            ))
        }
    }
}
