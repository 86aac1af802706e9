//! `/os-aggregates` for administrators: host aggregates whose metadata the
//! scheduler reads (`availability_zone`, `filter_tenant_id[_N]`).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::policy::Check::Role;
use himmel_http::{ApiResult, Json, Operation, Pipeline};
use serde_json::{json, Value};

use super::wire;
use crate::model::Resource;
use crate::policy::SERVICE;
use crate::scheduler::model::{Aggregate, AZ_KEY};
use crate::store::{self, db_err};
use crate::ComputeService;

static MANAGE_AGGREGATES: Operation = Operation::new(
    "os_compute_api:os-aggregates:index",
    "compute/aggregate",
    &[Role("admin")],
);

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    use MethodFilter as M;
    let op = &MANAGE_AGGREGATES;
    Router::new()
        .route(
            "/os-aggregates",
            p.on(&SERVICE, op, M::GET, list)
                .merge(p.on(&SERVICE, op, M::POST, create)),
        )
        .route(
            "/os-aggregates/{id}",
            p.on(&SERVICE, op, M::GET, show)
                .merge(p.on(&SERVICE, op, M::PUT, update))
                .merge(p.on(&SERVICE, op, M::DELETE, delete)),
        )
        .route(
            "/os-aggregates/{id}/action",
            p.on(&SERVICE, op, M::POST, action),
        )
}

fn view(a: &Aggregate) -> Value {
    json!({
        "id": a.number,
        "uuid": a.uuid,
        "name": a.name,
        "availability_zone": a.availability_zone(),
        "hosts": a.hosts,
        "metadata": a.metadata,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "deleted_at": null,
        "deleted": false,
    })
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Aggregate {id} could not be found."))
}

fn name_of(v: &Value, required: bool) -> Result<Option<String>, Error> {
    match v.get("name") {
        None if !required => Ok(None),
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => {
            Ok(Some(n.clone()))
        }
        other => Err(Error::BadRequest(format!(
            "Invalid input for field/attribute name. Value: {}.",
            wire::short(other.unwrap_or(&Value::Null))
        ))),
    }
}

fn zone_of(v: &Value) -> Result<Option<Option<String>>, Error> {
    match v.get("availability_zone") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(z)) if !z.is_empty() && z.chars().count() <= 255 => {
            Ok(Some(Some(z.clone())))
        }
        Some(other) => Err(Error::BadRequest(format!(
            "Invalid input for field/attribute availability_zone. Value: {}.",
            wire::short(other)
        ))),
    }
}

fn inner<'a>(body: &'a Value, key: &str) -> Result<&'a Value, Error> {
    body.get(key).filter(|v| v.is_object()).ok_or_else(|| {
        Error::BadRequest(format!(
            "Invalid input for field/attribute {key}. '{key}' is a required property"
        ))
    })
}

async fn find(conn: &mut sqlx::AnyConnection, id: &str) -> Result<Aggregate, Error> {
    store::get::<Aggregate>(conn, id)
        .await?
        .ok_or_else(|| not_found(id))
}

async fn list(State(s): State<ComputeService>) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let all: Vec<Aggregate> = store::list(&mut conn, None).await?;
    Ok(Json(
        json!({"aggregates": all.iter().map(view).collect::<Vec<_>>()}),
    ))
}

async fn create(State(s): State<ComputeService>, Json(body): Json<Value>) -> ApiResult<Response> {
    let req = inner(&body, "aggregate")?;
    let name = name_of(req, true)?.unwrap_or_default();
    let zone = zone_of(req)?.flatten();
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let all: Vec<Aggregate> = store::list(&mut tx, None).await?;
    let number = all.iter().map(|a| a.number).max().unwrap_or(0) + 1;
    let mut a = Aggregate {
        id: number.to_string(),
        number,
        uuid: uuid::Uuid::new_v4().to_string(),
        name: name.clone(),
        hosts: vec![],
        metadata: Default::default(),
        created_at: wire::now(),
        updated_at: None,
    };
    if let Some(z) = zone {
        a.metadata.insert(AZ_KEY.into(), z);
    }
    store::insert(&mut tx, &a, || format!("Aggregate {name} already exists.")).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::with_status(
        axum::http::StatusCode::OK,
        "aggregate",
        &a.id,
        view(&a),
    ))
}

async fn show(State(s): State<ComputeService>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    Ok(Json(
        json!({"aggregate": view(&find(&mut conn, &id).await?)}),
    ))
}

async fn update(
    State(s): State<ComputeService>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let req = inner(&body, "aggregate")?;
    let name = name_of(req, false)?;
    let zone = zone_of(req)?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut a = find(&mut tx, &id).await?;
    if let Some(n) = name {
        a.name = n;
    }
    match zone {
        Some(Some(z)) => {
            a.metadata.insert(AZ_KEY.into(), z);
        }
        Some(None) => {
            a.metadata.remove(AZ_KEY);
        }
        None => {}
    }
    a.updated_at = Some(wire::now());
    store::update(&mut tx, &a).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(Json(json!({"aggregate": view(&a)})))
}

async fn delete(
    State(s): State<ComputeService>,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let a = find(&mut tx, &id).await?;
    if !a.hosts.is_empty() {
        return Err(Error::BadRequest(format!(
            "Cannot remove aggregate {id}: it still has hosts."
        ))
        .into());
    }
    store::delete(&mut tx, Aggregate::KIND, &id).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(axum::http::StatusCode::OK)
}

async fn action(
    State(s): State<ComputeService>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut a = find(&mut tx, &id).await?;
    let host_of = |v: &Value| -> Result<String, Error> {
        v.get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::BadRequest("Invalid input for field/attribute host.".into()))
    };
    if let Some(v) = body.get("add_host") {
        let host = host_of(v)?;
        let known = crate::placement::store::provider_named(&mut tx, &host)
            .await?
            .is_some();
        if !known {
            return Err(Error::NotFound(format!("Compute host {host} could not be found.")).into());
        }
        if a.hosts.contains(&host) {
            return Err(Error::Conflict(format!("Aggregate {id} already has host {host}.")).into());
        }
        a.hosts.push(host);
    } else if let Some(v) = body.get("remove_host") {
        let host = host_of(v)?;
        if !a.hosts.contains(&host) {
            return Err(
                Error::NotFound(format!("Cannot remove host {host} in aggregate {id}")).into(),
            );
        }
        a.hosts.retain(|h| *h != host);
    } else if let Some(v) = body.get("set_metadata") {
        let Some(meta) = v.get("metadata").and_then(Value::as_object) else {
            return Err(
                Error::BadRequest("Invalid input for field/attribute metadata.".into()).into(),
            );
        };
        for (k, v) in meta {
            match v {
                Value::Null => {
                    a.metadata.remove(k);
                }
                Value::String(s) => {
                    a.metadata.insert(k.clone(), s.clone());
                }
                other => {
                    a.metadata.insert(k.clone(), other.to_string());
                }
            }
        }
    } else {
        return Err(Error::BadRequest(
            "Invalid input: the action must be add_host, remove_host or set_metadata.".into(),
        )
        .into());
    }
    a.updated_at = Some(wire::now());
    store::update(&mut tx, &a).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(Json(json!({"aggregate": view(&a)})))
}
