//! Nova v2.1 routes, one module per resource, all under
//! [`crate::PATH_PREFIX`]`/v2.1` (and the legacy `/v2`), behind the
//! microversion negotiation.

mod aggregates;
mod flavors;
mod floating_ip_actions;
mod floating_ips_proxy;
mod hosts;
mod images_proxy;
mod keypairs;
pub mod microversion;
mod quotas;
mod security_groups_proxy;
mod server_actions;
mod server_create;
mod server_extras;
mod server_groups;
mod servers;
mod tenant_networks;
mod wire;
mod zones;

use axum::http::HeaderMap;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_http::{Json, Pipeline};
use serde_json::{json, Value};

pub(crate) use server_create::release_ports;

use crate::policy::*;
use crate::ComputeService;

/// Every compute route, guarded by the pipeline, under `/compute`.
pub fn routes(p: &Pipeline, service: ComputeService) -> Router {
    let v21 = Router::new()
        .merge(aggregates::routes(p))
        .merge(flavors::routes(p))
        .merge(floating_ips_proxy::routes(p))
        .merge(images_proxy::routes(p))
        .merge(keypairs::routes(p))
        .merge(quotas::routes(p))
        .merge(zones::routes(p))
        .merge(servers::routes(p))
        .merge(server_actions::routes(p))
        .merge(server_extras::routes(p))
        .merge(server_groups::routes(p))
        .merge(security_groups_proxy::routes(p))
        .merge(tenant_networks::routes(p))
        .merge(hosts::routes(p));
    let api = Router::new()
        .route("/", p.on(&SERVICE, &VERSIONS, MethodFilter::GET, versions))
        .route(
            "/v2.1",
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, version),
        )
        .route(
            "/v2.1/",
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, version),
        )
        .route(
            "/v2",
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, legacy_version),
        )
        .route(
            "/v2/",
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, legacy_version),
        )
        // Nova's legacy v2 endpoint is the v2.1 code without microversions.
        .nest("/v2", v21.clone())
        .nest("/v2.1", v21)
        .fallback(p.on(&SERVICE, &UNKNOWN_PATH, any_method(), unknown_path))
        .with_state(service.clone())
        .layer(axum::middleware::from_fn(microversion::negotiate));
    // The nested "/" answers `/compute`; `/compute/` needs its own route.
    Router::new()
        .route(
            &format!("{}/", crate::PATH_PREFIX),
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, versions),
        )
        .nest(crate::PATH_PREFIX, api)
        .merge(crate::placement::routes(p, service))
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

fn version_body(headers: &HeaderMap) -> Value {
    let href = format!("{}/", wire::api_url(headers));
    json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": format!("2.{}", microversion::MAX),
        "min_version": format!("2.{}", microversion::MIN),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": href}],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.compute+json;version=2.1",
        }],
    })
}

/// The legacy v2.0 API: listed first, as Nova does, and served by the
/// same handlers at microversion 2.1.
fn legacy_version_body(headers: &HeaderMap) -> Value {
    let href = format!("{}{}/v2/", wire::base_url(headers), crate::PATH_PREFIX);
    json!({
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": href}],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.compute+json;version=2",
        }],
    })
}

async fn versions(headers: HeaderMap) -> Json<Value> {
    Json(json!({"versions": [legacy_version_body(&headers), version_body(&headers)]}))
}

async fn legacy_version(headers: HeaderMap) -> Json<Value> {
    Json(json!({"version": legacy_version_body(&headers)}))
}

async fn version(headers: HeaderMap) -> Json<Value> {
    Json(json!({"version": version_body(&headers)}))
}
