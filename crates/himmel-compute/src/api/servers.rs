//! `/servers`: list, detail, show, update and delete; the create is in
//! [`super::server_create`], actions in [`super::server_actions`]. A server
//! the caller may not read is a 404.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::policy::decide;
use himmel_http::{ApiResult, Authz, Ctx, Decision, Json, Pipeline};
use himmel_network::model::{FloatingIp, Network, Port};
use himmel_network::{instance_fips, instance_ports};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha224};

use super::wire::{self, is_admin};
use crate::model::{Server, VmState};
use crate::policy::*;
use crate::servers::{self, not_found};
use crate::store::{self, db_err};
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/servers",
            p.on(&SERVICE, &LIST_SERVERS, MethodFilter::GET, list_brief)
                .merge(p.on(
                    &SERVICE,
                    &CREATE_SERVER,
                    MethodFilter::POST,
                    super::server_create::create,
                )),
        )
        .route(
            "/servers/detail",
            p.on(&SERVICE, &LIST_SERVERS, MethodFilter::GET, list_detail),
        )
        .route(
            "/servers/{id}/ips",
            p.on(&SERVICE, &LIST_SERVER_IPS, MethodFilter::GET, list_ips),
        )
        .route(
            "/servers/{id}/ips/{network}",
            p.on(&SERVICE, &GET_SERVER_IPS, MethodFilter::GET, show_ips),
        )
        .route(
            "/servers/{id}",
            p.on(&SERVICE, &GET_SERVER, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_SERVER, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_SERVER, MethodFilter::DELETE, delete)),
        )
}

/// The server if the caller may act on it under `authz` (else 404).
pub async fn visible(s: &ComputeService, authz: &Authz, id: &str) -> Result<Server, Error> {
    match servers::get(s, id).await? {
        Some(server) if authz.allows(&wire::target(&server.project_id)) => Ok(server),
        _ => {
            authz.allows(&Default::default());
            Err(not_found(id))
        }
    }
}

/// The ports of the servers being rendered, their networks and the
/// floating IPs translating to them, read once for a whole list.
struct PortView {
    ports: HashMap<String, Port>,
    networks: HashMap<String, Network>,
    /// By the id of the port they translate to.
    floating: HashMap<String, Vec<FloatingIp>>,
}

impl PortView {
    async fn load(s: &ComputeService, servers: &[Server]) -> Result<PortView, Error> {
        let ids: Vec<&str> = servers
            .iter()
            .flat_map(|sv| sv.ports.iter().map(String::as_str))
            .collect();
        let (ports, networks) = instance_ports::ports_and_networks(s.network(), &ids).await?;
        let mut floating: HashMap<String, Vec<FloatingIp>> = HashMap::new();
        for fip in instance_fips::on_ports(s.network(), &ids).await? {
            if let Some(port) = fip.port_id.clone() {
                floating.entry(port).or_default().push(fip);
            }
        }
        Ok(PortView {
            ports,
            networks,
            floating,
        })
    }

    /// Whether one of the server's IPv4 (or IPv6) addresses matches the filter's expression.
    fn has_address(&self, server: &Server, v6: bool, re: &fancy_regex::Regex) -> bool {
        server
            .ports
            .iter()
            .filter_map(|id| self.ports.get(id))
            .flat_map(|p| &p.fixed_ips)
            .filter(|ip| ip.ip_address.contains(':') == v6)
            .any(|ip| re.is_match(&ip.ip_address).unwrap_or(false))
    }

    /// `addresses`: the fixed addresses of the server's ports by network name.
    fn addresses(&self, server: &Server) -> Value {
        self.addresses_as(server, true)
    }

    /// The addresses by network name; `extended` adds the type and the MAC, as the server body
    /// has them (`/servers/{id}/ips` has only version and address). As in Nova, a network's
    /// fixed addresses come first, then the floating IPs translating to them.
    fn addresses_as(&self, server: &Server, extended: bool) -> Value {
        let address = |ip: &str, kind: &str, port: &Port| {
            let version = if ip.contains(':') { 6 } else { 4 };
            let mut a = json!({"version": version, "addr": ip});
            if extended {
                a["OS-EXT-IPS:type"] = json!(kind);
                a["OS-EXT-IPS-MAC:mac_addr"] = json!(port.mac_address);
            }
            a
        };
        let mut fixed: Vec<(String, Vec<Value>)> = Vec::new();
        let mut floating: HashMap<String, Vec<Value>> = HashMap::new();
        for port in server.ports.iter().filter_map(|id| self.ports.get(id)) {
            let name = match self.networks.get(&port.network_id) {
                Some(n) if !n.name.is_empty() => n.name.clone(),
                _ => port.network_id.clone(),
            };
            let i = match fixed.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    fixed.push((name.clone(), vec![]));
                    fixed.len() - 1
                }
            };
            for ip in &port.fixed_ips {
                fixed[i].1.push(address(&ip.ip_address, "fixed", port));
            }
            for f in self.floating.get(&port.meta.id).into_iter().flatten() {
                let a = address(&f.floating_ip_address, "floating", port);
                floating.entry(name.clone()).or_default().push(a);
            }
        }
        let mut out: Map<String, Value> = Map::new();
        for (name, mut list) in fixed {
            list.extend(floating.remove(&name).unwrap_or_default());
            out.insert(name, Value::Array(list));
        }
        Value::Object(out)
    }
}

fn host_id(server: &Server) -> String {
    if server.host.is_empty() {
        return String::new();
    }
    let digest = Sha224::digest(format!("{}{}", server.project_id, server.host).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The full server representation (microversion 2.1).
pub async fn render(
    s: &ComputeService,
    server: &Server,
    ctx: &RequestContext,
    headers: &HeaderMap,
) -> Result<Value, Error> {
    let view = PortView::load(s, std::slice::from_ref(server)).await?;
    Ok(render_with(&view, server, ctx, headers))
}

/// [`render`] with the ports already read.
fn render_with(
    view: &PortView,
    server: &Server,
    ctx: &RequestContext,
    headers: &HeaderMap,
) -> Value {
    let base = wire::base_url(headers);
    let image = if server.image_ref.is_empty() {
        json!("")
    } else {
        json!({"id": server.image_ref, "links": [{"rel": "bookmark",
            "href": format!("{base}/image/images/{}", server.image_ref)}]})
    };
    let groups: Vec<Value> = server
        .security_groups
        .iter()
        .map(|n| json!({"name": n}))
        .collect();
    let mut v = json!({
        "id": server.id,
        "name": server.name,
        "status": server.status(),
        "tenant_id": server.project_id,
        "user_id": server.user_id,
        "metadata": server.metadata,
        "hostId": host_id(server),
        "image": image,
        "flavor": {"id": server.flavor.id, "links": [{"rel": "bookmark",
            "href": format!("{base}{}/flavors/{}", crate::PATH_PREFIX, server.flavor.id)}]},
        "created": server.created_at,
        "updated": server.updated_at,
        "addresses": view.addresses(server),
        "accessIPv4": server.access_ipv4,
        "accessIPv6": canonical_ipv6(&server.access_ipv6),
        "links": wire::links(headers, "servers", &server.id),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": server.availability_zone,
        "config_drive": if server.config_drive { "True" } else { "" },
        "key_name": server.key_name,
        "OS-SRV-USG:launched_at": server.launched_at,
        "OS-SRV-USG:terminated_at": null,
        "security_groups": groups,
        "OS-EXT-STS:task_state": if server.deleting { Some("deleting") } else { server.task_state.as_deref() },
        "OS-EXT-STS:vm_state": server.vm_state.as_str(),
        "OS-EXT-STS:power_state": server.power_state,
        "os-extended-volumes:volumes_attached": [],
    });
    // Nova shows `progress` only in the statuses that can make progress.
    const PROGRESS_STATUSES: [&str; 6] = [
        "ACTIVE",
        "BUILD",
        "REBUILD",
        "RESIZE",
        "VERIFY_RESIZE",
        "MIGRATING",
    ];
    if !PROGRESS_STATUSES.contains(&server.status()) {
        v.as_object_mut().map(|o| o.remove("progress"));
    }
    if server.security_groups.is_empty() {
        // Nova leaves the key out for a server without groups.
        v.as_object_mut().map(|o| o.remove("security_groups"));
    }
    if is_admin(ctx) {
        v["OS-EXT-SRV-ATTR:host"] = json!(server.host);
        v["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(server.host);
        v["OS-EXT-SRV-ATTR:instance_name"] = json!(format!("instance-{}", &server.id[..8]));
    }
    if server.vm_state == VmState::Error {
        if let Some(f) = &server.fault {
            v["fault"] = json!({"code": f.code, "message": f.message, "created": f.created,
                                "details": f.details});
        }
    }
    v
}

/// The address as Nova shows it: compressed (`::babe:dc0c:1602`), whatever form was given.
fn canonical_ipv6(text: &str) -> String {
    text.parse::<std::net::Ipv6Addr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// The shorter server body of an update or a rebuild: Nova leaves out the extended
/// attributes (`OS-EXT-*`, `security_groups`, `key_name`, ...) there.
pub fn update_shape(mut v: Value) -> Value {
    const KEPT: [&str; 18] = [
        "id",
        "name",
        "status",
        "image",
        "flavor",
        "fault",
        "user_id",
        "tenant_id",
        "created",
        "updated",
        "progress",
        "metadata",
        "links",
        "addresses",
        "hostId",
        "OS-DCF:diskConfig",
        "accessIPv4",
        "accessIPv6",
    ];
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| KEPT.contains(&k.as_str()));
        // Addresses without the type and MAC, as `/servers/{id}/ips` has them.
        let addresses = o.get_mut("addresses").and_then(Value::as_object_mut);
        for address in addresses.into_iter().flat_map(|m| m.values_mut()) {
            for a in address.as_array_mut().into_iter().flatten() {
                if let Some(a) = a.as_object_mut() {
                    a.retain(|k, _| k == "version" || k == "addr");
                }
            }
        }
    }
    v
}

fn brief(server: &Server, headers: &HeaderMap) -> Value {
    json!({"id": server.id, "name": server.name, "links": wire::links(headers, "servers", &server.id)})
}

/// The servers a list shows: the caller's project (administrators: all
/// with `all_tenants`), filtered, sorted newest first, paged.
async fn listed(
    s: &ComputeService,
    ctx: &RequestContext,
    authz: &Authz,
    raw: Option<&str>,
) -> Result<(Vec<Server>, bool), Error> {
    let q = wire::query_pairs(raw);
    let all_tenants = match wire::param(&q, "all_tenants") {
        None => false,
        Some("") => true,
        Some(v) => wire::parse_bool("all_tenants", v)?,
    };
    let project_filter = wire::param(&q, "project_id").or(wire::param(&q, "tenant_id"));
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let mut found: Vec<Server> = if all_tenants {
        if decide(LIST_ALL_SERVERS.rule, Some(ctx), None) != Decision::Allow {
            authz.allows(&Default::default());
            return Err(himmel_http::pipeline::forbidden(LIST_ALL_SERVERS.name));
        }
        authz.allows(&Default::default());
        store::list(&mut conn, project_filter).await?
    } else {
        let project = ctx.project_id().unwrap_or_default().to_string();
        if !authz.allows(&wire::target(&project)) {
            return Err(himmel_http::pipeline::forbidden(LIST_SERVERS.name));
        }
        store::list(&mut conn, Some(&project)).await?
    };
    if let Some(name) = wire::param(&q, "name") {
        let re = fancy_regex::Regex::new(name).map_err(|_| {
            Error::BadRequest(format!("Invalid regular expression for name: {name}"))
        })?;
        found.retain(|sv| re.is_match(&sv.name).unwrap_or(false));
    }
    if let Some(status) = wire::param(&q, "status") {
        let status = status.to_ascii_uppercase();
        found.retain(|sv| sv.status() == status);
    }
    if let Some(image) = wire::param(&q, "image") {
        let image = image.rsplit('/').next().unwrap_or(image);
        found.retain(|sv| sv.image_ref == image);
    }
    if let Some(flavor) = wire::param(&q, "flavor") {
        let flavor = flavor.rsplit('/').next().unwrap_or(flavor);
        found.retain(|sv| sv.flavor.id == flavor);
    }
    if let Some(host) = wire::param(&q, "host") {
        if is_admin(ctx) {
            found.retain(|sv| sv.host == host);
        }
    }
    for (param, v6) in [("ip", false), ("ip6", true)] {
        let Some(pattern) = wire::param(&q, param) else {
            continue;
        };
        let re = fancy_regex::Regex::new(pattern).map_err(|_| {
            Error::BadRequest(format!("Invalid regular expression for {param}: {pattern}"))
        })?;
        let view = PortView::load(s, &found).await?;
        found.retain(|sv| view.has_address(sv, v6, &re));
    }
    if let Some(since) = wire::param(&q, "changes-since") {
        let t = himmel_core::time::parse_timestamp(since).ok_or_else(|| {
            Error::BadRequest(format!(
                "Invalid input for query parameters changes-since. Value: {since}. '{since}' is not a 'date-time'"
            ))
        })?;
        found.retain(|sv| {
            himmel_core::time::parse_timestamp(&sv.updated_at).is_some_and(|u| u >= t)
        });
    }
    // Newest first, as Nova sorts by default.
    found.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    if let Some(marker) = wire::param(&q, "marker") {
        let pos = found
            .iter()
            .position(|sv| sv.id == marker)
            .ok_or_else(|| Error::BadRequest(format!("marker [{marker}] not found")))?;
        found.drain(..=pos);
    }
    let mut more = false;
    if let Some(limit) = wire::int_param(&q, "limit")? {
        if found.len() > limit as usize {
            found.truncate(limit as usize);
            more = true;
        }
    }
    Ok((found, more))
}

fn list_body(
    headers: &HeaderMap,
    items: Vec<Value>,
    last: Option<&Server>,
    more: bool,
    path: &str,
) -> Value {
    let mut body = Map::new();
    body.insert("servers".into(), Value::Array(items));
    if let (true, Some(last)) = (more, last) {
        body.insert(
            "servers_links".into(),
            json!([{"rel": "next", "href": format!("{}/{path}?marker={}", wire::api_url(headers), last.id)}]),
        );
    }
    Value::Object(body)
}

async fn list_brief(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (found, more) = listed(&s, &ctx, &authz, raw.as_deref()).await?;
    let items = found.iter().map(|sv| brief(sv, &headers)).collect();
    Ok(Json(list_body(
        &headers,
        items,
        found.last(),
        more,
        "servers",
    )))
}

async fn list_detail(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (found, more) = listed(&s, &ctx, &authz, raw.as_deref()).await?;
    let view = PortView::load(&s, &found).await?;
    let items = found
        .iter()
        .map(|sv| render_with(&view, sv, &ctx, &headers))
        .collect();
    Ok(Json(list_body(
        &headers,
        items,
        found.last(),
        more,
        "servers/detail",
    )))
}

/// `GET /servers/{id}/ips`: the server's addresses by network.
async fn list_ips(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    let view = PortView::load(&s, std::slice::from_ref(&server)).await?;
    Ok(Json(
        json!({"addresses": view.addresses_as(&server, false)}),
    ))
}

/// `GET /servers/{id}/ips/{network}`: the addresses on one network, by its label (name).
async fn show_ips(
    State(s): State<ComputeService>,
    authz: Authz,
    Path((id, network)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let server = visible(&s, &authz, &id).await?;
    let view = PortView::load(&s, std::slice::from_ref(&server)).await?;
    let mut all = view.addresses_as(&server, false);
    match all.get_mut(&network).map(Value::take) {
        Some(addresses) => Ok(Json(json!({ network: addresses }))),
        None => Err(Error::NotFound("Instance is not a member of specified network".into()).into()),
    }
}

async fn show(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let server = visible(&s, &authz, &id).await?;
    Ok(wire::one(
        "server",
        render(&s, &server, &ctx, &headers).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateServer {
    name: Option<String>,
    #[serde(rename = "accessIPv4")]
    access_ipv4: Option<String>,
    #[serde(rename = "accessIPv6")]
    access_ipv6: Option<String>,
}

pub fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(Error::BadRequest(format!(
            "Invalid input for field/attribute name. Value: {}. It must be a non-empty string of at most 255 characters.",
            wire::short(&json!(name))
        )));
    }
    Ok(())
}

fn check_ip(field: &str, v: &str, v6: bool) -> Result<(), Error> {
    let ok = v.is_empty()
        || match v.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => !v6,
            Ok(std::net::IpAddr::V6(_)) => v6,
            Err(_) => false,
        };
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "Invalid input for field/attribute {field}. Value: {}. It is not a valid address.",
            wire::short(&json!(v))
        )))
    }
}

async fn update(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: UpdateServer = wire::body(body, "server")?;
    visible(&s, &authz, &id).await?;
    if let Some(n) = &req.name {
        check_name(n)?;
    }
    if let Some(v) = &req.access_ipv4 {
        check_ip("accessIPv4", v, false)?;
    }
    if let Some(v) = &req.access_ipv6 {
        check_ip("accessIPv6", v, true)?;
    }
    let (server, ()) = servers::modify(&s, &id, |sv| {
        if let Some(n) = req.name {
            sv.name = n;
        }
        if let Some(v) = req.access_ipv4 {
            sv.access_ipv4 = v;
        }
        if let Some(v) = req.access_ipv6 {
            sv.access_ipv6 = v;
        }
        Ok(())
    })
    .await?;
    Ok(wire::one(
        "server",
        update_shape(render(&s, &server, &ctx, &headers).await?),
    ))
}

async fn delete(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let server = visible(&s, &authz, &id).await?;
    super::server_actions::refuse_if_locked(&ctx, &server)?;
    let (server, ()) = servers::modify(&s, &id, |sv| {
        sv.deleting = true;
        Ok(())
    })
    .await?;
    servers::record_action(&s, &server, &ctx, "delete").await?;
    s.changed();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Metadata as Nova accepts it: string keys of 1-255 and values of at
/// most 255 characters, at most the project's `metadata_items`.
pub fn metadata_from(v: &Value, max_items: i64) -> Result<BTreeMap<String, String>, Error> {
    let Value::Object(m) = v else {
        return Err(Error::BadRequest(
            "Invalid input for field/attribute metadata. It must be an object.".into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let Value::String(v) = v else {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute metadata. Value of '{}' must be a string.",
                k.chars().take(80).collect::<String>()
            )));
        };
        if k.is_empty() || k.chars().count() > 255 || v.chars().count() > 255 {
            return Err(Error::BadRequest(
                "Invalid input for field/attribute metadata. Keys must be 1-255 and values at most 255 characters."
                    .into(),
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    if max_items >= 0 && out.len() as i64 > max_items {
        return Err(Error::Forbidden(format!(
            "Quota exceeded for metadata_items: Requested {}, but the limit is {max_items}",
            out.len()
        )));
    }
    Ok(out)
}
