//! `/v2.0/subnets`: address ranges of a network, IPAM pools and the DHCP
//! port that serves them.

use std::net::IpAddr;

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::access;
use super::list::{self, ListQuery};
use super::wire::{self, check_if_match};
use super::{ports, tags};
use crate::addr;
use crate::model::{
    self, AllocationPool, FixedIp, HostRoute, Meta, Network, Port, Resource, Subnet,
};
use crate::policy::*;
use crate::store::{self, db_err, ipam, quota};
use crate::NetworkService;

const IPV6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

pub fn routes(p: &Pipeline) -> Router<NetworkService> {
    Router::new()
        .route(
            "/v2.0/subnets",
            p.on(&SERVICE, &GET_SUBNET, MethodFilter::GET, list_subnets)
                .merge(p.on(&SERVICE, &CREATE_SUBNET, MethodFilter::POST, create)),
        )
        .route(
            "/v2.0/subnets/{id}",
            p.on(&SERVICE, &GET_SUBNET, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_SUBNET, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_SUBNET, MethodFilter::DELETE, delete)),
        )
        .merge(tags::routes::<Subnet>(
            p,
            "subnets",
            &GET_SUBNET,
            &UPDATE_SUBNET,
            "Subnet",
        ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSubnet {
    network_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    ip_version: Option<i64>,
    cidr: Option<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    gateway_ip: Option<Option<String>>,
    allocation_pools: Option<Vec<AllocationPool>>,
    enable_dhcp: Option<bool>,
    #[serde(default)]
    dns_nameservers: Vec<String>,
    #[serde(default)]
    host_routes: Vec<HostRoute>,
    ipv6_ra_mode: Option<String>,
    ipv6_address_mode: Option<String>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
    #[serde(default)]
    service_types: Vec<String>,
    subnetpool_id: Option<String>,
    #[serde(default)]
    use_default_subnetpool: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSubnet {
    name: Option<String>,
    description: Option<String>,
    #[serde(default, deserialize_with = "wire::nullable")]
    gateway_ip: Option<Option<String>>,
    allocation_pools: Option<Vec<AllocationPool>>,
    enable_dhcp: Option<bool>,
    dns_nameservers: Option<Vec<String>>,
    host_routes: Option<Vec<HostRoute>>,
}

pub fn render(s: &Subnet) -> Result<Value, Error> {
    let mut m = wire::to_object(s)?;
    m.remove("network_visible_to_all");
    m.insert("subnetpool_id".into(), Value::Null);
    m.insert("service_types".into(), json!([]));
    m.insert("segment_id".into(), Value::Null);
    Ok(Value::Object(m))
}

async fn list_subnets(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let visibility = access::visibility(&ctx, &authz)?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let subnets: Vec<Subnet> = store::list(&mut conn, &visibility).await?;
    let items = subnets.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    let q = ListQuery::parse(raw.as_deref());
    let self_url = format!("{}{}", wire::base_url(&headers), uri.path());
    Ok(Json(list::respond("subnets", items, &q, &self_url)?))
}

async fn show(
    State(s): State<NetworkService>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let sub = access::readable(
        store::get::<Subnet>(&mut conn, &id).await?,
        &authz,
        "Subnet",
        &id,
    )?;
    let v = render(&sub)?;
    Ok(wire::one(
        "subnet",
        list::project_fields(v, &ListQuery::parse(raw.as_deref())),
    ))
}

fn bad(msg: String) -> Error {
    Error::BadRequest(msg)
}

/// Checks gateway, pools, name servers and routes against the CIDR;
/// returns the pools (the defaults when none were given).
fn validate_layout(
    net: &IpNet,
    gateway: Option<&str>,
    pools: Option<Vec<AllocationPool>>,
    dns: &[String],
    routes: &[HostRoute],
) -> Result<(Option<IpAddr>, Vec<AllocationPool>), Error> {
    let gateway = match gateway {
        None => None,
        Some(g) => {
            let ip = addr::parse_ip("gateway_ip", g)?;
            if addr::ip_version(&ip) != addr::version(net) || !addr::is_usable(net, &ip) {
                return Err(bad(format!(
                    "Invalid input for operation: Gateway IP {g} is not a valid host address of subnet {net}."
                )));
            }
            Some(ip)
        }
    };
    let pools = match pools {
        Some(p) => p,
        None => addr::default_pools(net, gateway),
    };
    let ranges = addr::pool_ranges(net, &pools)?;
    if let Some(gw) = gateway.map(addr::to_num) {
        if ranges.iter().any(|(a, b)| (*a..=*b).contains(&gw)) {
            return Err(Error::Conflict(format!(
                "Gateway ip {} conflicts with allocation pool.",
                gateway.map(|g| g.to_string()).unwrap_or_default()
            )));
        }
    }
    let mut seen = Vec::new();
    for d in dns {
        addr::parse_ip("dns_nameservers", d)?;
        if seen.contains(&d) {
            return Err(bad(format!(
                "Invalid input for dns_nameservers. Reason: Duplicate nameserver '{d}'."
            )));
        }
        seen.push(d);
    }
    for r in routes {
        let dest = addr::parse_prefix("host_routes", &r.destination)?;
        let hop = addr::parse_ip("host_routes", &r.nexthop)?;
        if addr::version(&dest) != addr::version(net)
            || addr::ip_version(&hop) != addr::version(net)
        {
            return Err(bad(format!(
                "Invalid input for operation: host route {} via {} does not match the subnet's IP version.",
                r.destination, r.nexthop
            )));
        }
    }
    Ok((gateway, pools))
}

fn check_ipv6_mode(field: &str, v: &Option<String>, ip_version: i64) -> Result<(), Error> {
    match v {
        None => Ok(()),
        Some(_) if ip_version == 4 => Err(bad(format!(
            "Invalid input for operation: {field} is not valid when ip_version is 4."
        ))),
        Some(m) if IPV6_MODES.contains(&m.as_str()) => Ok(()),
        Some(m) => Err(bad(format!(
            "Invalid input for {field}. Reason: '{m}' is not in {IPV6_MODES:?}."
        ))),
    }
}

/// `POST /v2.0/subnets`, one subnet or a bulk list in one transaction.
async fn create(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let request = wire::create_request(body, "subnet", "subnets")?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut made = Vec::with_capacity(request.items.len());
    for item in request.items {
        let sub = create_one(&mut tx, &ctx, &authz, item).await?;
        made.push((sub.meta.id.clone(), render(&sub)?));
    }
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::created_all(request.bulk, "subnet", "subnets", made))
}

async fn create_one(
    tx: &mut AnyConnection,
    ctx: &RequestContext,
    authz: &Authz,
    item: Value,
) -> ApiResult<Subnet> {
    let req: CreateSubnet = wire::item(item)?;
    if req.subnetpool_id.is_some() || req.use_default_subnetpool {
        return Err(bad(
            "Invalid input for operation: subnet pools are not supported; give a cidr.".into(),
        )
        .into());
    }
    if !req.service_types.is_empty() {
        return Err(
            bad("Invalid input for operation: service_types are not supported.".into()).into(),
        );
    }
    let cidr = req
        .cidr
        .as_deref()
        .ok_or_else(|| bad("Bad subnets request: a cidr must be specified.".into()))?;
    let net = addr::parse_subnet_cidr(cidr)?;
    let ip_version = req.ip_version.unwrap_or(addr::version(&net));
    if ip_version != addr::version(&net) {
        return Err(bad(format!(
            "Invalid input for operation: cidr {cidr} does not match ip_version {ip_version}."
        ))
        .into());
    }
    check_ipv6_mode("ipv6_ra_mode", &req.ipv6_ra_mode, ip_version)?;
    check_ipv6_mode("ipv6_address_mode", &req.ipv6_address_mode, ip_version)?;
    // Router advertisements and DHCPv6 must tell hosts the same thing.
    if let (Some(ra), Some(address)) = (&req.ipv6_ra_mode, &req.ipv6_address_mode) {
        if ra != address {
            return Err(bad(format!(
                "Invalid input for operation: ipv6_ra_mode set to '{ra}' with ipv6_address_mode \
                 set to '{address}' is not valid. If both attributes are set, they must be the \
                 same value."
            ))
            .into());
        }
    }
    wire::check_len("name", &req.name)?;
    wire::check_len("description", &req.description)?;
    let default_gateway =
        addr::usable_range(&net).map(|(lo, _)| addr::from_num(ip_version == 4, lo).to_string());
    let gateway_text = match &req.gateway_ip {
        None => default_gateway,
        Some(g) => g.clone(),
    };
    let (gateway, pools) = validate_layout(
        &net,
        gateway_text.as_deref(),
        req.allocation_pools,
        &req.dns_nameservers,
        &req.host_routes,
    )?;
    let tags = req.tags.unwrap_or_default();
    for t in &tags {
        wire::check_tag(t)?;
    }

    let network = access::readable(
        store::get::<Network>(tx, &req.network_id).await?,
        authz,
        "Network",
        &req.network_id,
    )?;
    let project = access::owner_project(ctx, authz, req.project_id, req.tenant_id)?;
    // Only the network's owner (or an administrator) adds subnets to it.
    if network.meta.project_id != project && !access::is_admin(ctx) {
        return Err(himmel_http::pipeline::forbidden(CREATE_SUBNET.name).into());
    }
    for other in store::children::<Subnet>(tx, &network.meta.id).await? {
        if let Ok(o) = other.cidr.parse::<IpNet>() {
            if addr::overlaps(&o, &net) {
                return Err(bad(format!(
                    "Invalid input for operation: Requested subnet with cidr: {net} for network: {} overlaps with another subnet.",
                    network.meta.id
                ))
                .into());
            }
        }
    }
    quota::check(tx, &project, "subnet", 1).await?;
    let mut sub = Subnet {
        meta: Meta {
            project_id: project,
            description: req.description,
            tags,
            ..Default::default()
        },
        name: req.name,
        network_id: network.meta.id.clone(),
        ip_version,
        cidr: net.to_string(),
        gateway_ip: gateway.map(|g| g.to_string()),
        allocation_pools: pools,
        enable_dhcp: req.enable_dhcp.unwrap_or(true),
        dns_nameservers: req.dns_nameservers,
        host_routes: req.host_routes,
        ipv6_ra_mode: req.ipv6_ra_mode,
        ipv6_address_mode: req.ipv6_address_mode,
        network_visible_to_all: network.visible_to_all(),
    };
    store::stamp_new(&mut sub.meta);
    store::insert(tx, &sub, || "Subnet already exists.".into()).await?;
    if sub.enable_dhcp {
        ensure_dhcp_address(tx, &network, &sub).await?;
    }
    Ok(sub)
}

/// Gives the network's DHCP port (created on first need) an address on
/// `sub`: dnsmasq serves the subnet from it. A subnet whose pools are
/// already exhausted simply has no DHCP address.
async fn ensure_dhcp_address(
    conn: &mut AnyConnection,
    network: &Network,
    sub: &Subnet,
) -> Result<(), Error> {
    let ports: Vec<Port> = store::children(conn, &network.meta.id).await?;
    let existing = ports
        .into_iter()
        .find(|p| p.device_owner == model::OWNER_DHCP);
    let mut port = match existing {
        Some(p) => p,
        None => {
            let mut p = ports::network_owned_port(
                network,
                model::OWNER_DHCP,
                &format!("dhcp{}", network.meta.id),
            );
            store::stamp_new(&mut p.meta);
            store::insert(conn, &p, || "MAC address in use.".into()).await?;
            p
        }
    };
    if port.fixed_ips.iter().any(|f| f.subnet_id == sub.meta.id) {
        return Ok(());
    }
    if let Some(ip) = ipam::take_any(conn, sub, &port.meta.id).await? {
        port.fixed_ips.push(FixedIp {
            subnet_id: sub.meta.id.clone(),
            ip_address: ip.to_string(),
        });
        store::update(conn, &mut port).await?;
    }
    Ok(())
}

/// Takes the subnet's address off the DHCP port (DHCP turned off or the
/// subnet going away); the port goes when it has no address left.
async fn drop_dhcp_address(conn: &mut AnyConnection, sub: &Subnet) -> Result<(), Error> {
    let ports: Vec<Port> = store::children(conn, &sub.network_id).await?;
    for mut port in ports
        .into_iter()
        .filter(|p| p.device_owner == model::OWNER_DHCP)
    {
        let before = port.fixed_ips.len();
        port.fixed_ips.retain(|f| f.subnet_id != sub.meta.id);
        if port.fixed_ips.len() == before {
            continue;
        }
        sqlx::query("DELETE FROM net_ip_allocations WHERE subnet_id = $1 AND owner_id = $2")
            .bind(&sub.meta.id)
            .bind(&port.meta.id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if port.fixed_ips.is_empty() {
            store::delete(conn, Port::KIND, &port.meta.id).await?;
        } else {
            store::update(conn, &mut port).await?;
        }
    }
    Ok(())
}

async fn update(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: UpdateSubnet = wire::body(body, "subnet")?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut sub = access::writable(
        store::get::<Subnet>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Subnet",
        &id,
    )?;
    check_if_match(&headers, &sub.meta)?;
    let net = addr::parse_subnet_cidr(&sub.cidr)?;
    if let Some(v) = req.name {
        wire::check_len("name", &v)?;
        sub.name = v;
    }
    if let Some(v) = req.description {
        wire::check_len("description", &v)?;
        sub.meta.description = v;
    }
    let gateway = match req.gateway_ip {
        Some(g) => g,
        None => sub.gateway_ip.clone(),
    };
    let pools_changed = req.allocation_pools.is_some();
    let pools = req
        .allocation_pools
        .unwrap_or_else(|| sub.allocation_pools.clone());
    let dns = req
        .dns_nameservers
        .unwrap_or_else(|| sub.dns_nameservers.clone());
    let routes = req.host_routes.unwrap_or_else(|| sub.host_routes.clone());
    let (gateway, pools) = validate_layout(&net, gateway.as_deref(), Some(pools), &dns, &routes)?;
    let gateway = gateway.map(|g| g.to_string());
    if gateway != sub.gateway_ip {
        if let Some(g) = &gateway {
            let in_use: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM net_ip_allocations WHERE subnet_id = $1 AND ip_address = $2",
            )
            .bind(&id)
            .bind(g)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
            if in_use > 0 {
                return Err(Error::Conflict(format!(
                    "Gateway ip {g} conflicts with an address in use on subnet {id}."
                ))
                .into());
            }
        }
    }
    if pools_changed {
        // Addresses already handed out stay valid even outside new pools,
        // as in Neutron.
        sub.allocation_pools = pools;
    }
    sub.gateway_ip = gateway;
    sub.dns_nameservers = dns;
    sub.host_routes = routes;
    let dhcp_before = sub.enable_dhcp;
    if let Some(v) = req.enable_dhcp {
        sub.enable_dhcp = v;
    }
    store::update(&mut tx, &mut sub).await?;
    if sub.enable_dhcp && !dhcp_before {
        let network = store::get::<Network>(&mut tx, &sub.network_id)
            .await?
            .ok_or_else(|| access::not_found("Network", &sub.network_id))?;
        ensure_dhcp_address(&mut tx, &network, &sub).await?;
    } else if !sub.enable_dhcp && dhcp_before {
        drop_dhcp_address(&mut tx, &sub).await?;
    }
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::one("subnet", render(&sub)?))
}

async fn delete(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let sub = access::writable(
        store::get::<Subnet>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Subnet",
        &id,
    )?;
    check_if_match(&headers, &sub.meta)?;
    let ports: Vec<Port> = store::children(&mut tx, &sub.network_id).await?;
    let removable: Vec<&str> = ports
        .iter()
        .filter(|p| address_goes_with_subnet(&sub, p))
        .map(|p| p.meta.id.as_str())
        .collect();
    let owners = ipam::subnet_owners(&mut tx, &id).await?;
    if owners.iter().any(|o| !removable.contains(&o.as_str())) {
        return Err(Error::Conflict(format!(
            "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
        ))
        .into());
    }
    delete_rows(&mut tx, &sub).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::no_content())
}

/// Whether a port's address on `sub` is removed with the subnet instead of keeping it: the
/// DHCP port's always; on IPv6 subnets whose hosts configure their own addresses (SLAAC,
/// DHCPv6 stateless), every port's except a router's, as Neutron does.
fn address_goes_with_subnet(sub: &Subnet, port: &Port) -> bool {
    let auto_address = matches!(
        sub.ipv6_address_mode.as_deref(),
        Some("slaac") | Some("dhcpv6-stateless")
    );
    port.device_owner == model::OWNER_DHCP
        || (auto_address && !port.device_owner.starts_with("network:router"))
}

/// Removes a subnet whose only addresses are those that go with it.
pub async fn delete_rows(conn: &mut AnyConnection, sub: &Subnet) -> Result<(), Error> {
    drop_dhcp_address(conn, sub).await?;
    let ports: Vec<Port> = store::children(conn, &sub.network_id).await?;
    for mut port in ports
        .into_iter()
        .filter(|p| p.device_owner != model::OWNER_DHCP && address_goes_with_subnet(sub, p))
    {
        let before = port.fixed_ips.len();
        port.fixed_ips.retain(|f| f.subnet_id != sub.meta.id);
        if port.fixed_ips.len() != before {
            store::update(conn, &mut port).await?;
        }
    }
    sqlx::query("DELETE FROM net_ip_allocations WHERE subnet_id = $1")
        .bind(&sub.meta.id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    store::delete(conn, Subnet::KIND, &sub.meta.id).await
}
