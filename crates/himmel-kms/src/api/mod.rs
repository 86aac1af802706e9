//! The Key Manager (Barbican v1) API, one module per resource, under
//! `/key-manager` on the region's API listener.

mod acls;
mod containers;
mod metadata;
mod orders;
mod secrets;
mod versions;
mod wire;

use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::{ApiError, Authz, Pipeline, Target};

use crate::policy::{METHOD_NOT_ALLOWED, SERVICE, UNKNOWN_PATH};
use crate::secrets::content::MAX_REQUEST_BYTES;
use crate::secrets::KeyManager;

/// Where the service lives on the API listener.
pub const PREFIX: &str = "/key-manager";

/// Every Key Manager route, guarded by the pipeline.
pub fn routes(p: &Pipeline, km: KeyManager) -> Router {
    let mut router = Router::new();
    for (path, route) in versions::routes(p)
        .into_iter()
        .chain(secrets::routes(p))
        .chain(metadata::routes(p))
        .chain(acls::routes(p))
        .chain(containers::routes(p))
        .chain(orders::routes(p))
    {
        // Clients add a trailing slash to some paths (barbicanclient does
        // on every POST), so each path answers with and without one.
        let path = format!("{PREFIX}{path}");
        let trimmed = path.trim_end_matches('/');
        // Other methods on a known path: 405 in Barbican's body, audited.
        let route = route.fallback_service(p.on::<_, _, ()>(
            &SERVICE,
            &METHOD_NOT_ALLOWED,
            any_method(),
            method_not_allowed,
        ));
        router = router
            .route(&format!("{trimmed}/"), route.clone())
            .route(trimmed, route);
    }
    router
        .route(
            &format!("{PREFIX}/{{*rest}}"),
            p.on(&SERVICE, &UNKNOWN_PATH, any_method(), unknown_path),
        )
        // Barbican's max_allowed_request_size_in_bytes.
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(km)
}

type Routes = Vec<(&'static str, MethodRouter<KeyManager>)>;

fn any_method() -> MethodFilter {
    use MethodFilter as M;
    [M::POST, M::PUT, M::PATCH, M::DELETE, M::HEAD, M::OPTIONS]
        .into_iter()
        .fold(M::GET, MethodFilter::or)
}

async fn method_not_allowed() -> ApiError {
    ApiError(Error::MethodNotAllowed(
        "The method is not allowed for the requested URL.".into(),
    ))
}

async fn unknown_path() -> ApiError {
    ApiError(Error::NotFound("The resource could not be found.".into()))
}

/// The base URL of the service as the client reached it, for `*_ref`s.
pub(crate) fn service_url(headers: &axum::http::HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    format!(
        "{}://{}{PREFIX}",
        header("x-forwarded-proto").unwrap_or("http"),
        header("host").unwrap_or("localhost")
    )
}

/// For collection operations (create, list): the caller's own project,
/// after the pipeline's project rule has passed on it.
pub(crate) fn own_project(ctx: &RequestContext, authz: &Authz) -> Result<String, ApiError> {
    let project = ctx
        .project_id()
        .ok_or_else(|| Error::Forbidden("A project-scoped token is required.".into()))?
        .to_owned();
    authz.check(&Target {
        project_id: Some(project.clone()),
        ..Default::default()
    })?;
    Ok(project)
}
