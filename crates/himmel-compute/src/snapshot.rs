//! createImage and createBackup: a new image from a server's root disk, or
//! from a namespace instance's root filesystem. The image is queued at
//! once and filled in the background while the server shows the task
//! `image_snapshot`, as in Nova. Servers that boot a kernel or a ramdisk in
//! a VM have no disk of their own to snapshot.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use himmel_core::{Error, RequestContext};

use crate::host::{DriverKind, RootfsSnapshot};
use crate::images::{Images, NewImage};
use crate::model::Server;
use crate::reconcile::{blocking, cached, driver, instance_dir, root_filesystem_image};
use crate::{servers, ComputeService};

/// Properties of the server's image that its snapshot does not inherit, as
/// in Nova: they describe that image's data, not the server.
const NOT_INHERITED: [&str; 9] = [
    "image_type",
    "instance_uuid",
    "base_image_ref",
    "cache_in_nova",
    "bittorrent",
    "img_signature",
    "img_signature_hash_method",
    "img_signature_key_type",
    "img_signature_certificate_uuid",
];

/// createImage: queues the image, marks the server `image_snapshot`, and
/// takes and stores the snapshot in the background, as Nova does; returns
/// the image's id at once (a large disk takes a while to store).
pub async fn create_image(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    name: String,
    requested: BTreeMap<String, String>,
) -> Result<String, Error> {
    start(s, ctx, server, name, requested, None, "createImage").await
}

/// createBackup: a snapshot with `image_type=backup` and `backup_type`;
/// once it is stored, the server's backups of that type beyond the newest
/// `rotation` are deleted (all of them, the new one too, with rotation 0,
/// as in Nova).
pub async fn create_backup(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    name: String,
    backup_type: &str,
    rotation: u64,
    requested: BTreeMap<String, String>,
) -> Result<String, Error> {
    let mut properties = requested;
    properties.insert("image_type".into(), "backup".into());
    properties.insert("backup_type".into(), backup_type.into());
    let rotation = Rotation {
        backup_type: backup_type.to_string(),
        keep: usize::try_from(rotation).unwrap_or(usize::MAX),
    };
    start(
        s,
        ctx,
        server,
        name,
        properties,
        Some(rotation),
        "createBackup",
    )
    .await
}

/// Which backups survive a createBackup.
struct Rotation {
    backup_type: String,
    keep: usize,
}

async fn start(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    name: String,
    requested: BTreeMap<String, String>,
    rotation: Option<Rotation>,
    action: &str,
) -> Result<String, Error> {
    let images = s.images().cloned().ok_or_else(|| {
        Error::Conflict("There is no image service to store the image in.".into())
    })?;
    let driver = driver(server, &server.image)?;
    let (disk_format, container_format) = match driver {
        DriverKind::Namespace => ("ari".to_string(), "ari".to_string()),
        DriverKind::Qemu => {
            own_disk(s, server)?;
            (server.image.disk_format.clone(), "bare".to_string())
        }
    };
    let req = NewImage {
        name,
        disk_format,
        container_format,
        properties: snapshot_properties(server, requested),
    };
    let image_id = images.create_queued(ctx, req).await?;
    // One snapshot at a time: a second request meanwhile is refused.
    let claimed = servers::modify(s, &server.id, |sv| match &sv.task_state {
        Some(task) => Err(Error::Conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {task}",
            sv.id
        ))),
        None => {
            sv.task_state = Some(SNAPSHOTTING.into());
            Ok(())
        }
    })
    .await;
    if let Err(e) = claimed {
        let _ = images.delete_image(ctx, &image_id).await;
        return Err(e);
    }
    s.set_snapshotting(&server.id, true);
    let (s, ctx, server, id) = (s.clone(), ctx.clone(), server.clone(), image_id.clone());
    tokio::spawn(async move {
        if let Err(e) = take_and_store(&s, &server, driver, &id).await {
            tracing::warn!(server = %server.id, image = %id, error = %e, "snapshot failed");
            let _ = images.delete_image(&ctx, &id).await;
        } else if let Some(rotation) = rotation {
            if let Err(e) = rotate(&images, &ctx, &server, &rotation).await {
                tracing::warn!(server = %server.id, error = %e, "backup rotation failed");
            }
        }
        let cleared = servers::modify(&s, &server.id, |sv| {
            if sv.task_state.as_deref() == Some(SNAPSHOTTING) {
                sv.task_state = None;
            }
            Ok(())
        })
        .await;
        if let Err(e) = cleared {
            tracing::debug!(server = %server.id, error = %e, "snapshot ended on a server that is gone");
        }
        s.set_snapshotting(&server.id, false);
        s.changed();
    });
    Ok(image_id)
}

/// The task state of a server whose snapshot is being taken.
const SNAPSHOTTING: &str = "image_snapshot";

/// Copies the server's root (so that the guest may go on writing) and
/// stores the copy as the queued image's data.
async fn take_and_store(
    s: &ComputeService,
    server: &Server,
    driver: DriverKind,
    image_id: &str,
) -> Result<(), Error> {
    let images = s
        .images()
        .cloned()
        .ok_or_else(|| Error::Unavailable("no image service".into()))?;
    let dir = instance_dir(s, &server.id);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(Error::internal)?;
    let copy = dir.join(format!(".snapshot-{}", himmel_core::ids::new_id()));
    let result = async {
        match driver {
            DriverKind::Namespace => copy_root_filesystem(s, server, &copy).await?,
            DriverKind::Qemu => copy_disk(s, server, &copy).await?,
        }
        images.fill_from_file(image_id, &copy).await
    }
    .await;
    let _ = tokio::fs::remove_file(&copy).await;
    result
}

/// Deletes the server's backups of the rotation's type beyond the newest
/// `keep`.
async fn rotate(
    images: &Arc<dyn Images>,
    ctx: &RequestContext,
    server: &Server,
    rotation: &Rotation,
) -> Result<(), Error> {
    let is_backup = |p: &BTreeMap<String, String>| {
        p.get("image_type").map(String::as_str) == Some("backup")
            && p.get("backup_type") == Some(&rotation.backup_type)
            && p.get("instance_uuid") == Some(&server.id)
    };
    let mut backups: Vec<_> = images
        .list_images(ctx)
        .await?
        .into_iter()
        .filter(|i| is_backup(&i.properties))
        .collect();
    backups.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    for old in backups.iter().skip(rotation.keep) {
        match images.delete_image(ctx, &old.id).await {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A VM can be snapshotted only from a disk of its own.
fn own_disk(s: &ComputeService, server: &Server) -> Result<std::path::PathBuf, Error> {
    let disk = instance_dir(s, &server.id).join("disk");
    if disk.is_file() {
        Ok(disk)
    } else {
        Err(Error::Conflict(format!(
            "Instance {} has no root disk of its own to snapshot (it boots a kernel or ramdisk image).",
            server.id
        )))
    }
}

/// A VM's root disk, as it is now.
async fn copy_disk(s: &ComputeService, server: &Server, copy: &Path) -> Result<(), Error> {
    let disk = own_disk(s, server)?;
    tokio::fs::copy(&disk, copy)
        .await
        .map(drop)
        .map_err(Error::internal)
}

/// A namespace instance's root filesystem as an initramfs: packed from the
/// running (or paused) instance, or its image's when it is stopped, since
/// its next start begins from that image again.
async fn copy_root_filesystem(
    s: &ComputeService,
    server: &Server,
    copy: &Path,
) -> Result<(), Error> {
    let hv = s
        .hypervisor()
        .cloned()
        .ok_or_else(|| Error::Conflict("This host cannot run instances (no hypervisor).".into()))?;
    // What unpacks into the instance must fit in its memory.
    let max_bytes = server.flavor.ram.max(16) << 20;
    let (id, out) = (server.id.clone(), copy.to_path_buf());
    match blocking(&hv, move |h| h.snapshot_rootfs(&id, &out, max_bytes)).await? {
        RootfsSnapshot::Packed => Ok(()),
        RootfsSnapshot::NotRunning => {
            let source = cached(s, root_filesystem_image(&server.image)?).await?;
            tokio::fs::copy(&source, copy)
                .await
                .map(drop)
                .map_err(Error::internal)
        }
        RootfsSnapshot::Refused(reason) => Err(Error::Conflict(format!(
            "Instance {} cannot be snapshotted: {reason}",
            server.id
        ))),
    }
}

/// The server's image's properties, then Nova's snapshot markers, then
/// what the request asked for.
fn snapshot_properties(
    server: &Server,
    requested: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut properties: BTreeMap<String, String> = server
        .image
        .properties
        .iter()
        .filter(|(k, _)| !NOT_INHERITED.contains(&k.as_str()) && !k.starts_with("os_glance"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    properties.insert("image_type".into(), "snapshot".into());
    properties.insert("instance_uuid".into(), server.id.clone());
    properties.insert("base_image_ref".into(), server.image_ref.clone());
    properties.extend(requested);
    properties
}
