//! `/os-tenant-networks`: Nova's deprecated view of the networks a project
//! can use, read from the network service (what its own network list shows
//! the caller). Only the reads are left in Nova; creating and deleting went
//! with nova-network.

use axum::extract::{Path, State};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use himmel_network::instance_ports;
use himmel_network::model::Network;
use serde_json::{json, Value};

use super::wire;
use crate::policy::*;
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/os-tenant-networks",
            p.on(&SERVICE, &LIST_TENANT_NETWORKS, MethodFilter::GET, list),
        )
        .route(
            "/os-tenant-networks/{id}",
            p.on(&SERVICE, &GET_TENANT_NETWORK, MethodFilter::GET, show),
        )
}

/// Nova's shape. A Neutron network has no single CIDR, and Nova has
/// answered the string "None" for it ever since it used Neutron; clients
/// and Tempest's schema expect exactly that.
fn render(n: &Network) -> Value {
    json!({"id": n.meta.id, "cidr": "None", "label": n.name})
}

async fn list(State(s): State<ComputeService>, ctx: Ctx, authz: Authz) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    let networks = instance_ports::visible_networks(s.network(), caller).await?;
    Ok(Json(
        json!({"networks": networks.iter().map(render).collect::<Vec<_>>()}),
    ))
}

async fn show(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    match instance_ports::visible_network(s.network(), caller, &id).await? {
        Some(n) => Ok(Json(json!({"network": render(&n)}))),
        None => Err(Error::NotFound("Network not found".into()).into()),
    }
}
