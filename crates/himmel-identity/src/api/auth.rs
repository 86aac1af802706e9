//! `/v3/auth/*`: tokens, and what a token may see.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiError, ApiResult, AuditTargetId, Authz, Ctx, Json, Pipeline, Target};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::policy::*;
use crate::store::{catalog, projects};
use crate::token::{TokenInfo, TokenScope};
use crate::Identity;

#[derive(Deserialize, Default)]
struct TokenQuery {
    nocatalog: Option<String>,
}

impl TokenQuery {
    fn wants_catalog(&self) -> bool {
        // Keystone treats the mere presence of `nocatalog` as true.
        self.nocatalog
            .as_deref()
            .is_none_or(|v| matches!(v, "0" | "false" | "False"))
    }
}

async fn body_with_catalog(
    id: &Identity,
    info: &TokenInfo,
    q: &TokenQuery,
) -> Result<Value, Error> {
    let cat = if q.wants_catalog() && !matches!(info.scope, TokenScope::Unscoped) {
        Some(catalog::catalog(id.db(), info.project_id()).await?)
    } else {
        None
    };
    Ok(json!({"token": info.to_json(cat)}))
}

fn subject_header(token: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(token).map_err(|e| ApiError(Error::internal(e)))
}

async fn issue(
    State(id): State<Identity>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let receipt = headers
        .get("openstack-auth-receipt")
        .and_then(|v| v.to_str().ok());
    let req = match crate::auth::authenticate(&id, &body, receipt).await? {
        Ok(req) => req,
        Err(needs_more) => return receipt_response(needs_more),
    };
    let (token, info) = id.issue(req).await?;
    let body = body_with_catalog(&id, &info, &q).await?;
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert("x-subject-token", subject_header(&token)?);
    resp.extensions_mut()
        .insert(AuditTargetId(info.user.id.clone()));
    Ok(resp)
}

/// Keystone's answer when more authentication methods are needed: 401,
/// the receipt in `Openstack-Auth-Receipt` and the rules in the body.
fn receipt_response(r: crate::auth::totp::ReceiptRequired) -> ApiResult<Response> {
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(r.body)).into_response();
    resp.headers_mut()
        .insert("openstack-auth-receipt", subject_header(&r.receipt)?);
    resp.extensions_mut().insert(AuditTargetId(r.user_id));
    Ok(resp)
}

/// Validates the `X-Subject-Token` and checks the caller may see it.
async fn subject(
    id: &Identity,
    headers: &HeaderMap,
    authz: &Authz,
) -> ApiResult<(String, TokenInfo)> {
    let token = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError(Error::BadRequest(
                "X-Subject-Token header is required.".into(),
            ))
        })?
        .to_owned();
    // An invalid subject token is a 404 for every caller, as in Keystone;
    // the policy then decides whether the caller may see a valid one.
    let info = id.validate(&token).await?;
    authz.check(&Target {
        user_id: Some(info.user.id.clone()),
        ..Default::default()
    })?;
    Ok((token, info))
}

async fn validate(
    State(id): State<Identity>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    authz: Authz,
) -> ApiResult<Response> {
    let (token, info) = subject(&id, &headers, &authz).await?;
    let body = body_with_catalog(&id, &info, &q).await?;
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert("x-subject-token", subject_header(&token)?);
    Ok(resp)
}

async fn check(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
) -> ApiResult<Response> {
    let (token, _) = subject(&id, &headers, &authz).await?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert("x-subject-token", subject_header(&token)?);
    Ok(resp)
}

async fn revoke(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
) -> ApiResult<StatusCode> {
    let (_, info) = subject(&id, &headers, &authz).await?;
    let event = crate::store::revocation::RevocationEvent {
        audit_id: info.audit_ids.first().cloned(),
        ..Default::default()
    };
    id.revocations().revoke(id.db(), event).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn auth_catalog(State(id): State<Identity>, ctx: Ctx) -> ApiResult<Json<Value>> {
    if ctx.scope == himmel_core::Scope::Unscoped {
        return Err(ApiError(Error::Forbidden(
            "An unscoped token has no catalog.".into(),
        )));
    }
    let cat = catalog::catalog(id.db(), ctx.project_id()).await?;
    Ok(Json(
        json!({"catalog": cat, "links": {"self": "/v3/auth/catalog"}}),
    ))
}

async fn auth_projects(State(id): State<Identity>, ctx: Ctx) -> ApiResult<Json<Value>> {
    let list = crate::store::assignments::projects_for_user(id.db(), &ctx.user_id).await?;
    let mut out = Vec::new();
    for p in list.iter().filter(|p| p.enabled) {
        out.push(p.to_json(&projects::tags(id.db(), &p.id).await?));
    }
    Ok(Json(
        json!({"projects": out, "links": {"self": "/v3/auth/projects", "previous": null, "next": null}}),
    ))
}

async fn auth_domains(State(id): State<Identity>, ctx: Ctx) -> ApiResult<Json<Value>> {
    let list = crate::store::assignments::domains_for_user(id.db(), &ctx.user_id).await?;
    let out: Vec<Value> = list
        .iter()
        .filter(|d| d.enabled)
        .map(|d| d.to_json())
        .collect();
    Ok(Json(
        json!({"domains": out, "links": {"self": "/v3/auth/domains", "previous": null, "next": null}}),
    ))
}

async fn auth_system(State(id): State<Identity>, ctx: Ctx) -> ApiResult<Json<Value>> {
    let on = crate::store::assignments::On::System;
    let roles = crate::store::assignments::effective_roles(id.db(), &ctx.user_id, &on).await?;
    let system = if roles.is_empty() {
        vec![]
    } else {
        vec![json!({"all": true})]
    };
    Ok(Json(
        json!({"system": system, "links": {"self": "/v3/auth/system"}}),
    ))
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    Router::new()
        .route(
            "/v3/auth/tokens",
            p.on(&SERVICE, &CREATE_TOKEN, M::POST, issue)
                .merge(p.on(&SERVICE, &VALIDATE_TOKEN, M::GET, validate))
                .merge(p.on(&SERVICE, &CHECK_TOKEN, M::HEAD, check))
                .merge(p.on(&SERVICE, &REVOKE_TOKEN, M::DELETE, revoke)),
        )
        .route(
            "/v3/auth/catalog",
            p.on(&SERVICE, &GET_AUTH_CATALOG, M::GET, auth_catalog),
        )
        .route(
            "/v3/auth/projects",
            p.on(&SERVICE, &GET_AUTH_PROJECTS, M::GET, auth_projects),
        )
        .route(
            "/v3/auth/domains",
            p.on(&SERVICE, &GET_AUTH_DOMAINS, M::GET, auth_domains),
        )
        .route(
            "/v3/auth/system",
            p.on(&SERVICE, &GET_AUTH_SYSTEM, M::GET, auth_system),
        )
}
