//! Version discovery: `/key-manager/` lists the one version, v1, without
//! microversions (clients then speak 1.0).

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use himmel_http::Pipeline;
use serde_json::{json, Value};

use super::{service_url, Routes};
use crate::policy::{SERVICE, VERSIONS};

pub fn routes(p: &Pipeline) -> Routes {
    vec![
        ("", p.on(&SERVICE, &VERSIONS, MethodFilter::GET, list)),
        ("/v1", p.on(&SERVICE, &VERSIONS, MethodFilter::GET, show)),
    ]
}

fn v1(headers: &HeaderMap) -> Value {
    json!({
        "id": "v1",
        "status": "stable",
        "updated": "2015-04-28T00:00:00Z",
        "links": [
            {"rel": "self", "href": format!("{}/v1/", service_url(headers))},
            {"rel": "describedby", "type": "text/html",
             "href": "https://docs.openstack.org/barbican/latest/api/"}
        ],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.key-manager-v1+json"
        }]
    })
}

async fn list(headers: HeaderMap) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(json!({"versions": {"values": [v1(&headers)]}})),
    )
        .into_response()
}

async fn show(headers: HeaderMap) -> Response {
    axum::Json(json!({"version": v1(&headers)})).into_response()
}
