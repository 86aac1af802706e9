//! What another service's image proxy (compute's deprecated `/images`)
//! does to images on behalf of a caller: list, show, delete and change
//! free-form properties, under the same visibility rules and policy table
//! as the Glance routes, so that the proxy shows and changes nothing the
//! caller could not see or change through this API itself.

use std::collections::BTreeMap;

use himmel_core::{Error, RequestContext};
use himmel_http::policy::decide;
use himmel_http::{Decision, Operation, Target};
use serde_json::Value;

use crate::api::list;
use crate::model::Image;
use crate::policy::*;
use crate::{access, patch, store, ImageService};

/// An image as a proxy shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub name: Option<String>,
    /// Glance's status: `queued`, `saving`, `active`, `killed`, …
    pub status: String,
    pub size: Option<u64>,
    pub min_disk: u64,
    pub min_ram: u64,
    pub properties: BTreeMap<String, String>,
    /// Unix microseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Image> for ImageInfo {
    fn from(i: Image) -> ImageInfo {
        ImageInfo {
            id: i.id,
            name: i.name,
            status: i.status.as_str().to_string(),
            size: i.size,
            min_disk: i.min_disk,
            min_ram: i.min_ram,
            properties: i.properties,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// `op`'s rule for the caller on `target`, as the route guard decides it.
fn check(op: &Operation, ctx: &RequestContext, target: &Target) -> Result<(), Error> {
    match decide(op.rule, Some(ctx), Some(target)) {
        Decision::Allow => Ok(()),
        _ => Err(himmel_http::pipeline::forbidden(op.name)),
    }
}

impl ImageService {
    /// The images `GET /v2/images` lists for the caller without filters
    /// (own, public and accepted shared images; not hidden ones), newest
    /// first, unpaged.
    pub async fn list_for(&self, ctx: &RequestContext) -> Result<Vec<ImageInfo>, Error> {
        check(
            &GET_IMAGES,
            ctx,
            &access::target(ctx.project_id().unwrap_or_default()),
        )?;
        let all = access::sees_all(ctx);
        let q = list::Query::parse("")?;
        let candidates = store::candidates(self.db(), ctx.project_id(), all).await?;
        let memberships = match ctx.project_id() {
            Some(p) => store::memberships(self.db(), p).await?,
            None => Default::default(),
        };
        let images = list::filtered(ctx, all, candidates, &memberships, &q);
        Ok(images.into_iter().map(ImageInfo::from).collect())
    }

    /// The image as `GET /v2/images/{id}` shows it: 404 when the caller
    /// cannot see it, 403 when the read rule refuses.
    pub async fn show_for(&self, ctx: &RequestContext, id: &str) -> Result<ImageInfo, Error> {
        let image = self.visible_image(ctx, id).await?;
        check(&GET_IMAGE, ctx, &access::read_target(ctx, &image))?;
        Ok(image.into())
    }

    /// `DELETE /v2/images/{id}`: 404 unseen, 403 when the rule refuses or
    /// the image is protected.
    pub async fn delete_for(&self, ctx: &RequestContext, id: &str) -> Result<(), Error> {
        let image = self.visible_image(ctx, id).await?;
        check(&DELETE_IMAGE, ctx, &access::target(&image.owner))?;
        if image.protected {
            return Err(Error::Forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            )));
        }
        let files = store::delete(self.db(), id).await?;
        self.data().remove(&files).await;
        Ok(())
    }

    /// A JSON-patch of the image's properties, as `PATCH /v2/images/{id}`
    /// would apply it: removes the properties named in `remove` (those it
    /// has), then sets `set`. Names Glance reserves are refused as there.
    pub async fn update_properties_for(
        &self,
        ctx: &RequestContext,
        id: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<ImageInfo, Error> {
        let mut image = self.visible_image(ctx, id).await?;
        check(&MODIFY_IMAGE, ctx, &access::target(&image.owner))?;
        for key in remove {
            if image.properties.contains_key(key) && !set.contains_key(key) {
                patch::remove(&mut image, key)?;
            }
        }
        for (key, value) in set {
            patch::set(&mut image, key, &Value::String(value.clone()))?;
        }
        store::update(self.db(), &image).await?;
        let fresh = store::get(self.db(), id)
            .await?
            .ok_or_else(|| access::not_found(id))?;
        Ok(fresh.into())
    }
}
