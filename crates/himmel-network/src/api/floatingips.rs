//! `/v2.0/floatingips`: addresses of an external network that translate to
//! a port's fixed address through the router joining the two.

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde::Deserialize;
use serde_json::Value;
use sqlx::AnyConnection;

use super::access;
use super::list::{self, ListQuery};
use super::ports::{self, FixedIpRequest};
use super::wire::{self, check_if_match};
use super::{routers, tags};
use crate::model::{self, FloatingIp, Meta, Network, Port, Resource};
use crate::policy::*;
use crate::store::{self, db_err, ipam, quota, Visibility};
use crate::NetworkService;

pub fn routes(p: &Pipeline) -> Router<NetworkService> {
    Router::new()
        .route(
            "/v2.0/floatingips",
            p.on(&SERVICE, &GET_FLOATINGIP, MethodFilter::GET, list_fips)
                .merge(p.on(&SERVICE, &CREATE_FLOATINGIP, MethodFilter::POST, create)),
        )
        .route(
            "/v2.0/floatingips/{id}",
            p.on(&SERVICE, &GET_FLOATINGIP, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_FLOATINGIP, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_FLOATINGIP, MethodFilter::DELETE, delete)),
        )
        .merge(tags::routes::<FloatingIp>(
            p,
            "floatingips",
            &GET_FLOATINGIP,
            &UPDATE_FLOATINGIP,
            "Floating IP",
        ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFip {
    floating_network_id: Option<String>,
    floating_ip_address: Option<String>,
    subnet_id: Option<String>,
    port_id: Option<String>,
    fixed_ip_address: Option<String>,
    #[serde(default)]
    description: String,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateFip {
    #[serde(default, deserialize_with = "wire::nullable")]
    port_id: Option<Option<String>>,
    fixed_ip_address: Option<String>,
    description: Option<String>,
}

fn bad(msg: String) -> Error {
    Error::BadRequest(msg)
}

fn render(f: &FloatingIp) -> Result<Value, Error> {
    let mut m = wire::to_object(f)?;
    m.remove("floating_subnet_id");
    Ok(Value::Object(m))
}

async fn list_fips(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let visibility = access::visibility(&ctx, &authz)?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let fips: Vec<FloatingIp> = store::list(&mut conn, &visibility).await?;
    let items = fips.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    let q = ListQuery::parse(raw.as_deref());
    let self_url = format!("{}{}", wire::base_url(&headers), uri.path());
    Ok(Json(list::respond("floatingips", items, &q, &self_url)?))
}

async fn show(
    State(s): State<NetworkService>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let f = access::readable(
        store::get::<FloatingIp>(&mut conn, &id).await?,
        &authz,
        "Floating IP",
        &id,
    )?;
    let v = render(&f)?;
    Ok(wire::one(
        "floatingip",
        list::project_fields(v, &ListQuery::parse(raw.as_deref())),
    ))
}

/// Points `fip` at a port's fixed address, through the router that joins
/// the port's subnet to the floating network. Only the administrator
/// (`admin`) points a project's address at another project's port. Shared
/// with the compute API's floating IP proxy, so an association made there
/// is this one.
pub(crate) async fn associate(
    conn: &mut AnyConnection,
    admin: bool,
    fip: &mut FloatingIp,
    port_id: &str,
    fixed_ip: Option<String>,
) -> Result<(), Error> {
    let port = match store::get::<Port>(conn, port_id).await? {
        Some(p) if p.meta.project_id == fip.meta.project_id || admin => p,
        _ => return Err(access::not_found("Port", port_id)),
    };
    let v4: Vec<_> = port
        .fixed_ips
        .iter()
        .filter(|f| !f.ip_address.contains(':'))
        .collect();
    let chosen = match &fixed_ip {
        Some(ip) => v4.iter().find(|f| &f.ip_address == ip).ok_or_else(|| {
            bad(format!(
                "Bad floatingip request: Port {port_id} does not have fixed ip {ip}."
            ))
        })?,
        None => v4.first().ok_or_else(|| {
            bad(format!(
                "Bad floatingip request: Port {port_id} does not have any IPv4 addresses."
            ))
        })?,
    };
    let others: Vec<FloatingIp> = store::list(conn, &Visibility::All).await?;
    if let Some(other) = others.iter().find(|o| {
        o.meta.id != fip.meta.id
            && o.floating_network_id == fip.floating_network_id
            && o.port_id.as_deref() == Some(port_id)
            && o.fixed_ip_address.as_deref() == Some(chosen.ip_address.as_str())
    }) {
        return Err(Error::Conflict(format!(
            "Cannot associate floating IP {} ({}) with port {port_id} using fixed IP {}, as that fixed IP already has a floating IP on external network {}.",
            fip.floating_ip_address, fip.meta.id, chosen.ip_address, other.floating_network_id
        )));
    }
    let router = routers::router_for(conn, &fip.floating_network_id, &chosen.subnet_id)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "External network {} is not reachable from subnet {}. Therefore, cannot associate Port {port_id} with a Floating IP.",
                fip.floating_network_id, chosen.subnet_id
            ))
        })?;
    fip.port_id = Some(port_id.to_string());
    fip.fixed_ip_address = Some(chosen.ip_address.clone());
    fip.router_id = Some(router);
    fip.status = model::STATUS_ACTIVE.into();
    Ok(())
}

/// A new floating IP of `project` on the external `network`, unassociated
/// and not yet stored: the address asked for (or one of the subnet asked
/// for), else any free IPv4 address; a conflict when none is left. The
/// caller checks the quota first (the compute proxy words it its own way).
pub(crate) async fn allocate(
    conn: &mut AnyConnection,
    network: &Network,
    project: String,
    wanted: Option<FixedIpRequest>,
) -> Result<FloatingIp, Error> {
    let mut fip = FloatingIp {
        meta: Meta {
            project_id: project,
            ..Default::default()
        },
        floating_network_id: network.meta.id.clone(),
        floating_ip_address: String::new(),
        floating_subnet_id: String::new(),
        port_id: None,
        fixed_ip_address: None,
        router_id: None,
        status: model::STATUS_DOWN.into(),
    };
    store::stamp_new(&mut fip.meta);
    let ips = match wanted {
        Some(w) => ports::allocate(conn, network, Some(vec![w]), &fip.meta.id, None).await?,
        None => routers::allocate_v4(conn, network, &fip.meta.id).await?,
    };
    let Some(ip) = ips.into_iter().next() else {
        return Err(Error::Conflict(format!(
            "No more IP addresses available on network {}.",
            network.meta.id
        )));
    };
    fip.floating_ip_address = ip.ip_address;
    fip.floating_subnet_id = ip.subnet_id;
    Ok(fip)
}

pub(crate) async fn insert(conn: &mut AnyConnection, fip: &FloatingIp) -> Result<(), Error> {
    store::insert(conn, fip, || "Floating IP already exists.".into()).await
}

/// Deletes a floating IP and gives its address back (an association
/// goes with it).
pub(crate) async fn delete_rows(conn: &mut AnyConnection, id: &str) -> Result<(), Error> {
    ipam::release_owner(conn, id).await?;
    store::delete(conn, FloatingIp::KIND, id).await
}

async fn create(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: CreateFip = wire::body(body, "floatingip")?;
    let project = access::owner_project(&ctx, &authz, req.project_id, req.tenant_id)?;
    wire::check_len("description", &req.description)?;
    if req.floating_ip_address.is_some() {
        access::require(&ctx, &FLOATINGIP_ADDRESS_PRIVILEGED)?;
    }
    let network_id = req.floating_network_id.ok_or_else(|| {
        bad("Invalid input for floating_network_id. Reason: it is required.".into())
    })?;
    let tags = req.tags.unwrap_or_default();
    for t in &tags {
        wire::check_tag(t)?;
    }
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let network = store::get::<Network>(&mut tx, &network_id)
        .await?
        .filter(|n| n.visible_to_all() || access::can_see_project(&ctx, &n.meta.project_id))
        .ok_or_else(|| access::not_found("Network", &network_id))?;
    if !network.external {
        return Err(bad(format!(
            "Bad floatingip request: Network {network_id} is not a valid external network."
        ))
        .into());
    }
    quota::check(&mut tx, &project, "floatingip", 1).await?;
    let wanted = match (req.subnet_id, req.floating_ip_address) {
        (None, None) => None,
        (subnet_id, ip_address) => Some(FixedIpRequest {
            subnet_id,
            ip_address,
        }),
    };
    let mut fip = allocate(&mut tx, &network, project, wanted).await?;
    fip.meta.description = req.description;
    fip.meta.tags = tags;
    if let Some(port_id) = req.port_id {
        associate(
            &mut tx,
            access::is_admin(&ctx),
            &mut fip,
            &port_id,
            req.fixed_ip_address,
        )
        .await?;
    }
    insert(&mut tx, &fip).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::created("floatingip", &fip.meta.id, render(&fip)?))
}

async fn update(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: UpdateFip = wire::body(body, "floatingip")?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut fip = access::writable(
        store::get::<FloatingIp>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Floating IP",
        &id,
    )?;
    check_if_match(&headers, &fip.meta)?;
    if let Some(d) = req.description {
        wire::check_len("description", &d)?;
        fip.meta.description = d;
    }
    match req.port_id {
        Some(Some(port_id)) => {
            associate(
                &mut tx,
                access::is_admin(&ctx),
                &mut fip,
                &port_id,
                req.fixed_ip_address,
            )
            .await?
        }
        Some(None) => fip.disassociate(),
        None if req.fixed_ip_address.is_some() => {
            let port_id = fip.port_id.clone().ok_or_else(|| {
                bad("Bad floatingip request: fixed_ip_address needs a port_id.".into())
            })?;
            associate(
                &mut tx,
                access::is_admin(&ctx),
                &mut fip,
                &port_id,
                req.fixed_ip_address,
            )
            .await?
        }
        None => {}
    }
    store::update(&mut tx, &mut fip).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::one("floatingip", render(&fip)?))
}

async fn delete(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let fip = access::writable(
        store::get::<FloatingIp>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Floating IP",
        &id,
    )?;
    check_if_match(&headers, &fip.meta)?;
    delete_rows(&mut tx, &id).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::no_content())
}
