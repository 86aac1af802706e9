//! Catalog administration: `/v3/regions`, `/v3/services`, `/v3/endpoints`.
//! Every change shows in the catalog of tokens issued afterwards.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiError, ApiResult, AuditTargetId, Json, Pipeline};
use serde_json::{json, Map, Value};

use crate::policy::*;
use crate::store::catalog::{self as store, Endpoint, EndpointFilter, Region, Service};
use crate::Identity;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(Error::BadRequest(msg.into()))
}

/// The `{"<key>": {...}}` object of a request body.
fn object<'a>(body: &'a Value, key: &str) -> ApiResult<&'a Map<String, Value>> {
    body.get(key).and_then(Value::as_object).ok_or_else(|| {
        bad(format!(
            "Invalid input for field '{key}': an object is required."
        ))
    })
}

fn string_field(obj: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!(
            "Invalid input for field '{key}': a string is required."
        ))),
    }
}

/// A string that may also be null (which clears it).
fn nullable_field(obj: &Map<String, Value>, key: &str) -> ApiResult<Option<Option<String>>> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(bad(format!(
            "Invalid input for field '{key}': a string or null is required."
        ))),
    }
}

fn bool_field(obj: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(format!(
            "Invalid input for field '{key}': a boolean is required."
        ))),
    }
}

/// Free-form attributes: everything but the columns in `known`.
fn extra(obj: &Map<String, Value>, current: &Value, known: &[&str]) -> Value {
    let mut out = current.as_object().cloned().unwrap_or_default();
    for (k, v) in obj {
        if !known.contains(&k.as_str()) && k != "links" {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn created(key: &str, id: &str, v: Value) -> Response {
    let mut resp = (StatusCode::CREATED, Json(json!({ key: v }))).into_response();
    resp.extensions_mut().insert(AuditTargetId(id.to_string()));
    resp
}

fn list_body(key: &str, items: Vec<Value>) -> Json<Value> {
    Json(json!({
        key: items,
        "links": {"self": format!("/v3/{key}"), "previous": null, "next": null},
    }))
}

fn filter<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    q.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

// ---- regions ----

const REGION_FIELDS: &[&str] = &["id", "description", "parent_region_id"];

async fn require_region(id: &Identity, region_id: &str) -> ApiResult<Region> {
    store::get_region(id.db(), region_id)
        .await?
        .ok_or_else(|| ApiError(Error::not_found("region", region_id)))
}

async fn check_parent(id: &Identity, region_id: &str, parent: Option<&str>) -> ApiResult<()> {
    let Some(parent) = parent else {
        return Ok(());
    };
    require_region(id, parent).await?;
    if parent == region_id || store::would_cycle(id.db(), region_id, parent).await? {
        return Err(bad(format!(
            "The specified parent region {parent} would create a circular region hierarchy."
        )));
    }
    Ok(())
}

async fn create_region_with(
    id: &Identity,
    region_id: String,
    obj: &Map<String, Value>,
) -> ApiResult<Response> {
    if region_id.trim().is_empty() || region_id.chars().count() > 255 {
        return Err(bad(
            "Invalid input for field 'id': 1 to 255 characters are required.",
        ));
    }
    let parent = nullable_field(obj, "parent_region_id")?.flatten();
    check_parent(id, &region_id, parent.as_deref()).await?;
    let region = Region {
        id: region_id,
        description: string_field(obj, "description")?.unwrap_or_default(),
        parent_region_id: parent,
        extra: extra(obj, &json!({}), REGION_FIELDS),
    };
    store::create_region(id.db(), &region).await?;
    Ok(created("region", &region.id, region.to_json()))
}

async fn create_region(State(id): State<Identity>, Json(body): Json<Value>) -> ApiResult<Response> {
    let obj = object(&body, "region")?;
    let region_id = string_field(obj, "id")?.unwrap_or_else(himmel_core::ids::new_id);
    create_region_with(&id, region_id, obj).await
}

async fn put_region(
    State(id): State<Identity>,
    Path(region_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let obj = object(&body, "region")?;
    if string_field(obj, "id")?.is_some_and(|given| given != region_id) {
        return Err(bad(
            "The region id in the body must match the one in the URL.",
        ));
    }
    create_region_with(&id, region_id, obj).await
}

async fn list_regions(
    State(id): State<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let found = store::list_regions(id.db(), filter(&q, "parent_region_id")).await?;
    Ok(list_body(
        "regions",
        found.iter().map(Region::to_json).collect(),
    ))
}

async fn get_region(
    State(id): State<Identity>,
    Path(region_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let region = require_region(&id, &region_id).await?;
    Ok(Json(json!({"region": region.to_json()})))
}

async fn update_region(
    State(id): State<Identity>,
    Path(region_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let obj = object(&body, "region")?;
    let mut region = require_region(&id, &region_id).await?;
    if string_field(obj, "id")?.is_some_and(|given| given != region_id) {
        return Err(bad("The id of a region cannot change."));
    }
    if let Some(parent) = nullable_field(obj, "parent_region_id")? {
        check_parent(&id, &region.id, parent.as_deref()).await?;
        region.parent_region_id = parent;
    }
    if let Some(d) = string_field(obj, "description")? {
        region.description = d;
    }
    region.extra = extra(obj, &region.extra, REGION_FIELDS);
    store::update_region(id.db(), &region).await?;
    Ok(Json(json!({"region": region.to_json()})))
}

async fn delete_region(
    State(id): State<Identity>,
    Path(region_id): Path<String>,
) -> ApiResult<StatusCode> {
    let region = require_region(&id, &region_id).await?;
    let subtree = store::region_subtree(id.db(), &region.id).await?;
    if store::region_has_endpoints(id.db(), &subtree).await? {
        return Err(ApiError(Error::Forbidden(format!(
            "Unable to delete region {} because it or its child regions have associated endpoints.",
            region.id
        ))));
    }
    store::delete_regions(id.db(), &subtree).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- services ----

const SERVICE_FIELDS: &[&str] = &["id", "type", "name", "description", "enabled"];

fn service_type(v: String) -> ApiResult<String> {
    if v.trim().is_empty() || v.chars().count() > 255 {
        return Err(bad(
            "Invalid input for field 'type': 1 to 255 characters are required.",
        ));
    }
    Ok(v)
}

async fn require_service(id: &Identity, service_id: &str) -> ApiResult<Service> {
    store::get_service(id.db(), service_id)
        .await?
        .ok_or_else(|| ApiError(Error::not_found("service", service_id)))
}

async fn create_service(
    State(id): State<Identity>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let obj = object(&body, "service")?;
    let svc = Service {
        id: himmel_core::ids::new_id(),
        service_type: service_type(string_field(obj, "type")?.ok_or_else(|| {
            bad("Invalid input for field 'type': 'type' is a required property.")
        })?)?,
        name: string_field(obj, "name")?.unwrap_or_default(),
        description: string_field(obj, "description")?.unwrap_or_default(),
        enabled: bool_field(obj, "enabled")?.unwrap_or(true),
        extra: extra(obj, &json!({}), SERVICE_FIELDS),
    };
    store::save_service(id.db(), &svc, true).await?;
    Ok(created("service", &svc.id, svc.to_json()))
}

async fn list_services(
    State(id): State<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let found = store::list_services(id.db(), filter(&q, "type"), filter(&q, "name")).await?;
    Ok(list_body(
        "services",
        found.iter().map(Service::to_json).collect(),
    ))
}

async fn get_service(
    State(id): State<Identity>,
    Path(service_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let svc = require_service(&id, &service_id).await?;
    Ok(Json(json!({"service": svc.to_json()})))
}

async fn update_service(
    State(id): State<Identity>,
    Path(service_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let obj = object(&body, "service")?;
    let mut svc = require_service(&id, &service_id).await?;
    if let Some(t) = string_field(obj, "type")? {
        svc.service_type = service_type(t)?;
    }
    if let Some(n) = string_field(obj, "name")? {
        svc.name = n;
    }
    if let Some(d) = string_field(obj, "description")? {
        svc.description = d;
    }
    if let Some(e) = bool_field(obj, "enabled")? {
        svc.enabled = e;
    }
    svc.extra = extra(obj, &svc.extra, SERVICE_FIELDS);
    store::save_service(id.db(), &svc, false).await?;
    Ok(Json(json!({"service": svc.to_json()})))
}

async fn delete_service(
    State(id): State<Identity>,
    Path(service_id): Path<String>,
) -> ApiResult<StatusCode> {
    let svc = require_service(&id, &service_id).await?;
    store::delete_service(id.db(), &svc.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- endpoints ----

const ENDPOINT_FIELDS: &[&str] = &[
    "id",
    "service_id",
    "interface",
    "region_id",
    "region",
    "url",
    "enabled",
];

fn interface(v: String) -> ApiResult<String> {
    if matches!(v.as_str(), "public" | "internal" | "admin") {
        Ok(v)
    } else {
        Err(bad(format!(
            "Invalid input for field 'interface': '{v}' is not one of public, internal, admin."
        )))
    }
}

/// A URL with a scheme (`$(project_id)s`-style substitutions allowed).
fn url(v: String) -> ApiResult<String> {
    let scheme_ok = v.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
            && !rest.is_empty()
    });
    if !scheme_ok || v.chars().any(char::is_whitespace) {
        return Err(bad(format!(
            "Cannot create an endpoint with an invalid URL: {v}."
        )));
    }
    Ok(v)
}

/// `region_id`, or the older `region` attribute; null clears it.
fn region_of(obj: &Map<String, Value>) -> ApiResult<Option<Option<String>>> {
    match nullable_field(obj, "region_id")? {
        Some(r) => Ok(Some(r)),
        None => nullable_field(obj, "region"),
    }
}

/// The service must exist; a region that does not is created, as
/// Keystone does (clients and Tempest rely on it).
async fn check_endpoint_refs(id: &Identity, ep: &Endpoint) -> ApiResult<()> {
    require_service(id, &ep.service_id).await?;
    if let Some(r) = &ep.region_id {
        if store::get_region(id.db(), r).await?.is_none() {
            let region = Region {
                id: r.clone(),
                description: String::new(),
                parent_region_id: None,
                extra: json!({}),
            };
            store::create_region(id.db(), &region).await?;
        }
    }
    Ok(())
}

async fn create_endpoint(
    State(id): State<Identity>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let obj = object(&body, "endpoint")?;
    let required = |k: &'static str| {
        move || {
            bad(format!(
                "Invalid input for field '{k}': '{k}' is a required property."
            ))
        }
    };
    let ep = Endpoint {
        id: himmel_core::ids::new_id(),
        service_id: string_field(obj, "service_id")?.ok_or_else(required("service_id"))?,
        interface: interface(string_field(obj, "interface")?.ok_or_else(required("interface"))?)?,
        region_id: region_of(obj)?.flatten(),
        url: url(string_field(obj, "url")?.ok_or_else(required("url"))?)?,
        enabled: bool_field(obj, "enabled")?.unwrap_or(true),
        extra: extra(obj, &json!({}), ENDPOINT_FIELDS),
    };
    check_endpoint_refs(&id, &ep).await?;
    store::save_endpoint(id.db(), &ep, true).await?;
    Ok(created("endpoint", &ep.id, ep.to_json()))
}

async fn list_endpoints(
    State(id): State<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let f = EndpointFilter {
        interface: filter(&q, "interface"),
        service_id: filter(&q, "service_id"),
        region_id: filter(&q, "region_id"),
    };
    if let Some(i) = f.interface {
        interface(i.to_string())?;
    }
    let found = store::list_endpoints(id.db(), &f).await?;
    Ok(list_body(
        "endpoints",
        found.iter().map(Endpoint::to_json).collect(),
    ))
}

async fn require_endpoint(id: &Identity, endpoint_id: &str) -> ApiResult<Endpoint> {
    store::get_endpoint(id.db(), endpoint_id)
        .await?
        .ok_or_else(|| ApiError(Error::not_found("endpoint", endpoint_id)))
}

async fn get_endpoint(
    State(id): State<Identity>,
    Path(endpoint_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let ep = require_endpoint(&id, &endpoint_id).await?;
    Ok(Json(json!({"endpoint": ep.to_json()})))
}

async fn update_endpoint(
    State(id): State<Identity>,
    Path(endpoint_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let obj = object(&body, "endpoint")?;
    let mut ep = require_endpoint(&id, &endpoint_id).await?;
    if let Some(s) = string_field(obj, "service_id")? {
        ep.service_id = s;
    }
    if let Some(i) = string_field(obj, "interface")? {
        ep.interface = interface(i)?;
    }
    if let Some(r) = region_of(obj)? {
        ep.region_id = r;
    }
    if let Some(u) = string_field(obj, "url")? {
        ep.url = url(u)?;
    }
    if let Some(e) = bool_field(obj, "enabled")? {
        ep.enabled = e;
    }
    ep.extra = extra(obj, &ep.extra, ENDPOINT_FIELDS);
    check_endpoint_refs(&id, &ep).await?;
    store::save_endpoint(id.db(), &ep, false).await?;
    Ok(Json(json!({"endpoint": ep.to_json()})))
}

async fn delete_endpoint(
    State(id): State<Identity>,
    Path(endpoint_id): Path<String>,
) -> ApiResult<StatusCode> {
    let ep = require_endpoint(&id, &endpoint_id).await?;
    store::delete_endpoint(id.db(), &ep.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    let read = M::GET.or(M::HEAD);
    Router::new()
        .route(
            "/v3/regions",
            p.on(&SERVICE, &LIST_REGIONS, read, list_regions)
                .merge(p.on(&SERVICE, &CREATE_REGION, M::POST, create_region)),
        )
        .route(
            "/v3/regions/{region_id}",
            p.on(&SERVICE, &GET_REGION, read, get_region)
                .merge(p.on(&SERVICE, &CREATE_REGION, M::PUT, put_region))
                .merge(p.on(&SERVICE, &UPDATE_REGION, M::PATCH, update_region))
                .merge(p.on(&SERVICE, &DELETE_REGION, M::DELETE, delete_region)),
        )
        .route(
            "/v3/services",
            p.on(&SERVICE, &LIST_SERVICES, read, list_services)
                .merge(p.on(&SERVICE, &CREATE_SERVICE, M::POST, create_service)),
        )
        .route(
            "/v3/services/{service_id}",
            p.on(&SERVICE, &GET_SERVICE, read, get_service)
                .merge(p.on(&SERVICE, &UPDATE_SERVICE, M::PATCH, update_service))
                .merge(p.on(&SERVICE, &DELETE_SERVICE, M::DELETE, delete_service)),
        )
        .route(
            "/v3/endpoints",
            p.on(&SERVICE, &LIST_ENDPOINTS, read, list_endpoints)
                .merge(p.on(&SERVICE, &CREATE_ENDPOINT, M::POST, create_endpoint)),
        )
        .route(
            "/v3/endpoints/{endpoint_id}",
            p.on(&SERVICE, &GET_ENDPOINT, read, get_endpoint)
                .merge(p.on(&SERVICE, &UPDATE_ENDPOINT, M::PATCH, update_endpoint))
                .merge(p.on(&SERVICE, &DELETE_ENDPOINT, M::DELETE, delete_endpoint)),
        )
}
