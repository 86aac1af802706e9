//! Who is asking, on whose behalf, and with which roles. Built once per
//! request by the pipeline from the token; handlers only read it.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Unscoped,
    System,
    Domain {
        id: String,
        name: String,
    },
    Project {
        id: String,
        name: String,
        domain_id: String,
        domain_name: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestContext {
    pub request_id: String,
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    pub user_domain_name: String,
    pub scope: Scope,
    /// Effective role names (implied roles expanded).
    pub roles: Vec<String>,
    pub methods: Vec<String>,
    pub audit_ids: Vec<String>,
    pub application_credential_id: Option<String>,
    /// Expiry of the token the request came with (RFC 3339).
    pub expires_at: String,
    pub source_addr: String,
}

impl RequestContext {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn project_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Project { id, .. } => Some(id),
            _ => None,
        }
    }

    pub fn domain_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Domain { id, .. } => Some(id),
            _ => None,
        }
    }

    pub fn is_system(&self) -> bool {
        matches!(self.scope, Scope::System)
    }

    pub fn is_system_admin(&self) -> bool {
        self.is_system() && self.has_role("admin")
    }
}
