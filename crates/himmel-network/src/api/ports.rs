//! `/v2.0/ports`: a port's addresses come from IPAM in the creating
//! transaction; its status stays DOWN until the dataplane wires it.

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
use super::{security_groups, tags};
use crate::addr;
use crate::model::{
    self, AddressPair, FixedIp, FloatingIp, Meta, Network, Port, Resource, SecurityGroup, Subnet,
};
use crate::policy::*;
use crate::store::{self, db_err, ipam, quota};
use crate::NetworkService;

pub fn routes(p: &Pipeline) -> Router<NetworkService> {
    Router::new()
        .route(
            "/v2.0/ports",
            p.on(&SERVICE, &GET_PORT, MethodFilter::GET, list_ports)
                .merge(p.on(&SERVICE, &CREATE_PORT, MethodFilter::POST, create)),
        )
        .route(
            "/v2.0/ports/{id}",
            p.on(&SERVICE, &GET_PORT, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_PORT, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_PORT, MethodFilter::DELETE, delete)),
        )
        .merge(tags::routes::<Port>(
            p,
            "ports",
            &GET_PORT,
            &UPDATE_PORT,
            "Port",
        ))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FixedIpRequest {
    pub subnet_id: Option<String>,
    pub ip_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressPairRequest {
    ip_address: String,
    mac_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePort {
    network_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    admin_state_up: Option<bool>,
    mac_address: Option<String>,
    fixed_ips: Option<Vec<FixedIpRequest>>,
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    device_owner: String,
    #[serde(rename = "binding:host_id")]
    host_id: Option<String>,
    #[serde(rename = "binding:vnic_type")]
    vnic_type: Option<String>,
    security_groups: Option<Vec<String>>,
    allowed_address_pairs: Option<Vec<AddressPairRequest>>,
    port_security_enabled: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePort {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    mac_address: Option<String>,
    fixed_ips: Option<Vec<FixedIpRequest>>,
    device_id: Option<String>,
    device_owner: Option<String>,
    #[serde(rename = "binding:host_id")]
    host_id: Option<String>,
    #[serde(rename = "binding:vnic_type")]
    vnic_type: Option<String>,
    security_groups: Option<Vec<String>>,
    allowed_address_pairs: Option<Vec<AddressPairRequest>>,
    port_security_enabled: Option<bool>,
}

/// A port the network itself owns (DHCP, router interfaces and gateways).
pub fn network_owned_port(network: &Network, owner: &str, device_id: &str) -> Port {
    Port {
        meta: Meta {
            project_id: network.meta.project_id.clone(),
            ..Default::default()
        },
        name: String::new(),
        network_id: network.meta.id.clone(),
        admin_state_up: true,
        status: model::STATUS_DOWN.into(),
        mac_address: addr::random_mac(),
        fixed_ips: vec![],
        device_id: device_id.to_string(),
        device_owner: owner.to_string(),
        host_id: String::new(),
        security_groups: vec![],
        allowed_address_pairs: vec![],
        port_security_enabled: false,
    }
}

pub fn render(p: &Port, ctx: &RequestContext) -> Result<Value, Error> {
    let mut m = wire::to_object(p)?;
    if is_admin(ctx) {
        m.insert("binding:vnic_type".into(), json!("normal"));
        let vif = if p.host_id.is_empty() {
            "unbound"
        } else {
            "bridge"
        };
        m.insert("binding:vif_type".into(), json!(vif));
        m.insert("binding:vif_details".into(), json!({}));
        m.insert("binding:profile".into(), json!({}));
    } else {
        m.retain(|k, _| !k.starts_with("binding:"));
    }
    m.insert("extra_dhcp_opts".into(), json!([]));
    m.insert("ip_allocation".into(), json!("immediate"));
    Ok(Value::Object(m))
}

async fn list_ports(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let visibility = access::visibility(&ctx, &authz)?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    // Ports are never visible to other projects, even on shared networks.
    let ports: Vec<Port> = store::list(&mut conn, &visibility).await?;
    let items = ports
        .iter()
        .map(|p| render(p, &ctx))
        .collect::<Result<Vec<_>, _>>()?;
    let q = ListQuery::parse(raw.as_deref());
    let self_url = format!("{}{}", wire::base_url(&headers), uri.path());
    Ok(Json(list::respond("ports", items, &q, &self_url)?))
}

async fn show(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let p = access::readable(
        store::get::<Port>(&mut conn, &id).await?,
        &authz,
        "Port",
        &id,
    )?;
    let v = render(&p, &ctx)?;
    Ok(wire::one(
        "port",
        list::project_fields(v, &ListQuery::parse(raw.as_deref())),
    ))
}

/// Takes addresses for `owner` on `network`: those asked for, or, as
/// Neutron does, one from the first IPv4 subnet and one from the first
/// stateful IPv6 subnet that have a free address, and the autoconfigured
/// one of every SLAAC or DHCPv6-stateless subnet. `mac` is the port's, for
/// IPv6 autoconfiguration (none for floating IPs).
/// An IPv6 subnet whose hosts pick their own address (SLAAC, DHCPv6
/// stateless).
fn autoconfigured(subnet: &Subnet) -> bool {
    subnet.ip_version == 6
        && matches!(
            subnet.ipv6_address_mode.as_deref(),
            Some("slaac") | Some("dhcpv6-stateless")
        )
}

pub async fn allocate(
    conn: &mut AnyConnection,
    network: &Network,
    requested: Option<Vec<FixedIpRequest>>,
    owner_id: &str,
    mac: Option<&str>,
) -> Result<Vec<FixedIp>, Error> {
    let subnets: Vec<Subnet> = store::children(conn, &network.meta.id).await?;
    let net_id = &network.meta.id;
    let mut out = Vec::new();
    let Some(requested) = requested else {
        if mac.is_some() {
            for sub in subnets.iter().filter(|s| autoconfigured(s)) {
                if let Some(ip) = ipam::take_for_port(conn, sub, owner_id, mac).await? {
                    out.push(FixedIp {
                        subnet_id: sub.meta.id.clone(),
                        ip_address: ip.to_string(),
                    });
                }
            }
        }
        for version in [4, 6] {
            let candidates: Vec<&Subnet> = subnets
                .iter()
                .filter(|s| s.ip_version == version)
                .filter(|s| mac.is_none() || !autoconfigured(s))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let mut got = None;
            for sub in candidates {
                if let Some(ip) = ipam::take_for_port(conn, sub, owner_id, mac).await? {
                    got = Some(FixedIp {
                        subnet_id: sub.meta.id.clone(),
                        ip_address: ip.to_string(),
                    });
                    break;
                }
            }
            match got {
                Some(f) => out.push(f),
                None => {
                    return Err(Error::Conflict(format!(
                        "No more IP addresses available on network {net_id}."
                    )))
                }
            }
        }
        return Ok(out);
    };
    for req in requested {
        let subnet = match (&req.subnet_id, &req.ip_address) {
            (Some(sid), _) => subnets.iter().find(|s| &s.meta.id == sid).ok_or_else(|| {
                Error::BadRequest(format!(
                    "Invalid input for operation: Failed to create port on network {net_id}, because fixed_ips included invalid subnet {sid}."
                ))
            })?,
            (None, Some(ip)) => {
                let parsed = addr::parse_ip("fixed_ips", ip)?;
                subnets
                    .iter()
                    .find(|s| addr::parse_subnet_cidr(&s.cidr).is_ok_and(|n| n.contains(&parsed)))
                    .ok_or_else(|| {
                        Error::BadRequest(format!(
                            "Invalid input for operation: IP address {ip} is not a valid IP for any subnet on network {net_id}."
                        ))
                    })?
            }
            (None, None) => {
                return Err(Error::BadRequest(
                    "Invalid input for fixed_ips. Reason: an entry needs a subnet_id or an ip_address.".into(),
                ))
            }
        };
        let ip = match &req.ip_address {
            Some(ip) => {
                let parsed = addr::parse_ip("fixed_ips", ip)?;
                let net = addr::parse_subnet_cidr(&subnet.cidr)?;
                if !addr::is_usable(&net, &parsed)
                    || subnet.gateway_ip.as_deref() == Some(&parsed.to_string())
                {
                    return Err(Error::BadRequest(format!(
                        "Invalid input for operation: IP address {ip} is not a valid IP for the specified subnet."
                    )));
                }
                ipam::take(conn, subnet, parsed, owner_id).await?;
                parsed
            }
            None => ipam::take_any(conn, subnet, owner_id)
                .await?
                .ok_or_else(|| {
                    Error::Conflict(format!(
                        "No more IP addresses available for subnet {}.",
                        subnet.meta.id
                    ))
                })?,
        };
        out.push(FixedIp {
            subnet_id: subnet.meta.id.clone(),
            ip_address: ip.to_string(),
        });
    }
    Ok(out)
}

/// A random MAC not yet used on the network: with 24 random bits, a network of a few
/// thousand ports would otherwise see collisions (as Neutron, retry a few times).
async fn free_mac(conn: &mut sqlx::AnyConnection, network_id: &str) -> Result<String, Error> {
    for _ in 0..16 {
        let mac = addr::random_mac();
        let in_use: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM net_resources WHERE kind = $1 AND unique_key = $2",
        )
        .bind(Port::KIND)
        .bind(format!("{network_id}/{mac}"))
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
        if in_use == 0 {
            return Ok(mac);
        }
    }
    Err(Error::Conflict(format!(
        "Unable to generate a unique MAC address on network {network_id}."
    )))
}

fn address_pairs(reqs: Vec<AddressPairRequest>, port_mac: &str) -> Result<Vec<AddressPair>, Error> {
    let mut out: Vec<AddressPair> = Vec::new();
    for r in reqs {
        addr::parse_prefix("allowed_address_pairs", &r.ip_address)?;
        let mac = match r.mac_address {
            Some(m) => addr::parse_mac(&m)?,
            None => port_mac.to_string(),
        };
        let pair = AddressPair {
            ip_address: r.ip_address,
            mac_address: mac,
        };
        if out.contains(&pair) {
            return Err(Error::BadRequest(format!(
                "Request contains duplicate address pair: mac_address {} ip_address {}.",
                pair.mac_address, pair.ip_address
            )));
        }
        out.push(pair);
    }
    Ok(out)
}

/// Every group must exist in the port's project.
async fn check_groups(
    conn: &mut AnyConnection,
    project: &str,
    ids: &[String],
) -> Result<(), Error> {
    for id in ids {
        match store::get::<SecurityGroup>(conn, id).await? {
            Some(g) if g.meta.project_id == project => {}
            _ => return Err(access::not_found("Security group", id)),
        }
    }
    Ok(())
}

fn check_vnic_type(v: &Option<String>) -> Result<(), Error> {
    match v.as_deref() {
        None | Some("normal") => Ok(()),
        Some(other) => Err(Error::BadRequest(format!(
            "Invalid input for binding:vnic_type. Reason: '{other}' is not supported (normal)."
        ))),
    }
}

/// Ports with a `network:` owner, chosen MACs or addresses need the
/// network's owner or an administrator, as in Neutron.
fn require_network_owner(ctx: &RequestContext, network: &Network, what: &str) -> Result<(), Error> {
    if is_admin(ctx) || ctx.project_id() == Some(network.meta.project_id.as_str()) {
        Ok(())
    } else {
        Err(himmel_http::pipeline::forbidden(&format!(
            "create_port:{what}"
        )))
    }
}

/// `POST /v2.0/ports`, one port or a bulk list in one transaction.
async fn create(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let request = wire::create_request(body, "port", "ports")?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut made = Vec::with_capacity(request.items.len());
    for item in request.items {
        let port = create_one(&mut tx, &ctx, &authz, item).await?;
        made.push((port.meta.id.clone(), render(&port, &ctx)?));
    }
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::created_all(request.bulk, "port", "ports", made))
}

async fn create_one(
    tx: &mut AnyConnection,
    ctx: &RequestContext,
    authz: &Authz,
    item: Value,
) -> ApiResult<Port> {
    let req: CreatePort = wire::item(item)?;
    wire::check_len("name", &req.name)?;
    wire::check_len("description", &req.description)?;
    wire::check_len("device_id", &req.device_id)?;
    wire::check_len("device_owner", &req.device_owner)?;
    check_vnic_type(&req.vnic_type)?;
    if req.host_id.as_deref().is_some_and(|h| !h.is_empty()) {
        access::require(ctx, &PORT_PRIVILEGED)?;
    }
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
    if network.meta.project_id != project && !network.shared {
        require_network_owner(ctx, &network, "network_id")?;
    }
    if req.device_owner.starts_with("network:") {
        require_network_owner(ctx, &network, "device_owner")?;
    }
    if req.mac_address.is_some() {
        require_network_owner(ctx, &network, "mac_address")?;
    }
    if req
        .fixed_ips
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f.ip_address.is_some()))
    {
        require_network_owner(ctx, &network, "fixed_ips:ip_address")?;
    }
    let port_security = req
        .port_security_enabled
        .unwrap_or(network.port_security_enabled);
    let mac = match req.mac_address {
        Some(m) => addr::parse_mac(&m)?,
        None => free_mac(tx, &network.meta.id).await?,
    };
    let pairs = address_pairs(req.allowed_address_pairs.unwrap_or_default(), &mac)?;
    if !port_security && !pairs.is_empty() {
        return Err(Error::Conflict(
            "Port Security must be enabled in order to have allowed address pairs on a port."
                .into(),
        )
        .into());
    }
    let groups = match req.security_groups {
        Some(g) if !port_security && !g.is_empty() => {
            return Err(Error::BadRequest(
                "Port security must be enabled and port must have an IP address in order to use security groups."
                    .into(),
            )
            .into())
        }
        Some(g) => {
            check_groups(tx, &project, &g).await?;
            g
        }
        None if port_security && !req.device_owner.starts_with("network:") => {
            vec![security_groups::ensure_default(tx, &project).await?]
        }
        None => vec![],
    };
    quota::check(tx, &project, "port", 1).await?;
    let mut port = Port {
        meta: Meta {
            project_id: project,
            description: req.description,
            tags,
            ..Default::default()
        },
        name: req.name,
        network_id: network.meta.id.clone(),
        admin_state_up: req.admin_state_up.unwrap_or(true),
        status: model::STATUS_DOWN.into(),
        mac_address: mac,
        fixed_ips: vec![],
        device_id: req.device_id,
        device_owner: req.device_owner,
        host_id: req.host_id.unwrap_or_default(),
        security_groups: groups,
        allowed_address_pairs: pairs,
        port_security_enabled: port_security,
    };
    store::stamp_new(&mut port.meta);
    let mac = port.mac_address.clone();
    port.fixed_ips = allocate(tx, &network, req.fixed_ips, &port.meta.id, Some(&mac)).await?;
    store::insert(tx, &port, || {
        format!(
            "Unable to complete operation for network {}. The mac address {mac} is in use.",
            network.meta.id
        )
    })
    .await?;
    Ok(port)
}

async fn update(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: UpdatePort = wire::body(body, "port")?;
    check_vnic_type(&req.vnic_type)?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut port = access::writable(
        store::get::<Port>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Port",
        &id,
    )?;
    check_if_match(&headers, &port.meta)?;
    let network = store::get::<Network>(&mut tx, &port.network_id)
        .await?
        .ok_or_else(|| access::not_found("Network", &port.network_id))?;
    if let Some(v) = req.name {
        wire::check_len("name", &v)?;
        port.name = v;
    }
    if let Some(v) = req.description {
        wire::check_len("description", &v)?;
        port.meta.description = v;
    }
    if let Some(v) = req.admin_state_up {
        port.admin_state_up = v;
    }
    if let Some(v) = req.device_id {
        wire::check_len("device_id", &v)?;
        port.device_id = v;
    }
    if let Some(v) = req.device_owner {
        wire::check_len("device_owner", &v)?;
        if v.starts_with("network:") {
            require_network_owner(&ctx, &network, "device_owner")?;
        }
        port.device_owner = v;
    }
    if let Some(v) = req.host_id {
        access::require(&ctx, &PORT_PRIVILEGED)?;
        port.host_id = v;
    }
    if let Some(m) = req.mac_address {
        access::require(&ctx, &PORT_PRIVILEGED)?;
        port.mac_address = addr::parse_mac(&m)?;
    }
    if let Some(v) = req.port_security_enabled {
        port.port_security_enabled = v;
    }
    if let Some(g) = req.security_groups {
        check_groups(&mut tx, &port.meta.project_id, &g).await?;
        port.security_groups = g;
    }
    if let Some(pairs) = req.allowed_address_pairs {
        port.allowed_address_pairs = address_pairs(pairs, &port.mac_address)?;
    }
    if !port.port_security_enabled {
        if !port.security_groups.is_empty() {
            return Err(Error::Conflict(
                "Port has security group associated. Cannot disable port security or ip address until security group is removed."
                    .into(),
            )
            .into());
        }
        if !port.allowed_address_pairs.is_empty() {
            return Err(Error::Conflict(
                "Port Security must be enabled in order to have allowed address pairs on a port."
                    .into(),
            )
            .into());
        }
    }
    if let Some(fixed) = req.fixed_ips {
        if fixed.iter().any(|f| f.ip_address.is_some()) {
            require_network_owner(&ctx, &network, "fixed_ips:ip_address")?;
        }
        // Give everything back and take what is asked for: addresses the
        // port keeps are taken again in the same transaction.
        ipam::release_owner(&mut tx, &port.meta.id).await?;
        let mac = port.mac_address.clone();
        port.fixed_ips =
            allocate(&mut tx, &network, Some(fixed), &port.meta.id, Some(&mac)).await?;
    }
    store::update(&mut tx, &mut port).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::one("port", render(&port, &ctx)?))
}

async fn delete(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let port = access::writable(
        store::get::<Port>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Port",
        &id,
    )?;
    check_if_match(&headers, &port.meta)?;
    if port.device_owner == model::OWNER_ROUTER_INTERFACE
        || port.device_owner == model::OWNER_ROUTER_GATEWAY
    {
        return Err(Error::Conflict(format!(
            "Port {id} cannot be deleted directly via the port API: has device owner {}.",
            port.device_owner
        ))
        .into());
    }
    delete_rows(&mut tx, &port).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::no_content())
}

/// Removes a port: its addresses, and the association of floating IPs
/// that pointed at it.
pub async fn delete_rows(conn: &mut AnyConnection, port: &Port) -> Result<(), Error> {
    let fips: Vec<FloatingIp> = store::list(conn, &store::Visibility::All).await?;
    for mut fip in fips
        .into_iter()
        .filter(|f| f.port_id.as_deref() == Some(port.meta.id.as_str()))
    {
        fip.disassociate();
        store::update(conn, &mut fip).await?;
    }
    ipam::release_owner(conn, &port.meta.id).await?;
    store::delete(conn, Port::KIND, &port.meta.id).await
}
