//! Who sees which image, beyond the policy table (Glance's rules): the
//! cloud administrator sees every image; everyone else the project's own,
//! public and community images, and shared images the project is a member
//! of (in any membership status). An image the caller cannot see is a 404,
//! never a 403, so its existence does not leak.

use himmel_core::{Error, RequestContext, Scope};
use himmel_http::Target;

use crate::model::{Image, Visibility};

/// The policy target of an image owned by `project_id`.
pub fn target(project_id: &str) -> Target {
    Target {
        project_id: Some(project_id.to_string()),
        ..Default::default()
    }
}

/// True for the cloud administrator (admin role on a scoped token) and
/// for system readers, who see every project's images.
pub fn sees_all(ctx: &RequestContext) -> bool {
    (ctx.has_role("admin") && ctx.scope != Scope::Unscoped) || ctx.is_system()
}

pub fn is_owner(ctx: &RequestContext, image: &Image) -> bool {
    ctx.project_id() == Some(image.owner.as_str())
}

pub fn can_see(ctx: &RequestContext, image: &Image, membership: Option<&str>) -> bool {
    sees_all(ctx)
        || is_owner(ctx, image)
        || matches!(image.visibility, Visibility::Public | Visibility::Community)
        || (image.visibility == Visibility::Shared && membership.is_some())
}

/// The target a read of a visible image is checked against: the owner's
/// project when the caller owns it, else the caller's own project (a
/// reader there may read what is visible to it).
pub fn read_target(ctx: &RequestContext, image: &Image) -> Target {
    if is_owner(ctx, image) {
        target(&image.owner)
    } else {
        target(ctx.project_id().unwrap_or(&image.owner))
    }
}

/// Glance's message for an image one cannot see.
pub fn not_found(id: &str) -> Error {
    Error::NotFound(format!("No image found with ID {id}"))
}
