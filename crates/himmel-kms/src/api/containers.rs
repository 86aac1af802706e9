//! `/v1/containers`: named groups of a project's secrets (generic, rsa,
//! certificate), their secret references, and their ACLs.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::MethodFilter;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde_json::{json, Value};

use super::secrets::{page_links, paging, query_pairs, secret_ref};
use super::{own_project, service_url, wire, Routes};
use crate::policy::*;
use crate::secrets::model::{Container, ContainerRef};
use crate::secrets::{container_store, KeyManager};

pub fn routes(p: &Pipeline) -> Routes {
    vec![
        (
            "/v1/containers",
            p.on(&SERVICE, &CONTAINERS_GET, MethodFilter::GET, list)
                .merge(p.on(&SERVICE, &CONTAINERS_POST, MethodFilter::POST, create)),
        ),
        (
            "/v1/containers/{container_id}",
            p.on(&SERVICE, &CONTAINER_GET, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &CONTAINER_DELETE, MethodFilter::DELETE, delete)),
        ),
        (
            "/v1/containers/{container_id}/secrets",
            p.on(
                &SERVICE,
                &CONTAINER_SECRET_POST,
                MethodFilter::POST,
                add_secret,
            )
            .merge(p.on(
                &SERVICE,
                &CONTAINER_SECRET_DELETE,
                MethodFilter::DELETE,
                remove_secret,
            )),
        ),
    ]
}

const SCHEMA: &str = "Container";
const TYPES: &[&str] = &["generic", "rsa", "certificate"];

pub fn container_ref(base: &str, id: &str) -> String {
    format!("{base}/v1/containers/{id}")
}

fn container_json(base: &str, c: &Container) -> Value {
    json!({
        "container_ref": container_ref(base, &c.id),
        "name": c.name,
        "type": c.container_type,
        "status": c.status,
        "creator_id": c.creator_id,
        "created": wire::timestamp(c.created_at),
        "updated": wire::timestamp(c.updated_at),
        "secret_refs": c.secret_refs.iter().map(|r| json!({
            "name": r.name,
            "secret_ref": secret_ref(base, &r.secret_id),
        })).collect::<Vec<_>>(),
        "consumers": [],
    })
}

/// One `{name, secret_ref}`; the ref must point at this service.
fn parse_ref(item: &Value, base: &str) -> Result<ContainerRef, Error> {
    let obj = wire::object(item, SCHEMA)?;
    let name = wire::opt_string(obj, "name", SCHEMA, 255, true)?.unwrap_or_default();
    let Some(Value::String(r)) = obj.get("secret_ref") else {
        return Err(wire::invalid(
            SCHEMA,
            "'secret_ref' is a required property",
            "secret_refs",
        ));
    };
    if !r.starts_with(&format!("{base}/v1/secrets/")) {
        return Err(Error::BadRequest(format!(
            "No support for value set on field 'secret_ref' on schema '{SCHEMA}': \
             Secret_ref does not match the configured hostname, please try again"
        )));
    }
    Ok(ContainerRef {
        name,
        secret_id: wire::id_from_ref(r).to_owned(),
    })
}

/// Reference names an rsa or certificate container needs and allows.
fn check_names(kind: &str, names: &[&str]) -> Result<(), Error> {
    let (required, allowed): (&[&str], &[&str]) = match kind {
        "rsa" => (
            &["public_key", "private_key"],
            &["public_key", "private_key", "private_key_passphrase"],
        ),
        "certificate" => (
            &["certificate"],
            &[
                "certificate",
                "private_key",
                "private_key_passphrase",
                "intermediates",
            ],
        ),
        _ => return Ok(()),
    };
    if let Some(bad) = names.iter().find(|n| !allowed.contains(n)) {
        return Err(wire::invalid(
            SCHEMA,
            &format!(
                "'{bad}' is not a reference name allowed for the {kind} type; allowed: {allowed:?}"
            ),
            "secret_refs",
        ));
    }
    if let Some(missing) = required.iter().find(|r| !names.contains(r)) {
        return Err(wire::invalid(
            SCHEMA,
            &format!("the {kind} type requires a reference named '{missing}'"),
            "secret_refs",
        ));
    }
    Ok(())
}

async fn create(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let project = own_project(&ctx, &authz)?;
    let base = service_url(&headers);
    let obj = wire::object(&body, SCHEMA)?;
    let kind = match obj.get("type") {
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => t.clone(),
        Some(v) => {
            return Err(wire::invalid(
                SCHEMA,
                &format!("{} is not one of {TYPES:?}", wire::shown(v)),
                "type",
            )
            .into())
        }
        None => return Err(wire::invalid(SCHEMA, "'type' is a required property", "type").into()),
    };
    let name = wire::opt_string(obj, "name", SCHEMA, 255, true)?;
    let refs = match obj.get("secret_refs") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| parse_ref(i, &base))
            .collect::<Result<Vec<_>, _>>()?,
        Some(v) => {
            return Err(wire::invalid(
                SCHEMA,
                &format!("{} is not of type 'array'", wire::shown(v)),
                "secret_refs",
            )
            .into())
        }
    };
    let mut names: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    let mut ids: Vec<&str> = refs.iter().map(|r| r.secret_id.as_str()).collect();
    check_names(&kind, &names)?;
    names.sort();
    names.dedup();
    ids.sort();
    ids.dedup();
    if names.len() != refs.len() {
        return Err(wire::invalid(
            SCHEMA,
            "Duplicate reference names are not allowed",
            "secret_refs",
        )
        .into());
    }
    if ids.len() != refs.len() {
        return Err(wire::invalid(
            SCHEMA,
            "Duplicate secret ids are not allowed",
            "secret_refs",
        )
        .into());
    }
    let c = km
        .create_container(
            &project,
            &ctx.user_id,
            name.map(|n| n.trim().to_owned()),
            kind,
            refs,
        )
        .await?;
    let url = container_ref(&base, &c.id);
    Ok(wire::created(
        json!({"container_ref": url}),
        Some(&url),
        &c.id,
    ))
}

async fn list(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    authz: Authz,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let project = own_project(&ctx, &authz)?;
    let params = query_pairs(&raw);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (offset, limit) = paging(&params);
    let (containers, total) =
        container_store::list(km.db(), &project, get("name"), get("type"), offset, limit).await?;
    let base = service_url(&headers);
    let mut body = json!({
        "containers": containers.iter().map(|c| container_json(&base, c)).collect::<Vec<_>>(),
    });
    page_links(
        &mut body,
        &format!("{base}/v1/containers"),
        &params,
        offset,
        limit,
        total,
        containers.len(),
    );
    Ok(Json(body))
}

async fn show(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (c, _) = km.container_for(&CONTAINER_GET, &ctx, &id).await?;
    Ok(Json(container_json(&service_url(&headers), &c)))
}

async fn delete(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (c, _) = km.container_for(&CONTAINER_DELETE, &ctx, &id).await?;
    km.delete_container(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_secret(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let (c, _) = km.container_for(&CONTAINER_SECRET_POST, &ctx, &id).await?;
    let base = service_url(&headers);
    let r = parse_ref(&body, &base)?;
    if c.secret_refs.iter().any(|e| e.name == r.name) {
        return Err(
            wire::invalid(SCHEMA, "Duplicate reference names are not allowed", "name").into(),
        );
    }
    km.add_container_secret(&c, r).await?;
    let url = container_ref(&base, &c.id);
    Ok(wire::created(
        json!({"container_ref": url}),
        Some(&url),
        &c.id,
    ))
}

async fn remove_secret(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<StatusCode> {
    let (c, _) = km
        .container_for(&CONTAINER_SECRET_DELETE, &ctx, &id)
        .await?;
    let r = parse_ref(&body, &service_url(&headers))?;
    km.remove_container_secret(&c, r).await?;
    Ok(StatusCode::NO_CONTENT)
}
