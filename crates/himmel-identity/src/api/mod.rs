//! Keystone v3 routes, one module per resource.

mod application_credentials;
mod assignments;
mod auth;
mod catalog;
mod credentials;
mod domains;
mod groups;
mod projects;
mod roles;
mod users;
mod versions;
mod wire;

use axum::routing::MethodFilter;
use axum::Router;
use himmel_http::Pipeline;

use crate::Identity;

/// Every identity route, guarded by the pipeline.
pub fn routes(p: &Pipeline, identity: Identity) -> Router {
    Router::new()
        .merge(versions::routes(p))
        .merge(auth::routes(p))
        .merge(domains::routes(p))
        .merge(projects::routes(p))
        .merge(users::routes(p))
        .merge(groups::routes(p))
        .merge(roles::routes(p))
        .merge(assignments::routes(p))
        .merge(catalog::routes(p))
        .merge(credentials::routes(p))
        .merge(application_credentials::routes(p))
        .fallback(p.on(
            &crate::policy::SERVICE,
            &crate::policy::UNKNOWN_PATH,
            any_method(),
            unknown_path,
        ))
        .with_state(identity)
}

fn any_method() -> MethodFilter {
    use MethodFilter as M;
    [
        M::POST,
        M::PUT,
        M::PATCH,
        M::DELETE,
        M::HEAD,
        M::OPTIONS,
        M::TRACE,
        M::CONNECT,
    ]
    .into_iter()
    .fold(M::GET, MethodFilter::or)
}

async fn unknown_path() -> himmel_http::ApiError {
    himmel_http::ApiError(himmel_core::Error::NotFound(
        "The resource could not be found.".into(),
    ))
}

/// The base URL clients used to reach us, for links.
pub(crate) fn base_url(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{proto}://{host}")
}
