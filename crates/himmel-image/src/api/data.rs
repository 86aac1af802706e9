//! Image data: upload and download (`/file`), staging and import
//! (`/stage`, `/import`, `/v2/info/import`), and (de)activation.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde_json::{json, Value};

use super::images::{changeable, readable, IMPORT_METHODS};
use crate::access;
use crate::model::Status;
use crate::policy::*;
use crate::{store, ImageService};

pub fn routes(p: &Pipeline) -> Router<ImageService> {
    Router::new()
        .route(
            "/v2/images/{id}/file",
            p.on(&SERVICE, &UPLOAD_IMAGE, MethodFilter::PUT, upload)
                .merge(p.on(&SERVICE, &DOWNLOAD_IMAGE, MethodFilter::GET, download)),
        )
        .route(
            "/v2/images/{id}/stage",
            p.on(&SERVICE, &STAGE_IMAGE, MethodFilter::PUT, stage),
        )
        .route(
            "/v2/images/{id}/import",
            p.on(&SERVICE, &IMPORT_IMAGE, MethodFilter::POST, import),
        )
        .route(
            "/v2/images/{id}/actions/deactivate",
            p.on(&SERVICE, &DEACTIVATE, MethodFilter::POST, deactivate),
        )
        .route(
            "/v2/images/{id}/actions/reactivate",
            p.on(&SERVICE, &REACTIVATE, MethodFilter::POST, reactivate),
        )
        .route(
            "/v2/info/import",
            p.on(&SERVICE, &GET_INFO, MethodFilter::GET, import_info),
        )
        .route(
            "/v2/info/stores",
            p.on(&SERVICE, &GET_INFO, MethodFilter::GET, stores_info),
        )
}

/// Image data is sent as `application/octet-stream` (Glance: 415 else).
fn require_octet_stream(headers: &HeaderMap) -> Result<(), Error> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.split(';').next().unwrap_or("").trim() == "application/octet-stream" {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(format!(
            "Unsupported Content-Type '{ct}': image data is sent as application/octet-stream."
        )))
    }
}

async fn upload(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let image = changeable(&svc, &ctx, &authz, &id).await?;
    require_octet_stream(&headers)?;
    svc.upload(&image, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stage(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let image = changeable(&svc, &ctx, &authz, &id).await?;
    require_octet_stream(&headers)?;
    svc.stage(&image, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn import(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<StatusCode> {
    let image = changeable(&svc, &ctx, &authz, &id).await?;
    let method = body
        .get("method")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::BadRequest("The request body must name an import method: method.name.".into())
        })?;
    if !IMPORT_METHODS.contains(&method) {
        return Err(Error::BadRequest(format!(
            "Import method {method} is not supported: use one of {}.",
            IMPORT_METHODS.join(", ")
        ))
        .into());
    }
    svc.import_staged(&image).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn download(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let image = readable(&svc, &ctx, &authz, &id).await?;
    if image.status == Status::Deactivated && !access::sees_all(&ctx) {
        return Err(Error::Forbidden(
            "The requested image has been deactivated. Image data download is forbidden.".into(),
        )
        .into());
    }
    let Some(stored) = image.data().filter(|_| image.status != Status::Queued) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let key = svc
        .keyring()
        .open_data_key(
            &stored.key_project,
            stored.file_id.as_bytes(),
            &stored.data_key,
        )
        .await
        .map_err(Error::from)?;
    let stream = svc.data().read(&stored.file_id, key);
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(size) = image.size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Some(md5) = image
        .checksum
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        h.insert("content-md5", md5);
    }
    Ok(resp)
}

async fn set_active(
    svc: &ImageService,
    ctx: &himmel_core::RequestContext,
    authz: &Authz,
    id: &str,
    to: Status,
) -> ApiResult<StatusCode> {
    let image = changeable(svc, ctx, authz, id).await?;
    if image.status == to {
        return Ok(StatusCode::NO_CONTENT);
    }
    let from = if to == Status::Deactivated {
        Status::Active
    } else {
        Status::Deactivated
    };
    if !store::transition(svc.db(), id, &[from], to).await? {
        let verb = if to == Status::Deactivated {
            "deactivate"
        } else {
            "reactivate"
        };
        return Err(Error::Forbidden(format!(
            "Not allowed to {verb} image in status '{}'",
            image.status
        ))
        .into());
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn deactivate(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    set_active(&svc, &ctx, &authz, &id, Status::Deactivated).await
}

async fn reactivate(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    set_active(&svc, &ctx, &authz, &id, Status::Active).await
}

async fn import_info() -> Json<Value> {
    Json(json!({"import-methods": {
        "description": "Import methods available.",
        "type": "array",
        "value": IMPORT_METHODS,
    }}))
}

async fn stores_info() -> Json<Value> {
    Json(json!({"stores": [{
        "id": crate::model::STORE_ID,
        "description": "Image data encrypted at rest in the region's data directory.",
        "default": true,
    }]}))
}
