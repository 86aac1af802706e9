//! `/v3/projects`: projects, their hierarchy and their tags, and
//! `/v3/users/{user_id}/projects`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline, Target};
use serde_json::{json, Map, Value};

use super::wire::{self, Filters};
use crate::policy::*;
use crate::store::projects::{self, Project};
use crate::store::revocation::RevocationEvent;
use crate::store::{assignments, domains, users};
use crate::Identity;

/// Project names are at most 64 characters, as in Keystone.
const NAME_MAX: usize = 64;
/// Keystone's limits on project tags.
const MAX_TAGS: usize = 80;
const TAG_MAX: usize = 255;
/// Keystone's default `max_project_tree_depth`.
const MAX_DEPTH: usize = 5;

fn target(p: &Project) -> Target {
    Target {
        domain_id: Some(p.domain_id.clone()),
        project_id: Some(p.id.clone()),
        user_id: None,
    }
}

/// Loads a project after checking policy, so a caller who may not see it
/// learns nothing about whether it exists.
async fn load_checked(id: &Identity, authz: &Authz, project_id: &str) -> Result<Project, Error> {
    let found = projects::get(id.db(), project_id).await?;
    let t = match &found {
        Some(p) => target(p),
        None => Target {
            project_id: Some(project_id.to_string()),
            ..Default::default()
        },
    };
    authz.check(&t).map_err(|e| e.0)?;
    found.ok_or_else(|| Error::not_found("project", project_id))
}

fn check_tag(field: &str, tag: &str) -> Result<(), Error> {
    if tag.is_empty() || tag.chars().count() > TAG_MAX {
        return Err(wire::invalid(
            field,
            format!("a tag must have 1 to {TAG_MAX} characters"),
        ));
    }
    if tag.contains('/') || tag.contains(',') {
        return Err(wire::invalid(
            field,
            format!("'{tag}' does not match '^[^,/]*$'"),
        ));
    }
    Ok(())
}

fn parse_tags(v: &Value) -> Result<Vec<String>, Error> {
    let items = v
        .as_array()
        .ok_or_else(|| wire::invalid("tags", format!("{v} is not of type 'array'")))?;
    if items.len() > MAX_TAGS {
        return Err(wire::invalid(
            "tags",
            format!("a project has at most {MAX_TAGS} tags"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let tag = item
            .as_str()
            .ok_or_else(|| wire::invalid("tags", format!("{item} is not of type 'string'")))?;
        check_tag("tags", tag)?;
        if out.iter().any(|t| t == tag) {
            return Err(wire::invalid("tags", format!("'{tag}' is given twice")));
        }
        out.push(tag.to_string());
    }
    Ok(out)
}

fn check_options(o: &wire::Obj) -> Result<(), Error> {
    match o.get("options") {
        None => Ok(()),
        Some(Value::Object(m)) if m.is_empty() => Ok(()),
        Some(Value::Object(m)) => {
            let name = m.keys().next().map(String::as_str).unwrap_or_default();
            Err(wire::invalid(
                "options",
                format!("'{name}' is not a supported project option"),
            ))
        }
        Some(v) => Err(wire::invalid(
            "options",
            format!("{v} is not of type 'object'"),
        )),
    }
}

const KNOWN: &[&str] = &[
    "name",
    "description",
    "domain_id",
    "parent_id",
    "enabled",
    "is_domain",
    "tags",
    "options",
];

/// Filters of `GET /v3/projects` (and a user's project list).
fn keep(q: &Filters, p: &Project, tags: &[String]) -> bool {
    let list = |key: &str| -> Option<Vec<&str>> {
        q.get(key)
            .map(|v| v.split(',').filter(|t| !t.is_empty()).collect())
    };
    let has = |t: &&str| tags.iter().any(|x| x == t);
    q.get("domain_id").is_none_or(|d| d == p.domain_id)
        && q.get("parent_id")
            .is_none_or(|pid| pid == p.parent_id.as_deref().unwrap_or(&p.domain_id))
        && q.boolean("enabled").is_none_or(|e| e == p.enabled)
        && q.boolean("is_domain").is_none_or(|d| d == p.is_domain)
        && q.text("name", &p.name)
        && list("tags").is_none_or(|want| want.iter().all(has))
        && list("tags-any").is_none_or(|want| want.iter().any(has))
        && list("not-tags").is_none_or(|want| !want.iter().all(has))
        && list("not-tags-any").is_none_or(|want| !want.iter().any(has))
}

async fn list(
    State(id): State<Identity>,
    authz: Authz,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let q = Filters(q);
    let all = projects::list(id.db(), q.get("domain_id")).await?;
    let tags = projects::all_tags(id.db()).await?;
    let none = Vec::new();
    let out: Vec<Value> = all
        .iter()
        .filter(|p| keep(&q, p, tags.get(&p.id).unwrap_or(&none)))
        .filter(|p| authz.allows(&target(p)))
        .map(|p| p.to_json(tags.get(&p.id).unwrap_or(&none)))
        .collect();
    Ok(Json(wire::list("projects", "/v3/projects", out)))
}

async fn list_for_user(
    State(id): State<Identity>,
    authz: Authz,
    Path(user_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let user = users::get(id.db(), &user_id).await?;
    authz.check(&Target {
        domain_id: user.as_ref().map(|u| u.domain_id.clone()),
        project_id: None,
        user_id: Some(user_id.clone()),
    })?;
    let user = user.ok_or_else(|| Error::not_found("user", &user_id))?;
    let q = Filters(q);
    let mut out = Vec::new();
    for p in assignments::projects_for_user(id.db(), &user.id).await? {
        let tags = projects::tags(id.db(), &p.id).await?;
        if keep(&q, &p, &tags) {
            out.push(p.to_json(&tags));
        }
    }
    let path = format!("/v3/users/{user_id}/projects");
    Ok(Json(wire::list("projects", &path, out)))
}

/// `{parent: {grandparent: … {domain: null}}}`: Keystone counts the domain
/// as the top of every project tree.
fn parents_as_ids(p: &Project, ancestors: &[Project]) -> Value {
    let mut v = json!({ &p.domain_id: null });
    for a in ancestors.iter().rev() {
        v = json!({ &a.id: v });
    }
    v
}

fn subtree_as_ids(root: &str, subtree: &[Project]) -> Value {
    let children: Vec<&Project> = subtree
        .iter()
        .filter(|c| c.parent_id.as_deref() == Some(root))
        .collect();
    if children.is_empty() {
        return Value::Null;
    }
    let mut m = Map::new();
    for c in children {
        m.insert(c.id.clone(), subtree_as_ids(&c.id, subtree));
    }
    Value::Object(m)
}

async fn get(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    Path(project_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let p = load_checked(&id, &authz, &project_id).await?;
    let q = Filters(q);
    let flag = |k: &str| q.get(k).is_some() && q.boolean(k) != Some(false);
    for (a, b) in [
        ("parents_as_list", "parents_as_ids"),
        ("subtree_as_list", "subtree_as_ids"),
    ] {
        if flag(a) && flag(b) {
            return Err(Error::BadRequest(format!(
                "Cannot use {a} and {b} query params at the same time."
            ))
            .into());
        }
    }
    let db = id.db();
    let mut v = p.to_json(&projects::tags(db, &p.id).await?);
    // The *_as_list forms show only projects the caller has a role on.
    let visible = if flag("parents_as_list") || flag("subtree_as_list") {
        assignments::projects_for_user(db, &ctx.user_id)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect()
    } else {
        Vec::new()
    };
    let as_list = |list: &[Project]| -> Value {
        list.iter()
            .filter(|x| visible.contains(&x.id))
            .map(|x| json!({"project": x.to_json(&[])}))
            .collect()
    };
    if flag("parents_as_ids") || flag("parents_as_list") {
        let ancestors = projects::ancestors(db, &p).await?;
        v["parents"] = if flag("parents_as_ids") {
            parents_as_ids(&p, &ancestors)
        } else {
            as_list(&ancestors)
        };
    }
    if flag("subtree_as_ids") || flag("subtree_as_list") {
        let subtree = projects::subtree(db, &p).await?;
        v["subtree"] = if flag("subtree_as_ids") {
            subtree_as_ids(&p.id, &subtree)
        } else {
            as_list(&subtree)
        };
    }
    Ok(Json(json!({"project": v})))
}

/// Where a new project goes: its domain and its parent project (None for
/// a top-level project). A parent may be named by a domain id, as Keystone
/// shows a top-level project's parent.
async fn placement(
    id: &Identity,
    ctx: &Ctx,
    domain_ref: Option<String>,
    parent_ref: Option<String>,
) -> Result<(String, Option<Project>), Error> {
    let db = id.db();
    let Some(parent_id) = parent_ref else {
        let domain = domain_ref.unwrap_or_else(|| super::domains::default_domain(ctx));
        return Ok((domain, None));
    };
    let (parent_domain, parent) = match projects::get(db, &parent_id).await? {
        Some(p) => (p.domain_id.clone(), Some(p)),
        None if domains::get(db, &parent_id).await?.is_some() => (parent_id.clone(), None),
        None => return Err(Error::not_found("project", &parent_id)),
    };
    if let Some(d) = domain_ref.filter(|d| *d != parent_domain) {
        return Err(Error::BadRequest(format!(
            "Cannot create project, since it specifies its domain_id {d}, but specifies a \
             parent in a different domain ({parent_domain})."
        )));
    }
    Ok((parent_domain, parent))
}

async fn create(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let o = wire::resource(&body, "project")?;
    wire::required(o, "name")?;
    let name = wire::name(o, "name", NAME_MAX)?
        .unwrap_or_default()
        .trim()
        .to_string();
    if wire::boolean(o, "is_domain")? == Some(true) {
        return Err(Error::NotImplemented(
            "Projects acting as domains are not supported; create a domain instead.".into(),
        )
        .into());
    }
    let tags = match o.get("tags") {
        Some(v) => parse_tags(v)?,
        None => Vec::new(),
    };
    check_options(o)?;
    let description = wire::nullable_string(o, "description")?
        .flatten()
        .unwrap_or_default()
        .to_string();
    let enabled = wire::boolean(o, "enabled")?.unwrap_or(true);
    let domain_ref = wire::id_ref(o, "domain_id", true)?.flatten();
    let parent_ref = wire::id_ref(o, "parent_id", true)?.flatten();
    let extra = wire::extra(o, KNOWN, &["id", "links"])?;

    let (domain_id, parent) = placement(&id, &ctx, domain_ref, parent_ref).await?;
    authz.check(&Target {
        domain_id: Some(domain_id.clone()),
        ..Default::default()
    })?;
    let db = id.db();
    let domain = domains::get(db, &domain_id)
        .await?
        .ok_or_else(|| Error::not_found("domain", &domain_id))?;
    let mut branch = Vec::new();
    if let Some(parent) = &parent {
        branch = projects::ancestors(db, parent).await?;
        branch.insert(0, parent.clone());
    }
    if let Some(off) = branch.iter().find(|p| !p.enabled) {
        return Err(disabled_branch(&off.id).into());
    }
    if !domain.enabled {
        return Err(disabled_branch(&domain.id).into());
    }
    if branch.len() + 1 > MAX_DEPTH {
        let at = parent.as_ref().map(|p| p.id.as_str()).unwrap_or_default();
        return Err(
            Error::Forbidden(format!("Max hierarchy depth reached for {at} branch.")).into(),
        );
    }
    let p = Project {
        id: himmel_core::ids::new_id(),
        name,
        domain_id,
        parent_id: parent.map(|p| p.id),
        description,
        enabled,
        is_domain: false,
        extra: Value::Object(extra),
    };
    projects::create(db, &p, &tags).await?;
    Ok(wire::created("project", &p.id, p.to_json(&tags)))
}

fn disabled_branch(id: &str) -> Error {
    Error::BadRequest(format!(
        "cannot create a project in a branch containing a disabled project: {id}"
    ))
}

async fn update(
    State(id): State<Identity>,
    authz: Authz,
    Path(project_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let o = wire::resource(&body, "project")?;
    let mut p = load_checked(&id, &authz, &project_id).await?;
    let db = id.db();
    wire::same_id(o, "project", &p.id)?;
    if let Some(d) = wire::id_ref(o, "domain_id", true)? {
        if d.as_deref() != Some(p.domain_id.as_str()) {
            return Err(Error::BadRequest("Update of `domain_id` is not allowed.".into()).into());
        }
    }
    if let Some(parent) = wire::id_ref(o, "parent_id", true)? {
        let shown = p.parent_id.as_deref().unwrap_or(&p.domain_id);
        if parent.as_deref() != Some(shown) {
            return Err(Error::Forbidden("Update of `parent_id` is not allowed.".into()).into());
        }
    }
    if wire::boolean(o, "is_domain")? == Some(true) {
        return Err(Error::BadRequest("Update of `is_domain` is not allowed.".into()).into());
    }
    check_options(o)?;
    let tags = o.get("tags").map(parse_tags).transpose()?;
    if let Some(name) = wire::name(o, "name", NAME_MAX)? {
        p.name = name.trim().to_string();
    }
    if let Some(desc) = wire::nullable_string(o, "description")? {
        p.description = desc.unwrap_or_default().to_string();
    }
    let was_enabled = p.enabled;
    if let Some(enabled) = wire::boolean(o, "enabled")? {
        if enabled
            && !was_enabled
            && projects::ancestors(db, &p)
                .await?
                .iter()
                .any(|a| !a.enabled)
        {
            return Err(Error::Forbidden(format!(
                "Cannot enable project {} since it has disabled parents",
                p.id
            ))
            .into());
        }
        if !enabled && was_enabled && projects::subtree(db, &p).await?.iter().any(|c| c.enabled) {
            return Err(Error::Forbidden(format!(
                "Cannot disable project {} since its subtree contains enabled projects.",
                p.id
            ))
            .into());
        }
        p.enabled = enabled;
    }
    let extra = wire::extra(o, &[KNOWN, &["id"]].concat(), &["links"])?;
    p.extra = wire::merge_extra(&p.extra, extra);
    projects::update(db, &p, tags.as_deref()).await?;
    if was_enabled && !p.enabled {
        revoke_project(&id, &p.id).await?;
    }
    let tags = projects::tags(db, &p.id).await?;
    Ok(Json(json!({"project": p.to_json(&tags)})))
}

async fn revoke_project(id: &Identity, project_id: &str) -> Result<(), Error> {
    let event = RevocationEvent {
        project_id: Some(project_id.to_string()),
        ..Default::default()
    };
    id.revocations().revoke(id.db(), event).await
}

async fn delete(
    State(id): State<Identity>,
    authz: Authz,
    Path(project_id): Path<String>,
) -> ApiResult<StatusCode> {
    let p = load_checked(&id, &authz, &project_id).await?;
    if projects::has_children(id.db(), &p.id).await? {
        return Err(Error::Forbidden(format!(
            "Cannot delete the project {} since it is not a leaf in the hierarchy. Use the \
             cascade option if you want to delete a whole subtree.",
            p.id
        ))
        .into());
    }
    projects::delete(id.db(), &p.id).await?;
    revoke_project(&id, &p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn tags_body(tags: &[String]) -> Json<Value> {
    Json(json!({"tags": tags}))
}

async fn list_tags(
    State(id): State<Identity>,
    authz: Authz,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = load_checked(&id, &authz, &project_id).await?;
    Ok(tags_body(&projects::tags(id.db(), &p.id).await?))
}

async fn replace_tags(
    State(id): State<Identity>,
    authz: Authz,
    Path(project_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let p = load_checked(&id, &authz, &project_id).await?;
    let tags = parse_tags(body.get("tags").unwrap_or(&Value::Null))?;
    projects::set_tags(id.db(), &p.id, &tags).await?;
    Ok(tags_body(&tags))
}

async fn clear_tags(
    State(id): State<Identity>,
    authz: Authz,
    Path(project_id): Path<String>,
) -> ApiResult<StatusCode> {
    let p = load_checked(&id, &authz, &project_id).await?;
    projects::set_tags(id.db(), &p.id, &[]).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn tag_not_found(tag: &str) -> Error {
    Error::not_found("project tag", tag)
}

async fn check_tag_exists(
    State(id): State<Identity>,
    authz: Authz,
    Path((project_id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let p = load_checked(&id, &authz, &project_id).await?;
    if projects::tags(id.db(), &p.id).await?.contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(tag_not_found(&tag).into())
    }
}

async fn add_tag(
    State(id): State<Identity>,
    authz: Authz,
    Path((project_id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    let p = load_checked(&id, &authz, &project_id).await?;
    check_tag("tag", &tag)?;
    let mut tags = projects::tags(id.db(), &p.id).await?;
    if !tags.contains(&tag) {
        if tags.len() >= MAX_TAGS {
            return Err(
                wire::invalid("tags", format!("a project has at most {MAX_TAGS} tags")).into(),
            );
        }
        tags.push(tag.clone());
        tags.sort();
        projects::set_tags(id.db(), &p.id, &tags).await?;
    }
    // Keystone answers with no body, only the new tag's location.
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v3/projects/{}/tags/{tag}", p.id)) {
        resp.headers_mut().insert("location", loc);
    }
    Ok(resp)
}

async fn remove_tag(
    State(id): State<Identity>,
    authz: Authz,
    Path((project_id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let p = load_checked(&id, &authz, &project_id).await?;
    let mut tags = projects::tags(id.db(), &p.id).await?;
    let before = tags.len();
    tags.retain(|t| *t != tag);
    if tags.len() == before {
        return Err(tag_not_found(&tag).into());
    }
    projects::set_tags(id.db(), &p.id, &tags).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    Router::new()
        .route(
            "/v3/projects",
            p.on(&SERVICE, &LIST_PROJECTS, M::GET, list).merge(p.on(
                &SERVICE,
                &CREATE_PROJECT,
                M::POST,
                create,
            )),
        )
        .route(
            "/v3/projects/{project_id}",
            p.on(&SERVICE, &GET_PROJECT, M::GET, get)
                .merge(p.on(&SERVICE, &UPDATE_PROJECT, M::PATCH, update))
                .merge(p.on(&SERVICE, &DELETE_PROJECT, M::DELETE, delete)),
        )
        .route(
            "/v3/projects/{project_id}/tags",
            p.on(&SERVICE, &LIST_PROJECT_TAGS, M::GET, list_tags)
                .merge(p.on(&SERVICE, &UPDATE_PROJECT_TAGS, M::PUT, replace_tags))
                .merge(p.on(&SERVICE, &DELETE_PROJECT_TAGS, M::DELETE, clear_tags)),
        )
        .route(
            "/v3/projects/{project_id}/tags/{tag}",
            p.on(&SERVICE, &GET_PROJECT_TAG, M::GET, check_tag_exists)
                .merge(p.on(&SERVICE, &CREATE_PROJECT_TAG, M::PUT, add_tag))
                .merge(p.on(&SERVICE, &DELETE_PROJECT_TAG, M::DELETE, remove_tag)),
        )
        .route(
            "/v3/users/{user_id}/projects",
            p.on(&SERVICE, &LIST_USER_PROJECTS, M::GET, list_for_user),
        )
}
