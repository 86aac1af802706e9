//! Glance v2 routes under [`crate::PATH_PREFIX`], one module per resource.

mod data;
mod images;
pub(crate) mod list;
mod members;
mod schemas;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::policy::decide;
use himmel_http::{Decision, Json, Operation, Pipeline, Target};
use serde_json::{json, Value};

use crate::policy::*;
use crate::ImageService;

/// Every image route, guarded by the pipeline, under `/image`.
pub fn routes(p: &Pipeline, service: ImageService) -> Router {
    let api = Router::new()
        .route("/", p.on(&SERVICE, &VERSIONS, MethodFilter::GET, versions))
        .route(
            "/versions",
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, versions_ok),
        )
        .merge(images::routes(p))
        .merge(data::routes(p))
        .merge(members::routes(p))
        .merge(schemas::routes(p))
        .fallback(p.on(&SERVICE, &UNKNOWN_PATH, any_method(), unknown_path))
        .with_state(service);
    // The nested "/" answers `/image`; `/image/` needs its own route.
    Router::new()
        .route(
            &format!("{}/", crate::PATH_PREFIX),
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, versions),
        )
        .nest(crate::PATH_PREFIX, api)
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
    himmel_http::ApiError(Error::NotFound("The resource could not be found.".into()))
}

/// `scheme://host` the client used.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    format!(
        "{}://{}{}",
        header("x-forwarded-proto").unwrap_or("http"),
        header("host").unwrap_or("localhost"),
        crate::PATH_PREFIX
    )
}

/// The API minor versions this service implements fully: up to 2.7
/// (image import, hidden images, multiple hash algorithms), without the
/// multi-store and cache APIs of later minors.
const VERSIONS_LIST: &[&str] = &["2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0"];

fn versions_body(headers: &HeaderMap) -> Value {
    let href = format!("{}/v2/", base_url(headers));
    let list: Vec<Value> = VERSIONS_LIST
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({
                "id": format!("v{v}"),
                "status": if i == 0 { "CURRENT" } else { "SUPPORTED" },
                "links": [{"rel": "self", "href": href}],
            })
        })
        .collect();
    json!({ "versions": list })
}

/// Glance answers its root with 300 Multiple Choices.
async fn versions(headers: HeaderMap) -> Response {
    (StatusCode::MULTIPLE_CHOICES, Json(versions_body(&headers))).into_response()
}

async fn versions_ok(headers: HeaderMap) -> Json<Value> {
    Json(versions_body(&headers))
}

/// True when `op`'s rule allows the caller on `target` (for the
/// attribute-level rules: publicize, set owner).
pub(crate) fn allowed(op: &Operation, ctx: &RequestContext, target: &Target) -> bool {
    decide(op.rule, Some(ctx), Some(target)) == Decision::Allow
}

pub(crate) fn forbidden(op: &Operation) -> Error {
    himmel_http::pipeline::forbidden(op.name)
}
