//! Hypervisor drivers: instances as QEMU virtual machines or as namespace "containers".
//!
//! Every instance has a network namespace ([`Names::instance_netns`]) that [`Hypervisor::prepare`]
//! creates and [`Hypervisor::remove`] deletes; the network reconciler plugs the instance's ports
//! into it as `eth0`, `eth1`, ... (port order). The drivers differ in what runs there:
//! * [`Driver::Namespace`]: the instance's `/init` (from an unpacked initramfs) as PID 1 of new
//!   mount, PID, UTS and IPC namespaces in its own cgroup, using `ethN` directly (see [`namespace`]);
//! * [`Driver::Qemu`]: `qemu-system-x86_64` with a tap `tapN` per `ethN`, joined by tc mirred
//!   redirects so the guest's MAC is the port's and the host-side filtering still applies (see
//!   [`qemu`]).
//!
//! Instances are not children of this process: they outlive a region restart, and their pid and
//! start time are kept in the state directory (`<state_dir>/<id>/`) so that a new
//! [`Hypervisor`] finds them again and never starts one twice. The methods block (they run
//! commands and wait for processes): call them from async code with `spawn_blocking`.

mod cgroup;
mod doctor;
mod kvm;
pub mod namespace;
mod pack;
mod process;
pub mod qemu;
mod qmp;
mod rootfs;
mod state;
mod sys;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cmd;
use crate::error::{Error, Result};
use crate::model::MacAddr;
use crate::names::{check_id, Names};

pub use doctor::host_checks;

/// How an instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Qemu,
    Namespace,
}

/// Everything needed to start an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// The server id (a UUID; checked with [`check_id`]).
    pub id: String,
    pub driver: Driver,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub boot: Boot,
    /// In port order: `nics[i]` is `ethI` in the instance's namespace.
    pub nics: Vec<Nic>,
    /// A config drive image, attached to a VM as a second (read-only) disk.
    pub config_drive: Option<PathBuf>,
    pub hostname: String,
}

/// What an instance boots.
#[derive(Debug, Clone, PartialEq)]
pub enum Boot {
    /// QEMU: direct kernel boot.
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    /// QEMU: boot from a disk image.
    Disk { path: PathBuf, format: DiskFormat },
    /// Namespace: this initramfs (gzip-compressed or plain newc cpio) unpacked is `/`, and its
    /// `/init` runs as PID 1.
    RootFs { initrd: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Qcow2,
    Raw,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

/// One network interface of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub port_id: String,
    pub mac: MacAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceStatus {
    pub running: bool,
    /// The instance's main process on the host (QEMU, or the namespace's PID 1).
    pub pid: Option<u32>,
}

impl InstanceStatus {
    fn stopped() -> InstanceStatus {
        InstanceStatus {
            running: false,
            pid: None,
        }
    }
}

/// How long a soft reboot waits for the guest to shut down before it is stopped hard.
const SOFT_REBOOT_GRACE: Duration = Duration::from_secs(30);

/// The instances of one host (one dataplane prefix). Operations on one instance are serialized
/// (two concurrent starts never make two instances); different instances proceed in parallel.
#[derive(Debug)]
pub struct Hypervisor {
    state_dir: PathBuf,
    names: Names,
    /// Whether QEMU can use KVM, probed on first need: the probe runs a guest for up to a few
    /// seconds, which a region's start must not wait for.
    kvm: OnceLock<bool>,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Hypervisor {
    /// A hypervisor keeping its instances' state under `state_dir`. Whether QEMU can use KVM is
    /// probed once, when first needed (by running a guest briefly); without it VMs use TCG.
    pub fn new(prefix: &str, state_dir: PathBuf) -> Result<Hypervisor> {
        let names = Names::new(prefix)?;
        fs::create_dir_all(&state_dir)
            .map_err(|e| Error::io(format!("creating {}", state_dir.display()), e))?;
        Ok(Hypervisor {
            state_dir,
            names,
            kvm: OnceLock::new(),
            locks: Mutex::default(),
        })
    }

    /// VMs use TCG even where KVM works (benchmarks compare the two).
    pub fn without_kvm(self) -> Hypervisor {
        let _ = self.kvm.set(false);
        self
    }

    /// Whether VMs run with KVM (else TCG).
    pub fn kvm(&self) -> bool {
        *self.kvm.get_or_init(|| kvm::available(&self.state_dir))
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The network namespace of an instance (where its ports are plugged).
    pub fn netns(&self, id: &str) -> String {
        self.names.instance_netns(id)
    }

    /// The lock serializing operations on instance `id`.
    fn lock(&self, id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(id.to_ascii_lowercase()).or_default().clone()
    }

    fn instance_dir(&self, id: &str) -> PathBuf {
        self.state_dir.join(id.to_ascii_lowercase())
    }

    /// Creates the instance's network namespace (idempotent), so ports can be plugged before the
    /// instance starts.
    pub fn prepare(&self, id: &str) -> Result<()> {
        check_id("instance", id)?;
        let ns = self.netns(id);
        if !sys::netns_path(&ns).exists() {
            if let Err(e) = cmd::ip(None, &["netns", "add", &ns]) {
                // Another caller may have won the race.
                if !sys::netns_path(&ns).exists() {
                    return Err(e);
                }
            }
        }
        cmd::ip(Some(&ns), &["link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Starts the instance; when it is already running, it stays as it is (a QEMU instance has
    /// its tap wiring checked again, since re-plugged ports lose their tc filters).
    pub fn start(&self, spec: &InstanceSpec) -> Result<InstanceStatus> {
        check_id("instance", &spec.id)?;
        let lock = self.lock(&spec.id);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.start_locked(spec)
    }

    fn start_locked(&self, spec: &InstanceSpec) -> Result<InstanceStatus> {
        if spec.vcpus == 0 || spec.memory_mib == 0 {
            return Err(Error::invalid(
                "an instance needs at least one vCPU and some memory",
            ));
        }
        self.prepare(&spec.id)?;
        let dir = self.instance_dir(&spec.id);
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let ns = self.netns(&spec.id);
        if let Some(record) = state::Record::load(&dir)? {
            if let Some(pid) = record.live_pid() {
                if record.driver == Driver::Qemu {
                    qemu::wire_nics(&ns, spec.nics.len())?;
                }
                return Ok(InstanceStatus {
                    running: true,
                    pid: Some(pid),
                });
            }
        }
        let record = match spec.driver {
            Driver::Namespace => namespace::start(&self.names, &dir, &ns, spec)?,
            Driver::Qemu => qemu::start(&dir, &ns, spec, self.kvm())?,
        };
        record.save(&dir)?;
        Ok(InstanceStatus {
            running: true,
            pid: Some(record.pid),
        })
    }

    /// Stops the instance: asks it to shut down (ACPI power button for a VM, SIGTERM to a
    /// namespace's init), waits up to `graceful`, then kills it. Stopping a stopped instance is
    /// fine.
    pub fn stop(&self, id: &str, graceful: Duration) -> Result<()> {
        check_id("instance", id)?;
        let lock = self.lock(id);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.stop_locked(id, graceful)
    }

    fn stop_locked(&self, id: &str, graceful: Duration) -> Result<()> {
        let dir = self.instance_dir(id);
        let Some(record) = state::Record::load(&dir)? else {
            return Ok(());
        };
        match record.driver {
            Driver::Namespace => namespace::stop(&self.names, id, &record, graceful),
            Driver::Qemu => qemu::stop(&dir, &record, graceful),
        }
    }

    /// Reboots: `hard` resets at once (a VM is reset in place, a namespace instance restarted);
    /// soft shuts the instance down gracefully first. A stopped instance is started.
    pub fn reboot(&self, spec: &InstanceSpec, hard: bool) -> Result<InstanceStatus> {
        check_id("instance", &spec.id)?;
        let lock = self.lock(&spec.id);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = self.instance_dir(&spec.id);
        let record = state::Record::load(&dir)?;
        let live = record
            .as_ref()
            .and_then(|r| r.live_pid().map(|pid| (r, pid)));
        match live {
            Some((record, pid)) if hard && record.driver == Driver::Qemu => {
                qemu::reset(&dir)?;
                Ok(InstanceStatus {
                    running: true,
                    pid: Some(pid),
                })
            }
            Some(_) => {
                let grace = if hard {
                    Duration::ZERO
                } else {
                    SOFT_REBOOT_GRACE
                };
                self.stop_locked(&spec.id, grace)?;
                self.start_locked(spec)
            }
            None => self.start_locked(spec),
        }
    }

    /// Freezes the instance (QMP `stop`, or the cgroup freezer).
    pub fn pause(&self, id: &str) -> Result<()> {
        self.set_paused(id, true)
    }

    pub fn unpause(&self, id: &str) -> Result<()> {
        self.set_paused(id, false)
    }

    fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        check_id("instance", id)?;
        let lock = self.lock(id);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = self.instance_dir(id);
        let record = state::Record::load(&dir)?
            .filter(|r| r.live_pid().is_some())
            .ok_or_else(|| Error::invalid(format!("instance {id} is not running")))?;
        match record.driver {
            Driver::Namespace => namespace::set_paused(&self.names, id, paused),
            Driver::Qemu => qemu::set_paused(&dir, paused),
        }
    }

    /// Writes a running (or paused) namespace instance's root filesystem to `out` as a gzip'd
    /// newc archive with at most `max_bytes` of file data, which boots as the instance's image.
    /// `Ok(false)` when there is nothing live to pack: the instance is stopped (its next start
    /// begins from its image again) or is a VM (whose disk is a file of its own).
    pub fn snapshot_rootfs(&self, id: &str, out: &Path, max_bytes: u64) -> Result<bool> {
        check_id("instance", id)?;
        let lock = self.lock(id);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = self.instance_dir(id);
        match state::Record::load(&dir)?.filter(|r| r.live_pid().is_some()) {
            Some(record) if record.driver == Driver::Namespace => {
                namespace::snapshot(&self.names, &dir, id, out, max_bytes)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub fn status(&self, id: &str) -> Result<InstanceStatus> {
        check_id("instance", id)?;
        let record = state::Record::load(&self.instance_dir(id))?;
        Ok(match record.and_then(|r| r.live_pid()) {
            Some(pid) => InstanceStatus {
                running: true,
                pid: Some(pid),
            },
            None => InstanceStatus::stopped(),
        })
    }

    /// The instance's console (a VM's serial port, a namespace init's stdout and stderr), or
    /// its last `tail_lines` lines. Empty when it never ran.
    pub fn console_output(&self, id: &str, tail_lines: Option<usize>) -> Result<String> {
        check_id("instance", id)?;
        let path = self.instance_dir(id).join(state::CONSOLE_LOG);
        let text = match read_tail(&path, CONSOLE_MAX_BYTES) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(match tail_lines {
            Some(n) => tail(&text, n).to_string(),
            None => text,
        })
    }

    /// Stops the instance and deletes everything it had: processes, cgroup, network namespace
    /// (with its taps and the plugged ports' ends), state directory.
    pub fn remove(&self, id: &str) -> Result<()> {
        check_id("instance", id)?;
        let lock = self.lock(id);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.stop_locked(id, Duration::ZERO)?;
        namespace::remove_cgroup(&self.names, id)?;
        let ns = self.netns(id);
        if sys::netns_path(&ns).exists() {
            cmd::ip(None, &["netns", "del", &ns])?;
        }
        let dir = self.instance_dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", dir.display()), e)),
        }
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id.to_ascii_lowercase());
        Ok(())
    }

    /// The instances this hypervisor has state for (running or not), for orphan cleanup.
    pub fn list(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.state_dir)
            .map_err(|e| Error::io(format!("listing {}", self.state_dir.display()), e))?;
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| check_id("instance", name).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// The most of a console log that is ever read (a guest can write without end).
const CONSOLE_MAX_BYTES: u64 = 1 << 20;

/// The last `max` bytes of a file.
fn read_tail(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The last `n` pieces of `text` split at newlines, as Nova counts them: a log that ends with
/// a newline has an empty last piece, so `n = 3` gives two lines and that newline.
fn tail(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    match text.rmatch_indices('\n').nth(n - 1) {
        Some((at, _)) => &text[at + 1..],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn only_the_end_of_a_long_console_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(super::read_tail(&path, 4).unwrap(), b"6789");
        assert_eq!(super::read_tail(&path, 100).unwrap(), b"0123456789");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 3), "b\nc\n");
        assert_eq!(tail("a\nb\nc\n", 3).split('\n').count(), 3, "Nova's count");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail("a\nb\n", 0), "");
    }
}
