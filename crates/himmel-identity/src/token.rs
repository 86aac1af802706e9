//! Tokens: issue, validate, and their JSON body.

use std::collections::BTreeSet;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use himmel_core::time::{from_unix_micros, iso_micro};
use himmel_core::{Error, RequestContext, Scope};
use serde_json::{json, Value};

use crate::fernet::{Payload, PayloadScope};
use crate::store::assignments::{self, On, RoleRef};
use crate::store::domains::{self, Domain};
use crate::store::projects::{self, Project};
use crate::store::revocation::TokenFacts;
use crate::store::users::{self, User};
use crate::store::{self as st};
use crate::{db_err, Identity};

#[derive(Debug, Clone)]
pub enum TokenScope {
    Unscoped,
    Domain(Domain),
    Project { project: Project, domain: Domain },
    System,
}

/// An application credential a token was issued through.
#[derive(Debug, Clone)]
pub struct AppCredInfo {
    pub id: String,
    pub name: String,
    pub restricted: bool,
    pub access_rules: Value,
}

/// A valid token, with everything its body shows.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub user: User,
    pub user_domain: Domain,
    pub methods: Vec<String>,
    pub scope: TokenScope,
    pub roles: Vec<RoleRef>,
    pub issued_at_us: i64,
    pub expires_at_us: i64,
    pub audit_ids: Vec<String>,
    pub app_cred: Option<AppCredInfo>,
}

/// What a client asked to be scoped to.
#[derive(Debug, Clone)]
pub enum ScopeRequest {
    Unscoped,
    Domain(Domain),
    Project(Project),
    System,
}

/// What authentication established, before the token is minted.
pub struct Issue {
    pub user: User,
    pub methods: Vec<String>,
    pub scope: ScopeRequest,
    /// Rescoping keeps the original token's audit id as the chain id.
    pub parent_audit_id: Option<String>,
    /// A token never outlives what it was derived from.
    pub expires_cap_us: Option<i64>,
    pub app_cred_id: Option<String>,
}

fn new_audit_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

fn invalid() -> Error {
    Error::NotFound("Could not find token.".into())
}

impl Identity {
    /// Mints a token for an authenticated user.
    pub async fn issue(&self, req: Issue) -> Result<(String, TokenInfo), Error> {
        let now = st::now_us();
        let mut expires = now + self.config().token_expiration * 1_000_000;
        if let Some(cap) = req.expires_cap_us {
            expires = expires.min(cap);
        }
        // Keystone token expiry has whole seconds.
        expires -= expires % 1_000_000;
        let mut audit_ids = vec![new_audit_id()];
        audit_ids.extend(req.parent_audit_id);
        let scope = match (&req.scope, &req.app_cred_id) {
            (ScopeRequest::Project(p), Some(ac)) => PayloadScope::ApplicationCredential {
                project_id: p.id.clone(),
                app_cred_id: ac.clone(),
            },
            (ScopeRequest::Unscoped, _) => PayloadScope::Unscoped,
            (ScopeRequest::Domain(d), _) => PayloadScope::Domain(d.id.clone()),
            (ScopeRequest::Project(p), None) => PayloadScope::Project(p.id.clone()),
            (ScopeRequest::System, _) => PayloadScope::System,
        };
        let payload = Payload {
            user_id: req.user.id.clone(),
            methods: req.methods,
            scope,
            expires_at: expires as f64 / 1e6,
            audit_ids,
            issued_at_us: now,
        };
        let info = self
            .info_from_payload(&payload, Some(req.user))
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => {
                    Error::Unauthorized("The request you have made requires authentication.".into())
                }
                other => other,
            })?;
        Ok((self.keys().seal(&payload), info))
    }

    /// Validates a token: decrypts it, checks expiry and revocation, and
    /// re-checks that user, scope and roles still hold. Any failure is a
    /// 404 "Could not find token", as Keystone answers.
    pub async fn validate(&self, token: &str) -> Result<TokenInfo, Error> {
        self.revocations().refresh_if_stale(self.db()).await?;
        let generation = self.revocations().generation();
        if let Some(info) = self.token_cache().get(token, generation) {
            // Deleting an application credential revokes nothing, so its
            // tokens look it up even when cached.
            let app_cred_gone = match &info.app_cred {
                Some(ac) => {
                    !crate::store::application_credentials::exists(self.db(), &ac.id).await?
                }
                None => false,
            };
            if info.expires_at_us > st::now_us() && !app_cred_gone {
                return Ok(info);
            }
        }
        let payload = self.keys().open(token).ok_or_else(invalid)?;
        if (payload.expires_at * 1e6) as i64 <= st::now_us() {
            return Err(invalid());
        }
        let info = self.info_from_payload(&payload, None).await?;
        let facts = TokenFacts {
            user_id: &info.user.id,
            user_domain_id: &info.user.domain_id,
            project_id: match &info.scope {
                TokenScope::Project { project, .. } => Some(&project.id),
                _ => None,
            },
            domain_id: match &info.scope {
                TokenScope::Domain(d) => Some(&d.id),
                TokenScope::Project { domain, .. } => Some(&domain.id),
                _ => None,
            },
            audit_ids: &info.audit_ids,
            issued_at_us: info.issued_at_us,
        };
        if self.revocations().is_revoked(self.db(), &facts).await? {
            return Err(invalid());
        }
        self.token_cache().put(token, info.clone(), generation);
        Ok(info)
    }

    async fn info_from_payload(&self, p: &Payload, user: Option<User>) -> Result<TokenInfo, Error> {
        let db = self.db();
        let user = match user {
            Some(u) => u,
            None => users::get(db, &p.user_id).await?.ok_or_else(invalid)?,
        };
        let user_domain = domains::get(db, &user.domain_id)
            .await?
            .ok_or_else(invalid)?;
        if !user.enabled || !user_domain.enabled {
            return Err(invalid());
        }
        let (scope, on_project) = match &p.scope {
            PayloadScope::Unscoped => (TokenScope::Unscoped, None),
            PayloadScope::System => (TokenScope::System, None),
            PayloadScope::Domain(id) => {
                let d = domains::get(db, id)
                    .await?
                    .filter(|d| d.enabled)
                    .ok_or_else(invalid)?;
                (TokenScope::Domain(d), None)
            }
            PayloadScope::Project(id)
            | PayloadScope::ApplicationCredential { project_id: id, .. } => {
                let project = projects::get(db, id)
                    .await?
                    .filter(|p| p.enabled)
                    .ok_or_else(invalid)?;
                let domain = domains::get(db, &project.domain_id)
                    .await?
                    .filter(|d| d.enabled)
                    .ok_or_else(invalid)?;
                (
                    TokenScope::Project {
                        project: project.clone(),
                        domain,
                    },
                    Some(project),
                )
            }
        };
        let mut roles = match (&scope, &on_project) {
            (TokenScope::Unscoped, _) => vec![],
            (TokenScope::System, _) => {
                assignments::effective_roles(db, &user.id, &On::System).await?
            }
            (TokenScope::Domain(d), _) => {
                assignments::effective_roles(db, &user.id, &On::Domain(&d.id)).await?
            }
            (_, Some(project)) => {
                assignments::effective_roles(db, &user.id, &On::Project(project)).await?
            }
            _ => vec![],
        };
        let mut app_cred = None;
        if let PayloadScope::ApplicationCredential { app_cred_id, .. } = &p.scope {
            let (info, granted) = self.app_cred_for_token(app_cred_id, &user.id).await?;
            // The credential's roles, as far as the user still holds them.
            let held: BTreeSet<String> = roles.iter().map(|r| r.id.clone()).collect();
            let wanted: BTreeSet<String> =
                granted.into_iter().filter(|id| held.contains(id)).collect();
            roles = assignments::expand(db, wanted).await?;
            app_cred = Some(info);
        }
        if !matches!(scope, TokenScope::Unscoped) && roles.is_empty() {
            return Err(invalid());
        }
        Ok(TokenInfo {
            user,
            user_domain,
            methods: p.methods.clone(),
            scope,
            roles,
            issued_at_us: p.issued_at_us,
            expires_at_us: (p.expires_at * 1e6).round() as i64,
            audit_ids: p.audit_ids.clone(),
            app_cred,
        })
    }

    /// The application credential behind a token, and the role ids it grants.
    async fn app_cred_for_token(
        &self,
        id: &str,
        user_id: &str,
    ) -> Result<(AppCredInfo, Vec<String>), Error> {
        let row = sqlx::query(
            "SELECT id, name, user_id, expires_at, unrestricted, roles, access_rules \
             FROM application_credentials WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db().pool())
        .await
        .map_err(db_err)?
        .ok_or_else(invalid)?;
        if st::s(&row, "user_id") != user_id {
            return Err(invalid());
        }
        if st::opt_i(&row, "expires_at").is_some_and(|e| e <= st::now_us()) {
            return Err(invalid());
        }
        let roles: Vec<Value> = serde_json::from_str(&st::s(&row, "roles")).unwrap_or_default();
        let role_ids = roles
            .iter()
            .filter_map(|r| r.get("id")?.as_str().map(str::to_owned))
            .collect();
        let info = AppCredInfo {
            id: st::s(&row, "id"),
            name: st::s(&row, "name"),
            restricted: st::i(&row, "unrestricted") == 0,
            access_rules: serde_json::from_str(&st::s(&row, "access_rules")).unwrap_or(json!([])),
        };
        Ok((info, role_ids))
    }
}

impl TokenInfo {
    pub fn project_id(&self) -> Option<&str> {
        match &self.scope {
            TokenScope::Project { project, .. } => Some(&project.id),
            _ => None,
        }
    }

    /// The `token` object of Keystone's token responses.
    pub fn to_json(&self, catalog: Option<Value>) -> Value {
        let mut t = json!({
            "methods": self.methods,
            "user": {
                "id": self.user.id,
                "name": self.user.name,
                "domain": {"id": self.user_domain.id, "name": self.user_domain.name},
                "password_expires_at": self.user.password_expires_at_iso(),
            },
            "audit_ids": self.audit_ids,
            "expires_at": iso_micro(from_unix_micros(self.expires_at_us)),
            "issued_at": iso_micro(from_unix_micros(self.issued_at_us)),
        });
        let obj = t.as_object_mut().expect("object");
        match &self.scope {
            TokenScope::Unscoped => {}
            TokenScope::System => {
                obj.insert("system".into(), json!({"all": true}));
            }
            TokenScope::Domain(d) => {
                obj.insert("domain".into(), json!({"id": d.id, "name": d.name}));
            }
            TokenScope::Project { project, domain } => {
                obj.insert(
                    "project".into(),
                    json!({"id": project.id, "name": project.name,
                           "domain": {"id": domain.id, "name": domain.name}}),
                );
                obj.insert("is_domain".into(), json!(project.is_domain));
            }
        }
        if !matches!(self.scope, TokenScope::Unscoped) {
            let roles: Vec<Value> = self
                .roles
                .iter()
                .map(|r| json!({"id": r.id, "name": r.name}))
                .collect();
            obj.insert("roles".into(), Value::Array(roles));
        }
        if let Some(ac) = &self.app_cred {
            let mut a = json!({"id": ac.id, "name": ac.name, "restricted": ac.restricted});
            if ac.access_rules.as_array().is_some_and(|r| !r.is_empty()) {
                a["access_rules"] = ac.access_rules.clone();
            }
            obj.insert("application_credential".into(), a);
        }
        if let Some(c) = catalog {
            obj.insert("catalog".into(), c);
        }
        t
    }

    pub fn to_context(&self) -> RequestContext {
        let scope = match &self.scope {
            TokenScope::Unscoped => Scope::Unscoped,
            TokenScope::System => Scope::System,
            TokenScope::Domain(d) => Scope::Domain {
                id: d.id.clone(),
                name: d.name.clone(),
            },
            TokenScope::Project { project, domain } => Scope::Project {
                id: project.id.clone(),
                name: project.name.clone(),
                domain_id: domain.id.clone(),
                domain_name: domain.name.clone(),
            },
        };
        RequestContext {
            request_id: String::new(),
            user_id: self.user.id.clone(),
            user_name: self.user.name.clone(),
            user_domain_id: self.user_domain.id.clone(),
            user_domain_name: self.user_domain.name.clone(),
            scope,
            roles: self.roles.iter().map(|r| r.name.clone()).collect(),
            methods: self.methods.clone(),
            audit_ids: self.audit_ids.clone(),
            application_credential_id: self.app_cred.as_ref().map(|a| a.id.clone()),
            expires_at: iso_micro(from_unix_micros(self.expires_at_us)),
            source_addr: String::new(),
        }
    }
}

#[async_trait]
impl himmel_http::Authenticator for Identity {
    async fn authenticate(&self, token: &str, _source_addr: &str) -> Result<RequestContext, Error> {
        match self.validate(token).await {
            Ok(info) => Ok(info.to_context()),
            Err(Error::NotFound(_)) => Err(Error::Unauthorized(
                "The request you have made requires authentication.".into(),
            )),
            Err(e) => Err(e),
        }
    }
}
