//! `/limits` and `/os-quota-sets`: the project's compute quotas, their
//! defaults and usage. Administrators change them; readers of a project
//! read its own.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde_json::{json, Map, Value};

use super::wire::{self, is_admin};
use crate::policy::*;
use crate::store::{db_err, quota};
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/limits",
            p.on(&SERVICE, &LIMITS, MethodFilter::GET, limits),
        )
        .route(
            "/os-quota-sets/{project_id}",
            p.on(&SERVICE, &GET_QUOTA, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_QUOTA, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_QUOTA, MethodFilter::DELETE, reset)),
        )
        .route(
            "/os-quota-sets/{project_id}/detail",
            p.on(&SERVICE, &GET_QUOTA, MethodFilter::GET, detail),
        )
        .route(
            "/os-quota-sets/{project_id}/defaults",
            p.on(&SERVICE, &GET_QUOTA_DEFAULTS, MethodFilter::GET, defaults),
        )
}

/// `absolute` of `/limits`: Nova's names for limits and usage.
const LIMIT_NAMES: &[(&str, &str)] = &[
    ("maxTotalInstances", "instances"),
    ("maxTotalCores", "cores"),
    ("maxTotalRAMSize", "ram"),
    ("maxTotalKeypairs", "key_pairs"),
    ("maxServerMeta", "metadata_items"),
    ("maxImageMeta", "metadata_items"),
    ("maxPersonality", "injected_files"),
    ("maxPersonalitySize", "injected_file_content_bytes"),
    ("maxServerGroups", "server_groups"),
    ("maxServerGroupMembers", "server_group_members"),
    ("maxTotalFloatingIps", "floating_ips"),
    ("maxSecurityGroups", "security_groups"),
    ("maxSecurityGroupRules", "security_group_rules"),
];

const USED_NAMES: &[(&str, &str)] = &[
    ("totalInstancesUsed", "instances"),
    ("totalCoresUsed", "cores"),
    ("totalRAMUsed", "ram"),
    ("totalServerGroupsUsed", "server_groups"),
    ("totalFloatingIpsUsed", "floating_ips"),
    ("totalSecurityGroupsUsed", "security_groups"),
];

async fn limits(
    State(s): State<ComputeService>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = wire::query_pairs(raw.as_deref());
    let project = match wire::param(&q, "tenant_id") {
        Some(p) if is_admin(&ctx) => p.to_string(),
        _ => ctx.project_id().unwrap_or_default().to_string(),
    };
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let limits = quota::limits(&mut conn, &project).await?;
    let used = quota::usage(&mut conn, &project, &ctx.user_id).await?;
    let mut absolute = Map::new();
    for (name, resource) in LIMIT_NAMES {
        absolute.insert(
            name.to_string(),
            json!(limits.get(*resource).copied().unwrap_or(-1)),
        );
    }
    for (name, resource) in USED_NAMES {
        absolute.insert(
            name.to_string(),
            json!(used.get(*resource).copied().unwrap_or(0)),
        );
    }
    Ok(Json(json!({"limits": {"rate": [], "absolute": absolute}})))
}

fn quota_set(id: Option<&str>, values: &BTreeMap<String, Value>) -> Value {
    let mut m: Map<String, Value> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    json!({"quota_set": m})
}

async fn show(
    State(s): State<ComputeService>,
    authz: Authz,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    authz.check(&wire::target(&project_id))?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let limits = quota::limits(&mut conn, &project_id).await?;
    let values = limits.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(Json(quota_set(Some(&project_id), &values)))
}

async fn detail(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    authz.check(&wire::target(&project_id))?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let limits = quota::limits(&mut conn, &project_id).await?;
    let used = quota::usage(&mut conn, &project_id, &ctx.user_id).await?;
    let values = limits
        .into_iter()
        .map(|(k, limit)| {
            let in_use = used.get(&k).copied().unwrap_or(0);
            (k, json!({"limit": limit, "in_use": in_use, "reserved": 0}))
        })
        .collect();
    Ok(Json(quota_set(Some(&project_id), &values)))
}

async fn defaults(Path(project_id): Path<String>) -> Json<Value> {
    let values = quota::defaults()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    Json(quota_set(Some(&project_id), &values))
}

fn limit_value(name: &str, v: &Value) -> Result<i64, Error> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| *n >= -1 && *n <= i32::MAX as i64).ok_or_else(|| {
        Error::BadRequest(format!(
            "Invalid input for field/attribute {name}. Value: {}. It must be an integer of at least -1.",
            wire::short(v)
        ))
    })
}

async fn update(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path(project_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let Some(Value::Object(req)) = body.get("quota_set") else {
        return Err(Error::BadRequest(
            "Invalid input for field/attribute quota_set. 'quota_set' is a required property"
                .into(),
        )
        .into());
    };
    let force = match req.get("force") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(v)) => wire::parse_bool("force", v)?,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute force. Value: {}.",
                wire::short(other)
            ))
            .into())
        }
    };
    let mut wanted = Vec::new();
    for (k, v) in req {
        if k == "force" {
            continue;
        }
        if !quota::is_resource(k) {
            return Err(Error::BadRequest(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            ))
            .into());
        }
        wanted.push((k.clone(), limit_value(k, v)?));
    }
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let used = quota::usage(&mut tx, &project_id, &ctx.user_id).await?;
    for (resource, limit) in &wanted {
        let in_use = used.get(resource).copied().unwrap_or(0);
        if !force && *limit >= 0 && *limit < in_use {
            return Err(Error::BadRequest(format!(
                "Quota limit {limit} for {resource} must be greater than or equal to already used and reserved {in_use}."
            ))
            .into());
        }
        quota::set(&mut tx, &project_id, resource, *limit).await?;
    }
    let limits = quota::limits(&mut tx, &project_id).await?;
    tx.commit().await.map_err(db_err)?;
    let values = limits.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(Json(quota_set(None, &values)))
}

async fn reset(
    State(s): State<ComputeService>,
    Path(project_id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    quota::reset(&mut tx, &project_id).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::accepted())
}
