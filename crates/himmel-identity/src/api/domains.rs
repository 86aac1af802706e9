//! `/v3/domains`: domains.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, Scope};
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline, Target};
use serde_json::Value;

use crate::policy::*;
use crate::store::domains::{self, Domain};
use crate::store::revocation::RevocationEvent;
use crate::Identity;

use super::wire::{self, Filters};

/// Domain names are at most 64 characters, as in Keystone.
const NAME_MAX: usize = 64;

async fn load(id: &Identity, domain_id: &str) -> Result<Domain, Error> {
    domains::get(id.db(), domain_id)
        .await?
        .ok_or_else(|| Error::not_found("domain", domain_id))
}

fn target(domain_id: &str) -> Target {
    Target {
        domain_id: Some(domain_id.to_string()),
        ..Default::default()
    }
}

async fn list(
    State(id): State<Identity>,
    authz: Authz,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let q = Filters(q);
    let enabled = q.boolean("enabled");
    let out: Vec<Value> = domains::list(id.db())
        .await?
        .into_iter()
        .filter(|d| enabled.is_none_or(|e| d.enabled == e))
        .filter(|d| q.text("name", &d.name))
        .filter(|d| authz.allows(&target(&d.id)))
        .map(|d| d.to_json())
        .collect();
    Ok(Json(wire::list("domains", "/v3/domains", out)))
}

async fn get(
    State(id): State<Identity>,
    authz: Authz,
    Path(domain_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = domains::get(id.db(), &domain_id).await?;
    // Check policy before revealing whether the domain exists.
    authz.check(&target(&domain_id))?;
    let d = d.ok_or_else(|| Error::not_found("domain", &domain_id))?;
    Ok(Json(serde_json::json!({"domain": d.to_json()})))
}

const KNOWN: &[&str] = &[
    "name",
    "description",
    "enabled",
    "explicit_domain_id",
    "options",
];
const RESERVED: &[&str] = &["id", "links"];

fn check_options_and_tags(o: &wire::Obj) -> Result<(), Error> {
    match o.get("options") {
        None => {}
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(Value::Object(m)) => {
            let name = m.keys().next().map(String::as_str).unwrap_or_default();
            return Err(wire::invalid(
                "options",
                format!("'{name}' is not a supported domain option"),
            ));
        }
        Some(v) => {
            return Err(wire::invalid(
                "options",
                format!("{v} is not of type 'object'"),
            ))
        }
    }
    if o.contains_key("tags") {
        return Err(wire::invalid("tags", "domains do not carry tags here"));
    }
    Ok(())
}

async fn create(State(id): State<Identity>, Json(body): Json<Value>) -> ApiResult<Response> {
    let o = wire::resource(&body, "domain")?;
    wire::required(o, "name")?;
    let name = wire::name(o, "name", NAME_MAX)?.unwrap_or_default();
    check_options_and_tags(o)?;
    let domain_id = match wire::id_ref(o, "explicit_domain_id", true)?.flatten() {
        Some(explicit) => explicit,
        None => himmel_core::ids::new_id(),
    };
    let d = Domain {
        id: domain_id,
        name,
        description: wire::nullable_string(o, "description")?
            .flatten()
            .unwrap_or_default()
            .to_string(),
        enabled: wire::boolean(o, "enabled")?.unwrap_or(true),
        extra: Value::Object(wire::extra(o, KNOWN, RESERVED)?),
    };
    domains::create(id.db(), &d).await?;
    Ok(wire::created("domain", &d.id, d.to_json()))
}

async fn update(
    State(id): State<Identity>,
    Path(domain_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let o = wire::resource(&body, "domain")?;
    wire::same_id(o, "domain", &domain_id)?;
    check_options_and_tags(o)?;
    let mut d = load(&id, &domain_id).await?;
    let was_enabled = d.enabled;
    if let Some(name) = wire::name(o, "name", NAME_MAX)? {
        d.name = name;
    }
    if let Some(desc) = wire::nullable_string(o, "description")? {
        d.description = desc.unwrap_or_default().to_string();
    }
    if let Some(enabled) = wire::boolean(o, "enabled")? {
        if !enabled && d.id == crate::bootstrap::DEFAULT_DOMAIN_ID {
            return Err(Error::Forbidden(
                "The default domain holds the cloud administrator and cannot be disabled.".into(),
            )
            .into());
        }
        d.enabled = enabled;
    }
    let extra = wire::extra(o, &[KNOWN, &["id"]].concat(), &["links"])?;
    d.extra = wire::merge_extra(&d.extra, extra);
    domains::update(id.db(), &d).await?;
    if was_enabled && !d.enabled {
        let event = RevocationEvent {
            domain_id: Some(d.id.clone()),
            ..Default::default()
        };
        id.revocations().revoke(id.db(), event).await?;
    }
    Ok(Json(serde_json::json!({"domain": d.to_json()})))
}

async fn delete(
    State(id): State<Identity>,
    Path(domain_id): Path<String>,
) -> ApiResult<StatusCode> {
    let d = load(&id, &domain_id).await?;
    if d.enabled {
        return Err(Error::Forbidden(
            "Cannot delete a domain that is enabled, please disable it first.".into(),
        )
        .into());
    }
    domains::delete_cascade(id.db(), &d.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The domain a create defaults to: the token's domain when it is
/// domain-scoped, else the default domain (Keystone's rule).
pub(super) fn default_domain(ctx: &Ctx) -> String {
    match &ctx.scope {
        Scope::Domain { id, .. } => id.clone(),
        _ => crate::bootstrap::DEFAULT_DOMAIN_ID.to_string(),
    }
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    Router::new()
        .route(
            "/v3/domains",
            p.on(&SERVICE, &LIST_DOMAINS, M::GET, list).merge(p.on(
                &SERVICE,
                &CREATE_DOMAIN,
                M::POST,
                create,
            )),
        )
        .route(
            "/v3/domains/{domain_id}",
            p.on(&SERVICE, &GET_DOMAIN, M::GET, get)
                .merge(p.on(&SERVICE, &UPDATE_DOMAIN, M::PATCH, update))
                .merge(p.on(&SERVICE, &DELETE_DOMAIN, M::DELETE, delete)),
        )
}
