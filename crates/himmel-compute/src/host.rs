//! What the reconciler needs from this host's hypervisor, as a trait so
//! that the reconciler does not care which drivers the host has (and can
//! be tested without root). The methods block: call them from
//! `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which driver runs an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    Qemu,
    Namespace,
}

/// How an instance boots.
#[derive(Debug, Clone, PartialEq)]
pub enum BootPlan {
    /// Direct kernel boot (qemu).
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    /// A disk image (qemu); `format` is `qcow2` or `raw`.
    Disk { path: PathBuf, format: String },
    /// A cpio archive unpacked as the root filesystem (namespace).
    RootFs { initrd: PathBuf },
}

/// One instance as the host should run it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstancePlan {
    pub id: String,
    pub driver: DriverKind,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub boot: BootPlan,
    /// (port id, MAC) in NIC order.
    pub nics: Vec<(String, String)>,
    pub config_drive: Option<PathBuf>,
    pub hostname: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostStatus {
    pub running: bool,
}

pub trait Host: Send + Sync + 'static {
    /// Creates the instance's network namespace (idempotent).
    fn prepare(&self, id: &str) -> Result<(), String>;
    /// Starts the instance (a running one stays running).
    fn start(&self, plan: &InstancePlan) -> Result<HostStatus, String>;
    fn stop(&self, id: &str, graceful: Duration) -> Result<(), String>;
    fn reboot(&self, plan: &InstancePlan, hard: bool) -> Result<HostStatus, String>;
    fn pause(&self, id: &str) -> Result<(), String>;
    fn unpause(&self, id: &str) -> Result<(), String>;
    fn status(&self, id: &str) -> Result<HostStatus, String>;
    fn console_output(&self, id: &str, tail_lines: Option<usize>) -> Result<String, String>;
    /// Stops the instance and removes everything of it from the host.
    fn remove(&self, id: &str) -> Result<(), String>;
    /// Instances this host has state for.
    fn list(&self) -> Result<Vec<String>, String>;
    /// Writes a running namespace instance's root filesystem to `out` as an initramfs of at
    /// most `max_bytes` of files.
    fn snapshot_rootfs(
        &self,
        id: &str,
        out: &Path,
        max_bytes: u64,
    ) -> Result<RootfsSnapshot, String>;
}

/// What [`Host::snapshot_rootfs`] made of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsSnapshot {
    Packed,
    /// Nothing live to pack: the instance is stopped or is a VM.
    NotRunning,
    /// The instance's files cannot make an image (too large for its memory, ...): the reason,
    /// for the user.
    Refused(String),
}

/// This host's hypervisor drivers (qemu and namespace instances).
impl Host for himmel_agent::hypervisor::Hypervisor {
    fn prepare(&self, id: &str) -> Result<(), String> {
        himmel_agent::hypervisor::Hypervisor::prepare(self, id).map_err(|e| e.to_string())
    }

    fn start(&self, plan: &InstancePlan) -> Result<HostStatus, String> {
        let spec = spec(plan)?;
        himmel_agent::hypervisor::Hypervisor::start(self, &spec)
            .map(|s| HostStatus { running: s.running })
            .map_err(|e| e.to_string())
    }

    fn stop(&self, id: &str, graceful: Duration) -> Result<(), String> {
        himmel_agent::hypervisor::Hypervisor::stop(self, id, graceful).map_err(|e| e.to_string())
    }

    fn reboot(&self, plan: &InstancePlan, hard: bool) -> Result<HostStatus, String> {
        let spec = spec(plan)?;
        himmel_agent::hypervisor::Hypervisor::reboot(self, &spec, hard)
            .map(|s| HostStatus { running: s.running })
            .map_err(|e| e.to_string())
    }

    fn pause(&self, id: &str) -> Result<(), String> {
        himmel_agent::hypervisor::Hypervisor::pause(self, id).map_err(|e| e.to_string())
    }

    fn unpause(&self, id: &str) -> Result<(), String> {
        himmel_agent::hypervisor::Hypervisor::unpause(self, id).map_err(|e| e.to_string())
    }

    fn status(&self, id: &str) -> Result<HostStatus, String> {
        himmel_agent::hypervisor::Hypervisor::status(self, id)
            .map(|s| HostStatus { running: s.running })
            .map_err(|e| e.to_string())
    }

    fn console_output(&self, id: &str, tail_lines: Option<usize>) -> Result<String, String> {
        himmel_agent::hypervisor::Hypervisor::console_output(self, id, tail_lines)
            .map_err(|e| e.to_string())
    }

    fn remove(&self, id: &str) -> Result<(), String> {
        himmel_agent::hypervisor::Hypervisor::remove(self, id).map_err(|e| e.to_string())
    }

    fn list(&self) -> Result<Vec<String>, String> {
        himmel_agent::hypervisor::Hypervisor::list(self).map_err(|e| e.to_string())
    }

    fn snapshot_rootfs(
        &self,
        id: &str,
        out: &Path,
        max_bytes: u64,
    ) -> Result<RootfsSnapshot, String> {
        use himmel_agent::Error;
        match himmel_agent::hypervisor::Hypervisor::snapshot_rootfs(self, id, out, max_bytes) {
            Ok(true) => Ok(RootfsSnapshot::Packed),
            Ok(false) => Ok(RootfsSnapshot::NotRunning),
            Err(Error::Invalid(reason)) => Ok(RootfsSnapshot::Refused(reason)),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn spec(plan: &InstancePlan) -> Result<himmel_agent::hypervisor::InstanceSpec, String> {
    use himmel_agent::hypervisor::{Boot, DiskFormat, Driver, InstanceSpec, Nic};
    let boot = match &plan.boot {
        BootPlan::Kernel {
            kernel,
            initrd,
            cmdline,
        } => Boot::Kernel {
            kernel: kernel.clone(),
            initrd: initrd.clone(),
            cmdline: cmdline.clone(),
        },
        BootPlan::Disk { path, format } => Boot::Disk {
            path: path.clone(),
            format: match format.as_str() {
                "qcow2" => DiskFormat::Qcow2,
                "raw" => DiskFormat::Raw,
                other => return Err(format!("unsupported disk format {other}")),
            },
        },
        BootPlan::RootFs { initrd } => Boot::RootFs {
            initrd: initrd.clone(),
        },
    };
    let nics = plan
        .nics
        .iter()
        .map(|(port_id, mac)| {
            Ok(Nic {
                port_id: port_id.clone(),
                mac: mac
                    .parse()
                    .map_err(|_| format!("port {port_id} has an invalid MAC {mac}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(InstanceSpec {
        id: plan.id.clone(),
        driver: match plan.driver {
            DriverKind::Qemu => Driver::Qemu,
            DriverKind::Namespace => Driver::Namespace,
        },
        vcpus: plan.vcpus,
        memory_mib: plan.memory_mib,
        boot,
        nics,
        config_drive: plan.config_drive.clone(),
        hostname: plan.hostname.clone(),
    })
}
