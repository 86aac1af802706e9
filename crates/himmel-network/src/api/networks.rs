//! `/v2.0/networks`.

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::access::{self, is_admin};
use super::list::{self, ListQuery};
use super::wire::{self, check_if_match};
use super::{subnets, tags};
use crate::model::{self, Meta, Network, Port, Resource, Subnet};
use crate::policy::*;
use crate::store::{self, db_err, ipam, quota, segments};
use crate::NetworkService;

/// MTU of a VXLAN network on a 1500-byte underlay (50 bytes of headers).
pub const VXLAN_MTU: i64 = 1450;
pub const FLAT_MTU: i64 = 1500;
/// The physical network external (flat) networks sit on.
pub const EXTERNAL_PHYSNET: &str = "external";

pub fn routes(p: &Pipeline) -> Router<NetworkService> {
    Router::new()
        .route(
            "/v2.0/networks",
            p.on(&SERVICE, &GET_NETWORK, MethodFilter::GET, list_networks)
                .merge(p.on(&SERVICE, &CREATE_NETWORK, MethodFilter::POST, create)),
        )
        .route(
            "/v2.0/networks/{id}",
            p.on(&SERVICE, &GET_NETWORK, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_NETWORK, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_NETWORK, MethodFilter::DELETE, delete)),
        )
        .merge(tags::routes::<Network>(
            p,
            "networks",
            &GET_NETWORK,
            &UPDATE_NETWORK,
            "Network",
        ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateNetwork {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    admin_state_up: Option<bool>,
    shared: Option<bool>,
    #[serde(rename = "router:external")]
    external: Option<bool>,
    mtu: Option<i64>,
    port_security_enabled: Option<bool>,
    #[serde(default)]
    availability_zone_hints: Vec<String>,
    #[serde(rename = "provider:network_type")]
    network_type: Option<String>,
    #[serde(rename = "provider:physical_network")]
    physical_network: Option<String>,
    #[serde(rename = "provider:segmentation_id")]
    segmentation_id: Option<i64>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateNetwork {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    shared: Option<bool>,
    #[serde(rename = "router:external")]
    external: Option<bool>,
    mtu: Option<i64>,
    port_security_enabled: Option<bool>,
}

/// The wire form: stored fields plus the computed ones; provider
/// attributes only for administrators.
pub fn render(n: &Network, subnet_ids: Vec<String>, ctx: &RequestContext) -> Result<Value, Error> {
    let mut m = wire::to_object(n)?;
    m.insert("subnets".into(), json!(subnet_ids));
    m.insert(
        "availability_zones".into(),
        json!([model::AVAILABILITY_ZONE]),
    );
    m.insert("ipv4_address_scope".into(), Value::Null);
    m.insert("ipv6_address_scope".into(), Value::Null);
    m.insert("is_default".into(), json!(false));
    m.insert("l2_adjacency".into(), json!(true));
    if !is_admin(ctx) {
        m.retain(|k, _| !k.starts_with("provider:"));
    }
    Ok(Value::Object(m))
}

async fn subnet_ids_of(conn: &mut AnyConnection, network_id: &str) -> Result<Vec<String>, Error> {
    Ok(store::children::<Subnet>(conn, network_id)
        .await?
        .into_iter()
        .map(|s| s.meta.id)
        .collect())
}

async fn list_networks(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let visibility = access::visibility(&ctx, &authz)?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let networks: Vec<Network> = store::list(&mut conn, &visibility).await?;
    let mut subnets_by_net: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (parent, id) in store::parent_ids(&mut conn, Subnet::KIND).await? {
        subnets_by_net.entry(parent).or_default().push(id);
    }
    let items = networks
        .iter()
        .map(|n| {
            render(
                n,
                subnets_by_net.remove(&n.meta.id).unwrap_or_default(),
                &ctx,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let q = ListQuery::parse(raw.as_deref());
    let self_url = format!("{}{}", wire::base_url(&headers), uri.path());
    Ok(Json(list::respond("networks", items, &q, &self_url)?))
}

async fn show(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let n = access::readable(
        store::get::<Network>(&mut conn, &id).await?,
        &authz,
        "Network",
        &id,
    )?;
    let subnets = subnet_ids_of(&mut conn, &id).await?;
    let v = render(&n, subnets, &ctx)?;
    Ok(wire::one(
        "network",
        list::project_fields(v, &ListQuery::parse(raw.as_deref())),
    ))
}

fn check_mtu(mtu: i64, max: i64) -> Result<(), Error> {
    if mtu < 68 || mtu > max {
        return Err(Error::BadRequest(format!(
            "Invalid input for operation: Requested MTU is {mtu}, it must be between 68 and {max}."
        )));
    }
    Ok(())
}

/// `POST /v2.0/networks`, one network or a bulk list in one transaction.
async fn create(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let request = wire::create_request(body, "network", "networks")?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut made = Vec::with_capacity(request.items.len());
    for item in request.items {
        let n = create_one(&mut tx, &ctx, &authz, item).await?;
        made.push((n.meta.id.clone(), render(&n, vec![], &ctx)?));
    }
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::created_all(request.bulk, "network", "networks", made))
}

async fn create_one(
    tx: &mut AnyConnection,
    ctx: &RequestContext,
    authz: &Authz,
    item: Value,
) -> ApiResult<Network> {
    let req: CreateNetwork = wire::item(item)?;
    let project = access::owner_project(ctx, authz, req.project_id, req.tenant_id)?;
    wire::check_len("name", &req.name)?;
    wire::check_len("description", &req.description)?;
    let shared = req.shared.unwrap_or(false);
    let external = req.external.unwrap_or(false);
    let provider = req.network_type.is_some()
        || req.physical_network.is_some()
        || req.segmentation_id.is_some();
    if shared || external || provider {
        access::require(ctx, &CREATE_NETWORK_PRIVILEGED)?;
    }
    for zone in &req.availability_zone_hints {
        if zone != model::AVAILABILITY_ZONE {
            return Err(
                Error::NotFound(format!("AvailabilityZone {zone} could not be found.")).into(),
            );
        }
    }
    let network_type = req
        .network_type
        .clone()
        .unwrap_or_else(|| if external { "flat" } else { "vxlan" }.to_string());
    let max_mtu = match network_type.as_str() {
        "vxlan" => VXLAN_MTU,
        "flat" => FLAT_MTU,
        other => {
            return Err(Error::BadRequest(format!(
                "Invalid input for operation: network_type value '{other}' not supported."
            ))
            .into())
        }
    };
    let mtu = req.mtu.unwrap_or(max_mtu);
    check_mtu(mtu, max_mtu)?;
    let physical_network = match network_type.as_str() {
        "flat" => Some(
            req.physical_network
                .unwrap_or_else(|| EXTERNAL_PHYSNET.into()),
        ),
        _ if req.physical_network.is_some() => return Err(Error::BadRequest(
            "Invalid input for operation: provider:physical_network specified for VXLAN network."
                .into(),
        )
        .into()),
        _ => None,
    };
    if network_type == "flat" && req.segmentation_id.is_some() {
        return Err(Error::BadRequest(
            "Invalid input for operation: segmentation_id specified for flat network.".into(),
        )
        .into());
    }
    if let Some(vni) = req.segmentation_id {
        if !(1..=segments::MAX_VNI).contains(&vni) {
            return Err(Error::BadRequest(format!(
                "Invalid input for operation: {vni} is not a valid VXLAN VNI."
            ))
            .into());
        }
    }
    let tags = req.tags.unwrap_or_default();
    for t in &tags {
        wire::check_tag(t)?;
    }

    let mut n = Network {
        meta: Meta {
            project_id: project.clone(),
            description: req.description,
            tags,
            ..Default::default()
        },
        name: req.name,
        admin_state_up: req.admin_state_up.unwrap_or(true),
        status: model::STATUS_ACTIVE.into(),
        shared,
        external,
        mtu,
        port_security_enabled: req.port_security_enabled.unwrap_or(true),
        availability_zone_hints: req.availability_zone_hints,
        network_type: network_type.clone(),
        physical_network,
        segmentation_id: None,
    };
    store::stamp_new(&mut n.meta);
    quota::check(tx, &project, "network", 1).await?;
    if network_type == "vxlan" {
        n.segmentation_id = Some(match req.segmentation_id {
            Some(vni) => {
                segments::reserve(tx, vni, &n.meta.id).await?;
                vni
            }
            None => segments::allocate(tx, &n.meta.id).await?,
        });
    }
    store::insert(tx, &n, || "Network already exists.".into()).await?;
    Ok(n)
}

async fn update(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: UpdateNetwork = wire::body(body, "network")?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut n = access::writable(
        store::get::<Network>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Network",
        &id,
    )?;
    check_if_match(&headers, &n.meta)?;
    if req.shared.is_some_and(|v| v != n.shared) || req.external.is_some_and(|v| v != n.external) {
        access::require(&ctx, &CREATE_NETWORK_PRIVILEGED)?;
    }
    if let Some(v) = req.name {
        wire::check_len("name", &v)?;
        n.name = v;
    }
    if let Some(v) = req.description {
        wire::check_len("description", &v)?;
        n.meta.description = v;
    }
    if let Some(v) = req.admin_state_up {
        n.admin_state_up = v;
    }
    if let Some(v) = req.mtu {
        check_mtu(
            v,
            if n.network_type == "flat" {
                FLAT_MTU
            } else {
                VXLAN_MTU
            },
        )?;
        n.mtu = v;
    }
    if let Some(v) = req.port_security_enabled {
        n.port_security_enabled = v;
    }
    let was_visible = n.visible_to_all();
    if let Some(v) = req.shared {
        n.shared = v;
    }
    if let Some(v) = req.external {
        if !v && n.external {
            let fips: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM net_resources WHERE kind = 'floatingip' AND parent_id = $1",
            )
            .bind(&n.meta.id)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
            if fips > 0 {
                return Err(Error::Conflict(format!(
                    "Unable to complete operation on network {id}. There are one or more floating IPs in use on the network."
                ))
                .into());
            }
        }
        n.external = v;
    }
    store::update(&mut tx, &mut n).await?;
    if n.visible_to_all() != was_visible {
        for mut sub in store::children::<Subnet>(&mut tx, &id).await? {
            sub.network_visible_to_all = n.visible_to_all();
            store::update(&mut tx, &mut sub).await?;
        }
    }
    let subnets = subnet_ids_of(&mut tx, &id).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::one("network", render(&n, subnets, &ctx)?))
}

async fn delete(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let n = access::writable(
        store::get::<Network>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Network",
        &id,
    )?;
    check_if_match(&headers, &n.meta)?;
    let ports: Vec<Port> = store::children(&mut tx, &id).await?;
    let in_use = || {
        Error::Conflict(format!(
            "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
        ))
    };
    if ports.iter().any(|p| p.device_owner != model::OWNER_DHCP) {
        return Err(in_use().into());
    }
    // Floating IPs hold addresses of an external network without a port.
    let dhcp_ids: Vec<&str> = ports.iter().map(|p| p.meta.id.as_str()).collect();
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT owner_id FROM net_ip_allocations WHERE network_id = $1",
    )
    .bind(&id)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    if owners.iter().any(|o| !dhcp_ids.contains(&o.as_str())) {
        return Err(in_use().into());
    }
    for p in &ports {
        ipam::release_owner(&mut tx, &p.meta.id).await?;
        store::delete(&mut tx, Port::KIND, &p.meta.id).await?;
    }
    for sub in store::children::<Subnet>(&mut tx, &id).await? {
        subnets::delete_rows(&mut tx, &sub).await?;
    }
    segments::release(&mut tx, &id).await?;
    store::delete(&mut tx, Network::KIND, &id).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::no_content())
}
