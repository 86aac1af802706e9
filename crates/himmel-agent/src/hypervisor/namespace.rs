//! The namespace driver: an instance is a process tree whose root filesystem is its unpacked
//! initramfs, with `/init` as PID 1 of new PID, mount, UTS and IPC namespaces, inside the
//! instance's network namespace (it uses the plugged `ethN` directly) and its own cgroup
//! (memory and CPU limits, freezer for pause). Its stdout and stderr are the console log.
//!
//! Isolation: the instance runs as root with a reduced capability bounding set (no module
//! loading, raw I/O, device nodes, clock, reboot, ptrace, ...), but it keeps CAP_SYS_ADMIN to
//! mount its own /proc and /sys. It suits trusted workloads and tests; a hostile tenant belongs
//! in a VM.
//!
//! Start sequence: the spawned child joins the cgroup and network namespace, unshares the other
//! namespaces and sets the hostname, then forks PID 1 of the new PID namespace and exits (so the
//! instance is nobody's child here and outlives the region); the grandchild pivots into the
//! root filesystem and execs `/init`. Its host pid comes back through a pipe.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::cgroup::Cgroup;
use super::state::{Record, CONSOLE_LOG};
use super::{process, sys, Boot, Driver, InstanceSpec};
use crate::error::{Error, Result};
use crate::names::Names;

/// The environment `/init` starts with; `container` tells it that it is not in a VM.
const ENV: [(&str, &str); 4] = [
    ("PATH", "/bin:/sbin:/usr/bin:/usr/sbin"),
    ("HOME", "/"),
    ("TERM", "dumb"),
    ("container", "himmel"),
];

/// Capabilities an instance never gets (bounding set), by number (linux/capability.h).
const DROPPED_CAPABILITIES: [libc::c_ulong; 19] = [
    2,  // DAC_READ_SEARCH (open_by_handle_at escapes a chroot)
    9,  // LINUX_IMMUTABLE
    16, // SYS_MODULE
    17, // SYS_RAWIO
    19, // SYS_PTRACE
    20, // SYS_PACCT
    22, // SYS_BOOT
    24, // SYS_RESOURCE
    25, // SYS_TIME
    26, // SYS_TTY_CONFIG
    27, // MKNOD
    30, // AUDIT_CONTROL
    32, // MAC_OVERRIDE
    33, // MAC_ADMIN
    34, // SYSLOG
    35, // WAKE_ALARM
    36, // BLOCK_SUSPEND
    38, // PERFMON
    39, // BPF
];

/// Device nodes an instance gets in its /dev (a tmpfs): (path, major, minor).
const DEVICES: [(&std::ffi::CStr, u32, u32); 6] = [
    (c"/dev/null", 1, 3),
    (c"/dev/zero", 1, 5),
    (c"/dev/full", 1, 7),
    (c"/dev/random", 1, 8),
    (c"/dev/urandom", 1, 9),
    (c"/dev/tty", 5, 0),
];

pub(super) fn start(names: &Names, dir: &Path, netns: &str, spec: &InstanceSpec) -> Result<Record> {
    let Boot::RootFs { initrd } = &spec.boot else {
        return Err(Error::invalid(
            "the namespace driver boots a root filesystem (Boot::RootFs), not a kernel or disk",
        ));
    };
    check_hostname(&spec.hostname)?;
    let memory_bytes = spec
        .memory_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| Error::invalid("memory size out of range"))?;

    let cgroup = Cgroup::locate(names.prefix(), &spec.id);
    cgroup.create(memory_bytes, spec.vcpus)?;
    // Leftovers of an earlier run (e.g. a host crash mid-stop) must not share the new one's cgroup.
    cgroup.kill_all()?;

    // An initramfs lives in memory: every start begins from the image again.
    let root = dir.join("rootfs");
    if fs::symlink_metadata(&root).is_ok() {
        fs::remove_dir_all(&root)
            .map_err(|e| Error::io(format!("removing {}", root.display()), e))?;
    }
    fs::create_dir(&root).map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    super::rootfs::unpack(initrd, &root, memory_bytes)?;
    if fs::symlink_metadata(root.join("init")).is_err() {
        return Err(Error::invalid(format!("{} has no /init", initrd.display())));
    }
    make_dir(&root.join("dev"))?;

    let console_path = dir.join(CONSOLE_LOG);
    let console = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&console_path)
        .map_err(|e| Error::io(format!("opening {}", console_path.display()), e))?;
    let console_err = console
        .try_clone()
        .map_err(|e| Error::io("duplicating the console fd", e))?;
    let netns_file = sys::open_netns(netns)?;
    let procs: Vec<File> = cgroup
        .procs_files()
        .iter()
        .map(|p| {
            OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| Error::io(format!("opening {}", p.display()), e))
        })
        .collect::<Result<_>>()?;
    let (mut pid_read, pid_write) = sys::pipe()?;
    let plan = Plan {
        root: sys::path_cstring(&root)?,
        hostname: sys::cstring("hostname", &spec.hostname)?,
        netns_fd: netns_file.as_raw_fd(),
        cgroup_fds: procs.iter().map(|f| f.as_raw_fd()).collect(),
        pid_fd: pid_write.as_raw_fd(),
    };

    let mut command = Command::new("/init");
    command
        .env_clear()
        .envs(ENV)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(console_err);
    // SAFETY: the closure only makes async-signal-safe system calls on data prepared before the
    // fork (see Plan::enter).
    unsafe { command.pre_exec(move || plan.enter()) };
    let spawned = command.spawn();
    drop(pid_write);
    let mut intermediate = spawned.map_err(|e| Error::Command {
        command: format!("/init of instance {}", spec.id),
        detail: format!("cannot start: {e}"),
    })?;
    let _ = intermediate.wait();
    drop((netns_file, procs));

    let mut buf = [0u8; 4];
    pid_read
        .read_exact(&mut buf)
        .map_err(|e| Error::io("reading the instance's pid", e))?;
    let pid = u32::from_ne_bytes(buf);
    Record::for_process(Driver::Namespace, pid)
}

/// What the child does between fork and exec. Everything is allocated before the fork.
struct Plan {
    root: CString,
    hostname: CString,
    netns_fd: i32,
    cgroup_fds: Vec<i32>,
    pid_fd: i32,
}

impl Plan {
    /// Runs in the forked child: only async-signal-safe calls.
    fn enter(&self) -> std::io::Result<()> {
        // SAFETY: plain system calls on fds and NUL-terminated strings owned by `self`.
        unsafe {
            sys::check(libc::setsid().into())?;
            for fd in &self.cgroup_fds {
                // "0" moves the writing process.
                sys::check(libc::write(*fd, b"0".as_ptr().cast(), 1) as libc::c_long)?;
            }
            sys::enter_netns(self.netns_fd)?;
            sys::check(
                libc::unshare(
                    libc::CLONE_NEWNS
                        | libc::CLONE_NEWUTS
                        | libc::CLONE_NEWIPC
                        | libc::CLONE_NEWPID,
                )
                .into(),
            )?;
            sys::check(
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
                .into(),
            )?;
            let name = self.hostname.as_bytes();
            sys::check(libc::sethostname(name.as_ptr().cast(), name.len()).into())?;
            let pid = libc::fork();
            if pid < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if pid > 0 {
                // The intermediate: hand over PID 1's host pid and leave it to init.
                let bytes = (pid as u32).to_ne_bytes();
                libc::write(self.pid_fd, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0);
            }
            // PID 1 of the new namespace: make the root filesystem `/`.
            let root = self.root.as_ptr();
            sys::check(
                libc::mount(
                    root,
                    root,
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )
                .into(),
            )?;
            sys::check(libc::chdir(root).into())?;
            sys::check(libc::syscall(
                libc::SYS_pivot_root,
                c".".as_ptr(),
                c".".as_ptr(),
            ))?;
            sys::check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH).into())?;
            sys::check(libc::chdir(c"/".as_ptr()).into())?;
            // A private /dev with the few devices an instance gets (it cannot make its own: no
            // CAP_MKNOD); a tmpfs, so the state directory's mount options do not matter.
            sys::check(
                libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/dev".as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NOEXEC,
                    c"mode=755,size=64k".as_ptr().cast(),
                )
                .into(),
            )?;
            let umask = libc::umask(0);
            for (path, major, minor) in DEVICES {
                sys::check(
                    libc::mknod(
                        path.as_ptr(),
                        libc::S_IFCHR | 0o666,
                        libc::makedev(major, minor),
                    )
                    .into(),
                )?;
            }
            libc::umask(umask);
            for cap in DROPPED_CAPABILITIES {
                // EINVAL: a capability this kernel does not know; nothing to drop.
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                    && *libc::__errno_location() != libc::EINVAL
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// Sends SIGTERM to the instance's init and waits up to `graceful`, then kills the whole cgroup.
pub(super) fn stop(names: &Names, id: &str, record: &Record, graceful: Duration) -> Result<()> {
    let cgroup = Cgroup::locate(names.prefix(), id);
    // A frozen process cannot handle the signal.
    let _ = cgroup.freeze(false);
    if record.live_pid().is_some() && !graceful.is_zero() {
        process::signal(record.pid, libc::SIGTERM);
        process::wait_until(graceful, || record.live_pid().is_none());
    }
    if record.live_pid().is_some() {
        // SIGKILL to a PID namespace's init ends every process in it.
        process::signal(record.pid, libc::SIGKILL);
        process::wait_until(Duration::from_secs(5), || record.live_pid().is_none());
    }
    cgroup.kill_all()
}

pub(super) fn set_paused(names: &Names, id: &str, paused: bool) -> Result<()> {
    let cgroup = Cgroup::locate(names.prefix(), id);
    if !cgroup.can_freeze() {
        return Err(Error::invalid(
            "this host has no cgroup freezer: cannot pause",
        ));
    }
    cgroup.freeze(paused)
}

/// Packs the running instance's root filesystem into `out` (see [`super::pack`]), frozen so
/// that nothing in it changes meanwhile; a paused instance stays paused.
pub(super) fn snapshot(
    names: &Names,
    dir: &Path,
    id: &str,
    out: &Path,
    max_bytes: u64,
) -> Result<()> {
    let cgroup = Cgroup::locate(names.prefix(), id);
    if !cgroup.can_freeze() {
        return Err(Error::invalid(
            "this host has no cgroup freezer: cannot snapshot a running instance",
        ));
    }
    let was_frozen = cgroup.frozen();
    if !was_frozen {
        cgroup.freeze(true)?;
    }
    let packed = super::pack::pack(&dir.join("rootfs"), out, max_bytes);
    if !was_frozen {
        cgroup.freeze(false)?;
    }
    packed
}

pub(super) fn remove_cgroup(names: &Names, id: &str) -> Result<()> {
    Cgroup::locate(names.prefix(), id).remove()
}

fn check_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("hostname {name:?} is not valid")))
    }
}

/// Makes `dir` a real directory (replacing a file or symlink the image put there).
fn make_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(dir)
            .map_err(|e| Error::io(format!("replacing {}", dir.display()), e))?,
        Err(_) => {}
    }
    fs::create_dir(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}
