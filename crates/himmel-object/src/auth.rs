//! S3 keys are Keystone EC2 credentials: the access key names a credential
//! of a user on a project, its secret signs the request (s3s verifies the
//! signature). A request acts for that user on that project, with the
//! roles the user holds there now (or fewer, for a credential made through
//! an application credential).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use himmel_core::context::{RequestContext, Scope};
use himmel_identity::store::{
    application_credentials, assignments, credentials, domains, projects, users,
};
use himmel_identity::Identity;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

/// Who signed a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub context: Arc<RequestContext>,
    pub project_id: String,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.context.has_role(role)
    }
}

/// A looked-up access key, kept for a few seconds: a signed request asks
/// twice (secret, then caller) and clients send bursts. Short enough that a
/// deleted credential or a removed role stops working promptly.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// When a key was looked up, and what was found.
type Cached = (Instant, Option<(String, Caller)>);

#[derive(Clone)]
pub struct Keys {
    identity: Identity,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl Keys {
    pub fn new(identity: Identity) -> Keys {
        Keys {
            identity,
            cache: Default::default(),
        }
    }

    /// The secret and caller of an access key, or None when the key does
    /// not exist or may not be used (disabled user or project, no roles).
    pub async fn lookup(&self, access: &str) -> S3Result<Option<(String, Caller)>> {
        if let Some((at, hit)) = self.cache_get(access) {
            if at.elapsed() < CACHE_TTL {
                return Ok(hit);
            }
        }
        let found = self.resolve(access).await.map_err(|e| {
            tracing::error!(error = %e, "looking up an S3 access key");
            s3_error!(InternalError)
        })?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        }
        cache.insert(access.to_string(), (Instant::now(), found.clone()));
        Ok(found)
    }

    fn cache_get(&self, access: &str) -> Option<Cached> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(access)
            .cloned()
    }

    async fn resolve(
        &self,
        access: &str,
    ) -> Result<Option<(String, Caller)>, himmel_core::error::Error> {
        let db = self.identity.db();
        let Some(cred) = credentials::ec2_secret_for_access(&self.identity, access).await? else {
            return Ok(None);
        };
        let Some(project_id) = cred.project_id.clone() else {
            return Ok(None);
        };
        let Some(user) = users::get(db, &cred.user_id).await? else {
            return Ok(None);
        };
        let Some(project) = projects::get(db, &project_id).await? else {
            return Ok(None);
        };
        if !user.enabled || !project.enabled {
            return Ok(None);
        }
        let (Some(user_domain), Some(project_domain)) = (
            domains::get(db, &user.domain_id).await?,
            domains::get(db, &project.domain_id).await?,
        ) else {
            return Ok(None);
        };
        if !user_domain.enabled || !project_domain.enabled {
            return Ok(None);
        }
        let held: Vec<String> =
            assignments::effective_roles(db, &user.id, &assignments::On::Project(&project))
                .await?
                .into_iter()
                .map(|r| r.name)
                .collect();
        let roles = match &cred.app_cred_id {
            None => held,
            Some(ac_id) => {
                let Some(ac) = application_credentials::get(db, ac_id).await? else {
                    return Ok(None);
                };
                let restricted_to_paths = ac.access_rules.as_array().is_some_and(|r| !r.is_empty());
                if ac.is_expired(chrono::Utc::now().timestamp_micros()) || restricted_to_paths {
                    return Ok(None);
                }
                let granted: Vec<String> = ac
                    .roles
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(str::to_string))
                    .collect();
                granted.into_iter().filter(|r| held.contains(r)).collect()
            }
        };
        if roles.is_empty() {
            return Ok(None);
        }
        let context = RequestContext {
            request_id: String::new(),
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            user_domain_id: user_domain.id.clone(),
            user_domain_name: user_domain.name.clone(),
            scope: Scope::Project {
                id: project.id.clone(),
                name: project.name.clone(),
                domain_id: project_domain.id.clone(),
                domain_name: project_domain.name.clone(),
            },
            roles,
            methods: vec!["ec2credential".into()],
            audit_ids: vec![],
            application_credential_id: cred.app_cred_id.clone(),
            expires_at: String::new(),
            source_addr: String::new(),
        };
        Ok(Some((
            cred.secret,
            Caller {
                context: Arc::new(context),
                project_id,
            },
        )))
    }
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.lookup(access_key).await? {
            Some((secret, _)) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}
