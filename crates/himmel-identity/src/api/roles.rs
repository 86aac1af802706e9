//! `/v3/roles` (global and domain-specific roles), their implications
//! (`/v3/roles/{prior}/implies/{implied}`) and `/v3/role_inferences`.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiError, ApiResult, AuditTargetId, Authz, Ctx, Json, Pipeline, Target};
use serde_json::{json, Map, Value};

use crate::policy::*;
use crate::store::grants::{self, Filter};
use crate::store::roles::{self, Role, RoleFields};
use crate::store::{domains, revocation::RevocationEvent};
use crate::Identity;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(Error::BadRequest(msg.into()))
}

/// The `{"role": {...}}` object of a request body.
fn role_body(body: &Value) -> ApiResult<&Map<String, Value>> {
    body.get("role")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("Invalid input for field 'role': an object is required."))
}

fn name_of(v: &Value) -> ApiResult<String> {
    let name = v
        .as_str()
        .ok_or_else(|| bad("Invalid input for field 'name': a string is required."))?;
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(bad(
            "Invalid input for field 'name': it must be 1 to 255 characters, not only spaces.",
        ));
    }
    Ok(name.to_string())
}

fn description_of(v: &Value) -> ApiResult<String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        _ => Err(bad(
            "Invalid input for field 'description': a string is required.",
        )),
    }
}

/// Applies requested options onto `current`: only `immutable` exists, a
/// boolean; null removes it.
fn merge_options(current: &Value, requested: &Value) -> ApiResult<Value> {
    let requested = requested
        .as_object()
        .ok_or_else(|| bad("Invalid input for field 'options': an object is required."))?;
    let mut out = current.as_object().cloned().unwrap_or_default();
    for (k, v) in requested {
        if k != "immutable" {
            return Err(bad(format!(
                "Invalid input for field 'options': unknown option {k}."
            )));
        }
        match v {
            Value::Null => {
                out.remove(k);
            }
            Value::Bool(_) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {
                return Err(bad(
                    "Invalid input for field 'options.immutable': a boolean is required.",
                ))
            }
        }
    }
    Ok(Value::Object(out))
}

/// Attributes Keystone keeps as given (everything it has no column for).
fn extra_of(obj: &Map<String, Value>, current: &Value) -> Value {
    let mut extra = current.as_object().cloned().unwrap_or_default();
    for (k, v) in obj {
        if !matches!(
            k.as_str(),
            "id" | "name" | "domain_id" | "description" | "options" | "links"
        ) {
            extra.insert(k.clone(), v.clone());
        }
    }
    Value::Object(extra)
}

fn one(role: &Role) -> Json<Value> {
    Json(json!({"role": role.to_json()}))
}

/// What a domain reader may see: global roles and its own domain's.
fn role_target(ctx: &Ctx, role_domain: Option<&str>) -> Target {
    Target {
        domain_id: role_domain.or(ctx.domain_id()).map(str::to_string),
        ..Default::default()
    }
}

async fn list(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let domain_id = q
        .get("domain_id")
        .map(String::as_str)
        .filter(|d| !d.is_empty());
    authz.check(&role_target(&ctx, domain_id))?;
    let found = roles::list(id.db(), domain_id, q.get("name").map(String::as_str)).await?;
    let out: Vec<Value> = found.iter().map(Role::to_json).collect();
    Ok(Json(json!({
        "roles": out,
        "links": {"self": "/v3/roles", "previous": null, "next": null},
    })))
}

async fn create(State(id): State<Identity>, Json(body): Json<Value>) -> ApiResult<Response> {
    let obj = role_body(&body)?;
    let name =
        name_of(obj.get("name").ok_or_else(|| {
            bad("Invalid input for field 'name': 'name' is a required property.")
        })?)?;
    let domain_id = match obj.get("domain_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => {
            let d = domains::get(id.db(), d)
                .await?
                .ok_or_else(|| Error::not_found("domain", d))?;
            Some(d.id)
        }
        Some(_) => {
            return Err(bad(
                "Invalid input for field 'domain_id': a string or null is required.",
            ))
        }
    };
    let fields = RoleFields {
        name,
        domain_id,
        description: description_of(obj.get("description").unwrap_or(&Value::Null))?,
        options: merge_options(&json!({}), obj.get("options").unwrap_or(&json!({})))?,
        extra: extra_of(obj, &json!({})),
    };
    let role = roles::create(id.db(), &fields).await?;
    let mut resp = (StatusCode::CREATED, one(&role)).into_response();
    resp.extensions_mut().insert(AuditTargetId(role.id.clone()));
    Ok(resp)
}

async fn get(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    Path(role_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let role = roles::require(id.db(), &role_id).await?;
    authz.check(&role_target(&ctx, role.domain_id.as_deref()))?;
    Ok(one(&role))
}

fn immutable(action: &str, role: &Role) -> ApiError {
    ApiError(Error::Forbidden(format!(
        "Unable to {action} immutable role resource: `{}. Set resource option \"immutable\" to false first.",
        role.id
    )))
}

async fn update(
    State(id): State<Identity>,
    Path(role_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let obj = role_body(&body)?;
    let role = roles::require(id.db(), &role_id).await?;
    if role.is_immutable() {
        // The one change allowed: clearing the option, alone.
        let clears = obj.len() == 1
            && obj
                .get("options")
                .and_then(|o| o.as_object())
                .and_then(|o| o.get("immutable"))
                .is_some_and(|v| matches!(v, Value::Null | Value::Bool(false)));
        if !clears {
            return Err(immutable("update", &role));
        }
    }
    match obj.get("domain_id") {
        None => {}
        Some(d) if d.as_str() == role.domain_id.as_deref() => {}
        Some(_) => return Err(bad("Update of `domain_id` is not allowed.")),
    }
    let fields = RoleFields {
        name: match obj.get("name") {
            Some(n) => name_of(n)?,
            None => role.name.clone(),
        },
        domain_id: role.domain_id.clone(),
        description: match obj.get("description") {
            Some(d) => description_of(d)?,
            None => role.description.clone(),
        },
        options: match obj.get("options") {
            Some(o) => merge_options(&role.options, o)?,
            None => role.options.clone(),
        },
        extra: extra_of(obj, &role.extra),
    };
    roles::update(id.db(), &role.id, &fields).await?;
    Ok(one(&roles::require(id.db(), &role.id).await?))
}

/// Users holding `role_id` through a grant of it or of a role implying it.
async fn holders_of(id: &Identity, role_id: &str) -> Result<BTreeSet<String>, Error> {
    let graph = roles::implications(id.db()).await?;
    let mut role_ids = roles::implied_by(&graph, role_id);
    role_ids.insert(role_id.to_string());
    let mut users = BTreeSet::new();
    for r in &role_ids {
        let found = grants::list(
            id.db(),
            &Filter {
                role_id: Some(r),
                ..Default::default()
            },
        )
        .await?;
        for g in &found {
            users.extend(grants::holders(id.db(), g).await?);
        }
    }
    Ok(users)
}

async fn revoke_users(id: &Identity, users: BTreeSet<String>) -> Result<(), Error> {
    for user in users {
        let event = RevocationEvent {
            user_id: Some(user),
            ..Default::default()
        };
        id.revocations().revoke(id.db(), event).await?;
    }
    Ok(())
}

async fn delete(State(id): State<Identity>, Path(role_id): Path<String>) -> ApiResult<StatusCode> {
    let role = roles::require(id.db(), &role_id).await?;
    if role.is_immutable() {
        return Err(immutable("delete", &role));
    }
    let users = holders_of(&id, &role.id).await?;
    roles::delete(id.db(), &role.id).await?;
    revoke_users(&id, users).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- implied roles ----

fn inference_json(prior: &Role, implied: &Role) -> Value {
    json!({
        "role_inference": {"prior_role": prior.to_ref_json(), "implies": implied.to_ref_json()},
        "links": {"self": format!("/v3/roles/{}/implies/{}", prior.id, implied.id)},
    })
}

fn invalid_implied(msg: String) -> ApiError {
    ApiError(Error::Forbidden(msg))
}

async fn put_implied(
    State(id): State<Identity>,
    Path((prior_id, implied_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let prior = roles::require(id.db(), &prior_id).await?;
    let implied = roles::require(id.db(), &implied_id).await?;
    if implied.domain_id.is_none() && implied.name == "admin" {
        return Err(invalid_implied(format!(
            "{} cannot be an implied roles.",
            implied.id
        )));
    }
    if prior.domain_id.is_none() && implied.domain_id.is_some() {
        return Err(invalid_implied(
            "Global role cannot imply a domain-specific role".into(),
        ));
    }
    let graph = roles::implications(id.db()).await?;
    if prior.id == implied.id || roles::reachable(&graph, &implied.id).contains(&prior.id) {
        return Err(invalid_implied(format!(
            "{} cannot be an implied roles: {} already implies {} (circular role inference).",
            implied.id, implied.id, prior.id
        )));
    }
    roles::add_implication(id.db(), &prior.id, &implied.id).await?;
    Ok((StatusCode::CREATED, Json(inference_json(&prior, &implied))).into_response())
}

async fn load_implication(
    id: &Identity,
    prior_id: &str,
    implied_id: &str,
) -> ApiResult<(Role, Role)> {
    let prior = roles::require(id.db(), prior_id).await?;
    let implied = roles::require(id.db(), implied_id).await?;
    if !roles::implication_exists(id.db(), &prior.id, &implied.id).await? {
        return Err(ApiError(Error::NotFound(format!(
            "{prior_id} does not imply {implied_id}."
        ))));
    }
    Ok((prior, implied))
}

async fn get_implied(
    State(id): State<Identity>,
    Path((prior_id, implied_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (prior, implied) = load_implication(&id, &prior_id, &implied_id).await?;
    Ok(Json(inference_json(&prior, &implied)))
}

async fn head_implied(
    State(id): State<Identity>,
    Path((prior_id, implied_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    load_implication(&id, &prior_id, &implied_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_implied(
    State(id): State<Identity>,
    Path((prior_id, implied_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (prior, implied) = load_implication(&id, &prior_id, &implied_id).await?;
    // Holders of the prior role lose the implied one: their tokens go.
    let users = holders_of(&id, &prior.id).await?;
    roles::delete_implication(id.db(), &prior.id, &implied.id).await?;
    revoke_users(&id, users).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"prior_role": …, "implies": [...]}` for one prior role.
fn inference_list(
    prior: &Role,
    implied: &BTreeSet<String>,
    by_id: &HashMap<String, Role>,
) -> Value {
    let implies: Vec<Value> = implied
        .iter()
        .filter_map(|i| by_id.get(i))
        .map(Role::to_ref_json)
        .collect();
    json!({"prior_role": prior.to_ref_json(), "implies": implies})
}

async fn list_implied(
    State(id): State<Identity>,
    Path(prior_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let prior = roles::require(id.db(), &prior_id).await?;
    let graph = roles::implications(id.db()).await?;
    let by_id: HashMap<String, Role> = roles::all(id.db())
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let implied = graph.get(&prior.id).cloned().unwrap_or_default();
    Ok(Json(json!({
        "role_inference": inference_list(&prior, &implied, &by_id),
        "links": {"self": format!("/v3/roles/{}/implies", prior.id)},
    })))
}

async fn list_inferences(State(id): State<Identity>) -> ApiResult<Json<Value>> {
    let graph = roles::implications(id.db()).await?;
    let by_id: HashMap<String, Role> = roles::all(id.db())
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let out: Vec<Value> = graph
        .iter()
        .filter_map(|(prior, implied)| by_id.get(prior).map(|p| inference_list(p, implied, &by_id)))
        .collect();
    Ok(Json(json!({
        "role_inferences": out,
        "links": {"self": "/v3/role_inferences", "previous": null, "next": null},
    })))
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    let read = M::GET.or(M::HEAD);
    Router::new()
        .route(
            "/v3/roles",
            p.on(&SERVICE, &LIST_ROLES, read, list).merge(p.on(
                &SERVICE,
                &CREATE_ROLE,
                M::POST,
                create,
            )),
        )
        .route(
            "/v3/roles/{role_id}",
            p.on(&SERVICE, &GET_ROLE, read, get)
                .merge(p.on(&SERVICE, &UPDATE_ROLE, M::PATCH, update))
                .merge(p.on(&SERVICE, &DELETE_ROLE, M::DELETE, delete)),
        )
        .route(
            "/v3/roles/{role_id}/implies",
            p.on(&SERVICE, &LIST_IMPLIED_ROLES, read, list_implied),
        )
        .route(
            "/v3/roles/{role_id}/implies/{implied_role_id}",
            p.on(&SERVICE, &CREATE_IMPLIED_ROLE, M::PUT, put_implied)
                .merge(p.on(&SERVICE, &GET_IMPLIED_ROLE, M::GET, get_implied))
                .merge(p.on(&SERVICE, &GET_IMPLIED_ROLE, M::HEAD, head_implied))
                .merge(p.on(&SERVICE, &DELETE_IMPLIED_ROLE, M::DELETE, delete_implied)),
        )
        .route(
            "/v3/role_inferences",
            p.on(&SERVICE, &LIST_ROLE_INFERENCE_RULES, read, list_inferences),
        )
}
