//! Images: the Glance v2 API, its model and store, and image data kept
//! encrypted at rest through the key hierarchy (one data key per data file,
//! wrapped under the owning project's key-encryption key).
//!
//! Compute reads images through [`ImageService::image_for_boot`] and
//! [`ImageService::copy_data_to`], and makes snapshots with
//! [`ImageService::create_queued`] and [`ImageService::fill_from_file`]; its image proxy (Nova's `/images`)
//! lists, shows, deletes and changes properties through [`proxy`].

mod access;
mod api;
mod data;
pub mod model;
mod patch;
pub mod policy;
pub mod proxy;
mod store;
mod upload;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use himmel_core::{Error, RequestContext};
use himmel_db::Db;
use himmel_kms::Keyring;

pub use api::routes;
use data::DataStore;
use model::{Image, Status};

/// The path prefix of the API on the region's listener.
pub const PATH_PREFIX: &str = "/image";

/// Glance's default `image_size_cap`: 1 TiB.
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 1 << 40;

/// The image service's state, shared by its handlers.
#[derive(Clone)]
pub struct ImageService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    keyring: Keyring,
    data: DataStore,
    max_image_size: u64,
}

/// An image as a caller may boot it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The free-form properties (`os_distro`, `hw_disk_bus`, …).
    pub properties: BTreeMap<String, String>,
}

/// A new image made from a file (compute's createImage).
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    pub properties: BTreeMap<String, String>,
}

impl ImageService {
    /// Opens the service over `data_dir/images`: data files no image refers
    /// to (left by a crash between writing and committing) are removed, and
    /// uploads a crash interrupted go back to where a client can retry them.
    pub async fn open(
        db: Db,
        keyring: Keyring,
        data_dir: &Path,
        max_image_size: u64,
    ) -> Result<ImageService, Error> {
        let data = DataStore::open(&data_dir.join("images")).map_err(Error::internal)?;
        store::recover_interrupted(&db).await?;
        let referenced = store::referenced_files(&db).await?;
        let removed = data.remove_orphans(&referenced).map_err(Error::internal)?;
        if removed > 0 {
            tracing::info!(removed, "removed image data files no image refers to");
        }
        Ok(ImageService {
            inner: Arc::new(Inner {
                db,
                keyring,
                data,
                max_image_size,
            }),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    pub(crate) fn data(&self) -> &DataStore {
        &self.inner.data
    }

    pub(crate) fn max_image_size(&self) -> u64 {
        self.inner.max_image_size
    }

    /// The image as the caller may boot it: visible to the caller as
    /// `GET /v2/images/{id}` would show it (else NotFound), and `active`
    /// (else Conflict).
    pub async fn image_for_boot(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<BootImage, Error> {
        let image = self.visible_image(ctx, image_id).await?;
        if image.status != Status::Active {
            return Err(Error::Conflict(format!(
                "Image {image_id} is not active (its status is {}).",
                image.status
            )));
        }
        let props = image.properties.clone();
        Ok(BootImage {
            id: image.id,
            name: image.name,
            disk_format: image.disk_format.unwrap_or_default(),
            container_format: image.container_format.unwrap_or_default(),
            size: image.size.unwrap_or(0),
            min_disk_gb: image.min_disk,
            min_ram_mb: image.min_ram,
            kernel_id: props.get("kernel_id").cloned(),
            ramdisk_id: props.get("ramdisk_id").cloned(),
            properties: props,
        })
    }

    /// Decrypts the image's data into `dest` (a new file, fsynced), checking
    /// its size and sha512 on the way. The caller has checked visibility
    /// (through [`ImageService::image_for_boot`]).
    pub async fn copy_data_to(&self, image_id: &str, dest: &Path) -> Result<(), Error> {
        let image = store::get(self.db(), image_id)
            .await?
            .ok_or_else(|| access::not_found(image_id))?;
        let stored = image
            .data()
            .ok_or_else(|| Error::Conflict(format!("Image {image_id} has no data.")))?;
        let key = self
            .keyring()
            .open_data_key(
                &stored.key_project,
                stored.file_id.as_bytes(),
                &stored.data_key,
            )
            .await?;
        let expected = data::Expected {
            size: image.size.unwrap_or(0),
            sha512: image.os_hash_value.clone().unwrap_or_default(),
        };
        self.data()
            .decrypt_to_file(&stored.file_id, key, dest, expected)
            .await
    }

    /// A new active image owned by the caller's project, with `src`'s bytes
    /// as its data (a server snapshot). Returns its id.
    pub async fn create_from_file(
        &self,
        ctx: &RequestContext,
        req: NewImage,
        src: &Path,
    ) -> Result<String, Error> {
        let id = self.create_queued(ctx, req).await?;
        self.fill_from_file(&id, src).await?;
        Ok(id)
    }

    /// A new private image of ctx's project without data yet (`queued`), for
    /// a snapshot still being taken; [`ImageService::fill_from_file`] gives
    /// it its data.
    pub async fn create_queued(
        &self,
        ctx: &RequestContext,
        req: NewImage,
    ) -> Result<String, Error> {
        let owner = ctx.project_id().ok_or_else(|| {
            Error::BadRequest("Creating an image needs a project-scoped token.".into())
        })?;
        model::check_disk_format(&req.disk_format)?;
        model::check_container_format(&req.container_format)?;
        for (k, v) in &req.properties {
            model::check_property(k, &serde_json::Value::String(v.clone()))?;
        }
        let mut image = Image::new(himmel_core::ids::new_id(), owner.to_string());
        image.name = Some(req.name);
        image.disk_format = Some(req.disk_format);
        image.container_format = Some(req.container_format);
        image.visibility = model::Visibility::Private;
        image.properties = req.properties;
        store::insert(self.db(), &image).await?;
        Ok(image.id)
    }

    /// Uploads `src` as the data of the queued image `image_id`, which then
    /// becomes active. On failure the image is deleted: a snapshot that
    /// could not be stored leaves nothing behind.
    pub async fn fill_from_file(&self, image_id: &str, src: &Path) -> Result<(), Error> {
        let result = match tokio::fs::File::open(src).await {
            Ok(file) => self.upload_from_reader(image_id, file).await,
            Err(e) => Err(Error::BadRequest(format!(
                "cannot read {}: {e}",
                src.display()
            ))),
        };
        if result.is_err() {
            store::delete(self.db(), image_id).await.ok();
        }
        result
    }

    /// The image if `ctx` may see it, else NotFound.
    pub(crate) async fn visible_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<Image, Error> {
        let image = match uuid::Uuid::parse_str(image_id) {
            Ok(_) => store::get(self.db(), image_id).await?,
            Err(_) => None,
        };
        let image = image.ok_or_else(|| access::not_found(image_id))?;
        let membership = store::member_status(self.db(), image_id, ctx.project_id()).await?;
        if access::can_see(ctx, &image, membership.as_deref()) {
            Ok(image)
        } else {
            Err(access::not_found(image_id))
        }
    }
}
