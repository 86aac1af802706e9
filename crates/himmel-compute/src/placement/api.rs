//! The Placement API under `/placement`: resource providers, their
//! inventories, usages and allocations, project usages and allocation
//! candidates, with the shapes of placement's 1.x microversions since 1.20
//! (a created provider is returned in the body).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Json, Pipeline};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::policy::*;
use super::store::{self, Allocation, Inventory, Provider, Resources};
use crate::store::db_err;
use crate::ComputeService;

/// The path prefix of placement on the region's listener.
pub const PATH_PREFIX: &str = "/placement";
/// The highest placement microversion whose shapes we follow.
pub const MAX_VERSION: &str = "1.36";

pub fn routes(p: &Pipeline, service: ComputeService) -> Router {
    use MethodFilter as M;
    let api = Router::new()
        .route("/", p.on(&SERVICE, &VERSIONS, M::GET, versions))
        .route(
            "/resource_providers",
            p.on(&SERVICE, &LIST_PROVIDERS, M::GET, list_providers)
                .merge(p.on(&SERVICE, &CREATE_PROVIDER, M::POST, create_provider)),
        )
        .route(
            "/resource_providers/{uuid}",
            p.on(&SERVICE, &SHOW_PROVIDER, M::GET, show_provider)
                .merge(p.on(&SERVICE, &UPDATE_PROVIDER, M::PUT, update_provider))
                .merge(p.on(&SERVICE, &DELETE_PROVIDER, M::DELETE, delete_provider)),
        )
        .route(
            "/resource_providers/{uuid}/inventories",
            p.on(&SERVICE, &LIST_INVENTORIES, M::GET, show_inventories)
                .merge(p.on(&SERVICE, &UPDATE_INVENTORIES, M::PUT, put_inventories))
                .merge(p.on(&SERVICE, &DELETE_INVENTORIES, M::DELETE, delete_inventories)),
        )
        .route(
            "/resource_providers/{uuid}/usages",
            p.on(&SERVICE, &PROVIDER_USAGES, M::GET, provider_usages),
        )
        .route(
            "/resource_providers/{uuid}/allocations",
            p.on(
                &SERVICE,
                &PROVIDER_ALLOCATIONS,
                M::GET,
                provider_allocations,
            ),
        )
        .route(
            "/allocations/{consumer}",
            p.on(&SERVICE, &SHOW_ALLOCATIONS, M::GET, show_allocations)
                .merge(p.on(&SERVICE, &UPDATE_ALLOCATIONS, M::PUT, put_allocations))
                .merge(p.on(&SERVICE, &DELETE_ALLOCATIONS, M::DELETE, delete_allocations)),
        )
        .route(
            "/usages",
            p.on(&SERVICE, &PROJECT_USAGES, M::GET, project_usages),
        )
        .route(
            "/allocation_candidates",
            p.on(
                &SERVICE,
                &ALLOCATION_CANDIDATES,
                M::GET,
                allocation_candidates,
            ),
        )
        .route(
            "/resource_classes",
            p.on(&SERVICE, &LIST_CLASSES, M::GET, resource_classes),
        )
        .with_state(service);
    // The nested "/" answers `/placement`; `/placement/` needs its own route.
    Router::new()
        .route(
            &format!("{PATH_PREFIX}/"),
            p.on(&SERVICE, &VERSIONS, M::GET, versions),
        )
        .nest(PATH_PREFIX, api)
}

async fn versions() -> Response {
    let body = json!({"versions": [{
        "id": "v1.0",
        "max_version": MAX_VERSION,
        "min_version": "1.0",
        "status": "CURRENT",
        "links": [],
    }]});
    let mut r = axum::Json(body).into_response();
    r.headers_mut().insert(
        "openstack-api-version",
        axum::http::HeaderValue::from_static("placement 1.0"),
    );
    r
}

fn provider_json(p: &Provider) -> Value {
    let base = format!("{PATH_PREFIX}/resource_providers/{}", p.uuid);
    json!({
        "uuid": p.uuid,
        "name": p.name,
        "generation": p.generation,
        "parent_provider_uuid": p.parent_provider_uuid,
        "root_provider_uuid": p.parent_provider_uuid.as_deref().unwrap_or(&p.uuid),
        "links": [
            {"rel": "self", "href": base},
            {"rel": "inventories", "href": format!("{base}/inventories")},
            {"rel": "usages", "href": format!("{base}/usages")},
            {"rel": "allocations", "href": format!("{base}/allocations")},
        ],
    })
}

fn schema(msg: &str) -> Error {
    Error::BadRequest(format!("JSON does not validate: {msg}"))
}

fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, Error> {
    serde_json::from_value(body).map_err(|e| schema(&e.to_string()))
}

fn check_uuid(uuid: &str) -> Result<String, Error> {
    uuid::Uuid::parse_str(uuid)
        .map(|u| u.to_string())
        .map_err(|_| schema(&format!("'{uuid}' is not a 'uuid'")))
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.chars().count() > 200 {
        return Err(schema("name must be 1 to 200 characters"));
    }
    Ok(())
}

async fn find(conn: &mut sqlx::AnyConnection, uuid: &str) -> Result<Provider, Error> {
    store::provider(conn, uuid)
        .await?
        .ok_or_else(|| store::not_found(uuid))
}

async fn list_providers(
    State(s): State<ComputeService>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = query_pairs(raw.as_deref());
    let wanted = param(&q, "resources").map(parse_resources).transpose()?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let mut out = vec![];
    for p in store::providers(&mut conn).await? {
        if param(&q, "name").is_some_and(|n| n != p.name)
            || param(&q, "uuid").is_some_and(|u| u != p.uuid)
        {
            continue;
        }
        if let Some(wanted) = &wanted {
            if !super::fits(&mut conn, &p.uuid, wanted).await? {
                continue;
            }
        }
        out.push(provider_json(&p));
    }
    Ok(Json(json!({"resource_providers": out})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProvider {
    name: String,
    uuid: Option<String>,
    parent_provider_uuid: Option<String>,
}

async fn create_provider(
    State(s): State<ComputeService>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: CreateProvider = parse(body)?;
    check_name(&req.name)?;
    let uuid = match &req.uuid {
        Some(u) => check_uuid(u)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    if let Some(parent) = &req.parent_provider_uuid {
        if store::provider(&mut tx, parent).await?.is_none() {
            return Err(
                Error::BadRequest(format!("parent provider UUID {parent} does not exist")).into(),
            );
        }
    }
    if store::provider(&mut tx, &uuid).await?.is_some() {
        return Err(Error::Conflict(format!(
            "Conflicting resource provider uuid: {uuid} already exists."
        ))
        .into());
    }
    let p = store::create_provider(
        &mut tx,
        &uuid,
        &req.name,
        req.parent_provider_uuid.as_deref(),
    )
    .await?;
    tx.commit().await.map_err(db_err)?;
    Ok(axum::Json(provider_json(&p)).into_response())
}

async fn show_provider(
    State(s): State<ComputeService>,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    Ok(Json(provider_json(&find(&mut conn, &uuid).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateProvider {
    name: String,
    #[serde(default)]
    parent_provider_uuid: Option<String>,
}

async fn update_provider(
    State(s): State<ComputeService>,
    Path(uuid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let req: UpdateProvider = parse(body)?;
    check_name(&req.name)?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let p = find(&mut tx, &uuid).await?;
    if req.parent_provider_uuid.is_some() && req.parent_provider_uuid != p.parent_provider_uuid {
        return Err(Error::BadRequest(
            "Unable to change the parent of a resource provider here.".into(),
        )
        .into());
    }
    store::rename_provider(&mut tx, &uuid, &req.name).await?;
    let p = find(&mut tx, &uuid).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(Json(provider_json(&p)))
}

async fn delete_provider(
    State(s): State<ComputeService>,
    Path(uuid): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    store::serialise(&mut tx).await?;
    find(&mut tx, &uuid).await?;
    store::delete_provider(&mut tx, &uuid).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(StatusCode::NO_CONTENT)
}

fn inventories_json(generation: i64, inv: &BTreeMap<String, Inventory>) -> Value {
    json!({"resource_provider_generation": generation, "inventories": inv})
}

async fn show_inventories(
    State(s): State<ComputeService>,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let p = find(&mut conn, &uuid).await?;
    let inv = store::inventories(&mut conn, &uuid).await?;
    Ok(Json(inventories_json(p.generation, &inv)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutInventories {
    resource_provider_generation: i64,
    inventories: BTreeMap<String, Inventory>,
}

async fn put_inventories(
    State(s): State<ComputeService>,
    Path(uuid): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let req: PutInventories = parse(body)?;
    for class in req.inventories.keys() {
        check_class(class)?;
    }
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    store::serialise(&mut tx).await?;
    find(&mut tx, &uuid).await?;
    let g = store::replace_inventories(
        &mut tx,
        &uuid,
        Some(req.resource_provider_generation),
        &req.inventories,
    )
    .await?;
    tx.commit().await.map_err(db_err)?;
    Ok(Json(inventories_json(g, &req.inventories)))
}

async fn delete_inventories(
    State(s): State<ComputeService>,
    Path(uuid): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    store::serialise(&mut tx).await?;
    find(&mut tx, &uuid).await?;
    store::replace_inventories(&mut tx, &uuid, None, &BTreeMap::new()).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn provider_usages(
    State(s): State<ComputeService>,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let p = find(&mut conn, &uuid).await?;
    let mut usages = store::usages(&mut conn, &uuid).await?;
    for class in store::inventories(&mut conn, &uuid).await?.keys() {
        usages.entry(class.clone()).or_insert(0);
    }
    Ok(Json(
        json!({"resource_provider_generation": p.generation, "usages": usages}),
    ))
}

async fn provider_allocations(
    State(s): State<ComputeService>,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let p = find(&mut conn, &uuid).await?;
    let allocations: Map<String, Value> = store::provider_allocations(&mut conn, &uuid)
        .await?
        .into_iter()
        .map(|(consumer, r)| (consumer, json!({"resources": r})))
        .collect();
    Ok(Json(
        json!({"resource_provider_generation": p.generation, "allocations": allocations}),
    ))
}

async fn show_allocations(
    State(s): State<ComputeService>,
    Path(consumer): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let held = store::consumer_allocations(&mut conn, &consumer).await?;
    let mut allocations = Map::new();
    for a in &held.allocations {
        let generation = find(&mut conn, &a.provider_uuid).await?.generation;
        allocations.insert(
            a.provider_uuid.clone(),
            json!({"generation": generation, "resources": a.resources}),
        );
    }
    let mut body = json!({"allocations": allocations});
    if !held.allocations.is_empty() {
        body["project_id"] = json!(held.project_id);
        body["user_id"] = json!(held.user_id);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderResources {
    resources: Resources,
    /// Accepted and not checked: the claim serialises writers instead.
    #[serde(default, rename = "generation")]
    _generation: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutAllocations {
    allocations: BTreeMap<String, ProviderResources>,
    project_id: String,
    user_id: String,
    #[serde(default, rename = "consumer_generation")]
    _consumer_generation: Option<Value>,
    #[serde(default, rename = "consumer_type")]
    _consumer_type: Option<Value>,
}

async fn put_allocations(
    State(s): State<ComputeService>,
    Path(consumer): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<StatusCode> {
    let consumer = check_uuid(&consumer)?;
    let req: PutAllocations = parse(body)?;
    let mut allocations = vec![];
    for (provider, r) in req.allocations {
        for (class, amount) in &r.resources {
            check_class(class)?;
            if *amount < 1 {
                return Err(schema(&format!("{amount} is less than the minimum of 1")).into());
            }
        }
        allocations.push(Allocation {
            provider_uuid: provider,
            resources: r.resources,
        });
    }
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    store::replace_allocations(
        &mut tx,
        &consumer,
        &req.project_id,
        &req.user_id,
        &allocations,
    )
    .await?;
    tx.commit().await.map_err(db_err)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_allocations(
    State(s): State<ComputeService>,
    Path(consumer): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    if !store::delete_allocations(&mut tx, &consumer).await? {
        return Err(Error::NotFound(format!("No allocations for consumer '{consumer}'")).into());
    }
    tx.commit().await.map_err(db_err)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn project_usages(
    State(s): State<ComputeService>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = query_pairs(raw.as_deref());
    let Some(project) = param(&q, "project_id") else {
        return Err(schema("'project_id' is a required property").into());
    };
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let usages = store::project_usages(&mut conn, project, param(&q, "user_id")).await?;
    Ok(Json(json!({"usages": usages})))
}

/// `VCPU:1,MEMORY_MB:512` as a map, or a 400.
pub fn parse_resources(s: &str) -> Result<Resources, Error> {
    let mut out = Resources::new();
    for part in s.split(',') {
        let bad = || {
            Error::BadRequest(format!(
                "Badly formed resources parameter. Expected resources query string parameter \
                 in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {s}."
            ))
        };
        let (class, amount) = part.split_once(':').ok_or_else(bad)?;
        let amount: i64 = amount.parse().map_err(|_| bad())?;
        if amount < 1 {
            return Err(bad());
        }
        check_class(class)?;
        out.insert(class.to_string(), amount);
    }
    Ok(out)
}

async fn allocation_candidates(
    State(s): State<ComputeService>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = query_pairs(raw.as_deref());
    let Some(resources) = param(&q, "resources") else {
        return Err(schema("'resources' is a required property").into());
    };
    let wanted = parse_resources(resources)?;
    let limit = match param(&q, "limit") {
        None => usize::MAX,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| schema(&format!("'{l}' is not a positive integer")))?,
    };
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let mut requests = vec![];
    let mut summaries = Map::new();
    for p in store::providers(&mut conn).await? {
        if requests.len() >= limit || !super::fits(&mut conn, &p.uuid, &wanted).await? {
            continue;
        }
        let inv = store::inventories(&mut conn, &p.uuid).await?;
        let used = store::usages(&mut conn, &p.uuid).await?;
        let summary: Map<String, Value> = inv
            .iter()
            .map(|(c, i)| {
                let u = used.get(c).copied().unwrap_or(0);
                (c.clone(), json!({"capacity": i.capacity(), "used": u}))
            })
            .collect();
        summaries.insert(p.uuid.clone(), json!({"resources": summary}));
        requests.push(json!({"allocations": {p.uuid.as_str(): {"resources": wanted}}}));
    }
    Ok(Json(
        json!({"allocation_requests": requests, "provider_summaries": summaries}),
    ))
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Standard classes and `CUSTOM_` ones: upper case letters, digits, `_`.
fn check_class(class: &str) -> Result<(), Error> {
    let ok = !class.is_empty()
        && class.len() <= 255
        && class
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(schema(&format!(
            "'{class}' is not a valid resource class name"
        )))
    }
}

async fn resource_classes() -> Json<Value> {
    let classes: Vec<Value> = [store::VCPU, store::MEMORY_MB, store::DISK_GB]
        .iter()
        .map(|c| json!({"name": c, "links": [{"rel": "self", "href": format!("{PATH_PREFIX}/resource_classes/{c}")}]}))
        .collect();
    Json(json!({"resource_classes": classes}))
}
