//! `/os-floating-ips` and `/os-floating-ip-pools`: Nova's deprecated proxy
//! to the network service's floating IPs. Nothing is stored here: every
//! address is the network service's own (through
//! `himmel_network::instance_fips`), a pool is an external network, and an
//! id is the floating IP's id there. What is Nova's is the shape (`ip`,
//! `pool`, `fixed_ip`, `instance_id`) and how it words the network
//! service's refusals (an exhausted pool is a 404, the quota a 403).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use himmel_network::instance_fips::{self, AllocateError, FloatingIpView};
use serde_json::{json, Value};

use super::wire;
use crate::policy::*;
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/os-floating-ips",
            p.on(&SERVICE, &LIST_FLOATING_IPS, MethodFilter::GET, list)
                .merge(p.on(&SERVICE, &CREATE_FLOATING_IP, MethodFilter::POST, create)),
        )
        .route(
            "/os-floating-ips/{id}",
            p.on(&SERVICE, &GET_FLOATING_IP, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &DELETE_FLOATING_IP, MethodFilter::DELETE, delete)),
        )
        .route(
            "/os-floating-ip-pools",
            p.on(&SERVICE, &LIST_FLOATING_IP_POOLS, MethodFilter::GET, pools),
        )
}

/// Nova's floating IP: `instance_id` is the device of the port the
/// address translates to, null when it translates to nothing.
fn render(v: &FloatingIpView) -> Value {
    json!({
        "id": v.fip.meta.id,
        "ip": v.fip.floating_ip_address,
        "pool": v.pool(),
        "fixed_ip": v.fip.fixed_ip_address,
        "instance_id": v.device_id,
    })
}

/// Whatever the network service says of an id (unknown, another
/// project's, not even a UUID), Nova answers the same 404.
fn not_found_for_id(id: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        Error::NotFound(_) => Error::NotFound(format!("Floating IP not found for ID {id}")),
        other => other,
    }
}

async fn list(State(s): State<ComputeService>, ctx: Ctx, authz: Authz) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    let fips = instance_fips::list(s.network(), caller).await?;
    Ok(Json(
        json!({"floating_ips": fips.iter().map(render).collect::<Vec<_>>()}),
    ))
}

async fn show(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    let fip = instance_fips::get(s.network(), caller, &id)
        .await
        .map_err(not_found_for_id(&id))?;
    Ok(Json(json!({"floating_ip": render(&fip)})))
}

/// The pool a create names: the body may be absent or null, `pool` a
/// string or null (other keys are ignored, as Nova's schema allows).
fn requested_pool(body: &[u8]) -> Result<Option<String>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("Malformed request body: {e}")))?;
    match &v {
        Value::Null => Ok(None),
        Value::Object(m) => match m.get("pool") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(p)) => Ok(Some(p.clone())),
            Some(other) => Err(Error::BadRequest(format!(
                "Invalid input for field/attribute pool. Value: {}. {} is not of type 'string', 'null'",
                wire::short(other),
                wire::short(other)
            ))),
        },
        other => Err(Error::BadRequest(format!(
            "Invalid input for field/attribute request body. Value: {}. {} is not of type 'object', 'null'",
            wire::short(other),
            wire::short(other)
        ))),
    }
}

/// Nova's words for the network service's refusals to allocate.
fn allocate_error(e: AllocateError, pool: Option<&str>) -> Error {
    match (e, pool) {
        (AllocateError::PoolNotFound, _) => Error::NotFound("Floating IP pool not found.".into()),
        (AllocateError::AmbiguousPool(name), _) => Error::BadRequest(format!(
            "Multiple floating IP pools matches found for name '{name}'"
        )),
        (AllocateError::OverQuota(_), Some(p)) => {
            Error::Forbidden(format!("IP allocation over quota in pool {p}."))
        }
        (AllocateError::OverQuota(_), None) => Error::Forbidden("IP allocation over quota.".into()),
        (AllocateError::Exhausted(_), Some(p)) => {
            Error::NotFound(format!("No more floating IPs in pool {p}."))
        }
        (AllocateError::Exhausted(_), None) => {
            Error::NotFound("No more floating IPs available.".into())
        }
        (AllocateError::Failed(e), _) => e,
    }
}

async fn create(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    let pool = requested_pool(&body)?;
    if caller.project_id.is_empty() {
        return Err(Error::BadRequest(
            "A floating IP belongs to a project; use a project-scoped token.".into(),
        )
        .into());
    }
    let fip = instance_fips::allocate(s.network(), caller.project_id, pool.as_deref())
        .await
        .map_err(|e| allocate_error(e, pool.as_deref()))?;
    Ok(Json(json!({"floating_ip": render(&fip)})))
}

/// Releases the address, associated or not (Nova disassociates first).
async fn delete(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    instance_fips::release(s.network(), caller, &id)
        .await
        .map_err(not_found_for_id(&id))?;
    Ok(wire::accepted())
}

async fn pools(State(s): State<ComputeService>) -> ApiResult<Json<Value>> {
    let pools: Vec<Value> = instance_fips::pools(s.network())
        .await?
        .into_iter()
        .map(|n| {
            let name = if n.name.is_empty() { n.meta.id } else { n.name };
            json!({ "name": name })
        })
        .collect();
    Ok(Json(json!({ "floating_ip_pools": pools })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_from_body() {
        assert_eq!(requested_pool(b"").unwrap(), None);
        assert_eq!(requested_pool(b"null").unwrap(), None);
        assert_eq!(requested_pool(b"{}").unwrap(), None);
        assert_eq!(requested_pool(br#"{"pool": null}"#).unwrap(), None);
        assert_eq!(
            requested_pool(br#"{"pool": "public", "x": 1}"#).unwrap(),
            Some("public".into())
        );
        assert!(requested_pool(br#"{"pool": 5}"#).is_err());
        assert!(requested_pool(b"[]").is_err());
        assert!(requested_pool(b"{").is_err());
    }
}
