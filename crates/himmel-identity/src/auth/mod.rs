//! `POST /v3/auth/tokens`: the authentication methods and scope resolution.
//!
//! Each method identifies a user; when several methods are given they must
//! all name the same user (multi-factor). The scope then decides what the
//! token may do.

pub mod application_credential;
pub mod password;
pub mod token;
pub mod totp;

use himmel_core::Error;
use serde_json::Value;

use crate::store::{domains, projects, users::User};
use crate::token::{Issue, ScopeRequest};
use crate::Identity;

/// What one method established.
pub struct MethodResult {
    pub user: User,
    pub parent_audit_id: Option<String>,
    pub expires_cap_us: Option<i64>,
    /// Methods that contributed (a rescoped token carries its originals).
    pub methods: Vec<String>,
    /// An application credential decides the scope itself.
    pub app_cred: Option<(String, projects::Project)>,
}

pub fn unauthorized() -> Error {
    Error::Unauthorized("The request you have made requires authentication.".into())
}

fn bad(field: &str) -> Error {
    Error::BadRequest(format!("Invalid input for field '{field}': the request body is not a valid authentication request."))
}

/// Runs every method of the request and resolves the scope. `receipt` is
/// the `Openstack-Auth-Receipt` of an earlier partial authentication, whose
/// methods count as used. When the user's multi-factor rules are not met
/// the inner error carries a receipt for the methods that succeeded.
pub async fn authenticate(
    id: &Identity,
    body: &Value,
    receipt: Option<&str>,
) -> Result<Result<Issue, totp::ReceiptRequired>, Error> {
    let auth = body
        .get("auth")
        .filter(|a| a.is_object())
        .ok_or_else(|| bad("auth"))?;
    let identity = auth
        .get("identity")
        .filter(|a| a.is_object())
        .ok_or_else(|| bad("identity"))?;
    let methods: Vec<&str> = identity
        .get("methods")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("methods"))?
        .iter()
        .map(|m| m.as_str().ok_or_else(|| bad("methods")))
        .collect::<Result<_, _>>()?;

    let mut result: Option<MethodResult> = None;
    for method in &methods {
        let section = identity.get(*method).ok_or_else(|| bad(method))?;
        let r = match *method {
            "password" => password::authenticate(id, section).await?,
            "token" => token::authenticate(id, section).await?,
            "application_credential" => application_credential::authenticate(id, section).await?,
            "totp" => totp::authenticate(id, section).await?,
            _ => {
                return Err(Error::Unauthorized(
                    "Attempted to authenticate with an unsupported method.".into(),
                ))
            }
        };
        result = Some(match result {
            None => r,
            Some(mut acc) => {
                if acc.user.id != r.user.id {
                    return Err(unauthorized());
                }
                acc.methods.extend(r.methods);
                acc.parent_audit_id = acc.parent_audit_id.or(r.parent_audit_id);
                acc.expires_cap_us = match (acc.expires_cap_us, r.expires_cap_us) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                acc.app_cred = acc.app_cred.or(r.app_cred);
                acc
            }
        });
    }
    let mut r = result.ok_or_else(|| bad("methods"))?;
    if let Some(receipt) = receipt {
        let receipt = totp::open_receipt(id, receipt)?;
        if receipt.user_id != r.user.id {
            return Err(unauthorized());
        }
        r.methods.extend(receipt.methods);
    }
    let mut seen = std::collections::BTreeSet::new();
    r.methods.retain(|m| seen.insert(m.clone()));
    if let Err(needs_more) = totp::check_mfa_rules(id, &r.user, &r.methods).await? {
        return Ok(Err(needs_more));
    }

    let scope = match &r.app_cred {
        Some((_, project)) => {
            if auth.get("scope").is_some() {
                return Err(Error::Unauthorized(
                    "Application credentials cannot request a scope.".into(),
                ));
            }
            ScopeRequest::Project(project.clone())
        }
        None => resolve_scope(id, auth.get("scope"), &r.user).await?,
    };
    Ok(Ok(Issue {
        user: r.user,
        methods: r.methods,
        scope,
        parent_audit_id: r.parent_audit_id,
        expires_cap_us: r.expires_cap_us,
        app_cred_id: r.app_cred.map(|(id, _)| id),
    }))
}

async fn resolve_scope(
    id: &Identity,
    scope: Option<&Value>,
    user: &User,
) -> Result<ScopeRequest, Error> {
    let db = id.db();
    let Some(scope) = scope else {
        // Keystone scopes to the user's default project when it can.
        if let Some(pid) = &user.default_project_id {
            if let Some(p) = projects::get(db, pid).await?.filter(|p| p.enabled) {
                let on = crate::store::assignments::On::Project(&p);
                if !crate::store::assignments::effective_roles(db, &user.id, &on)
                    .await?
                    .is_empty()
                {
                    return Ok(ScopeRequest::Project(p));
                }
            }
        }
        return Ok(ScopeRequest::Unscoped);
    };
    if scope.as_str() == Some("unscoped") {
        return Ok(ScopeRequest::Unscoped);
    }
    let obj = scope.as_object().ok_or_else(|| bad("scope"))?;
    if obj.len() != 1 {
        return Err(Error::BadRequest(
            "Specify exactly one of project, domain or system as scope.".into(),
        ));
    }
    if let Some(p) = obj.get("project") {
        let project = if let Some(pid) = p.get("id").and_then(Value::as_str) {
            projects::get(db, pid).await?
        } else if let Some(name) = p.get("name").and_then(Value::as_str) {
            let d = domains::resolve(db, p.get("domain").ok_or_else(|| bad("domain"))?).await?;
            projects::get_by_name(db, &d.id, name).await?
        } else {
            return Err(bad("project"));
        };
        let project =
            project.ok_or_else(|| Error::Unauthorized("Could not find project.".into()))?;
        if !project.enabled {
            return Err(Error::Unauthorized(format!(
                "Project {} is disabled.",
                project.id
            )));
        }
        return Ok(ScopeRequest::Project(project));
    }
    if let Some(d) = obj.get("domain") {
        let domain = domains::resolve(db, d).await?;
        if !domain.enabled {
            return Err(Error::Unauthorized(format!(
                "Domain {} is disabled.",
                domain.id
            )));
        }
        return Ok(ScopeRequest::Domain(domain));
    }
    if let Some(s) = obj.get("system") {
        if s.get("all").and_then(Value::as_bool) == Some(true) {
            return Ok(ScopeRequest::System);
        }
        return Err(bad("system"));
    }
    Err(bad("scope"))
}

/// Finds the user named by a `{"id"}` or `{"name", "domain"}` reference.
pub async fn find_user(id: &Identity, user: &Value) -> Result<User, Error> {
    let db = id.db();
    let found = if let Some(uid) = user.get("id").and_then(Value::as_str) {
        crate::store::users::get(db, uid).await?
    } else if let Some(name) = user.get("name").and_then(Value::as_str) {
        let d = domains::resolve(db, user.get("domain").ok_or_else(|| bad("domain"))?).await?;
        crate::store::users::get_by_name(db, &d.id, name).await?
    } else {
        return Err(bad("user"));
    };
    found.ok_or_else(unauthorized)
}
