//! The `/tags` subresource of every taggable collection: list, replace,
//! check, add and remove tags. Changing tags is an update of the resource
//! (its rule, its revision number).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Operation, Pipeline};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access;
use super::wire::{self, check_if_match};
use crate::model::Resource;
use crate::store::{self, db_err};
use crate::NetworkService;

/// Neutron's limit on tags per resource.
const MAX_TAGS: usize = 50;

pub fn routes<R: Resource + 'static>(
    p: &Pipeline,
    collection: &'static str,
    read: &'static Operation,
    write: &'static Operation,
    what: &'static str,
) -> Router<NetworkService> {
    let base = format!("/v2.0/{collection}/{{id}}/tags");
    let one = format!("{base}/{{tag}}");
    Router::new()
        .route(
            &base,
            p.on(
                &crate::policy::SERVICE,
                read,
                MethodFilter::GET,
                move |s, a, path| list::<R>(s, a, path, what),
            )
            .merge(p.on(
                &crate::policy::SERVICE,
                write,
                MethodFilter::PUT,
                move |s, c, a, h, path, body| replace::<R>(s, c, a, h, path, body, what),
            ))
            .merge(p.on(
                &crate::policy::SERVICE,
                write,
                MethodFilter::DELETE,
                move |s, c, a, h, path| change::<R>(s, c, a, h, path, what, Change::Clear),
            )),
        )
        .route(
            &one,
            p.on(
                &crate::policy::SERVICE,
                read,
                MethodFilter::GET,
                move |s, a, path| check::<R>(s, a, path, what),
            )
            .merge(p.on(
                &crate::policy::SERVICE,
                write,
                MethodFilter::PUT,
                move |s, c, a, h, path| change::<R>(s, c, a, h, path, what, Change::Add),
            ))
            .merge(p.on(
                &crate::policy::SERVICE,
                write,
                MethodFilter::DELETE,
                move |s, c, a, h, path| change::<R>(s, c, a, h, path, what, Change::Remove),
            )),
        )
}

async fn list<R: Resource>(
    State(s): State<NetworkService>,
    authz: Authz,
    Path(id): Path<String>,
    what: &str,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let r = access::readable(store::get::<R>(&mut conn, &id).await?, &authz, what, &id)?;
    Ok(Json(json!({"tags": r.meta().tags})))
}

async fn check<R: Resource>(
    State(s): State<NetworkService>,
    authz: Authz,
    Path((id, tag)): Path<(String, String)>,
    what: &str,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let r = access::readable(store::get::<R>(&mut conn, &id).await?, &authz, what, &id)?;
    if !r.meta().tags.contains(&tag) {
        return Err(
            Error::NotFound(format!("Tag {tag} could not be found for resource {id}.")).into(),
        );
    }
    Ok(wire::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tags {
    tags: Vec<String>,
}

async fn replace<R: Resource>(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
    what: &str,
) -> ApiResult<Json<Value>> {
    let req: Tags = serde_json::from_value(body)
        .map_err(|e| Error::BadRequest(format!("Invalid input for operation: {e}.")))?;
    let mut tags: Vec<String> = Vec::new();
    for t in req.tags {
        wire::check_tag(&t)?;
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Error::BadRequest(format!(
            "Invalid input for operation: at most {MAX_TAGS} tags."
        ))
        .into());
    }
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut r = access::writable(
        store::get::<R>(&mut tx, &id).await?,
        &ctx,
        &authz,
        what,
        &id,
    )?;
    check_if_match(&headers, r.meta())?;
    r.meta_mut().tags = tags;
    store::update(&mut tx, &mut r).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(Json(json!({"tags": r.meta().tags})))
}

enum Change {
    Add,
    Remove,
    Clear,
}

async fn change<R: Resource>(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(params): Path<Vec<(String, String)>>,
    what: &str,
    change: Change,
) -> ApiResult<Response> {
    let id = params
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let tag = params
        .iter()
        .find(|(k, _)| k == "tag")
        .map(|(_, v)| v.clone());
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut r = access::writable(
        store::get::<R>(&mut tx, &id).await?,
        &ctx,
        &authz,
        what,
        &id,
    )?;
    check_if_match(&headers, r.meta())?;
    let tags = &mut r.meta_mut().tags;
    let added = match (change, tag) {
        (Change::Add, Some(t)) => {
            wire::check_tag(&t)?;
            if !tags.contains(&t) {
                if tags.len() >= MAX_TAGS {
                    return Err(Error::BadRequest(format!(
                        "Invalid input for operation: at most {MAX_TAGS} tags."
                    ))
                    .into());
                }
                tags.push(t);
            }
            true
        }
        (Change::Remove, Some(t)) => {
            let before = tags.len();
            tags.retain(|x| *x != t);
            if tags.len() == before {
                return Err(Error::NotFound(format!(
                    "Tag {t} could not be found for resource {id}."
                ))
                .into());
            }
            false
        }
        _ => {
            tags.clear();
            false
        }
    };
    store::update(&mut tx, &mut r).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    // Adding answers 201 even when the tag was there already, as Neutron does.
    Ok(if added {
        axum::response::IntoResponse::into_response(axum::http::StatusCode::CREATED)
    } else {
        wire::no_content()
    })
}
