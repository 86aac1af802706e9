//! `/flavors`: sizes of servers. Public flavors are visible to every
//! caller; private ones to administrators and the projects on their access
//! list (`os-flavor-access`). Extra specs (`os-extra_specs`) carry the SCS
//! properties and the driver choice (`himmel:driver`).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::{ApiResult, Ctx, Json, Pipeline};
use serde_json::{json, Map, Value};

use super::wire::{self, is_admin};
use crate::model::{Flavor, Resource};
use crate::policy::*;
use crate::store::{self, db_err};
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/flavors",
            p.on(&SERVICE, &LIST_FLAVORS, MethodFilter::GET, list_brief)
                .merge(p.on(&SERVICE, &CREATE_FLAVOR, MethodFilter::POST, create)),
        )
        .route(
            "/flavors/detail",
            p.on(&SERVICE, &LIST_FLAVORS, MethodFilter::GET, list_detail),
        )
        .route(
            "/flavors/{id}",
            p.on(&SERVICE, &LIST_FLAVORS, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &DELETE_FLAVOR, MethodFilter::DELETE, delete)),
        )
        .route(
            "/flavors/{id}/os-extra_specs",
            p.on(&SERVICE, &GET_EXTRA_SPECS, MethodFilter::GET, list_specs)
                .merge(p.on(&SERVICE, &MANAGE_EXTRA_SPECS, MethodFilter::POST, add_specs)),
        )
        .route(
            "/flavors/{id}/os-extra_specs/{key}",
            p.on(&SERVICE, &GET_EXTRA_SPECS, MethodFilter::GET, show_spec)
                .merge(p.on(&SERVICE, &MANAGE_EXTRA_SPECS, MethodFilter::PUT, put_spec))
                .merge(p.on(
                    &SERVICE,
                    &MANAGE_EXTRA_SPECS,
                    MethodFilter::DELETE,
                    delete_spec,
                )),
        )
        .route(
            "/flavors/{id}/os-flavor-access",
            p.on(&SERVICE, &GET_FLAVOR_ACCESS, MethodFilter::GET, list_access),
        )
        .route(
            "/flavors/{id}/action",
            p.on(
                &SERVICE,
                &MANAGE_FLAVOR_ACCESS,
                MethodFilter::POST,
                access_action,
            ),
        )
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Flavor {id} could not be found."))
}

/// True when the caller may see and use `f`.
pub fn usable_by(f: &Flavor, ctx: &RequestContext) -> bool {
    f.is_public
        || is_admin(ctx)
        || ctx
            .project_id()
            .is_some_and(|p| f.access.iter().any(|a| a == p))
}

/// A flavor the caller may see, by id.
pub async fn find(s: &ComputeService, ctx: &RequestContext, id: &str) -> Result<Flavor, Error> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    match store::get::<Flavor>(&mut conn, id).await? {
        Some(f) if usable_by(&f, ctx) => Ok(f),
        _ => Err(not_found(id)),
    }
}

pub fn render(f: &Flavor, headers: &HeaderMap) -> Value {
    let swap = if f.swap == 0 {
        json!("")
    } else {
        json!(f.swap)
    };
    json!({
        "id": f.id,
        "name": f.name,
        "ram": f.ram,
        "disk": f.disk,
        "vcpus": f.vcpus,
        "swap": swap,
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
        "OS-FLV-DISABLED:disabled": f.disabled,
        "rxtx_factor": f.rxtx_factor,
        "os-flavor-access:is_public": f.is_public,
        "links": wire::links(headers, "flavors", &f.id),
    })
}

fn brief(f: &Flavor, headers: &HeaderMap) -> Value {
    json!({"id": f.id, "name": f.name, "links": wire::links(headers, "flavors", &f.id)})
}

/// The flavors a list shows, filtered, sorted and paged as Nova does.
async fn listed(
    s: &ComputeService,
    ctx: &RequestContext,
    raw: Option<&str>,
) -> Result<(Vec<Flavor>, bool), Error> {
    let q = wire::query_pairs(raw);
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let mut all: Vec<Flavor> = store::list(&mut conn, None).await?;
    // Administrators see public flavors unless they ask for is_public=false
    // or none (all); others see public ones and those shared with them.
    let is_public = match wire::param(&q, "is_public") {
        Some(v) if v.eq_ignore_ascii_case("none") => None,
        Some(v) => Some(wire::parse_bool("is_public", v)?),
        None => Some(true),
    };
    if is_admin(ctx) {
        all.retain(|f| is_public.is_none_or(|p| f.is_public == p));
    } else {
        all.retain(|f| !f.disabled && usable_by(f, ctx));
    }
    if let Some(min) = wire::int_param(&q, "minRam")? {
        all.retain(|f| f.ram >= min);
    }
    if let Some(min) = wire::int_param(&q, "minDisk")? {
        all.retain(|f| f.disk >= min);
    }
    let key = wire::param(&q, "sort_key").unwrap_or("flavorid");
    let cmp: fn(&Flavor, &Flavor) -> std::cmp::Ordering = match key {
        "flavorid" | "id" => |a, b| a.id.cmp(&b.id),
        "name" => |a, b| a.name.cmp(&b.name),
        "memory_mb" | "ram" => |a, b| a.ram.cmp(&b.ram),
        "vcpus" => |a, b| a.vcpus.cmp(&b.vcpus),
        "root_gb" | "disk" => |a, b| a.disk.cmp(&b.disk),
        "created_at" => |a, b| a.created_at.cmp(&b.created_at),
        other => {
            return Err(Error::BadRequest(format!(
                "Invalid input for query parameters sort_key. Value: {other}."
            )))
        }
    };
    all.sort_by(|a, b| cmp(a, b).then_with(|| a.id.cmp(&b.id)));
    match wire::param(&q, "sort_dir") {
        None | Some("asc") => {}
        Some("desc") => all.reverse(),
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "Invalid input for query parameters sort_dir. Value: {other}."
            )))
        }
    }
    if let Some(marker) = wire::param(&q, "marker") {
        let pos = all
            .iter()
            .position(|f| f.id == marker)
            .ok_or_else(|| Error::BadRequest(format!("marker [{marker}] not found")))?;
        all.drain(..=pos);
    }
    let mut more = false;
    if let Some(limit) = wire::int_param(&q, "limit")? {
        let limit = limit as usize;
        if all.len() > limit {
            all.truncate(limit);
            more = true;
        }
    }
    Ok((all, more))
}

fn list_body(
    headers: &HeaderMap,
    items: Vec<Value>,
    last: Option<&Flavor>,
    more: bool,
    detail: bool,
) -> Value {
    let mut body = Map::new();
    body.insert("flavors".into(), Value::Array(items));
    if let (true, Some(last)) = (more, last) {
        let path = if detail { "flavors/detail" } else { "flavors" };
        body.insert(
            "flavors_links".into(),
            json!([{"rel": "next", "href": format!("{}/{path}?marker={}", wire::api_url(headers), last.id)}]),
        );
    }
    Value::Object(body)
}

async fn list_brief(
    State(s): State<ComputeService>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (flavors, more) = listed(&s, &ctx, raw.as_deref()).await?;
    let items = flavors.iter().map(|f| brief(f, &headers)).collect();
    Ok(Json(list_body(
        &headers,
        items,
        flavors.last(),
        more,
        false,
    )))
}

async fn list_detail(
    State(s): State<ComputeService>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (flavors, more) = listed(&s, &ctx, raw.as_deref()).await?;
    let items = flavors.iter().map(|f| render(f, &headers)).collect();
    Ok(Json(list_body(&headers, items, flavors.last(), more, true)))
}

async fn show(
    State(s): State<ComputeService>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let f = find(&s, &ctx, &id).await?;
    Ok(wire::one("flavor", render(&f, &headers)))
}

/// Nova accepts integers as numbers or digit strings.
fn int_field(
    body: &Map<String, Value>,
    name: &str,
    min: u64,
    default: Option<u64>,
) -> Result<u64, Error> {
    let bad = |v: &Value| {
        Error::BadRequest(format!(
            "Invalid input for field/attribute {name}. Value: {}. It must be an integer of at least {min}.",
            wire::short(v)
        ))
    };
    let v = match body.get(name) {
        None | Some(Value::Null) => {
            return default.ok_or_else(|| {
                Error::BadRequest(format!(
                    "Invalid input for field/attribute flavor. '{name}' is a required property"
                ))
            })
        }
        Some(v) => v,
    };
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| bad(v))?;
    if n < min || n > i32::MAX as u64 {
        return Err(bad(v));
    }
    Ok(n)
}

const CREATE_FIELDS: &[&str] = &[
    "name",
    "id",
    "ram",
    "vcpus",
    "disk",
    "OS-FLV-EXT-DATA:ephemeral",
    "swap",
    "rxtx_factor",
    "os-flavor-access:is_public",
];

async fn create(
    State(s): State<ComputeService>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let Some(Value::Object(req)) = body.get("flavor") else {
        return Err(Error::BadRequest(
            "Invalid input for field/attribute flavor. 'flavor' is a required property".into(),
        )
        .into());
    };
    if let Some(unknown) = req.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
        return Err(Error::BadRequest(format!(
            "Additional properties are not allowed ('{unknown}' was unexpected)"
        ))
        .into());
    }
    let name = match req.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => {
            n.trim().to_string()
        }
        other => {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute name. Value: {}. It must be a non-empty string of at most 255 characters.",
                other.map(wire::short).unwrap_or_default()
            ))
            .into())
        }
    };
    let id = match req.get("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(id))
            if !id.is_empty()
                && id.len() <= 255
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_. ".contains(c))
                && !id.starts_with(' ')
                && !id.ends_with(' ') =>
        {
            id.clone()
        }
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute id. Value: {}.",
                wire::short(other)
            ))
            .into())
        }
    };
    let rxtx_factor = match req.get("rxtx_factor") {
        None | Some(Value::Null) => 1.0,
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|f| *f > 0.0)
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "Invalid input for field/attribute rxtx_factor. Value: {}.",
                    wire::short(v)
                ))
            })?,
    };
    let is_public = match req.get("os-flavor-access:is_public") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(v)) => wire::parse_bool("os-flavor-access:is_public", v)?,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute os-flavor-access:is_public. Value: {}.",
                wire::short(other)
            ))
            .into())
        }
    };
    let flavor = Flavor {
        id,
        name,
        vcpus: int_field(req, "vcpus", 1, None)? as u32,
        ram: int_field(req, "ram", 1, None)?,
        disk: int_field(req, "disk", 0, None)?,
        ephemeral: int_field(req, "OS-FLV-EXT-DATA:ephemeral", 0, Some(0))?,
        swap: int_field(req, "swap", 0, Some(0))?,
        rxtx_factor,
        is_public,
        disabled: false,
        description: None,
        extra_specs: BTreeMap::new(),
        access: vec![],
        created_at: wire::now(),
    };
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    if store::get::<Flavor>(&mut tx, &flavor.id).await?.is_some() {
        return Err(
            Error::Conflict(format!("Flavor with ID {} already exists.", flavor.id)).into(),
        );
    }
    store::insert(&mut tx, &flavor, || {
        format!("Flavor with name {} already exists.", flavor.name)
    })
    .await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::with_status(
        StatusCode::OK,
        "flavor",
        &flavor.id,
        render(&flavor, &headers),
    ))
}

async fn delete(State(s): State<ComputeService>, Path(id): Path<String>) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    if store::get::<Flavor>(&mut tx, &id).await?.is_none() {
        return Err(not_found(&id).into());
    }
    store::delete(&mut tx, Flavor::KIND, &id).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::accepted())
}

async fn list_specs(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let f = find(&s, &ctx, &id).await?;
    Ok(Json(json!({"extra_specs": f.extra_specs})))
}

async fn show_spec(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let f = find(&s, &ctx, &id).await?;
    let v = f.extra_specs.get(&key).ok_or_else(|| {
        Error::NotFound(format!("Flavor {id} has no extra specs with key {key}."))
    })?;
    Ok(Json(json!({ key: v })))
}

/// Extra spec keys and values as Nova's schema allows them; numbers and
/// booleans become strings.
fn specs_from(v: Option<&Value>) -> Result<BTreeMap<String, String>, Error> {
    let Some(Value::Object(m)) = v else {
        return Err(Error::BadRequest(
            "Invalid input for field/attribute extra_specs. 'extra_specs' is a required property"
                .into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let key_ok = !k.is_empty()
            && k.chars().count() <= 255
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:. ".contains(c));
        if !key_ok {
            return Err(Error::BadRequest(format!(
                "Invalid input for field/attribute extra_specs. Key '{}' is not valid.",
                k.chars().take(80).collect::<String>()
            )));
        }
        let value = match v {
            Value::String(s) if s.chars().count() <= 255 => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(Error::BadRequest(format!(
                    "Invalid input for field/attribute {k}. Value: {}. It must be a string of at most 255 characters.",
                    wire::short(other)
                )))
            }
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

async fn update_flavor(
    s: &ComputeService,
    id: &str,
    change: impl FnOnce(&mut Flavor) -> Result<(), Error>,
) -> Result<Flavor, Error> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut f = store::get::<Flavor>(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    change(&mut f)?;
    store::update(&mut tx, &f).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(f)
}

async fn add_specs(
    State(s): State<ComputeService>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let specs = specs_from(body.get("extra_specs"))?;
    let given = specs.clone();
    update_flavor(&s, &id, |f| {
        f.extra_specs.extend(specs);
        Ok(())
    })
    .await?;
    Ok(Json(json!({"extra_specs": given})))
}

async fn put_spec(
    State(s): State<ComputeService>,
    Path((id, key)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let specs = specs_from(Some(&body))?;
    if specs.len() != 1 || !specs.contains_key(&key) {
        return Err(Error::BadRequest("Request body and URI mismatch".into()).into());
    }
    let given = specs.clone();
    update_flavor(&s, &id, |f| {
        f.extra_specs.extend(specs);
        Ok(())
    })
    .await?;
    Ok(Json(json!(given)))
}

async fn delete_spec(
    State(s): State<ComputeService>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    update_flavor(&s, &id, |f| {
        f.extra_specs.remove(&key).map(|_| ()).ok_or_else(|| {
            Error::NotFound(format!("Flavor {id} has no extra specs with key {key}."))
        })
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

fn access_list(f: &Flavor) -> Value {
    let items: Vec<Value> = f
        .access
        .iter()
        .map(|p| json!({"flavor_id": f.id, "tenant_id": p}))
        .collect();
    json!({"flavor_access": items})
}

async fn list_access(
    State(s): State<ComputeService>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let f = store::get::<Flavor>(&mut conn, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if f.is_public {
        return Err(Error::NotFound("Access list not available for public flavors.".into()).into());
    }
    Ok(Json(access_list(&f)))
}

async fn access_action(
    State(s): State<ComputeService>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let (add, inner) = match (body.get("addTenantAccess"), body.get("removeTenantAccess")) {
        (Some(v), None) => (true, v),
        (None, Some(v)) => (false, v),
        _ => {
            return Err(Error::BadRequest(
                "Invalid action: expected addTenantAccess or removeTenantAccess.".into(),
            )
            .into())
        }
    };
    let tenant = inner
        .get("tenant")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= 255)
        .ok_or_else(|| {
            Error::BadRequest(
                "Invalid input for field/attribute tenant. 'tenant' is a required property".into(),
            )
        })?
        .to_string();
    let f = update_flavor(&s, &id, |f| {
        if f.is_public {
            return Err(Error::Conflict(
                "Can not add access to a public flavor.".into(),
            ));
        }
        let has = f.access.contains(&tenant);
        match (add, has) {
            (true, true) => Err(Error::Conflict(format!(
                "Flavor access already exists for flavor {id} and project {tenant} combination."
            ))),
            (true, false) => {
                f.access.push(tenant.clone());
                Ok(())
            }
            (false, true) => {
                f.access.retain(|p| p != &tenant);
                Ok(())
            }
            (false, false) => Err(Error::NotFound(format!(
                "Flavor access not found for {id} / {tenant} combination."
            ))),
        }
    })
    .await?;
    Ok(Json(access_list(&f)))
}
