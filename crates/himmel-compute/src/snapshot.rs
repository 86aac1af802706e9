//! createImage: a new image from a server's root disk. Servers that boot a
//! kernel or a ramdisk have no disk of their own to snapshot.

use std::collections::BTreeMap;

use himmel_core::{Error, RequestContext};

use crate::images::NewImage;
use crate::model::Server;
use crate::reconcile::instance_dir;
use crate::ComputeService;

pub async fn create_image(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    name: String,
    mut properties: BTreeMap<String, String>,
) -> Result<String, Error> {
    let images = s.images().cloned().ok_or_else(|| {
        Error::Conflict("There is no image service to store the image in.".into())
    })?;
    let disk = instance_dir(s, &server.id).join("disk");
    if !disk.is_file() {
        return Err(Error::Conflict(format!(
            "Instance {} has no root disk of its own to snapshot (it boots a kernel or ramdisk image).",
            server.id
        )));
    }
    // A copy, so that the guest may go on writing while the image is stored.
    let copy =
        instance_dir(s, &server.id).join(format!(".snapshot-{}", himmel_core::ids::new_id()));
    let copied = tokio::fs::copy(&disk, &copy).await.map_err(Error::internal);
    let result = match copied {
        Ok(_) => {
            properties.insert("image_type".into(), "snapshot".into());
            properties.insert("instance_uuid".into(), server.id.clone());
            properties.insert("base_image_ref".into(), server.image_ref.clone());
            let req = NewImage {
                name,
                disk_format: server.image.disk_format.clone(),
                container_format: "bare".into(),
                properties,
            };
            images.create_from_file(ctx, req, &copy).await
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&copy).await;
    result
}
