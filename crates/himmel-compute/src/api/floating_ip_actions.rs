//! The `addFloatingIp` and `removeFloatingIp` server actions (deprecated in
//! Nova): they point one of the network service's floating IPs at a fixed
//! address of the server's ports, or stop it, through
//! `himmel_network::instance_fips`, so the dataplane translates it as for
//! an association made through the network API. The checks, their order
//! and their words are Nova's.

use axum::response::Response;
use himmel_core::{Error, RequestContext};
use himmel_http::policy::decide;
use himmel_http::{ApiResult, Decision};
use himmel_network::instance_fips::{self, Caller, FloatingIpView};
use himmel_network::instance_ports;
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire;
use crate::model::Server;
use crate::policy::*;
use crate::ComputeService;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddFloatingIp {
    address: String,
    fixed_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveFloatingIp {
    address: String,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

/// An address field as Nova's schema checks it (an IPv4 or IPv6 address).
fn ip_address(field: &str, v: &str) -> Result<(), Error> {
    v.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| {
        bad(format!(
            "Invalid input for field/attribute {field}. Value: {v}. '{v}' is not a 'ip-address'"
        ))
    })
}

/// The action's own rule, on the server's project (the action route has
/// checked only that the caller may act on the server).
fn authorize(ctx: &RequestContext, server: &Server, op: &himmel_http::Operation) -> ApiResult<()> {
    if decide(op.rule, Some(ctx), Some(&wire::target(&server.project_id))) != Decision::Allow {
        return Err(himmel_http::pipeline::forbidden(op.name).into());
    }
    Ok(())
}

fn caller(ctx: &RequestContext) -> Caller<'_> {
    Caller {
        project_id: ctx.project_id().unwrap_or_default(),
        admin: wire::is_admin(ctx),
    }
}

/// The floating IP with `address` the caller reaches; `many` words the
/// case of several (only an administrator, across pools, meets it).
async fn one_by_address(
    s: &ComputeService,
    ctx: &RequestContext,
    address: &str,
    none: Error,
    many: impl FnOnce(String) -> Error,
) -> Result<FloatingIpView, Error> {
    let mut found = instance_fips::by_address(s.network(), caller(ctx), address).await?;
    match found.len() {
        0 => Err(none),
        1 => Ok(found.remove(0)),
        _ => Err(many(format!(
            "Multiple floating IPs are found for address {address}."
        ))),
    }
}

/// The server's (port, fixed address) pairs, in the order of its ports.
async fn fixed_ips(s: &ComputeService, server: &Server) -> Result<Vec<(String, String)>, Error> {
    let ids: Vec<&str> = server.ports.iter().map(String::as_str).collect();
    let (ports, _) = instance_ports::ports_and_networks(s.network(), &ids).await?;
    if ports.is_empty() {
        return Err(bad("Instance network is not ready yet"));
    }
    Ok(ids
        .iter()
        .filter_map(|id| ports.get(*id))
        .flat_map(|p| {
            p.fixed_ips
                .iter()
                .map(|f| (p.meta.id.clone(), f.ip_address.clone()))
        })
        .collect())
}

/// `addFloatingIp`: the fixed address named (else the server's first IPv4
/// one) gets the floating IP, moved from wherever it pointed, as Nova lets
/// the network service move it.
pub async fn add(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    arg: &Value,
) -> ApiResult<Response> {
    authorize(ctx, server, &ADD_FLOATING_IP)?;
    let req: AddFloatingIp = wire::body(json!({ "addFloatingIp": arg }), "addFloatingIp")?;
    ip_address("address", &req.address)?;
    if let Some(f) = &req.fixed_address {
        ip_address("fixed_address", f)?;
    }
    let address = req.address;
    let fixed = fixed_ips(s, server).await?;
    if fixed.is_empty() {
        return Err(bad("No fixed IPs associated to instance").into());
    }
    let (port_id, fixed_address) = match &req.fixed_address {
        Some(want) => fixed
            .iter()
            .find(|(_, ip)| ip == want)
            .ok_or_else(|| bad("Specified fixed address not assigned to instance"))?,
        None => fixed.iter().find(|(_, ip)| !ip.contains(':')).ok_or_else(|| {
            bad(format!(
                "Unable to associate floating IP {address} to any fixed IPs for instance {}. Instance has no fixed IPv4 addresses to associate.",
                server.id
            ))
        })?,
    };
    // What Nova says for any other failure of the network service.
    let failed = |why: String| {
        bad(format!(
            "Unable to associate floating IP {address} to fixed IP {fixed_address} for instance {}. Error: {why}",
            server.id
        ))
    };
    let fip = one_by_address(
        s,
        ctx,
        &address,
        Error::NotFound("floating IP not found".into()),
        failed,
    )
    .await?;
    instance_fips::associate(
        s.network(),
        caller(ctx),
        &fip.fip.meta.id,
        port_id,
        fixed_address,
    )
    .await
    .map_err(|e| match e {
        // The fixed address already has a floating IP: the network
        // service's words, as Nova's FloatingIpAssociateFailed passes them.
        Error::Conflict(m) => bad(m),
        // No router joins the port's subnet to the pool, and the like.
        Error::NotFound(m) | Error::BadRequest(m) => failed(m),
        other => other,
    })?;
    Ok(wire::accepted())
}

/// `removeFloatingIp`: only a floating IP pointing at this server stops;
/// anything else is Nova's 409.
pub async fn remove(
    s: &ComputeService,
    ctx: &RequestContext,
    server: &Server,
    arg: &Value,
) -> ApiResult<Response> {
    authorize(ctx, server, &REMOVE_FLOATING_IP)?;
    let req: RemoveFloatingIp = wire::body(json!({ "removeFloatingIp": arg }), "removeFloatingIp")?;
    ip_address("address", &req.address)?;
    let address = req.address;
    let fip = one_by_address(
        s,
        ctx,
        &address,
        Error::NotFound(format!("Floating IP not found for address {address}.")),
        Error::Conflict,
    )
    .await?;
    let on_this_server = fip.fip.port_id.is_some() && fip.device_id.as_deref() == Some(&server.id);
    if !on_this_server {
        return Err(Error::Conflict(format!(
            "Floating IP {address} is not associated with instance {}.",
            server.id
        ))
        .into());
    }
    instance_fips::disassociate(s.network(), caller(ctx), &fip.fip.meta.id).await?;
    Ok(wire::accepted())
}
