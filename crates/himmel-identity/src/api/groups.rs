//! `/v3/groups`: groups and their members, and `/v3/users/{user_id}/groups`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline, Target};
use serde_json::{json, Value};

use super::wire::{self, Filters};
use crate::policy::*;
use crate::store::groups::{self, Group};
use crate::store::revocation::RevocationEvent;
use crate::store::{domains, users};
use crate::Identity;

/// Group names are at most 64 characters, as in Keystone.
const NAME_MAX: usize = 64;
const KNOWN: &[&str] = &["name", "domain_id", "description"];

fn in_domain(domain_id: &str) -> Target {
    Target {
        domain_id: Some(domain_id.to_string()),
        ..Default::default()
    }
}

/// Loads a group after checking policy, so a caller who may not see it
/// learns nothing about whether it exists.
async fn load_checked(id: &Identity, authz: &Authz, group_id: &str) -> Result<Group, Error> {
    let found = groups::get(id.db(), group_id).await?;
    let t = found
        .as_ref()
        .map(|g| in_domain(&g.domain_id))
        .unwrap_or_default();
    authz.check(&t).map_err(|e| e.0)?;
    found.ok_or_else(|| Error::not_found("group", group_id))
}

/// Tokens carry the roles a user holds through groups; when a user leaves
/// a group they must be checked again.
async fn revoke_user(id: &Identity, user_id: &str) -> Result<(), Error> {
    let event = RevocationEvent {
        user_id: Some(user_id.to_string()),
        ..Default::default()
    };
    id.revocations().revoke(id.db(), event).await
}

async fn list(
    State(id): State<Identity>,
    authz: Authz,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let q = Filters(q);
    let out: Vec<Value> = groups::list(id.db(), q.get("domain_id"))
        .await?
        .into_iter()
        .filter(|g| q.text("name", &g.name))
        .filter(|g| authz.allows(&in_domain(&g.domain_id)))
        .map(|g| g.to_json())
        .collect();
    Ok(Json(wire::list("groups", "/v3/groups", out)))
}

async fn get(
    State(id): State<Identity>,
    authz: Authz,
    Path(group_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = load_checked(&id, &authz, &group_id).await?;
    Ok(Json(json!({"group": g.to_json()})))
}

async fn create(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let o = wire::resource(&body, "group")?;
    wire::required(o, "name")?;
    let g = Group {
        id: himmel_core::ids::new_id(),
        name: wire::name(o, "name", NAME_MAX)?.unwrap_or_default(),
        domain_id: wire::id_ref(o, "domain_id", true)?
            .flatten()
            .unwrap_or_else(|| super::domains::default_domain(&ctx)),
        description: wire::nullable_string(o, "description")?
            .flatten()
            .unwrap_or_default()
            .to_string(),
        extra: Value::Object(wire::extra(o, KNOWN, &["id", "links"])?),
    };
    authz.check(&in_domain(&g.domain_id))?;
    if domains::get(id.db(), &g.domain_id).await?.is_none() {
        return Err(Error::not_found("domain", &g.domain_id).into());
    }
    groups::create(id.db(), &g).await?;
    Ok(wire::created("group", &g.id, g.to_json()))
}

async fn update(
    State(id): State<Identity>,
    authz: Authz,
    Path(group_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let o = wire::resource(&body, "group")?;
    let mut g = load_checked(&id, &authz, &group_id).await?;
    wire::same_id(o, "group", &g.id)?;
    if let Some(d) = wire::id_ref(o, "domain_id", true)? {
        if d.as_deref() != Some(g.domain_id.as_str()) {
            return Err(Error::BadRequest("Cannot change Domain ID".into()).into());
        }
    }
    if let Some(name) = wire::name(o, "name", NAME_MAX)? {
        g.name = name;
    }
    if let Some(desc) = wire::nullable_string(o, "description")? {
        g.description = desc.unwrap_or_default().to_string();
    }
    let extra = wire::extra(o, &[KNOWN, &["id"]].concat(), &["links"])?;
    g.extra = wire::merge_extra(&g.extra, extra);
    groups::update(id.db(), &g).await?;
    Ok(Json(json!({"group": g.to_json()})))
}

async fn delete(
    State(id): State<Identity>,
    authz: Authz,
    Path(group_id): Path<String>,
) -> ApiResult<StatusCode> {
    let g = load_checked(&id, &authz, &group_id).await?;
    let members = groups::members(id.db(), &g.id).await?;
    groups::delete(id.db(), &g.id).await?;
    for m in members {
        revoke_user(&id, &m.id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list_members(
    State(id): State<Identity>,
    authz: Authz,
    Path(group_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let g = load_checked(&id, &authz, &group_id).await?;
    let q = Filters(q);
    let enabled = q.boolean("enabled");
    let out: Vec<Value> = groups::members(id.db(), &g.id)
        .await?
        .into_iter()
        .filter(|u| enabled.is_none_or(|e| u.enabled == e))
        .filter(|u| q.get("domain_id").is_none_or(|d| d == u.domain_id))
        .filter(|u| q.text("name", &u.name))
        .map(|u| u.to_json())
        .collect();
    let path = format!("/v3/groups/{}/users", g.id);
    Ok(Json(wire::list("users", &path, out)))
}

/// The group and the user of a membership call. A domain manager must
/// manage the domains of both.
async fn membership(
    id: &Identity,
    authz: &Authz,
    group_id: &str,
    user_id: &str,
) -> Result<(Group, users::User), Error> {
    let g = load_checked(id, authz, group_id).await?;
    let u = users::get(id.db(), user_id).await?;
    if let Some(u) = &u {
        authz.check(&in_domain(&u.domain_id)).map_err(|e| e.0)?;
    }
    let u = u.ok_or_else(|| Error::not_found("user", user_id))?;
    Ok((g, u))
}

fn not_a_member(user_id: &str, group_id: &str) -> Error {
    Error::NotFound(format!("User '{user_id}' not found in group '{group_id}'."))
}

async fn check_member(
    State(id): State<Identity>,
    authz: Authz,
    Path((group_id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (g, u) = membership(&id, &authz, &group_id, &user_id).await?;
    if groups::is_member(id.db(), &g.id, &u.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_a_member(&u.id, &g.id).into())
    }
}

async fn add_member(
    State(id): State<Identity>,
    authz: Authz,
    Path((group_id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (g, u) = membership(&id, &authz, &group_id, &user_id).await?;
    groups::add_member(id.db(), &g.id, &u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    State(id): State<Identity>,
    authz: Authz,
    Path((group_id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (g, u) = membership(&id, &authz, &group_id, &user_id).await?;
    if !groups::remove_member(id.db(), &g.id, &u.id).await? {
        return Err(not_a_member(&u.id, &g.id).into());
    }
    revoke_user(&id, &u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn groups_of_user(
    State(id): State<Identity>,
    authz: Authz,
    Path(user_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let u = super::users::load_checked(&id, &authz, &user_id).await?;
    let q = Filters(q);
    let out: Vec<Value> = groups::groups_of(id.db(), &u.id)
        .await?
        .into_iter()
        .filter(|g| q.text("name", &g.name))
        .map(|g| g.to_json())
        .collect();
    let path = format!("/v3/users/{}/groups", u.id);
    Ok(Json(wire::list("groups", &path, out)))
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    Router::new()
        .route(
            "/v3/groups",
            p.on(&SERVICE, &LIST_GROUPS, M::GET, list).merge(p.on(
                &SERVICE,
                &CREATE_GROUP,
                M::POST,
                create,
            )),
        )
        .route(
            "/v3/groups/{group_id}",
            p.on(&SERVICE, &GET_GROUP, M::GET, get)
                .merge(p.on(&SERVICE, &UPDATE_GROUP, M::PATCH, update))
                .merge(p.on(&SERVICE, &DELETE_GROUP, M::DELETE, delete)),
        )
        .route(
            "/v3/groups/{group_id}/users",
            p.on(&SERVICE, &LIST_USERS_IN_GROUP, M::GET, list_members),
        )
        .route(
            // GET also answers HEAD, the method Keystone documents.
            "/v3/groups/{group_id}/users/{user_id}",
            p.on(&SERVICE, &CHECK_USER_IN_GROUP, M::GET, check_member)
                .merge(p.on(&SERVICE, &ADD_USER_TO_GROUP, M::PUT, add_member))
                .merge(p.on(&SERVICE, &REMOVE_USER_FROM_GROUP, M::DELETE, remove_member)),
        )
        .route(
            "/v3/users/{user_id}/groups",
            p.on(&SERVICE, &LIST_GROUPS_FOR_USER, M::GET, groups_of_user),
        )
}
