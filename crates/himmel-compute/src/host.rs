//! What the reconciler needs from this host's hypervisor, as a trait so
//! that the reconciler does not care which drivers the host has (and can
//! be tested without root). The methods block: call them from
//! `spawn_blocking`.

use std::path::PathBuf;
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
}
