//! Who sees what, beyond the policy table: the cloud administrator and
//! system readers see every project's resources; everyone else sees their
//! project's own and those visible to all (shared and external networks).
//! A resource the caller cannot see is a 404, never a 403, so its existence
//! does not leak.

use himmel_core::{Error, RequestContext, Scope};
use himmel_http::policy::decide;
use himmel_http::{ApiError, Authz, Decision, Operation, Target};

use crate::model::Resource;
use crate::store::Visibility;

pub fn target(project_id: &str) -> Target {
    Target {
        project_id: Some(project_id.to_string()),
        ..Default::default()
    }
}

/// True for the cloud administrator (admin role on a scoped token).
pub fn is_admin(ctx: &RequestContext) -> bool {
    ctx.has_role("admin") && ctx.scope != Scope::Unscoped
}

/// Which rows a list may show; checks the list's rule for the caller's own
/// project when the rule was not unconditional.
pub fn visibility(ctx: &RequestContext, authz: &Authz) -> Result<Visibility, ApiError> {
    if authz.unconditional() {
        return Ok(Visibility::All);
    }
    let project = ctx.project_id().unwrap_or_default().to_string();
    authz.check(&target(&project))?;
    Ok(Visibility::Project(project))
}

/// The resource if the caller may read it, else a 404 naming `what`.
pub fn readable<R: Resource>(
    r: Option<R>,
    authz: &Authz,
    what: &str,
    id: &str,
) -> Result<R, Error> {
    match r {
        Some(r) if r.visible_to_all() || authz.allows(&target(&r.meta().project_id)) => Ok(r),
        _ => {
            // A missing resource is decided without a target; mark the
            // check as done so the pipeline lets the 404 through.
            authz.allows(&Target::default());
            Err(not_found(what, id))
        }
    }
}

/// Neutron's not-found message: `Network 1234 could not be found.`
pub fn not_found(what: &str, id: &str) -> Error {
    Error::NotFound(format!("{what} {id} could not be found."))
}

/// For changes: readable (else 404), then the operation's rule on the
/// resource's project (else 403).
pub fn writable<R: Resource>(
    r: Option<R>,
    ctx: &RequestContext,
    authz: &Authz,
    what: &str,
    id: &str,
) -> Result<R, ApiError> {
    let r = match r {
        Some(r) if r.visible_to_all() || can_see_project(ctx, &r.meta().project_id) => r,
        _ => {
            authz.allows(&Target::default());
            return Err(not_found(what, id).into());
        }
    };
    authz.check(&target(&r.meta().project_id))?;
    Ok(r)
}

/// True when the caller reads `project_id`'s resources.
pub fn can_see_project(ctx: &RequestContext, project_id: &str) -> bool {
    is_admin(ctx)
        || (ctx.is_system() && ctx.has_role("reader"))
        || ctx.project_id() == Some(project_id)
}

/// The project a new resource belongs to: the one named in the body (then
/// the rule decides whether the caller may create there) or the token's.
pub fn owner_project(
    ctx: &RequestContext,
    authz: &Authz,
    project_id: Option<String>,
    tenant_id: Option<String>,
) -> Result<String, ApiError> {
    let project = project_id
        .or(tenant_id)
        .or_else(|| ctx.project_id().map(str::to_owned))
        .ok_or_else(|| {
            Error::BadRequest("Invalid input: project_id is required with this token.".into())
        })?;
    authz.check(&target(&project))?;
    Ok(project)
}

/// An extra rule inside an operation (creating shared networks, choosing
/// a MAC address, …): 403 naming it unless the caller passes.
pub fn require(ctx: &RequestContext, op: &Operation) -> Result<(), Error> {
    match decide(op.rule, Some(ctx), None) {
        Decision::Allow => Ok(()),
        _ => Err(himmel_http::pipeline::forbidden(op.name)),
    }
}
