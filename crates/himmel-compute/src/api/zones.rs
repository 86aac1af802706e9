//! `/os-availability-zone`: the region's one zone; administrators see its
//! host and the compute service on it.

use axum::extract::State;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_http::{Json, Pipeline};
use serde_json::{json, Value};

use super::wire;
use crate::model::AVAILABILITY_ZONE;
use crate::policy::*;
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/os-availability-zone",
            p.on(&SERVICE, &LIST_ZONES, MethodFilter::GET, list),
        )
        .route(
            "/os-availability-zone/detail",
            p.on(&SERVICE, &LIST_ZONES_DETAIL, MethodFilter::GET, detail),
        )
}

async fn list() -> Json<Value> {
    Json(json!({"availabilityZoneInfo": [
        {"zoneName": AVAILABILITY_ZONE, "zoneState": {"available": true}, "hosts": null},
    ]}))
}

async fn detail(State(s): State<ComputeService>) -> Json<Value> {
    let host = &s.config().host;
    let service = json!({"available": true, "active": true, "updated_at": wire::now()});
    Json(json!({"availabilityZoneInfo": [
        {"zoneName": AVAILABILITY_ZONE, "zoneState": {"available": true},
         "hosts": {host.as_str(): {"nova-compute": service}}},
    ]}))
}
