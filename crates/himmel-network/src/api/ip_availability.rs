//! `/v2.0/network-ip-availabilities`: how many addresses each network and
//! subnet has and uses (administrators).

use axum::extract::{Path, RawQuery, State};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Json, Pipeline};
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::access;
use super::list::{self, ListQuery};
use crate::addr;
use crate::model::{Network, Subnet};
use crate::policy::*;
use crate::store::{self, db_err, ipam, Visibility};
use crate::NetworkService;

pub fn routes(p: &Pipeline) -> Router<NetworkService> {
    Router::new()
        .route(
            "/v2.0/network-ip-availabilities",
            p.on(&SERVICE, &GET_IP_AVAILABILITY, MethodFilter::GET, list_all),
        )
        .route(
            "/v2.0/network-ip-availabilities/{id}",
            p.on(&SERVICE, &GET_IP_AVAILABILITY, MethodFilter::GET, show),
        )
}

async fn availability(conn: &mut AnyConnection, n: &Network) -> Result<Value, Error> {
    let subnets: Vec<Subnet> = store::children(conn, &n.meta.id).await?;
    let (mut total, mut used) = (0u64, 0u64);
    let mut per_subnet = Vec::new();
    for sub in &subnets {
        let size = addr::parse_subnet_cidr(&sub.cidr)
            .and_then(|net| addr::pool_ranges(&net, &sub.allocation_pools))
            .map(|r| addr::pool_size(&r))
            .unwrap_or(0);
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        let in_use = u64::try_from(ipam::used_count(conn, &sub.meta.id).await?).unwrap_or(0);
        total = total.saturating_add(size);
        used += in_use;
        per_subnet.push(json!({
            "subnet_id": sub.meta.id, "subnet_name": sub.name, "cidr": sub.cidr,
            "ip_version": sub.ip_version, "total_ips": size, "used_ips": in_use,
        }));
    }
    Ok(json!({
        "network_id": n.meta.id, "network_name": n.name,
        "project_id": n.meta.project_id, "tenant_id": n.meta.project_id,
        "total_ips": total, "used_ips": used, "subnet_ip_availability": per_subnet,
    }))
}

async fn list_all(
    State(s): State<NetworkService>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let networks: Vec<Network> = store::list(&mut conn, &Visibility::All).await?;
    let mut items = Vec::with_capacity(networks.len());
    for n in &networks {
        items.push(availability(&mut conn, n).await?);
    }
    // Filters name the network by network_id/network_name; list works on "id".
    let q = ListQuery::parse(raw.as_deref());
    let v = list::respond("network_ip_availabilities", items, &q, "")?;
    Ok(Json(v))
}

async fn show(State(s): State<NetworkService>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let n = store::get::<Network>(&mut conn, &id)
        .await?
        .ok_or_else(|| access::not_found("Network", &id))?;
    Ok(Json(
        json!({"network_ip_availability": availability(&mut conn, &n).await?}),
    ))
}
