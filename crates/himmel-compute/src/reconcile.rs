//! The compute reconciler: drives this host's instances to what the store
//! says, and reports back. Every pass reads the servers bound to this host
//! and, for each, does what its state asks (build, power changes, reboot,
//! rebuild, resize, delete); then it removes instances the hypervisor has
//! but nobody wants, and ports compute made for servers that are gone. A
//! crash at any point is recovered by the next pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use himmel_core::Error;
use himmel_network::instance_ports;

use crate::host::{BootPlan, DriverKind, Host, HostStatus, InstancePlan};
use crate::images::BootImage;
use crate::model::{Power, Server, VmState};
use crate::servers::{self, fault};
use crate::store::{self, db_err};
use crate::ComputeService;

/// Nova's power states.
const RUNNING: i64 = 1;
const PAUSED: i64 = 3;
const SHUTDOWN: i64 = 4;

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Wait for the network reconciler to mark a server's ports ACTIVE
    /// before starting it (off when the network dataplane is off).
    pub wait_for_ports: bool,
    pub port_timeout: Duration,
    pub interval: Duration,
    /// Time a guest gets to shut down before it is killed.
    pub graceful_stop: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            wait_for_ports: true,
            port_timeout: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            graceful_stop: Duration::from_secs(10),
        }
    }
}

/// Runs the reconciler until the process ends.
pub fn spawn(s: ComputeService, config: ReconcileConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let changes = s.changes();
        loop {
            if let Err(e) = pass(&s, &config).await {
                tracing::warn!(error = %e, "compute reconcile pass failed");
            }
            tokio::select! {
                _ = changes.notified() => {}
                _ = tokio::time::sleep(config.interval) => {}
            }
        }
    })
}

/// Where one instance's files live.
pub fn instance_dir(s: &ComputeService, id: &str) -> PathBuf {
    s.config().state_dir.join("instances").join(id)
}

fn image_cache(s: &ComputeService, image_id: &str) -> PathBuf {
    s.config().state_dir.join("images").join(image_id)
}

/// One pass over this host's servers.
pub async fn pass(s: &ComputeService, config: &ReconcileConfig) -> Result<(), Error> {
    let wanted: Vec<Server> = {
        let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
        store::on_host(&mut conn, &s.config().host).await?
    };
    for server in &wanted {
        if let Err(e) = converge(s, config, server).await {
            tracing::warn!(server = %server.id, error = %e, "converging a server");
        }
    }
    remove_orphans(s, &wanted).await
}

pub(crate) async fn blocking<T: Send + 'static>(
    hv: &Arc<dyn Host>,
    f: impl FnOnce(&dyn Host) -> Result<T, String> + Send + 'static,
) -> Result<T, Error> {
    let hv = hv.clone();
    tokio::task::spawn_blocking(move || f(hv.as_ref()))
        .await
        .map_err(Error::internal)?
        .map_err(Error::Internal)
}

async fn converge(
    s: &ComputeService,
    config: &ReconcileConfig,
    server: &Server,
) -> Result<(), Error> {
    if server.deleting {
        return remove(s, server).await;
    }
    match (server.vm_state, server.task_state.as_deref()) {
        // The API is still making its ports; a request that died doing
        // so (a crash) leaves the server to fail here after a while.
        (VmState::Building, Some("scheduling")) => {
            let age = himmel_core::time::parse_timestamp(&server.created_at)
                .map(|t| himmel_core::time::now() - t)
                .unwrap_or_default();
            if age > chrono::Duration::seconds(120) {
                crate::api::release_ports(s, server).await;
                fail(
                    s,
                    server,
                    "Build of instance aborted: its ports were never set up.",
                )
                .await
            } else {
                Ok(())
            }
        }
        (VmState::Building, _) => build(s, config, server).await,
        (VmState::Error, _) => Ok(()),
        // The snapshot task clears its own state; one a restart cut off is
        // over (its image stays queued, as in Nova).
        (_, Some("image_snapshot")) if s.is_snapshotting(&server.id) => Ok(()),
        (
            _,
            Some(
                "rebooting" | "rebooting_hard" | "rebuilding" | "resize_prep" | "resize_reverting",
            ),
        ) => restart(s, config, server).await,
        _ => power(s, config, server).await,
    }
}

/// Records a build or action failure on the server.
async fn fail(s: &ComputeService, server: &Server, message: &str) -> Result<(), Error> {
    tracing::warn!(server = %server.id, message, "server failed");
    servers::modify(s, &server.id, |sv| {
        sv.vm_state = VmState::Error;
        sv.task_state = None;
        sv.power_state = 0;
        sv.fault = Some(fault(500, message));
        Ok(())
    })
    .await?;
    // A failed build gives back what the scheduler claimed.
    if server.vm_state == VmState::Building {
        crate::scheduler::release(s.db(), &server.id).await?;
    }
    Ok(())
}

async fn build(s: &ComputeService, config: &ReconcileConfig, server: &Server) -> Result<(), Error> {
    let started = Instant::now();
    let result = async {
        let hv = s.hypervisor().cloned().ok_or_else(|| {
            Error::Unavailable("This host cannot run instances (no hypervisor).".into())
        })?;
        let id = server.id.clone();
        blocking(&hv, move |h| h.prepare(&id)).await?;
        // The network reconciler plugs the ports into the new namespace.
        s.network().notify_changed();
        servers::modify(s, &server.id, |sv| {
            sv.task_state = Some("spawning".into());
            Ok(())
        })
        .await?;
        if config.wait_for_ports {
            wait_for_ports(s, server, config.port_timeout).await?;
        }
        let plan = plan(s, server).await?;
        let status = blocking(&hv, move |h| h.start(&plan)).await?;
        Ok::<HostStatus, Error>(status)
    }
    .await;
    match result {
        Ok(status) => {
            tracing::info!(server = %server.id, ms = started.elapsed().as_millis() as u64, "server active");
            servers::modify(s, &server.id, |sv| {
                sv.vm_state = VmState::Active;
                sv.task_state = None;
                sv.power_state = if status.running { RUNNING } else { SHUTDOWN };
                sv.launched_at = Some(servers::now());
                Ok(())
            })
            .await?;
            Ok(())
        }
        Err(e) => {
            // Nothing of a failed build stays behind: the instance, its
            // files and the ports compute made for it.
            if let Some(hv) = s.hypervisor().cloned() {
                let id = server.id.clone();
                if let Err(e) = blocking(&hv, move |h| h.remove(&id)).await {
                    tracing::warn!(server = %server.id, error = %e, "removing a failed instance");
                }
            }
            let _ = std::fs::remove_dir_all(instance_dir(s, &server.id));
            crate::api::release_ports(s, server).await;
            servers::modify(s, &server.id, |sv| {
                sv.ports.clear();
                sv.created_ports.clear();
                Ok(())
            })
            .await?;
            let message = match &e {
                Error::Internal(detail) => {
                    format!("Build of instance {} aborted: {detail}", server.id)
                }
                other => format!(
                    "Build of instance {} aborted: {}",
                    server.id,
                    other.public_message()
                ),
            };
            fail(s, server, &message).await
        }
    }
}

async fn wait_for_ports(
    s: &ComputeService,
    server: &Server,
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let ports = servers::get(s, &server.id)
        .await?
        .map(|sv| sv.ports)
        .unwrap_or_default();
    loop {
        let mut all_active = true;
        for id in &ports {
            let active = instance_ports::get(s.network(), id)
                .await?
                .is_some_and(|p| p.status == himmel_network::model::STATUS_ACTIVE);
            all_active &= active;
        }
        if all_active {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Internal(format!(
                "its ports did not become active within {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The driver a server runs on: the flavor's `himmel:driver`, else the
/// image's `hypervisor_type`, else qemu.
pub(crate) fn driver(server: &Server, image: &BootImage) -> Result<DriverKind, Error> {
    let choice = server
        .flavor
        .extra_specs
        .get("himmel:driver")
        .or_else(|| image.properties.get("hypervisor_type"))
        .map(|s| s.to_ascii_lowercase());
    match choice.as_deref() {
        None | Some("qemu") | Some("kvm") => Ok(DriverKind::Qemu),
        Some("namespace") => Ok(DriverKind::Namespace),
        Some(other) => Err(Error::BadRequest(format!(
            "unknown hypervisor driver {other}"
        ))),
    }
}

/// The image a namespace instance unpacks as its root filesystem: the image's ramdisk, or the
/// image itself when it is one.
pub(crate) fn root_filesystem_image(image: &BootImage) -> Result<&str, Error> {
    match (&image.kernel_id, &image.ramdisk_id) {
        (_, Some(ramdisk)) => Ok(ramdisk),
        (None, None) if image.disk_format == "ari" => Ok(&image.id),
        _ => Err(Error::BadRequest(
            "namespace instances boot from a ramdisk (an image with ramdisk_id)".into(),
        )),
    }
}

/// An image's data in the local cache (fetched once, renamed into place).
pub(crate) async fn cached(s: &ComputeService, image_id: &str) -> Result<PathBuf, Error> {
    let path = image_cache(s, image_id);
    if path.is_file() {
        return Ok(path);
    }
    let images = s
        .images()
        .cloned()
        .ok_or_else(|| Error::Unavailable("no image service".into()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(Error::internal)?;
    let partial = dir.join(format!(".{image_id}.{}", himmel_core::ids::new_id()));
    let result = images.copy_data_to(image_id, &partial).await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &path).map_err(Error::internal)?;
    Ok(path)
}

/// The instance as the host should run it, fetching what it boots from.
async fn plan(s: &ComputeService, server: &Server) -> Result<InstancePlan, Error> {
    let image = &server.image;
    let driver = driver(server, image)?;
    let dir = instance_dir(s, &server.id);
    std::fs::create_dir_all(&dir).map_err(Error::internal)?;
    let boot = match (driver, &image.kernel_id, &image.ramdisk_id) {
        (DriverKind::Namespace, _, _) => BootPlan::RootFs {
            initrd: cached(s, root_filesystem_image(image)?).await?,
        },
        (DriverKind::Qemu, Some(kernel), ramdisk) => {
            let initrd = match ramdisk {
                Some(r) => Some(cached(s, r).await?),
                None => None,
            };
            let cmdline = image
                .properties
                .get("os_command_line")
                .cloned()
                .unwrap_or_else(|| "console=ttyS0".into());
            BootPlan::Kernel {
                kernel: cached(s, kernel).await?,
                initrd,
                cmdline,
            }
        }
        (DriverKind::Qemu, None, _) => {
            let format = match image.disk_format.as_str() {
                "qcow2" => "qcow2",
                "raw" | "img" => "raw",
                other => {
                    return Err(Error::BadRequest(format!(
                        "qemu cannot boot disk format {other}"
                    )))
                }
            };
            let disk = dir.join("disk");
            if !disk.exists() {
                let source = cached(s, &image.id).await?;
                let partial = dir.join(".disk.partial");
                std::fs::copy(&source, &partial).map_err(Error::internal)?;
                std::fs::rename(&partial, &disk).map_err(Error::internal)?;
            }
            BootPlan::Disk {
                path: disk,
                format: format.into(),
            }
        }
    };
    let mut nics = Vec::new();
    for port_id in &server.ports {
        if let Some(p) = instance_ports::get(s.network(), port_id).await? {
            nics.push((p.meta.id, p.mac_address));
        }
    }
    Ok(InstancePlan {
        id: server.id.clone(),
        driver,
        vcpus: server.flavor.vcpus.max(1),
        memory_mib: server.flavor.ram.max(16),
        boot,
        nics,
        config_drive: None,
        hostname: server.hostname.clone(),
    })
}

/// Reboot, rebuild, resize and revert: the instance restarts on its
/// (possibly new) image and flavor.
async fn restart(
    s: &ComputeService,
    config: &ReconcileConfig,
    server: &Server,
) -> Result<(), Error> {
    let Some(hv) = s.hypervisor().cloned() else {
        return fail(s, server, "This host cannot run instances (no hypervisor).").await;
    };
    let task = server.task_state.clone().unwrap_or_default();
    if task == "rebuilding" {
        // A new root disk from the new image.
        let _ = std::fs::remove_file(instance_dir(s, &server.id).join("disk"));
    }
    // Nova rebuilds, resizes and reverts a stopped server without starting it.
    let stays_stopped = server.power == Power::Stopped
        && matches!(
            task.as_str(),
            "rebuilding" | "resize_prep" | "resize_reverting"
        );
    let result = async {
        let plan = plan(s, server).await?;
        let status = if stays_stopped {
            let id = server.id.clone();
            let graceful = config.graceful_stop;
            blocking(&hv, move |h| {
                h.stop(&id, graceful)?;
                h.status(&id)
            })
            .await?
        } else if task.starts_with("rebooting") {
            let hard = task == "rebooting_hard";
            blocking(&hv, move |h| h.reboot(&plan, hard)).await?
        } else {
            let id = server.id.clone();
            let graceful = config.graceful_stop;
            blocking(&hv, move |h| {
                h.stop(&id, graceful)?;
                h.start(&plan)
            })
            .await?
        };
        Ok::<HostStatus, Error>(status)
    }
    .await;
    match result {
        Ok(status) => {
            servers::modify(s, &server.id, |sv| {
                sv.task_state = None;
                sv.reboot_kind = None;
                if !stays_stopped {
                    sv.power = Power::Running;
                }
                sv.power_state = if status.running { RUNNING } else { SHUTDOWN };
                sv.vm_state = match (task.as_str(), stays_stopped) {
                    ("resize_prep", _) => VmState::Resized,
                    (_, true) => VmState::Stopped,
                    _ => VmState::Active,
                };
                Ok(())
            })
            .await?;
            Ok(())
        }
        Err(e) => fail(s, server, &format!("{task} failed: {}", describe(&e))).await,
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::Internal(detail) => detail.clone(),
        other => other.public_message(),
    }
}

/// Power changes, and convergence of settled servers: a server that should
/// run but does not (the host restarted) is started again.
async fn power(s: &ComputeService, config: &ReconcileConfig, server: &Server) -> Result<(), Error> {
    let Some(hv) = s.hypervisor().cloned() else {
        return Ok(());
    };
    let id = server.id.clone();
    let status = blocking(&hv, move |h| h.status(&id)).await?;
    let id = server.id.clone();
    let (vm_state, power_state) = match server.power {
        Power::Stopped => {
            if status.running {
                let graceful = config.graceful_stop;
                blocking(&hv, move |h| h.stop(&id, graceful)).await?;
            }
            // A stopped server waiting for its resize to be confirmed stays VERIFY_RESIZE.
            let vm = if server.vm_state == VmState::Resized {
                VmState::Resized
            } else {
                VmState::Stopped
            };
            (vm, SHUTDOWN)
        }
        Power::Running => {
            if server.task_state.as_deref() == Some("unpausing") {
                blocking(&hv, move |h| h.unpause(&id)).await?;
            } else if !status.running {
                let plan = plan(s, server).await?;
                blocking(&hv, move |h| h.start(&plan)).await?;
            }
            let vm = if server.vm_state == VmState::Resized {
                VmState::Resized
            } else {
                VmState::Active
            };
            (vm, RUNNING)
        }
        Power::Paused => {
            if server.task_state.as_deref() == Some("pausing") {
                blocking(&hv, move |h| h.pause(&id)).await?;
            }
            (VmState::Paused, PAUSED)
        }
    };
    if server.vm_state != vm_state
        || server.power_state != power_state
        || server.task_state.is_some()
    {
        servers::modify(s, &server.id, |sv| {
            sv.vm_state = vm_state;
            sv.power_state = power_state;
            sv.task_state = None;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// Delete: the instance, its files, the ports compute made (the user's
/// ports are given back), then the rows.
async fn remove(s: &ComputeService, server: &Server) -> Result<(), Error> {
    if let Some(hv) = s.hypervisor().cloned() {
        let id = server.id.clone();
        blocking(&hv, move |h| h.remove(&id)).await?;
    }
    match std::fs::remove_dir_all(instance_dir(s, &server.id)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::internal(e)),
    }
    crate::api::release_ports(s, server).await;
    servers::purge(s, &server.id).await?;
    tracing::info!(server = %server.id, "server deleted");
    Ok(())
}

/// Instances nobody wants any more (after a crash between a delete's steps,
/// or a server row removed by hand).
async fn remove_orphans(s: &ComputeService, wanted: &[Server]) -> Result<(), Error> {
    let is_wanted = |id: &str| wanted.iter().any(|sv| sv.id == id);
    if let Some(hv) = s.hypervisor().cloned() {
        let listed = blocking(&hv, |h| h.list()).await?;
        for id in listed.into_iter().filter(|id| !is_wanted(id)) {
            tracing::info!(instance = %id, "removing an instance nobody wants");
            let rid = id.clone();
            blocking(&hv, move |h| h.remove(&rid)).await?;
            let _ = std::fs::remove_dir_all(instance_dir(s, &id));
        }
    }
    // Ports are not swept here: a `compute:*` port whose device is no server of ours may be
    // someone else's (a user plugging a namespace, another tool), and Neutron keeps it.
    Ok(())
}
