//! `/v2.0/quotas`: per-project limits (show, update, reset, defaults,
//! details with usage). Limits are enforced by every create.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Json, Pipeline};
use serde_json::{json, Map, Value};

use super::access;
use super::wire;
use crate::policy::*;
use crate::store::{self, db_err, quota};
use crate::NetworkService;

pub fn routes(p: &Pipeline) -> Router<NetworkService> {
    Router::new()
        .route(
            "/v2.0/quotas",
            p.on(&SERVICE, &LIST_QUOTAS, MethodFilter::GET, list_quotas),
        )
        .route(
            "/v2.0/quotas/{project_id}",
            p.on(&SERVICE, &GET_QUOTA, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_QUOTA, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_QUOTA, MethodFilter::DELETE, reset)),
        )
        .route(
            "/v2.0/quotas/{project_id}/default",
            p.on(&SERVICE, &GET_QUOTA_DEFAULT, MethodFilter::GET, defaults),
        )
        .route(
            "/v2.0/quotas/{project_id}/details",
            p.on(&SERVICE, &GET_QUOTA, MethodFilter::GET, details),
        )
}

fn body(limits: &BTreeMap<String, i64>) -> Value {
    let m: Map<String, Value> = limits.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({"quota": m})
}

/// Readers see their own project's quota.
fn check_read(authz: &Authz, project_id: &str) -> Result<(), himmel_http::ApiError> {
    if !authz.unconditional() {
        authz.check(&access::target(project_id))?;
    }
    Ok(())
}

async fn list_quotas(State(s): State<NetworkService>) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let mut out = Vec::new();
    for project in quota::projects_with_limits(&mut conn).await? {
        let mut q = body(&quota::limits(&mut conn, &project).await?)["quota"].clone();
        q["project_id"] = json!(project);
        q["tenant_id"] = json!(project);
        out.push(q);
    }
    Ok(Json(json!({"quotas": out})))
}

async fn show(
    State(s): State<NetworkService>,
    authz: Authz,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    check_read(&authz, &project_id)?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    Ok(Json(body(&quota::limits(&mut conn, &project_id).await?)))
}

async fn defaults(Path(_project_id): Path<String>) -> Json<Value> {
    Json(body(&quota::defaults()))
}

async fn details(
    State(s): State<NetworkService>,
    authz: Authz,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    check_read(&authz, &project_id)?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let mut m = Map::new();
    for (resource, limit) in quota::limits(&mut conn, &project_id).await? {
        let used = store::count(&mut conn, &resource, &project_id).await?;
        m.insert(
            resource,
            json!({"limit": limit, "used": used, "reserved": 0}),
        );
    }
    Ok(Json(json!({"quota": m})))
}

async fn update(
    State(s): State<NetworkService>,
    Path(project_id): Path<String>,
    Json(req): Json<Value>,
) -> ApiResult<Json<Value>> {
    let Some(Value::Object(changes)) = req.get("quota") else {
        return Err(Error::BadRequest(
            "Resource body required: expected an object under 'quota'.".into(),
        )
        .into());
    };
    // With check_limit, a limit below what the project already uses is refused.
    let check_limit = match changes.get("check_limit") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(t)) if t.eq_ignore_ascii_case("true") => true,
        Some(Value::String(t)) if t.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "Invalid input for check_limit. Reason: '{other}' is not a boolean."
            ))
            .into())
        }
    };
    let mut parsed = Vec::new();
    for (resource, v) in changes {
        if resource == "check_limit" {
            continue;
        }
        if !quota::is_resource(resource) {
            return Err(
                Error::BadRequest(format!("Unrecognized attribute(s) '{resource}'")).into(),
            );
        }
        // Clients send numbers; some send them as strings.
        let limit = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(t) => t.parse::<i64>().ok(),
            _ => None,
        }
        .filter(|n| *n >= -1)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "Invalid input for {resource}. Reason: '{v}' is not an integer of -1 or more."
            ))
        })?;
        parsed.push((resource.clone(), limit));
    }
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    for (resource, limit) in parsed {
        if check_limit && limit >= 0 {
            let used = store::count(&mut tx, &resource, &project_id).await?;
            if used > limit {
                return Err(Error::BadRequest(format!(
                    "Quota limit {limit} for {resource} must be greater than or equal to already used {used}."
                ))
                .into());
            }
        }
        quota::set(&mut tx, &project_id, &resource, limit).await?;
    }
    let limits = quota::limits(&mut tx, &project_id).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(Json(body(&limits)))
}

async fn reset(
    State(s): State<NetworkService>,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    quota::reset(&mut tx, &project_id).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::no_content())
}
