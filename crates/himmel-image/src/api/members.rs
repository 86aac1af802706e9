//! `/v2/images/{id}/members`: sharing an image with other projects. The
//! owner adds and removes members; a member project accepts or rejects;
//! only `shared` images have members.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde_json::{json, Value};

use super::images::{changeable, readable};
use crate::access::{self, target};
use crate::model::{timestamp, Image, Visibility};
use crate::policy::*;
use crate::store::{self, Member};
use crate::ImageService;

pub fn routes(p: &Pipeline) -> Router<ImageService> {
    Router::new()
        .route(
            "/v2/images/{id}/members",
            p.on(&SERVICE, &GET_MEMBERS, MethodFilter::GET, list)
                .merge(p.on(&SERVICE, &ADD_MEMBER, MethodFilter::POST, create)),
        )
        .route(
            "/v2/images/{id}/members/{member_id}",
            p.on(&SERVICE, &GET_MEMBER, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &MODIFY_MEMBER, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &DELETE_MEMBER, MethodFilter::DELETE, delete)),
        )
}

fn member_json(m: &Member) -> Value {
    json!({
        "image_id": m.image_id,
        "member_id": m.member_id,
        "status": m.status,
        "created_at": timestamp(m.created_at),
        "updated_at": timestamp(m.updated_at),
        "schema": "/v2/schemas/member",
    })
}

fn require_shared(image: &Image) -> Result<(), Error> {
    if image.visibility == Visibility::Shared {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "Only shared images have members: image {} is {}.",
            image.id,
            image.visibility.as_str()
        )))
    }
}

/// The owner (and the administrator) see every member; a member project
/// sees only its own membership.
fn sees_all_members(ctx: &RequestContext, image: &Image) -> bool {
    access::sees_all(ctx) || access::is_owner(ctx, image)
}

fn member_not_found(image_id: &str, member_id: &str) -> Error {
    Error::NotFound(format!("{member_id} is not a member of image {image_id}."))
}

async fn create(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let image = changeable(&svc, &ctx, &authz, &id).await?;
    require_shared(&image)?;
    let member = body
        .get("member")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty() && m.len() <= 255)
        .ok_or_else(|| Error::BadRequest("The request body must contain 'member'.".into()))?;
    let m = store::add_member(svc.db(), &id, member).await?;
    Ok(Json(member_json(&m)))
}

async fn list(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let image = readable(&svc, &ctx, &authz, &id).await?;
    require_shared(&image)?;
    let all = sees_all_members(&ctx, &image);
    let members: Vec<Value> = store::members(svc.db(), &id)
        .await?
        .iter()
        .filter(|m| all || ctx.project_id() == Some(m.member_id.as_str()))
        .map(member_json)
        .collect();
    Ok(Json(
        json!({"members": members, "schema": "/v2/schemas/members"}),
    ))
}

async fn show(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path((id, member_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let image = readable(&svc, &ctx, &authz, &id).await?;
    require_shared(&image)?;
    if !sees_all_members(&ctx, &image) && ctx.project_id() != Some(member_id.as_str()) {
        return Err(member_not_found(&id, &member_id).into());
    }
    let m = store::member(svc.db(), &id, &member_id)
        .await?
        .ok_or_else(|| member_not_found(&id, &member_id))?;
    Ok(Json(member_json(&m)))
}

async fn update(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path((id, member_id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    // Visible to the member through its membership; the rule is checked
    // against the member project, which alone accepts or rejects.
    let image = match svc.visible_image(&ctx, &id).await {
        Ok(image) => image,
        Err(e) => {
            authz.allows(&Default::default());
            return Err(e.into());
        }
    };
    authz.check(&target(&member_id))?;
    require_shared(&image)?;
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest("The request body must contain 'status'.".into()))?;
    if !["pending", "accepted", "rejected"].contains(&status) {
        return Err(Error::BadRequest(format!("Invalid status: {status}")).into());
    }
    if !store::set_member_status(svc.db(), &id, &member_id, status).await? {
        return Err(member_not_found(&id, &member_id).into());
    }
    let m = store::member(svc.db(), &id, &member_id)
        .await?
        .ok_or_else(|| member_not_found(&id, &member_id))?;
    Ok(Json(member_json(&m)))
}

async fn delete(
    State(svc): State<ImageService>,
    ctx: Ctx,
    authz: Authz,
    Path((id, member_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let image = changeable(&svc, &ctx, &authz, &id).await?;
    require_shared(&image)?;
    if !store::delete_member(svc.db(), &id, &member_id).await? {
        return Err(member_not_found(&id, &member_id).into());
    }
    Ok(StatusCode::NO_CONTENT)
}
