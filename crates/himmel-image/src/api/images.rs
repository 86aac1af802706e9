//! `/v2/images`, `/v2/images/{id}`, `/v2/images/{id}/tasks` and `/v2/images/{id}/tags/{tag}`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, AuditTargetId, Authz, Ctx, Json, Pipeline};
use serde_json::{json, Value};

use super::{allowed, base_url, forbidden, list};
use crate::access::{self, target};
use crate::model::{Image, Visibility};
use crate::patch;
use crate::policy::*;
use crate::{store, ImageService};

pub fn routes(p: &Pipeline) -> Router<ImageService> {
    Router::new()
        .route(
            "/v2/images",
            p.on(&SERVICE, &GET_IMAGES, MethodFilter::GET, list_images)
                .merge(p.on(&SERVICE, &ADD_IMAGE, MethodFilter::POST, create)),
        )
        .route(
            "/v2/images/{id}",
            p.on(&SERVICE, &GET_IMAGE, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &MODIFY_IMAGE, MethodFilter::PATCH, update))
                .merge(p.on(&SERVICE, &DELETE_IMAGE, MethodFilter::DELETE, delete)),
        )
        .route(
            "/v2/images/{id}/tasks",
            p.on(&SERVICE, &GET_IMAGE, MethodFilter::GET, tasks),
        )
        .route(
            "/v2/images/{id}/tags/{tag}",
            p.on(&SERVICE, &ADD_TAG, MethodFilter::PUT, add_tag)
                .merge(p.on(&SERVICE, &DELETE_TAG, MethodFilter::DELETE, delete_tag)),
        )
}

/// The import methods this service offers (also `GET /v2/info/import`).
pub const IMPORT_METHODS: &[&str] = &["glance-direct"];

async fn create(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let Value::Object(fields) = body else {
        return Err(Error::BadRequest("The request body must be a JSON object.".into()).into());
    };
    let id = match fields.get("id") {
        None | Some(Value::Null) => himmel_core::ids::new_id(),
        Some(Value::String(s)) => uuid::Uuid::parse_str(s)
            .map_err(|_| {
                Error::BadRequest(format!("Invalid value for 'id': '{s}' is not a UUID."))
            })?
            .to_string(),
        Some(_) => return Err(Error::BadRequest("Invalid value for 'id'.".into()).into()),
    };
    let caller_project = ctx.project_id().map(str::to_string);
    let mut image = Image::new(id, caller_project.clone().unwrap_or_default());
    for (key, value) in &fields {
        if key != "id" {
            patch::set(&mut image, key, value)?;
        }
    }
    if image.owner.is_empty() {
        return Err(Error::BadRequest(
            "An image needs an owner: use a project-scoped token or set 'owner'.".into(),
        )
        .into());
    }
    authz.check(&target(&image.owner))?;
    if caller_project.as_deref() != Some(image.owner.as_str())
        && !allowed(&SET_OWNER, &ctx, &target(&image.owner))
    {
        return Err(forbidden(&SET_OWNER).into());
    }
    check_visibility_change(&ctx, &image, None)?;
    store::insert(svc.db(), &image).await?;
    let location = format!("{}/v2/images/{}", base_url(&headers), image.id);
    let mut resp = (StatusCode::CREATED, Json(image.to_json())).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(
        "openstack-image-import-methods",
        HeaderValue::from_static("glance-direct"),
    );
    resp.extensions_mut().insert(AuditTargetId(image.id));
    Ok(resp)
}

/// Publicizing needs the administrator, making an image community its
/// owner; checked when the visibility is set or changed.
fn check_visibility_change(
    ctx: &himmel_core::RequestContext,
    image: &Image,
    before: Option<Visibility>,
) -> Result<(), Error> {
    if before == Some(image.visibility) {
        return Ok(());
    }
    let t = target(&image.owner);
    match image.visibility {
        Visibility::Public if !allowed(&PUBLICIZE_IMAGE, ctx, &t) => {
            Err(forbidden(&PUBLICIZE_IMAGE))
        }
        Visibility::Community if !allowed(&COMMUNITIZE_IMAGE, ctx, &t) => {
            Err(forbidden(&COMMUNITIZE_IMAGE))
        }
        _ => Ok(()),
    }
}

async fn list_images(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let all = access::sees_all(&ctx);
    if !authz.unconditional() {
        // A reader lists what its own project may see.
        authz.check(&target(ctx.project_id().unwrap_or_default()))?;
    }
    let q = list::Query::parse(query.as_deref().unwrap_or(""))?;
    let candidates = store::candidates(svc.db(), ctx.project_id(), all).await?;
    let memberships = match ctx.project_id() {
        Some(p) => store::memberships(svc.db(), p).await?,
        None => Default::default(),
    };
    let page = list::select(&ctx, all, candidates, &memberships, &q)?;
    Ok(Json(page))
}

/// The image `id` if the caller may see it, checked against `authz` with
/// the read target (owner, or the caller's own project).
pub(crate) async fn readable(
    svc: &ImageService,
    ctx: &himmel_core::RequestContext,
    authz: &Authz,
    id: &str,
) -> Result<Image, himmel_http::ApiError> {
    match svc.visible_image(ctx, id).await {
        Ok(image) => {
            authz.check(&access::read_target(ctx, &image))?;
            Ok(image)
        }
        Err(e) => {
            // Decided without a target: let the 404 through.
            authz.allows(&Default::default());
            Err(e.into())
        }
    }
}

/// The image `id` for a change: visible (else 404), then the operation's
/// rule against its owner (else 403).
pub(crate) async fn changeable(
    svc: &ImageService,
    ctx: &himmel_core::RequestContext,
    authz: &Authz,
    id: &str,
) -> Result<Image, himmel_http::ApiError> {
    match svc.visible_image(ctx, id).await {
        Ok(image) => {
            authz.check(&target(&image.owner))?;
            Ok(image)
        }
        Err(e) => {
            authz.allows(&Default::default());
            Err(e.into())
        }
    }
}

async fn show(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let image = readable(&svc, &ctx, &authz, &id).await?;
    Ok(Json(image.to_json()))
}

/// The image's asynchronous tasks (Glance 2.12). Here an import finishes
/// before its request is answered, so an image never has one.
async fn tasks(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    readable(&svc, &ctx, &authz, &id).await?;
    Ok(Json(json!({"tasks": []})))
}

async fn update(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mut image = changeable(&svc, &ctx, &authz, &id).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !patch::PATCH_MEDIA_TYPES.contains(&media) {
        return Err(Error::UnsupportedMediaType(format!(
            "Unsupported Content-Type '{content_type}': use {}.",
            patch::PATCH_MEDIA_TYPES[0]
        ))
        .into());
    }
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("Malformed JSON in request body: {e}")))?;
    let before = image.clone();
    patch::apply(&mut image, &doc)?;
    check_visibility_change(&ctx, &image, Some(before.visibility))?;
    if image.owner != before.owner && !allowed(&SET_OWNER, &ctx, &target(&image.owner)) {
        return Err(forbidden(&SET_OWNER).into());
    }
    store::update(svc.db(), &image).await?;
    let fresh = store::get(svc.db(), &id)
        .await?
        .ok_or_else(|| access::not_found(&id))?;
    Ok(Json(fresh.to_json()))
}

async fn delete(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let image = changeable(&svc, &ctx, &authz, &id).await?;
    if image.protected {
        return Err(
            Error::Forbidden(format!("Image {id} is protected and cannot be deleted.")).into(),
        );
    }
    let files = store::delete(svc.db(), &id).await?;
    svc.data().remove(&files).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_tag(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut image = changeable(&svc, &ctx, &authz, &id).await?;
    patch::check_tag(&tag)?;
    if image.tags.insert(tag) {
        store::update(svc.db(), &image).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_tag(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut image = changeable(&svc, &ctx, &authz, &id).await?;
    if !image.tags.remove(&tag) {
        return Err(Error::NotFound(format!("Tag {tag} not found on image {id}.")).into());
    }
    store::update(svc.db(), &image).await?;
    Ok(StatusCode::NO_CONTENT)
}
