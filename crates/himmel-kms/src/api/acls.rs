//! `/v1/secrets/{id}/acl` and `/v1/containers/{id}/acl`: the read ACL
//! (`users`, `project-access`). PUT replaces it, PATCH changes what is
//! given, DELETE returns to the implicit project-wide ACL.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::MethodFilter;
use himmel_core::Error;
use himmel_http::{ApiResult, Ctx, Json, Operation, Pipeline};
use serde_json::{json, Value};

use super::{service_url, wire, Routes};
use crate::policy::*;
use crate::secrets::model::{Acl, AclChange, AclEntity};
use crate::secrets::KeyManager;

pub fn routes(p: &Pipeline) -> Routes {
    vec![
        (
            "/v1/secrets/{secret_id}/acl",
            p.on(
                &SERVICE,
                &SECRET_ACLS_GET,
                MethodFilter::GET,
                get_secret_acl,
            )
            .merge(p.on(
                &SERVICE,
                &SECRET_ACLS_PUT_PATCH,
                MethodFilter::PUT,
                put_secret_acl,
            ))
            .merge(p.on(
                &SERVICE,
                &SECRET_ACLS_PUT_PATCH,
                MethodFilter::PATCH,
                patch_secret_acl,
            ))
            .merge(p.on(
                &SERVICE,
                &SECRET_ACLS_DELETE,
                MethodFilter::DELETE,
                delete_secret_acl,
            )),
        ),
        (
            "/v1/containers/{container_id}/acl",
            p.on(
                &SERVICE,
                &CONTAINER_ACLS_GET,
                MethodFilter::GET,
                get_container_acl,
            )
            .merge(p.on(
                &SERVICE,
                &CONTAINER_ACLS_PUT_PATCH,
                MethodFilter::PUT,
                put_container_acl,
            ))
            .merge(p.on(
                &SERVICE,
                &CONTAINER_ACLS_PUT_PATCH,
                MethodFilter::PATCH,
                patch_container_acl,
            ))
            .merge(p.on(
                &SERVICE,
                &CONTAINER_ACLS_DELETE,
                MethodFilter::DELETE,
                delete_container_acl,
            )),
        ),
    ]
}

const SCHEMA: &str = "ACL";

pub fn acl_json(acl: &Acl) -> Value {
    if !acl.explicit {
        return json!({"read": {"project-access": true}});
    }
    json!({"read": {
        "project-access": acl.project_access,
        "users": acl.users,
        "created": wire::timestamp(acl.created_at),
        "updated": wire::timestamp(acl.updated_at),
    }})
}

/// Reads an ACL body: only `read`, with `users` and `project-access`;
/// `None` when the body has no `read`.
pub fn parse_change(body: &Value) -> Result<Option<AclChange>, Error> {
    let obj = wire::object(body, SCHEMA)?;
    if let Some(extra) = obj.keys().find(|k| *k != "read") {
        return Err(wire::invalid(
            SCHEMA,
            &format!("Additional properties are not allowed ('{extra}' was unexpected)"),
            extra,
        ));
    }
    let Some(read) = obj.get("read") else {
        return Ok(None);
    };
    let read = wire::object(read, SCHEMA)?;
    if let Some(extra) = read
        .keys()
        .find(|k| *k != "users" && *k != "project-access")
    {
        return Err(wire::invalid(
            SCHEMA,
            &format!("Additional properties are not allowed ('{extra}' was unexpected)"),
            extra,
        ));
    }
    let project_access = match read.get("project-access") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => {
            return Err(wire::invalid(
                SCHEMA,
                &format!("{} is not of type 'boolean'", wire::shown(v)),
                "project-access",
            ))
        }
    };
    let users = match read.get("users") {
        None => None,
        Some(Value::Array(items)) => {
            let mut users = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(u) if !u.is_empty() && u.len() <= 255 => users.push(u.clone()),
                    other => {
                        return Err(wire::invalid(
                            SCHEMA,
                            &format!("{} is not a user id", wire::shown(other)),
                            "users",
                        ))
                    }
                }
            }
            users.sort();
            users.dedup();
            Some(users)
        }
        Some(v) => {
            return Err(wire::invalid(
                SCHEMA,
                &format!("{} is not of type 'array'", wire::shown(v)),
                "users",
            ))
        }
    };
    Ok(Some(AclChange {
        project_access,
        users,
    }))
}

/// What differs between the ACLs of secrets and containers.
struct Kind {
    entity: AclEntity,
    collection: &'static str,
    get: &'static Operation,
    change: &'static Operation,
    delete: &'static Operation,
}

static SECRETS: Kind = Kind {
    entity: AclEntity::Secret,
    collection: "secrets",
    get: &SECRET_ACLS_GET,
    change: &SECRET_ACLS_PUT_PATCH,
    delete: &SECRET_ACLS_DELETE,
};

static CONTAINERS: Kind = Kind {
    entity: AclEntity::Container,
    collection: "containers",
    get: &CONTAINER_ACLS_GET,
    change: &CONTAINER_ACLS_PUT_PATCH,
    delete: &CONTAINER_ACLS_DELETE,
};

/// The resource's id and ACL, after `op`'s check.
async fn load(
    km: &KeyManager,
    kind: &Kind,
    op: &'static Operation,
    ctx: &Ctx,
    id: &str,
) -> Result<(String, Acl), Error> {
    match kind.entity {
        AclEntity::Secret => {
            let (s, acl) = km.secret_for(op, ctx, id).await?;
            Ok((s.id, acl))
        }
        AclEntity::Container => {
            let (c, acl) = km.container_for(op, ctx, id).await?;
            Ok((c.id, acl))
        }
    }
}

async fn get_acl(km: KeyManager, kind: &Kind, ctx: Ctx, id: String) -> ApiResult<Json<Value>> {
    let (_, acl) = load(&km, kind, kind.get, &ctx, &id).await?;
    Ok(Json(acl_json(&acl)))
}

async fn change_acl(
    km: KeyManager,
    kind: &Kind,
    headers: HeaderMap,
    ctx: Ctx,
    id: String,
    body: Value,
    replace: bool,
) -> ApiResult<Json<Value>> {
    let (id, acl) = load(&km, kind, kind.change, &ctx, &id).await?;
    match parse_change(&body)? {
        Some(change) => {
            km.change_acl(kind.entity, &id, &acl, change, replace)
                .await?
        }
        // A PUT replaces every ACL given with what is given: none left.
        None if replace => km.delete_acl(kind.entity, &id).await?,
        None => {}
    }
    Ok(Json(json!({
        "acl_ref": format!("{}/v1/{}/{id}/acl", service_url(&headers), kind.collection)
    })))
}

async fn delete_acl(km: KeyManager, kind: &Kind, ctx: Ctx, id: String) -> ApiResult<StatusCode> {
    let (id, _) = load(&km, kind, kind.delete, &ctx, &id).await?;
    km.delete_acl(kind.entity, &id).await?;
    Ok(StatusCode::OK)
}

async fn get_secret_acl(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    get_acl(km, &SECRETS, ctx, id).await
}

async fn put_secret_acl(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    change_acl(km, &SECRETS, headers, ctx, id, body, true).await
}

async fn patch_secret_acl(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    change_acl(km, &SECRETS, headers, ctx, id, body, false).await
}

async fn delete_secret_acl(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_acl(km, &SECRETS, ctx, id).await
}

async fn get_container_acl(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    get_acl(km, &CONTAINERS, ctx, id).await
}

async fn put_container_acl(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    change_acl(km, &CONTAINERS, headers, ctx, id, body, true).await
}

async fn patch_container_acl(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    change_acl(km, &CONTAINERS, headers, ctx, id, body, false).await
}

async fn delete_container_acl(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_acl(km, &CONTAINERS, ctx, id).await
}
