//! What compute needs from the image service: an image the caller may boot,
//! its data as a file, a new image from a server's disk, and for the image
//! proxy (Nova's deprecated `/images`) the caller's images to list, show,
//! delete and change properties of, each under the image service's own
//! visibility rules and policy. The region plugs the image service in
//! behind this trait.

use std::collections::BTreeMap;
use std::path::Path;

use himmel_core::{Error, RequestContext};

/// An image as the caller may boot it (kept with the server, so that the
/// reconciler boots what the API checked).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BootImage {
    pub id: String,
    pub name: Option<String>,
    pub disk_format: String,
    pub container_format: String,
    pub size: u64,
    pub min_disk_gb: u64,
    pub min_ram_mb: u64,
    pub kernel_id: Option<String>,
    pub ramdisk_id: Option<String>,
    pub properties: BTreeMap<String, String>,
}

/// A new image from a file (createImage).
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    pub properties: BTreeMap<String, String>,
}

/// An image as the proxy shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageInfo {
    pub id: String,
    pub name: Option<String>,
    /// The image service's status (`queued`, `saving`, `active`, …).
    pub status: String,
    pub size: Option<u64>,
    pub min_disk_gb: u64,
    pub min_ram_mb: u64,
    /// The free-form properties (`instance_uuid`, `image_type`, …).
    pub properties: BTreeMap<String, String>,
    /// Unix microseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait::async_trait]
pub trait Images: Send + Sync + 'static {
    /// NotFound when the caller cannot see it; Conflict/BadRequest when it
    /// is not active.
    async fn image_for_boot(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<BootImage, Error>;
    /// Writes the image's data to `dest` (a new file), checking its hash.
    async fn copy_data_to(&self, image_id: &str, dest: &Path) -> Result<(), Error>;
    /// A new image owned by ctx's project, without data yet (`queued`);
    /// returns its id.
    async fn create_queued(&self, ctx: &RequestContext, req: NewImage) -> Result<String, Error>;
    /// Gives the queued image `src` as its data, which makes it active; on
    /// failure the image is deleted.
    async fn fill_from_file(&self, image_id: &str, src: &Path) -> Result<(), Error>;
    /// The images the caller's unfiltered image list shows, newest first.
    async fn list_images(&self, ctx: &RequestContext) -> Result<Vec<ImageInfo>, Error>;
    /// NotFound when the caller cannot see it.
    async fn show_image(&self, ctx: &RequestContext, image_id: &str) -> Result<ImageInfo, Error>;
    /// NotFound when the caller cannot see it, Forbidden when it may not
    /// delete it.
    async fn delete_image(&self, ctx: &RequestContext, image_id: &str) -> Result<(), Error>;
    /// Removes the properties in `remove` (those the image has and `set`
    /// does not name), then sets `set`; returns the image afterwards.
    async fn update_properties(
        &self,
        ctx: &RequestContext,
        image_id: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<ImageInfo, Error>;
}

fn info(i: himmel_image::proxy::ImageInfo) -> ImageInfo {
    ImageInfo {
        id: i.id,
        name: i.name,
        status: i.status,
        size: i.size,
        min_disk_gb: i.min_disk,
        min_ram_mb: i.min_ram,
        properties: i.properties,
        created_at: i.created_at,
        updated_at: i.updated_at,
    }
}

/// The region's image service.
#[async_trait::async_trait]
impl Images for himmel_image::ImageService {
    async fn image_for_boot(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<BootImage, Error> {
        let i = himmel_image::ImageService::image_for_boot(self, ctx, image_id).await?;
        Ok(BootImage {
            id: i.id,
            name: i.name,
            disk_format: i.disk_format,
            container_format: i.container_format,
            size: i.size,
            min_disk_gb: i.min_disk_gb,
            min_ram_mb: i.min_ram_mb,
            kernel_id: i.kernel_id,
            ramdisk_id: i.ramdisk_id,
            properties: i.properties,
        })
    }

    async fn copy_data_to(&self, image_id: &str, dest: &Path) -> Result<(), Error> {
        himmel_image::ImageService::copy_data_to(self, image_id, dest).await
    }

    async fn create_queued(&self, ctx: &RequestContext, req: NewImage) -> Result<String, Error> {
        let req = himmel_image::NewImage {
            name: req.name,
            disk_format: req.disk_format,
            container_format: req.container_format,
            properties: req.properties,
        };
        himmel_image::ImageService::create_queued(self, ctx, req).await
    }

    async fn fill_from_file(&self, image_id: &str, src: &Path) -> Result<(), Error> {
        himmel_image::ImageService::fill_from_file(self, image_id, src).await
    }

    async fn list_images(&self, ctx: &RequestContext) -> Result<Vec<ImageInfo>, Error> {
        let list = self.list_for(ctx).await?;
        Ok(list.into_iter().map(info).collect())
    }

    async fn show_image(&self, ctx: &RequestContext, image_id: &str) -> Result<ImageInfo, Error> {
        self.show_for(ctx, image_id).await.map(info)
    }

    async fn delete_image(&self, ctx: &RequestContext, image_id: &str) -> Result<(), Error> {
        self.delete_for(ctx, image_id).await
    }

    async fn update_properties(
        &self,
        ctx: &RequestContext,
        image_id: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<ImageInfo, Error> {
        self.update_properties_for(ctx, image_id, set, remove)
            .await
            .map(info)
    }
}
