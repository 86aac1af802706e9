//! `/v3/users`: users, their options and passwords, with Keystone's
//! security-compliance rules (`[security_compliance]`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline, Target};
use serde_json::{json, Value};

use super::wire::{self, Filters};
use crate::policy::*;
use crate::store::revocation::RevocationEvent;
use crate::store::users::{self, User};
use crate::store::{domains, now_us};
use crate::Identity;

/// User names are at most 255 characters, as in Keystone.
const NAME_MAX: usize = 255;
const DAY_US: i64 = 86_400 * 1_000_000;

/// Keystone's password rules, applied to every password set.
mod compliance {
    use himmel_core::Error;

    use crate::store::users::{self, User};
    use crate::{Identity, SecurityCompliance};

    fn requirements(detail: &str) -> Error {
        Error::BadRequest(format!(
            "The password does not meet the requirements: {detail}"
        ))
    }

    /// Length and `password_regex`. Keystone matches the expression at the
    /// start of the password (Python's `re.match`).
    pub fn check_strength(sc: &SecurityCompliance, password: &str) -> Result<(), Error> {
        if password.len() > crate::password::MAX_PASSWORD_LEN {
            return Err(Error::BadRequest(format!(
                "Password validation error: The password length must be less than or equal to {}.",
                crate::password::MAX_PASSWORD_LEN
            )));
        }
        let Some(pattern) = sc.password_regex.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let re = fancy_regex::Regex::new(&format!(r"\A(?:{pattern})")).map_err(|e| {
            Error::Internal(format!(
                "security_compliance.password_regex is invalid: {e}"
            ))
        })?;
        let matched = re
            .is_match(password)
            .map_err(|e| Error::Internal(format!("password_regex failed: {e}")))?;
        if matched {
            Ok(())
        } else {
            let why = sc
                .password_regex_description
                .clone()
                .unwrap_or_else(|| "it does not match the password rules.".into());
            Err(requirements(&why))
        }
    }

    /// The new password must differ from the last `unique_last_password_count`.
    pub async fn check_history(id: &Identity, user: &User, password: &str) -> Result<(), Error> {
        let count = id.config().security.unique_last_password_count;
        if count == 0 {
            return Ok(());
        }
        // The history holds the current password too: with a count of N,
        // the new password must differ from the current one and N-1 before.
        let recent = users::recent_passwords(id.db(), &user.id, count).await?;
        let pw = password.to_owned();
        let reused = tokio::task::spawn_blocking(move || {
            recent.iter().any(|h| crate::password::verify(&pw, h))
        })
        .await
        .map_err(Error::internal)?;
        if reused {
            return Err(Error::BadRequest(format!(
                "The new password cannot be identical to a previous password. The total number \
                 which includes the new password must be unique is {count}."
            )));
        }
        Ok(())
    }

    /// A user may change its own password only once it is old enough.
    pub fn check_minimum_age(sc: &SecurityCompliance, user: &User, now: i64) -> Result<(), Error> {
        let days = i64::from(sc.minimum_password_age);
        let Some(created) = user.password_created_at.filter(|_| days > 0) else {
            return Ok(());
        };
        let left_us = created + days * super::DAY_US - now;
        if left_us <= 0 {
            return Ok(());
        }
        let days_left = (left_us + super::DAY_US - 1) / super::DAY_US;
        Err(Error::BadRequest(format!(
            "You cannot change your password at this time due to the minimum password age. Once \
             you change your password, it must be used for {days} day(s) before it can be \
             changed. Please try again in {days_left} day(s) or contact your administrator to \
             reset your password."
        )))
    }

    /// When a password set now expires. An administrator's password must be
    /// changed on first use when `change_password_upon_first_use` says so.
    pub fn expiry(sc: &SecurityCompliance, user: &User, by_admin: bool, now: i64) -> Option<i64> {
        if by_admin
            && sc.change_password_upon_first_use
            && !user.option_bool("ignore_change_password_upon_first_use")
        {
            return Some(now);
        }
        if sc.password_expires_days > 0 && !user.option_bool("ignore_password_expiry") {
            return Some(now + i64::from(sc.password_expires_days) * super::DAY_US);
        }
        None
    }

    pub async fn hash(password: &str) -> Result<String, Error> {
        let pw = password.to_owned();
        tokio::task::spawn_blocking(move || crate::password::hash(&pw))
            .await
            .map_err(Error::internal)?
    }
}

const BOOL_OPTIONS: &[&str] = &[
    "ignore_change_password_upon_first_use",
    "ignore_password_expiry",
    "ignore_lockout_failure_attempts",
    "ignore_user_inactivity",
    "lock_password",
    "multi_factor_auth_enabled",
];
const MFA_RULES: &str = "multi_factor_auth_rules";

/// Validates `options` and merges them into `stored`; a null removes an
/// option, as Keystone does.
fn merge_options(stored: &Value, given: &Value) -> Result<Value, Error> {
    let given = given
        .as_object()
        .ok_or_else(|| wire::invalid("options", format!("{given} is not of type 'object'")))?;
    let mut out = stored.as_object().cloned().unwrap_or_default();
    for (k, v) in given {
        if BOOL_OPTIONS.contains(&k.as_str()) {
            if !(v.is_boolean() || v.is_null()) {
                return Err(wire::invalid(
                    "options",
                    format!("{k}: {v} is not of type 'boolean'"),
                ));
            }
        } else if k == MFA_RULES {
            check_mfa_rules(v)?;
        } else {
            return Err(wire::invalid(
                "options",
                format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
        if v.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

/// A list of rules, each a non-empty list of distinct method names.
fn check_mfa_rules(v: &Value) -> Result<(), Error> {
    if v.is_null() {
        return Ok(());
    }
    let bad = || {
        wire::invalid(
            "options",
            format!("{MFA_RULES} must be a list of non-empty lists of distinct method names"),
        )
    };
    for rule in v.as_array().ok_or_else(bad)? {
        let methods = rule.as_array().filter(|m| !m.is_empty()).ok_or_else(bad)?;
        let mut seen = Vec::new();
        for m in methods {
            let m = m.as_str().filter(|m| !m.is_empty()).ok_or_else(bad)?;
            if seen.contains(&m) {
                return Err(bad());
            }
            seen.push(m);
        }
    }
    Ok(())
}

const KNOWN: &[&str] = &[
    "name",
    "domain_id",
    "default_project_id",
    "description",
    "email",
    "enabled",
    "password",
    "options",
];
const RESERVED: &[&str] = &["links", "password_expires_at"];

fn target(u: &User) -> Target {
    Target {
        domain_id: Some(u.domain_id.clone()),
        project_id: None,
        user_id: Some(u.id.clone()),
    }
}

/// Loads a user after checking policy, so a caller who may not see it
/// learns nothing about whether it exists.
pub(super) async fn load_checked(
    id: &Identity,
    authz: &Authz,
    user_id: &str,
) -> Result<User, Error> {
    let found = users::get(id.db(), user_id).await?;
    let t = match &found {
        Some(u) => target(u),
        None => Target {
            user_id: Some(user_id.to_string()),
            ..Default::default()
        },
    };
    authz.check(&t).map_err(|e| e.0)?;
    found.ok_or_else(|| Error::not_found("user", user_id))
}

async fn revoke_user(id: &Identity, user_id: &str) -> Result<(), Error> {
    let event = RevocationEvent {
        user_id: Some(user_id.to_string()),
        ..Default::default()
    };
    id.revocations().revoke(id.db(), event).await
}

/// `password_expires_at={op}:{timestamp}` with Keystone's operators.
fn expiry_filter(q: &Filters) -> Result<Option<(String, i64)>, Error> {
    let Some(raw) = q.get("password_expires_at") else {
        return Ok(None);
    };
    let (op, ts) = match raw.split_once(':') {
        Some((op, ts)) if ["lt", "lte", "gt", "gte", "eq", "neq"].contains(&op) => (op, ts),
        _ => ("eq", raw),
    };
    let at = himmel_core::time::parse_timestamp(ts).ok_or_else(|| {
        wire::invalid(
            "password_expires_at",
            format!("'{ts}' is not a valid timestamp"),
        )
    })?;
    Ok(Some((op.to_string(), at.timestamp_micros())))
}

fn expiry_matches(filter: &Option<(String, i64)>, u: &User) -> bool {
    let Some((op, at)) = filter else {
        return true;
    };
    // Keystone compares at whole seconds.
    let Some(exp) = u.password_expires_at.map(|e| e / 1_000_000) else {
        return false;
    };
    let at = at / 1_000_000;
    match op.as_str() {
        "lt" => exp < at,
        "lte" => exp <= at,
        "gt" => exp > at,
        "gte" => exp >= at,
        "neq" => exp != at,
        _ => exp == at,
    }
}

async fn list(
    State(id): State<Identity>,
    authz: Authz,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let q = Filters(q);
    let expiry = expiry_filter(&q)?;
    let enabled = q.boolean("enabled");
    let out: Vec<Value> = users::list(id.db(), q.get("domain_id"))
        .await?
        .into_iter()
        .filter(|u| enabled.is_none_or(|e| u.enabled == e))
        .filter(|u| q.text("name", &u.name))
        .filter(|u| expiry_matches(&expiry, u))
        .filter(|u| authz.allows(&target(u)))
        .map(|u| u.to_json())
        .collect();
    Ok(Json(wire::list("users", "/v3/users", out)))
}

async fn get(
    State(id): State<Identity>,
    authz: Authz,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let u = load_checked(&id, &authz, &user_id).await?;
    Ok(Json(json!({"user": u.to_json()})))
}

fn text_or_null(o: &wire::Obj, field: &str) -> Result<Option<Option<String>>, Error> {
    Ok(wire::nullable_string(o, field)?.map(|v| v.map(str::to_string)))
}

async fn create(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let o = wire::resource(&body, "user")?;
    wire::required(o, "name")?;
    let name = wire::name(o, "name", NAME_MAX)?.unwrap_or_default();
    let domain_id = wire::id_ref(o, "domain_id", true)?
        .flatten()
        .unwrap_or_else(|| super::domains::default_domain(&ctx));
    let password = text_or_null(o, "password")?.flatten();
    let options = merge_options(&json!({}), o.get("options").unwrap_or(&json!({})))?;
    let mut u = User {
        id: himmel_core::ids::new_id(),
        name,
        domain_id,
        default_project_id: wire::id_ref(o, "default_project_id", true)?.flatten(),
        description: text_or_null(o, "description")?
            .flatten()
            .unwrap_or_default(),
        email: text_or_null(o, "email")?.flatten(),
        enabled: wire::boolean(o, "enabled")?.unwrap_or(true),
        password_hash: None,
        password_created_at: None,
        password_expires_at: None,
        failed_auth_count: 0,
        failed_auth_at: None,
        options,
        extra: json!(wire::extra(o, KNOWN, &[RESERVED, &["id"]].concat())?),
    };
    authz.check(&target(&u))?;
    let db = id.db();
    if domains::get(db, &u.domain_id).await?.is_none() {
        return Err(Error::not_found("domain", &u.domain_id).into());
    }
    let sc = &id.config().security;
    if let Some(pw) = &password {
        compliance::check_strength(sc, pw)?;
        let now = now_us();
        u.password_hash = Some(compliance::hash(pw).await?);
        u.password_created_at = Some(now);
        u.password_expires_at = compliance::expiry(sc, &u, true, now);
    }
    users::create(db, &u, sc.unique_last_password_count).await?;
    Ok(wire::created("user", &u.id, u.to_json()))
}

async fn update(
    State(id): State<Identity>,
    authz: Authz,
    Path(user_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let o = wire::resource(&body, "user")?;
    let mut u = load_checked(&id, &authz, &user_id).await?;
    wire::same_id(o, "user", &u.id)?;
    if let Some(d) = wire::id_ref(o, "domain_id", true)? {
        if d.as_deref() != Some(u.domain_id.as_str()) {
            return Err(Error::BadRequest("Cannot change Domain ID".into()).into());
        }
    }
    let was_enabled = u.enabled;
    if let Some(name) = wire::name(o, "name", NAME_MAX)? {
        u.name = name;
    }
    if let Some(p) = wire::id_ref(o, "default_project_id", true)? {
        u.default_project_id = p;
    }
    if let Some(d) = text_or_null(o, "description")? {
        u.description = d.unwrap_or_default();
    }
    if let Some(e) = text_or_null(o, "email")? {
        u.email = e;
    }
    if let Some(enabled) = wire::boolean(o, "enabled")? {
        u.enabled = enabled;
    }
    if let Some(opts) = o.get("options") {
        u.options = merge_options(&u.options, opts)?;
    }
    let password = text_or_null(o, "password")?.flatten();
    let extra = wire::extra(o, &[KNOWN, &["id", "domain_id"]].concat(), RESERVED)?;
    u.extra = wire::merge_extra(&u.extra, extra);

    let sc = &id.config().security;
    let db = id.db();
    let new_hash = match &password {
        Some(pw) => {
            // An administrator's reset is not held to the history (Keystone).
            compliance::check_strength(sc, pw)?;
            Some(compliance::hash(pw).await?)
        }
        None => None,
    };
    users::update(db, &u).await?;
    if let Some(hash) = &new_hash {
        let now = now_us();
        u.password_expires_at = compliance::expiry(sc, &u, true, now);
        users::set_password(
            db,
            &u.id,
            hash,
            u.password_expires_at,
            sc.unique_last_password_count,
        )
        .await?;
    }
    if (was_enabled && !u.enabled) || new_hash.is_some() {
        revoke_user(&id, &u.id).await?;
    }
    Ok(Json(json!({"user": u.to_json()})))
}

async fn delete(
    State(id): State<Identity>,
    authz: Authz,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    let u = load_checked(&id, &authz, &user_id).await?;
    users::delete(id.db(), &u.id).await?;
    revoke_user(&id, &u.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn change_failed(why: &str) -> Error {
    Error::Unauthorized(format!("Error when changing user password: {why}"))
}

/// `POST /v3/users/{user_id}/password`. Needs no token, as in Keystone: a
/// user whose password expired has none. The original password is the
/// proof of identity.
async fn change_password(
    State(id): State<Identity>,
    Path(user_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<StatusCode> {
    let o = wire::resource(&body, "user")?;
    wire::required(o, "original_password")?;
    wire::required(o, "password")?;
    let original = wire::string(o, "original_password")?.unwrap_or_default();
    let password = wire::string(o, "password")?.unwrap_or_default();
    let db = id.db();
    let invalid = || change_failed("Invalid user / password");
    let user = users::get(db, &user_id).await?.ok_or_else(invalid)?;
    let hash = user.password_hash.clone().ok_or_else(invalid)?;
    if !user.enabled || original.len() > crate::password::MAX_PASSWORD_LEN {
        return Err(invalid().into());
    }
    let sc = &id.config().security;
    // The lockout applies here too, or this would be a way to guess
    // passwords around it.
    if sc.lockout_failure_attempts > 0
        && !user.option_bool("ignore_lockout_failure_attempts")
        && user.failed_auth_count >= i64::from(sc.lockout_failure_attempts)
    {
        let until = user.failed_auth_at.unwrap_or(0) + (sc.lockout_duration as i64) * 1_000_000;
        if sc.lockout_duration == 0 || now_us() < until {
            return Err(Error::Unauthorized(format!(
                "The account is locked for user: {}.",
                user.id
            ))
            .into());
        }
    }
    if !id
        .verified_passwords()
        .verify(&user.id, &hash, original)
        .await?
    {
        users::record_failed_auth(db, &user.id).await?;
        return Err(invalid().into());
    }
    if user.option_bool("lock_password") {
        return Err(Error::BadRequest(
            "You cannot change your password at this time due to password policy disallowing \
             password changes. Please contact your administrator to reset your password."
                .into(),
        )
        .into());
    }
    let now = now_us();
    compliance::check_minimum_age(sc, &user, now)?;
    compliance::check_strength(sc, password)?;
    compliance::check_history(&id, &user, password).await?;
    let new_hash = compliance::hash(password).await?;
    let expires = compliance::expiry(sc, &user, false, now);
    users::set_password(
        db,
        &user.id,
        &new_hash,
        expires,
        sc.unique_last_password_count,
    )
    .await?;
    revoke_user(&id, &user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    Router::new()
        .route(
            "/v3/users",
            p.on(&SERVICE, &LIST_USERS, M::GET, list).merge(p.on(
                &SERVICE,
                &CREATE_USER,
                M::POST,
                create,
            )),
        )
        .route(
            "/v3/users/{user_id}",
            p.on(&SERVICE, &GET_USER, M::GET, get)
                .merge(p.on(&SERVICE, &UPDATE_USER, M::PATCH, update))
                .merge(p.on(&SERVICE, &DELETE_USER, M::DELETE, delete)),
        )
        .route(
            "/v3/users/{user_id}/password",
            p.on(&SERVICE, &CHANGE_PASSWORD, M::POST, change_password),
        )
}
