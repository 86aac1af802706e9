//! The Key Manager's resources as the service layer sees them.

use zeroize::Zeroizing;

use crate::policy::Resource;

pub const ACTIVE: &str = "ACTIVE";

/// The secret types Barbican knows.
pub const SECRET_TYPES: &[&str] = &[
    "symmetric",
    "passphrase",
    "private",
    "public",
    "certificate",
    "opaque",
];

/// A secret's metadata. The payload is never here: it stays sealed in the
/// store until [`crate::secrets::KeyManager::read_payload`] opens it.
#[derive(Debug, Clone)]
pub struct Secret {
    pub id: String,
    pub project_id: String,
    pub creator_id: String,
    pub name: Option<String>,
    pub secret_type: String,
    pub algorithm: Option<String>,
    pub bit_length: Option<i64>,
    pub mode: Option<String>,
    /// Unix microseconds.
    pub expiration: Option<i64>,
    /// Normalized content type of the stored payload; `None` until a
    /// payload is stored.
    pub content_type: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Secret {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }
}

/// What a create request asks for (validated).
#[derive(Debug, Clone, Default)]
pub struct NewSecret {
    pub name: Option<String>,
    pub secret_type: String,
    pub algorithm: Option<String>,
    pub bit_length: Option<i64>,
    pub mode: Option<String>,
    pub expiration: Option<i64>,
    /// Normalized content type and plaintext, for a one-step create
    /// (wiped from memory when dropped).
    pub payload: Option<(String, Zeroizing<Vec<u8>>)>,
}

/// Kinds of resources an ACL can be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclEntity {
    Secret,
    Container,
}

impl AclEntity {
    pub fn as_str(self) -> &'static str {
        match self {
            AclEntity::Secret => "secret",
            AclEntity::Container => "container",
        }
    }
}

/// The `read` ACL of a secret or container. `explicit` is false for
/// Barbican's implicit ACL (project-access, nobody listed).
#[derive(Debug, Clone)]
pub struct Acl {
    pub explicit: bool,
    pub project_access: bool,
    pub users: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Default for Acl {
    fn default() -> Self {
        Acl {
            explicit: false,
            project_access: true,
            users: vec![],
            created_at: 0,
            updated_at: 0,
        }
    }
}

/// A change to a read ACL: PUT replaces (missing fields take defaults),
/// PATCH changes only what is given.
#[derive(Debug, Clone, Default)]
pub struct AclChange {
    pub project_access: Option<bool>,
    pub users: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct ContainerRef {
    pub name: String,
    pub secret_id: String,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub project_id: String,
    pub creator_id: String,
    pub name: Option<String>,
    pub container_type: String,
    pub status: String,
    pub secret_refs: Vec<ContainerRef>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub project_id: String,
    pub creator_id: String,
    pub order_type: String,
    /// The order's meta as the client sent it (JSON).
    pub meta: serde_json::Value,
    pub status: String,
    pub secret_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The policy's view of a secret or container with its ACL.
pub fn resource<'a>(project_id: &'a str, creator_id: &'a str, acl: &'a Acl) -> Resource<'a> {
    Resource {
        project_id,
        creator_id,
        project_access: acl.project_access,
        read_users: &acl.users,
    }
}
