//! `/v2.0/routers`: a router joins tenant subnets (an interface port per
//! subnet holding its gateway address), may have a gateway on an external
//! network (with SNAT on or off) and static routes.

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router as AxumRouter;
use himmel_core::{Error, RequestContext};
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::access;
use super::list::{self, ListQuery};
use super::ports::{self, FixedIpRequest};
use super::tags;
use super::wire::{self, check_if_match};
use crate::addr;
use crate::model::{
    self, ExternalGateway, FixedIp, FloatingIp, HostRoute, Meta, Network, Port, Resource, Router,
    Subnet,
};
use crate::policy::*;
use crate::store::{self, db_err, ipam, quota, Visibility};
use crate::NetworkService;

/// Neutron's default limit on static routes per router.
const MAX_ROUTES: usize = 30;

pub fn routes(p: &Pipeline) -> AxumRouter<NetworkService> {
    AxumRouter::new()
        .route(
            "/v2.0/routers",
            p.on(&SERVICE, &GET_ROUTER, MethodFilter::GET, list_routers)
                .merge(p.on(&SERVICE, &CREATE_ROUTER, MethodFilter::POST, create)),
        )
        .route(
            "/v2.0/routers/{id}",
            p.on(&SERVICE, &GET_ROUTER, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_ROUTER, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_ROUTER, MethodFilter::DELETE, delete)),
        )
        .route(
            "/v2.0/routers/{id}/add_router_interface",
            p.on(
                &SERVICE,
                &ADD_ROUTER_INTERFACE,
                MethodFilter::PUT,
                add_interface,
            ),
        )
        .route(
            "/v2.0/routers/{id}/remove_router_interface",
            p.on(
                &SERVICE,
                &REMOVE_ROUTER_INTERFACE,
                MethodFilter::PUT,
                remove_interface,
            ),
        )
        .merge(tags::routes::<Router>(
            p,
            "routers",
            &GET_ROUTER,
            &UPDATE_ROUTER,
            "Router",
        ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GatewayRequest {
    network_id: Option<String>,
    enable_snat: Option<bool>,
    external_fixed_ips: Option<Vec<FixedIpRequest>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRouter {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    admin_state_up: Option<bool>,
    external_gateway_info: Option<GatewayRequest>,
    #[serde(default)]
    availability_zone_hints: Vec<String>,
    distributed: Option<bool>,
    ha: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRouter {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    #[serde(default, deserialize_with = "wire::nullable")]
    external_gateway_info: Option<Option<GatewayRequest>>,
    #[serde(default, deserialize_with = "wire::nullable")]
    routes: Option<Option<Vec<HostRoute>>>,
    distributed: Option<bool>,
    ha: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceRequest {
    subnet_id: Option<String>,
    port_id: Option<String>,
}

fn bad(msg: String) -> Error {
    Error::BadRequest(msg)
}

fn render(r: &Router) -> Result<Value, Error> {
    let mut m = wire::to_object(r)?;
    m.insert(
        "availability_zones".into(),
        json!([model::AVAILABILITY_ZONE]),
    );
    m.insert("distributed".into(), json!(false));
    m.insert("ha".into(), json!(false));
    m.insert("flavor_id".into(), Value::Null);
    Ok(Value::Object(m))
}

fn no_dvr_or_ha(distributed: Option<bool>, ha: Option<bool>) -> Result<(), Error> {
    if distributed == Some(true) || ha == Some(true) {
        return Err(bad(
            "Invalid input for operation: distributed and HA routers are not supported.".into(),
        ));
    }
    Ok(())
}

/// The interface ports of a router.
async fn interfaces(conn: &mut AnyConnection, router_id: &str) -> Result<Vec<Port>, Error> {
    let ports: Vec<Port> = store::list(conn, &Visibility::All).await?;
    Ok(ports
        .into_iter()
        .filter(|p| p.device_id == router_id && p.device_owner == model::OWNER_ROUTER_INTERFACE)
        .collect())
}

async fn gateway_port(conn: &mut AnyConnection, router_id: &str) -> Result<Option<Port>, Error> {
    let ports: Vec<Port> = store::list(conn, &Visibility::All).await?;
    Ok(ports
        .into_iter()
        .find(|p| p.device_id == router_id && p.device_owner == model::OWNER_ROUTER_GATEWAY))
}

async fn floating_ips_via(
    conn: &mut AnyConnection,
    router_id: &str,
) -> Result<Vec<FloatingIp>, Error> {
    let fips: Vec<FloatingIp> = store::list(conn, &Visibility::All).await?;
    Ok(fips
        .into_iter()
        .filter(|f| f.router_id.as_deref() == Some(router_id))
        .collect())
}

async fn list_routers(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let visibility = access::visibility(&ctx, &authz)?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let routers: Vec<Router> = store::list(&mut conn, &visibility).await?;
    let items = routers.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    let q = ListQuery::parse(raw.as_deref());
    let self_url = format!("{}{}", wire::base_url(&headers), uri.path());
    Ok(Json(list::respond("routers", items, &q, &self_url)?))
}

async fn show(
    State(s): State<NetworkService>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let r = access::readable(
        store::get::<Router>(&mut conn, &id).await?,
        &authz,
        "Router",
        &id,
    )?;
    let v = render(&r)?;
    Ok(wire::one(
        "router",
        list::project_fields(v, &ListQuery::parse(raw.as_deref())),
    ))
}

/// Sets, changes or clears (`None`, or no network) a router's gateway.
async fn set_gateway(
    conn: &mut AnyConnection,
    ctx: &RequestContext,
    router: &mut Router,
    req: Option<GatewayRequest>,
) -> Result<(), Error> {
    let req = req.unwrap_or_default();
    if req.enable_snat.is_some() || req.external_fixed_ips.is_some() {
        access::require(ctx, &ROUTER_GATEWAY_PRIVILEGED)?;
    }
    let current = router.external_gateway_info.clone();
    let Some(network_id) = req.network_id else {
        if current.is_some() {
            if !floating_ips_via(conn, &router.meta.id).await?.is_empty() {
                return Err(Error::Conflict(format!(
                    "Gateway cannot be updated for router {}, since a gateway to an external network is required by one or more floating IPs.",
                    router.meta.id
                )));
            }
            if let Some(port) = gateway_port(conn, &router.meta.id).await? {
                ports::delete_rows(conn, &port).await?;
            }
        }
        router.external_gateway_info = None;
        return Ok(());
    };
    let network = store::get::<Network>(conn, &network_id)
        .await?
        .ok_or_else(|| access::not_found("Network", &network_id))?;
    if !network.external {
        return Err(bad(format!(
            "Bad router request: Network {network_id} is not an external network."
        )));
    }
    let enable_snat = req
        .enable_snat
        .or(current.as_ref().map(|g| g.enable_snat))
        .unwrap_or(true);
    let same_network = current.as_ref().is_some_and(|g| g.network_id == network_id);
    if same_network && req.external_fixed_ips.is_none() {
        if let Some(g) = router.external_gateway_info.as_mut() {
            g.enable_snat = enable_snat;
        }
        return Ok(());
    }
    if !same_network && !floating_ips_via(conn, &router.meta.id).await?.is_empty() {
        return Err(Error::Conflict(format!(
            "Gateway cannot be updated for router {}, since a gateway to an external network is required by one or more floating IPs.",
            router.meta.id
        )));
    }
    if let Some(port) = gateway_port(conn, &router.meta.id).await? {
        ports::delete_rows(conn, &port).await?;
    }
    let mut port =
        ports::network_owned_port(&network, model::OWNER_ROUTER_GATEWAY, &router.meta.id);
    // Gateway ports belong to no project, as in Neutron: tenants do not see
    // or count them.
    port.meta.project_id = String::new();
    store::stamp_new(&mut port.meta);
    port.fixed_ips = match req.external_fixed_ips {
        Some(ips) => ports::allocate(conn, &network, Some(ips), &port.meta.id, None).await?,
        None => allocate_v4(conn, &network, &port.meta.id).await?,
    };
    store::insert(conn, &port, || "MAC address in use.".into()).await?;
    router.external_gateway_info = Some(ExternalGateway {
        network_id,
        enable_snat,
        external_fixed_ips: port.fixed_ips.clone(),
    });
    Ok(())
}

/// One IPv4 address from the first subnet of an external network with a
/// free one.
pub async fn allocate_v4(
    conn: &mut AnyConnection,
    network: &Network,
    owner: &str,
) -> Result<Vec<FixedIp>, Error> {
    let subnets: Vec<Subnet> = store::children(conn, &network.meta.id).await?;
    for sub in subnets.iter().filter(|s| s.ip_version == 4) {
        if let Some(ip) = ipam::take_any(conn, sub, owner).await? {
            return Ok(vec![FixedIp {
                subnet_id: sub.meta.id.clone(),
                ip_address: ip.to_string(),
            }]);
        }
    }
    Err(Error::Conflict(format!(
        "No more IP addresses available on network {}.",
        network.meta.id
    )))
}

/// Every nexthop must be on a subnet the router has an interface on.
async fn validate_routes(
    conn: &mut AnyConnection,
    router_id: &str,
    routes: &[HostRoute],
) -> Result<(), Error> {
    if routes.len() > MAX_ROUTES {
        return Err(bad(format!(
            "Unable to complete operation for {router_id}. The number of routes exceeds the maximum {MAX_ROUTES}."
        )));
    }
    let mut nets: Vec<IpNet> = Vec::new();
    let mut own: Vec<String> = Vec::new();
    for port in interfaces(conn, router_id).await? {
        for f in &port.fixed_ips {
            own.push(f.ip_address.clone());
            if let Some(sub) = store::get::<Subnet>(conn, &f.subnet_id).await? {
                nets.extend(addr::parse_subnet_cidr(&sub.cidr).ok());
            }
        }
    }
    for (i, r) in routes.iter().enumerate() {
        addr::parse_prefix("routes", &r.destination)?;
        let hop = addr::parse_ip("routes", &r.nexthop)?;
        if routes[..i].contains(r) {
            return Err(bad(format!(
                "Invalid format for routes: duplicate route {} via {}.",
                r.destination, r.nexthop
            )));
        }
        if own.contains(&hop.to_string()) || !nets.iter().any(|n| n.contains(&hop)) {
            return Err(bad(format!(
                "Invalid format for routes: {{'destination': '{}', 'nexthop': '{}'}}, the nexthop is not connected with router",
                r.destination, r.nexthop
            )));
        }
    }
    Ok(())
}

async fn create(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: CreateRouter = wire::body(body, "router")?;
    let project = access::owner_project(&ctx, &authz, req.project_id, req.tenant_id)?;
    wire::check_len("name", &req.name)?;
    wire::check_len("description", &req.description)?;
    no_dvr_or_ha(req.distributed, req.ha)?;
    for zone in &req.availability_zone_hints {
        if zone != model::AVAILABILITY_ZONE {
            return Err(
                Error::NotFound(format!("AvailabilityZone {zone} could not be found.")).into(),
            );
        }
    }
    let tags = req.tags.unwrap_or_default();
    for t in &tags {
        wire::check_tag(t)?;
    }
    let mut router = Router {
        meta: Meta {
            project_id: project.clone(),
            description: req.description,
            tags,
            ..Default::default()
        },
        name: req.name,
        admin_state_up: req.admin_state_up.unwrap_or(true),
        status: model::STATUS_ACTIVE.into(),
        external_gateway_info: None,
        routes: vec![],
        availability_zone_hints: req.availability_zone_hints,
    };
    store::stamp_new(&mut router.meta);
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    quota::check(&mut tx, &project, "router", 1).await?;
    if req.external_gateway_info.is_some() {
        set_gateway(&mut tx, &ctx, &mut router, req.external_gateway_info).await?;
    }
    store::insert(&mut tx, &router, || "Router already exists.".into()).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::created("router", &router.meta.id, render(&router)?))
}

async fn update(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: UpdateRouter = wire::body(body, "router")?;
    no_dvr_or_ha(req.distributed, req.ha)?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut router = access::writable(
        store::get::<Router>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Router",
        &id,
    )?;
    check_if_match(&headers, &router.meta)?;
    if let Some(v) = req.name {
        wire::check_len("name", &v)?;
        router.name = v;
    }
    if let Some(v) = req.description {
        wire::check_len("description", &v)?;
        router.meta.description = v;
    }
    if let Some(v) = req.admin_state_up {
        router.admin_state_up = v;
    }
    if let Some(gw) = req.external_gateway_info {
        set_gateway(&mut tx, &ctx, &mut router, gw).await?;
    }
    if let Some(routes) = req.routes {
        let routes = routes.unwrap_or_default();
        validate_routes(&mut tx, &id, &routes).await?;
        router.routes = routes;
    }
    store::update(&mut tx, &mut router).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::one("router", render(&router)?))
}

async fn delete(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut router = access::writable(
        store::get::<Router>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Router",
        &id,
    )?;
    check_if_match(&headers, &router.meta)?;
    if !interfaces(&mut tx, &id).await?.is_empty()
        || !floating_ips_via(&mut tx, &id).await?.is_empty()
    {
        return Err(Error::Conflict(format!("Router {id} still has ports")).into());
    }
    set_gateway(&mut tx, &ctx, &mut router, None).await?;
    store::delete(&mut tx, Router::KIND, &id).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::no_content())
}

fn interface_info(router: &Router, port: &Port) -> Value {
    let subnet_ids: Vec<&str> = port
        .fixed_ips
        .iter()
        .map(|f| f.subnet_id.as_str())
        .collect();
    json!({
        "id": router.meta.id,
        "tenant_id": router.meta.project_id,
        "project_id": router.meta.project_id,
        "port_id": port.meta.id,
        "network_id": port.network_id,
        "subnet_id": subnet_ids.first(),
        "subnet_ids": subnet_ids,
    })
}

/// Refuses a new interface whose subnets overlap those the router has.
async fn check_no_overlap(
    conn: &mut AnyConnection,
    router: &Router,
    new: &[Subnet],
) -> Result<(), Error> {
    for port in interfaces(conn, &router.meta.id).await? {
        for f in &port.fixed_ips {
            let Some(existing) = store::get::<Subnet>(conn, &f.subnet_id).await? else {
                continue;
            };
            for sub in new {
                let (Ok(a), Ok(b)) = (existing.cidr.parse::<IpNet>(), sub.cidr.parse::<IpNet>())
                else {
                    continue;
                };
                if addr::overlaps(&a, &b) {
                    return Err(bad(format!(
                        "Bad router request: Cidr {} of subnet {} overlaps with cidr {} of subnet {}.",
                        sub.cidr, sub.meta.id, existing.cidr, existing.meta.id
                    )));
                }
            }
        }
    }
    Ok(())
}

async fn add_interface(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let req: InterfaceRequest = serde_json::from_value(body)
        .map_err(|e| bad(format!("Invalid input for operation: {e}.")))?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let router = access::writable(
        store::get::<Router>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Router",
        &id,
    )?;
    let port = match (req.subnet_id, req.port_id) {
        (Some(_), Some(_)) => {
            return Err(
                bad("Bad router request: Cannot specify both subnet-id and port-id".into()).into(),
            )
        }
        (None, None) => {
            return Err(bad(
                "Bad router request: Either subnet_id or port_id must be specified".into(),
            )
            .into())
        }
        (Some(subnet_id), None) => {
            let sub = match store::get::<Subnet>(&mut tx, &subnet_id).await? {
                Some(sub)
                    if sub.visible_to_all()
                        || access::can_see_project(&ctx, &sub.meta.project_id) =>
                {
                    sub
                }
                _ => return Err(access::not_found("Subnet", &subnet_id).into()),
            };
            let gateway = sub.gateway_ip.clone().ok_or_else(|| {
                bad(format!(
                    "Bad router request: Subnet {subnet_id} for router interface must have a gateway IP."
                ))
            })?;
            check_no_overlap(&mut tx, &router, std::slice::from_ref(&sub)).await?;
            let network = store::get::<Network>(&mut tx, &sub.network_id)
                .await?
                .ok_or_else(|| access::not_found("Network", &sub.network_id))?;
            let mut port = ports::network_owned_port(&network, model::OWNER_ROUTER_INTERFACE, &id);
            port.meta.project_id = router.meta.project_id.clone();
            store::stamp_new(&mut port.meta);
            let gw = addr::parse_ip("gateway_ip", &gateway)?;
            ipam::take(&mut tx, &sub, gw, &port.meta.id).await?;
            port.fixed_ips = vec![FixedIp {
                subnet_id: subnet_id.clone(),
                ip_address: gateway,
            }];
            store::insert(&mut tx, &port, || "MAC address in use.".into()).await?;
            port
        }
        (None, Some(port_id)) => {
            let mut port = match store::get::<Port>(&mut tx, &port_id).await? {
                Some(p) if access::can_see_project(&ctx, &p.meta.project_id) => p,
                _ => return Err(access::not_found("Port", &port_id).into()),
            };
            if !port.device_id.is_empty() || !port.device_owner.is_empty() {
                return Err(Error::Conflict(format!(
                    "Unable to complete operation on port {port_id} for network {}. Port already has an attached device {}.",
                    port.network_id, port.device_id
                ))
                .into());
            }
            if port.fixed_ips.is_empty() {
                return Err(bad(
                    "Bad router request: Router port must have at least one fixed IP.".into(),
                )
                .into());
            }
            let mut subs = Vec::new();
            for f in &port.fixed_ips {
                subs.extend(store::get::<Subnet>(&mut tx, &f.subnet_id).await?);
            }
            check_no_overlap(&mut tx, &router, &subs).await?;
            port.device_owner = model::OWNER_ROUTER_INTERFACE.into();
            port.device_id = id.clone();
            store::update(&mut tx, &mut port).await?;
            port
        }
    };
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(Json(interface_info(&router, &port)))
}

async fn remove_interface(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let req: InterfaceRequest = serde_json::from_value(body)
        .map_err(|e| bad(format!("Invalid input for operation: {e}.")))?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let router = access::writable(
        store::get::<Router>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Router",
        &id,
    )?;
    let ifaces = interfaces(&mut tx, &id).await?;
    let port = match (&req.port_id, &req.subnet_id) {
        (Some(port_id), subnet) => ifaces
            .into_iter()
            .find(|p| {
                &p.meta.id == port_id
                    && subnet
                        .as_ref()
                        .is_none_or(|s| p.fixed_ips.iter().any(|f| &f.subnet_id == s))
            })
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "Router {id} does not have an interface with id {port_id}"
                ))
            })?,
        (None, Some(subnet_id)) => ifaces
            .into_iter()
            .find(|p| p.fixed_ips.iter().any(|f| &f.subnet_id == subnet_id))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "Router {id} has no interface on subnet {subnet_id}"
                ))
            })?,
        (None, None) => {
            return Err(bad(
                "Bad router request: Either subnet_id or port_id must be specified".into(),
            )
            .into())
        }
    };
    // Floating IPs and static routes that need this interface keep it.
    let mut nets: Vec<IpNet> = Vec::new();
    for f in &port.fixed_ips {
        if let Some(sub) = store::get::<Subnet>(&mut tx, &f.subnet_id).await? {
            nets.extend(addr::parse_subnet_cidr(&sub.cidr).ok());
        }
    }
    let on_port = |ip: &str| {
        ip.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip)))
    };
    for fip in floating_ips_via(&mut tx, &id).await? {
        if fip.fixed_ip_address.as_deref().is_some_and(on_port) {
            return Err(Error::Conflict(format!(
                "Cannot remove the interface of router {id}: floating IP {} uses it.",
                fip.meta.id
            ))
            .into());
        }
    }
    if router.routes.iter().any(|r| on_port(&r.nexthop)) {
        return Err(Error::Conflict(format!(
            "Router interface for port {} on router {id} cannot be deleted, as it is required by one or more routes.",
            port.meta.id
        ))
        .into());
    }
    ports::delete_rows(&mut tx, &port).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(Json(interface_info(&router, &port)))
}

/// The router through which `fixed_ip` (on `subnet_id`) reaches
/// `floating_network_id`: one with a gateway there and an interface on
/// the subnet.
pub async fn router_for(
    conn: &mut AnyConnection,
    floating_network_id: &str,
    subnet_id: &str,
) -> Result<Option<String>, Error> {
    let routers: Vec<Router> = store::list(conn, &Visibility::All).await?;
    for r in routers {
        let on_network = r
            .external_gateway_info
            .as_ref()
            .is_some_and(|g| g.network_id == floating_network_id);
        if !on_network {
            continue;
        }
        let joined = interfaces(conn, &r.meta.id)
            .await?
            .iter()
            .any(|p| p.fixed_ips.iter().any(|f| f.subnet_id == subnet_id));
        if joined {
            return Ok(Some(r.meta.id));
        }
    }
    Ok(None)
}
