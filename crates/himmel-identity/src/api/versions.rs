//! Version discovery: `/` and `/v3`.

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_http::Pipeline;
use serde_json::{json, Value};

use crate::policy::{SERVICE, VERSIONS};
use crate::Identity;

fn v3(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

async fn root(headers: HeaderMap) -> impl IntoResponse {
    let base = super::base_url(&headers);
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(json!({"versions": {"values": [v3(&base)]}})),
    )
}

async fn version(headers: HeaderMap) -> impl IntoResponse {
    axum::Json(json!({"version": v3(&super::base_url(&headers))}))
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    Router::new()
        .route("/", p.on(&SERVICE, &VERSIONS, MethodFilter::GET, root))
        .route("/v3", p.on(&SERVICE, &VERSIONS, MethodFilter::GET, version))
        .route(
            "/v3/",
            p.on(&SERVICE, &VERSIONS, MethodFilter::GET, version),
        )
}
