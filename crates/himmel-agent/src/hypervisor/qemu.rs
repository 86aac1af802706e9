//! The QEMU driver: `qemu-system-x86_64 -daemonize` inside the instance's network namespace,
//! KVM when the probe passed (else TCG), serial console appended to the console log, QMP on a
//! unix socket in the state directory for the lifecycle.
//!
//! Networking: QEMU creates `tapN` for `nics[N]` (virtio-net with the port's MAC); a tc mirred
//! redirect on each side joins it to the plugged `ethN`, so frames go between the guest and the
//! port unchanged (no bridge; the host-side anti-spoofing still sees the guest's own frames).

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::state::{Record, CONSOLE_LOG};
use super::{process, qmp, sys, Boot, Driver, InstanceSpec};
use crate::cmd;
use crate::error::{Error, Result};

pub const QEMU: &str = "qemu-system-x86_64";
const QMP_SOCKET: &str = "qmp.sock";
const PIDFILE: &str = "qemu.pid";
/// QEMU's own messages (start-up errors).
const QEMU_LOG: &str = "qemu.log";
/// How long `start` waits for the network reconciler to plug a port as `ethN`.
const PLUG_WAIT: Duration = Duration::from_secs(15);
/// After QMP `quit`, how long before SIGKILL.
const QUIT_WAIT: Duration = Duration::from_secs(3);

pub(super) fn start(dir: &Path, netns: &str, spec: &InstanceSpec, kvm: bool) -> Result<Record> {
    let args = command_line(dir, spec, kvm)?;
    for stale in [PIDFILE, QMP_SOCKET] {
        let _ = fs::remove_file(dir.join(stale));
    }
    let log_path = dir.join(QEMU_LOG);
    let log = File::create(&log_path)
        .map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
    let netns_file = sys::open_netns(netns)?;
    let netns_fd = netns_file.as_raw_fd();
    let mut command = Command::new(QEMU);
    command
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: setns is async-signal-safe and the fd stays open until spawn returns.
    unsafe { command.pre_exec(move || sys::enter_netns(netns_fd)) };
    let status = command.status().map_err(|e| Error::Command {
        command: QEMU.into(),
        detail: format!("cannot start: {e}"),
    })?;
    drop(netns_file);
    if !status.success() {
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        return Err(Error::Command {
            command: format!("{QEMU} for instance {}", spec.id),
            detail: format!("{status}: {}", log.trim()),
        });
    }
    let pid_path = dir.join(PIDFILE);
    let pid: u32 = fs::read_to_string(&pid_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::invalid(format!("{QEMU} wrote no pid to {}", pid_path.display())))?;
    let record = Record::for_process(Driver::Qemu, pid)?;
    if let Err(e) = wire_nics(netns, spec.nics.len()) {
        let _ = quit(dir, &record);
        return Err(e);
    }
    Ok(record)
}

/// The QEMU command line (without the program).
pub fn command_line(dir: &Path, spec: &InstanceSpec, kvm: bool) -> Result<Vec<String>> {
    let path = |p: &Path| -> Result<String> {
        p.to_str()
            .map(|s| s.replace(',', ",,"))
            .ok_or_else(|| Error::invalid(format!("path {} is not UTF-8", p.display())))
    };
    let mut args: Vec<String> = vec![
        "-name".into(),
        format!("guest={}", spec.id),
        "-machine".into(),
        format!("pc,accel={}", if kvm { "kvm" } else { "tcg" }),
        "-cpu".into(),
        if kvm { "host" } else { "max" }.into(),
        "-smp".into(),
        spec.vcpus.to_string(),
        "-m".into(),
        spec.memory_mib.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-chardev".into(),
        format!(
            "file,id=console,path={},append=on",
            path(&dir.join(CONSOLE_LOG))?
        ),
        "-serial".into(),
        "chardev:console".into(),
        "-qmp".into(),
        // Relative to QEMU's working directory (the instance's): a socket's path must stay
        // under 108 bytes, which a deep state directory would not.
        format!("unix:{QMP_SOCKET},server=on,wait=off"),
        "-pidfile".into(),
        path(&dir.join(PIDFILE))?,
        "-daemonize".into(),
        "-device".into(),
        "virtio-rng-pci".into(),
    ];
    for (i, nic) in spec.nics.iter().enumerate() {
        args.push("-netdev".into());
        args.push(format!(
            "tap,id=net{i},ifname=tap{i},script=no,downscript=no"
        ));
        args.push("-device".into());
        args.push(format!("virtio-net-pci,netdev=net{i},mac={}", nic.mac));
    }
    match &spec.boot {
        Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            args.extend(["-kernel".into(), path(kernel)?]);
            if let Some(initrd) = initrd {
                args.extend(["-initrd".into(), path(initrd)?]);
            }
            args.extend(["-append".into(), cmdline.clone()]);
        }
        Boot::Disk { path: disk, format } => {
            args.push("-drive".into());
            args.push(format!(
                "file={},if=virtio,format={}",
                path(disk)?,
                format.as_str()
            ));
        }
        Boot::RootFs { .. } => {
            return Err(Error::invalid(
                "the qemu driver boots a kernel or a disk, not a root filesystem (Boot::RootFs)",
            ))
        }
    }
    if let Some(drive) = &spec.config_drive {
        args.push("-drive".into());
        args.push(format!(
            "file={},if=virtio,format=raw,readonly=on",
            path(drive)?
        ));
    }
    Ok(args)
}

/// Joins `tapN` and `ethN` (N < count) in the namespace: both up, no IPv6 addresses of their
/// own (the guest owns the port's addresses), and a mirred redirect each way. Idempotent.
pub(super) fn wire_nics(netns: &str, count: usize) -> Result<()> {
    for i in 0..count {
        let eth = format!("eth{i}");
        let tap = format!("tap{i}");
        let plugged = process::wait_until(PLUG_WAIT, || {
            cmd::ip(Some(netns), &["link", "show", "dev", &eth]).is_ok()
        });
        if !plugged {
            return Err(Error::invalid(format!(
                "port {eth} is not plugged into {netns} after {}s",
                PLUG_WAIT.as_secs()
            )));
        }
        let mtu = link_mtu(netns, &eth)?;
        for dev in [&eth, &tap] {
            cmd::ip(
                Some(netns),
                &["link", "set", "dev", dev, "addrgenmode", "none"],
            )?;
            cmd::ip(Some(netns), &["-6", "addr", "flush", "dev", dev])?;
            cmd::ip(Some(netns), &["link", "set", "dev", dev, "mtu", &mtu, "up"])?;
        }
        for (from, to) in [(&eth, &tap), (&tap, &eth)] {
            redirect(netns, from, to)?;
        }
    }
    Ok(())
}

/// Every frame arriving on `from` leaves through `to` (tc ingress, mirred redirect). u32 with
/// an empty match is in every kernel (matchall is not); it has no "replace", so an existing
/// redirect is kept and anything else at our priority is deleted first.
fn redirect(netns: &str, from: &str, to: &str) -> Result<()> {
    tc(netns, &["qdisc", "replace", "dev", from, "ingress"])?;
    let current = tc(netns, &["filter", "show", "dev", from, "ingress"])?;
    if current.contains(&format!("Redirect to device {to})")) {
        return Ok(());
    }
    let _ = tc(
        netns,
        &["filter", "del", "dev", from, "parent", "ffff:", "pref", "1"],
    );
    tc(
        netns,
        &[
            "filter", "add", "dev", from, "parent", "ffff:", "pref", "1", "protocol", "all", "u32",
            "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
        ],
    )?;
    Ok(())
}

fn tc(netns: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["-n", netns];
    full.extend_from_slice(args);
    cmd::run("tc", &full)
}

fn link_mtu(netns: &str, dev: &str) -> Result<String> {
    let out = cmd::ip(Some(netns), &["-j", "link", "show", "dev", dev])?;
    let links: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| Error::invalid(format!("ip -j link: {e}")))?;
    links[0]["mtu"]
        .as_u64()
        .map(|m| m.to_string())
        .ok_or_else(|| Error::invalid(format!("no MTU for {dev}")))
}

/// Powers down (ACPI) and waits up to `graceful`, then quits QEMU, then kills it.
pub(super) fn stop(dir: &Path, record: &Record, graceful: Duration) -> Result<()> {
    if record.live_pid().is_some() && !graceful.is_zero() {
        // A paused guest cannot react to the power button.
        let _ = qmp::execute(&dir.join(QMP_SOCKET), "cont");
        if qmp::execute(&dir.join(QMP_SOCKET), "system_powerdown").is_ok() {
            process::wait_until(graceful, || record.live_pid().is_none());
        }
    }
    quit(dir, record)
}

fn quit(dir: &Path, record: &Record) -> Result<()> {
    if record.live_pid().is_some() {
        let _ = qmp::execute(&dir.join(QMP_SOCKET), "quit");
        process::wait_until(QUIT_WAIT, || record.live_pid().is_none());
    }
    if record.live_pid().is_some() {
        process::signal(record.pid, libc::SIGKILL);
        if !process::wait_until(Duration::from_secs(5), || record.live_pid().is_none()) {
            return Err(Error::invalid(format!(
                "{QEMU} (pid {}) survives SIGKILL",
                record.pid
            )));
        }
    }
    for stale in [PIDFILE, QMP_SOCKET] {
        let _ = fs::remove_file(dir.join(stale));
    }
    Ok(())
}

/// Resets the VM in place (hard reboot).
pub(super) fn reset(dir: &Path) -> Result<()> {
    qmp::execute(&dir.join(QMP_SOCKET), "system_reset").map(|_| ())
}

pub(super) fn set_paused(dir: &Path, paused: bool) -> Result<()> {
    qmp::execute(&dir.join(QMP_SOCKET), if paused { "stop" } else { "cont" }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{DiskFormat, Nic};
    use std::path::PathBuf;

    fn spec(boot: Boot) -> InstanceSpec {
        InstanceSpec {
            id: "3f2a1c9d-0e4b-4c8a-9f1e-2d3c4b5a6f70".into(),
            driver: Driver::Qemu,
            vcpus: 2,
            memory_mib: 256,
            boot,
            nics: vec![Nic {
                port_id: "p".into(),
                mac: "fa:16:3e:00:00:01".parse().unwrap(),
            }],
            config_drive: Some(PathBuf::from("/s/config,drive")),
            hostname: "vm".into(),
        }
    }

    #[test]
    fn disk_boot_with_config_drive_and_nic() {
        let args = command_line(
            Path::new("/state/x"),
            &spec(Boot::Disk {
                path: PathBuf::from("/images/disk.qcow2"),
                format: DiskFormat::Qcow2,
            }),
            true,
        )
        .unwrap();
        let joined = args.join(" ");
        assert!(joined.contains("-machine pc,accel=kvm"));
        assert!(joined.contains("-smp 2 -m 256"));
        assert!(joined.contains("file=/images/disk.qcow2,if=virtio,format=qcow2"));
        assert!(
            joined.contains("file=/s/config,,drive,if=virtio,format=raw,readonly=on"),
            "commas escaped"
        );
        assert!(joined.contains("tap,id=net0,ifname=tap0"));
        assert!(joined.contains("virtio-net-pci,netdev=net0,mac=fa:16:3e:00:00:01"));
        assert!(joined.contains("path=/state/x/console.log,append=on"));
        assert!(joined.contains("-daemonize"));
    }

    #[test]
    fn kernel_boot_passes_the_command_line_whole() {
        let args = command_line(
            Path::new("/state/x"),
            &spec(Boot::Kernel {
                kernel: PathBuf::from("/k"),
                initrd: Some(PathBuf::from("/i")),
                cmdline: "console=ttyS0 quiet".into(),
            }),
            false,
        )
        .unwrap();
        let at = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[at + 1], "console=ttyS0 quiet");
        assert!(args.join(" ").contains("accel=tcg"));
        assert!(args.join(" ").contains("-kernel /k -initrd /i"));
    }

    #[test]
    fn a_root_filesystem_is_not_for_qemu() {
        assert!(command_line(
            Path::new("/s"),
            &spec(Boot::RootFs {
                initrd: "/i".into()
            }),
            false
        )
        .is_err());
    }
}
