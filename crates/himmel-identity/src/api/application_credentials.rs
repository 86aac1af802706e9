//! `/v3/users/{user_id}/application_credentials` and
//! `/v3/users/{user_id}/access_rules`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use himmel_core::Error;
use himmel_http::{ApiResult, AuditTargetId, Authz, Ctx, Json, Pipeline, Target};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::base_url;
use crate::policy::*;
use crate::store::application_credentials::{self as store, AccessRule, AppCred};
use crate::store::assignments::{self, On, RoleRef};
use crate::store::projects;
use crate::Identity;

const METHODS: &[&str] = &["POST", "GET", "HEAD", "PATCH", "PUT", "DELETE"];

fn bad(field: &str, why: &str) -> Error {
    Error::BadRequest(format!("Invalid input for field '{field}': {why}"))
}

fn owner(user_id: &str) -> Target {
    Target {
        user_id: Some(user_id.to_owned()),
        ..Default::default()
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Could not find Application Credential: {id}."))
}

/// A token issued through a restricted application credential may not
/// manage application credentials (it could mint itself wider rights).
async fn refuse_restricted(id: &Identity, ctx: &Ctx) -> Result<(), Error> {
    let Some(ac) = &ctx.application_credential_id else {
        return Ok(());
    };
    let unrestricted = store::get(id.db(), ac)
        .await?
        .is_some_and(|c| c.unrestricted);
    if unrestricted {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "Using method 'application_credential' is not allowed for managing additional \
             application credentials."
                .into(),
        ))
    }
}

/// 64 random bytes, url-safe base64 without padding, as Keystone makes them.
fn generate_secret() -> String {
    let mut bytes = [0u8; 64];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, "a string or null is required.")),
    }
}

/// The roles asked for, each `{"id"}` or `{"name"}`, checked against what
/// the user holds on the project.
fn requested_roles(requested: &Value, held: &[RoleRef]) -> Result<Vec<RoleRef>, Error> {
    let list = requested
        .as_array()
        .ok_or_else(|| bad("roles", "a list is required."))?;
    let mut out: Vec<RoleRef> = Vec::new();
    for r in list {
        let obj = r
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| bad("roles", "each role is {\"id\": …} or {\"name\": …}."))?;
        let found = match (obj.get("id"), obj.get("name")) {
            (Some(Value::String(rid)), None) => held.iter().find(|h| &h.id == rid),
            (None, Some(Value::String(name))) => held.iter().find(|h| &h.name == name),
            _ => return Err(bad("roles", "each role is {\"id\": …} or {\"name\": …}.")),
        };
        let role = found.ok_or_else(|| {
            Error::BadRequest(format!(
                "Invalid application credential: the user does not hold role {} on the project.",
                obj.values().next().and_then(Value::as_str).unwrap_or("")
            ))
        })?;
        if !out.contains(role) {
            out.push(role.clone());
        }
    }
    Ok(out)
}

/// Resolves the access rules asked for: existing ones by id, the others
/// matched to an identical existing rule of the user or created.
fn requested_access_rules(
    requested: &Value,
    user_id: &str,
    existing: &[AccessRule],
) -> Result<(Vec<AccessRule>, Vec<AccessRule>), Error> {
    let list = requested
        .as_array()
        .ok_or_else(|| bad("access_rules", "a list is required."))?;
    let (mut chosen, mut new): (Vec<AccessRule>, Vec<AccessRule>) = (vec![], vec![]);
    for r in list {
        let obj = r
            .as_object()
            .ok_or_else(|| bad("access_rules", "each access rule is an object."))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["id", "service", "path", "method"].contains(&k.as_str()))
        {
            return Err(bad("access_rules", &format!("unknown attribute '{k}'.")));
        }
        let text = |k: &str| -> Result<Option<&str>, Error> {
            match obj.get(k) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(bad("access_rules", &format!("'{k}' must be a string."))),
            }
        };
        let rule = if let Some(rid) = text("id")? {
            existing
                .iter()
                .find(|e| e.id == rid)
                .cloned()
                .ok_or_else(|| Error::not_found("access rule", rid))?
        } else {
            let (Some(service), Some(path), Some(method)) =
                (text("service")?, text("path")?, text("method")?)
            else {
                return Err(bad(
                    "access_rules",
                    "each access rule needs service, path and method (or an id).",
                ));
            };
            if service.is_empty() || service.len() > 64 {
                return Err(bad("access_rules", "service must be 1 to 64 characters."));
            }
            if !path.starts_with('/') || path.len() > 225 {
                return Err(bad(
                    "access_rules",
                    "path must start with '/' (225 characters at most).",
                ));
            }
            if !METHODS.contains(&method) {
                return Err(bad(
                    "access_rules",
                    "method must be one of POST, GET, HEAD, PATCH, PUT, DELETE.",
                ));
            }
            let same =
                |e: &&AccessRule| e.service == service && e.path == path && e.method == method;
            match existing.iter().chain(new.iter()).find(same) {
                Some(e) => e.clone(),
                None => {
                    let r = AccessRule {
                        id: himmel_core::ids::new_id(),
                        user_id: user_id.to_owned(),
                        service: service.into(),
                        path: path.into(),
                        method: method.into(),
                    };
                    new.push(r.clone());
                    r
                }
            }
        };
        if !chosen.contains(&rule) {
            chosen.push(rule);
        }
    }
    Ok((chosen, new))
}

async fn create(
    State(id): State<Identity>,
    headers: HeaderMap,
    ctx: Ctx,
    authz: Authz,
    Path(user_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    authz.check(&owner(&user_id))?;
    refuse_restricted(&id, &ctx).await?;
    let obj = body
        .get("application_credential")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("application_credential", "an object is required."))?;
    let name = match obj.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => n.clone(),
        Some(_) => return Err(bad("name", "1 to 255 characters, not only blanks.").into()),
        None => return Err(bad("name", "this field is required.").into()),
    };
    let description = opt_string(obj, "description")?.unwrap_or_default();
    let secret = opt_string(obj, "secret")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(generate_secret);
    if secret.len() > crate::password::MAX_PASSWORD_LEN {
        return Err(bad("secret", "too long.").into());
    }
    let now = crate::store::now_us();
    let expires_at = match opt_string(obj, "expires_at")? {
        None => None,
        Some(text) => {
            let t = himmel_core::time::parse_timestamp(&text)
                .ok_or_else(|| bad("expires_at", "not a valid timestamp."))?
                .timestamp_micros();
            if t <= now {
                return Err(bad("expires_at", "the expiration time is in the past.").into());
            }
            Some(t)
        }
    };
    let unrestricted = match obj.get("unrestricted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("unrestricted", "a boolean is required.").into()),
    };

    let project_id = ctx.project_id().ok_or_else(|| {
        Error::BadRequest(
            "Invalid application credential: a project-scoped token is required to create one."
                .into(),
        )
    })?;
    let project = projects::get(id.db(), project_id)
        .await?
        .ok_or_else(|| Error::not_found("project", project_id))?;
    let held = assignments::effective_roles(id.db(), &user_id, &On::Project(&project)).await?;
    // openstacksdk sends `"roles": []` when none were named: the default.
    let roles = match obj
        .get("roles")
        .filter(|r| r.as_array().is_none_or(|a| !a.is_empty()))
    {
        None | Some(Value::Null) => held
            .iter()
            .filter(|r| ctx.roles.contains(&r.name))
            .cloned()
            .collect(),
        Some(requested) => requested_roles(requested, &held)?,
    };
    if roles.is_empty() {
        return Err(Error::BadRequest(
            "Invalid application credential: it must grant at least one role.".into(),
        )
        .into());
    }
    let existing_rules = store::access_rules(id.db(), &user_id).await?;
    let (rules, new_rules) = match obj.get("access_rules") {
        None | Some(Value::Null) => (vec![], vec![]),
        Some(requested) => requested_access_rules(requested, &user_id, &existing_rules)?,
    };

    let to_hash = secret.clone();
    let secret_hash = tokio::task::spawn_blocking(move || crate::password::hash(&to_hash))
        .await
        .map_err(Error::internal)??;
    let cred = AppCred {
        id: himmel_core::ids::new_id(),
        name,
        user_id: user_id.clone(),
        project_id: project.id.clone(),
        description,
        secret_hash,
        expires_at,
        unrestricted,
        roles: json!(roles
            .iter()
            .map(|r| json!({"id": r.id, "name": r.name}))
            .collect::<Vec<_>>()),
        access_rules: json!(rules.iter().map(AccessRule::brief).collect::<Vec<_>>()),
    };
    store::create(id.db(), &cred, &new_rules).await?;
    let mut out = cred.to_json(&base_url(&headers));
    // The secret is shown this once and never again.
    out["secret"] = json!(secret);
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(json!({"application_credential": out})),
    )
        .into_response();
    resp.extensions_mut().insert(AuditTargetId(cred.id));
    Ok(resp)
}

#[derive(Deserialize)]
struct ListQuery {
    name: Option<String>,
}

async fn list(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
    Path(user_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    authz.check(&owner(&user_id))?;
    let base = base_url(&headers);
    let list: Vec<Value> = store::list(id.db(), &user_id, q.name.as_deref())
        .await?
        .iter()
        .map(|c| c.to_json(&base))
        .collect();
    Ok(Json(json!({
        "application_credentials": list,
        "links": {
            "self": format!("{base}/v3/users/{user_id}/application_credentials"),
            "previous": null,
            "next": null,
        },
    })))
}

async fn load(
    id: &Identity,
    authz: &Authz,
    user_id: &str,
    cred_id: &str,
) -> Result<AppCred, Error> {
    authz.check(&owner(user_id)).map_err(|e| e.0)?;
    store::get(id.db(), cred_id)
        .await?
        .filter(|c| c.user_id == user_id)
        .ok_or_else(|| not_found(cred_id))
}

async fn get(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
    Path((user_id, cred_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let cred = load(&id, &authz, &user_id, &cred_id).await?;
    Ok(Json(
        json!({"application_credential": cred.to_json(&base_url(&headers))}),
    ))
}

async fn delete(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    Path((user_id, cred_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let cred = load(&id, &authz, &user_id, &cred_id).await?;
    refuse_restricted(&id, &ctx).await?;
    store::delete(id.db(), &cred.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_access_rules(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    authz.check(&owner(&user_id))?;
    let base = base_url(&headers);
    let rules: Vec<Value> = store::access_rules(id.db(), &user_id)
        .await?
        .iter()
        .map(|r| r.to_json(&base))
        .collect();
    Ok(Json(json!({
        "access_rules": rules,
        "links": {
            "self": format!("{base}/v3/users/{user_id}/access_rules"),
            "previous": null,
            "next": null,
        },
    })))
}

async fn load_rule(
    id: &Identity,
    authz: &Authz,
    user_id: &str,
    rule_id: &str,
) -> Result<AccessRule, Error> {
    authz.check(&owner(user_id)).map_err(|e| e.0)?;
    store::access_rule(id.db(), rule_id)
        .await?
        .filter(|r| r.user_id == user_id)
        .ok_or_else(|| Error::not_found("access rule", rule_id))
}

async fn get_access_rule(
    State(id): State<Identity>,
    headers: HeaderMap,
    authz: Authz,
    Path((user_id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let rule = load_rule(&id, &authz, &user_id, &rule_id).await?;
    Ok(Json(
        json!({"access_rule": rule.to_json(&base_url(&headers))}),
    ))
}

async fn delete_access_rule(
    State(id): State<Identity>,
    authz: Authz,
    Path((user_id, rule_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let rule = load_rule(&id, &authz, &user_id, &rule_id).await?;
    store::delete_access_rule(id.db(), &rule).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    Router::new()
        .route(
            "/v3/users/{user_id}/application_credentials",
            p.on(&SERVICE, &LIST_APPLICATION_CREDENTIALS, M::GET, list)
                .merge(p.on(&SERVICE, &CREATE_APPLICATION_CREDENTIAL, M::POST, create)),
        )
        .route(
            "/v3/users/{user_id}/application_credentials/{application_credential_id}",
            p.on(&SERVICE, &GET_APPLICATION_CREDENTIAL, M::GET, get)
                .merge(p.on(&SERVICE, &DELETE_APPLICATION_CREDENTIAL, M::DELETE, delete)),
        )
        .route(
            "/v3/users/{user_id}/access_rules",
            p.on(&SERVICE, &LIST_ACCESS_RULES, M::GET, list_access_rules),
        )
        .route(
            "/v3/users/{user_id}/access_rules/{access_rule_id}",
            p.on(&SERVICE, &GET_ACCESS_RULE, M::GET, get_access_rule)
                .merge(p.on(&SERVICE, &DELETE_ACCESS_RULE, M::DELETE, delete_access_rule)),
        )
}
