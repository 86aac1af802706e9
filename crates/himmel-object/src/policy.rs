//! Who may do what to a bucket.
//!
//! * The bucket's own project: `reader` reads (get, head, list), `member`
//!   (and the roles implying it) also writes and configures.
//! * Everyone else, signed or anonymous: only what the bucket's canned ACL
//!   `public-read` grants (listing the bucket and reading its objects).
//!
//! Requests from other projects are refused with `AccessDenied`, the same
//! answer whether or not they may learn the bucket exists.

use s3s::access::{S3Access, S3AccessContext};
use s3s::{s3_error, S3Result};

use crate::audit::Slot;
use crate::auth::{Caller, Keys};
use crate::store::Bucket;

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read objects or list them.
    Read,
    /// Write or delete objects.
    Write,
    /// Change the bucket itself or its configuration.
    Configure,
}

/// Decides whether `caller` (None: anonymous) may act on `bucket`.
pub fn allowed(caller: Option<&Caller>, bucket: &Bucket, need: Need) -> bool {
    if let Some(c) = caller {
        if c.project_id == bucket.project_id {
            return match need {
                Need::Read => c.has_role("reader") || c.has_role("member"),
                Need::Write | Need::Configure => c.has_role("member"),
            };
        }
    }
    need == Need::Read && bucket.config.acl.as_deref() == Some("public-read")
}

/// Who may shorten or remove a GOVERNANCE retention or delete a version
/// under it (with `x-amz-bypass-governance-retention`): an admin of the
/// bucket's project.
pub fn may_bypass_governance(caller: Option<&Caller>, bucket: &Bucket) -> bool {
    caller.is_some_and(|c| c.project_id == bucket.project_id && c.has_role("admin"))
}

pub fn check(caller: Option<&Caller>, bucket: &Bucket, need: Need) -> S3Result<()> {
    if allowed(caller, bucket, need) {
        Ok(())
    } else {
        Err(s3_error!(AccessDenied, "Access Denied"))
    }
}

/// s3s's access hook: runs after the signature check and before the
/// operation. It resolves the caller for the handlers and the audit
/// record; anonymous requests pass on to the handlers, which allow them
/// only on public buckets.
pub struct Gate {
    pub keys: Keys,
}

#[async_trait::async_trait]
impl S3Access for Gate {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let caller = match cx.credentials() {
            Some(c) => self
                .keys
                .lookup(&c.access_key)
                .await?
                .map(|(_, caller)| caller),
            None => None,
        };
        let operation = cx.s3_op().name().to_string();
        let target = match cx.s3_path() {
            s3s::path::S3Path::Root => None,
            s3s::path::S3Path::Bucket { bucket } => Some(bucket.to_string()),
            s3s::path::S3Path::Object { bucket, key } => Some(format!("{bucket}/{key}")),
        };
        if let Some(slot) = cx.extensions_mut().get::<Slot>() {
            slot.with(|n| {
                n.operation = Some(operation);
                n.caller = caller.clone();
                n.target = target;
            });
        }
        if let Some(caller) = caller {
            cx.extensions_mut().insert(caller);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn caller(project: &str, roles: &[&str]) -> Caller {
        Caller {
            context: Arc::new(himmel_core::context::RequestContext {
                request_id: String::new(),
                user_id: "u".into(),
                user_name: "u".into(),
                user_domain_id: "d".into(),
                user_domain_name: "d".into(),
                scope: himmel_core::context::Scope::Unscoped,
                roles: roles.iter().map(|r| r.to_string()).collect(),
                methods: vec![],
                audit_ids: vec![],
                application_credential_id: None,
                expires_at: String::new(),
                source_addr: String::new(),
            }),
            project_id: project.into(),
        }
    }

    fn bucket(acl: Option<&str>) -> Bucket {
        Bucket {
            name: "b".into(),
            id: "id".into(),
            project_id: "p1".into(),
            versioning: String::new(),
            object_lock: false,
            config: crate::store::BucketConfig {
                acl: acl.map(str::to_string),
                ..Default::default()
            },
            created_at: 0,
        }
    }

    #[test]
    fn owners_by_role_others_only_through_public_read() {
        let private = bucket(None);
        let public = bucket(Some("public-read"));
        let member = caller("p1", &["member", "reader"]);
        let reader = caller("p1", &["reader"]);
        let stranger = caller("p2", &["admin", "member", "reader"]);
        for need in [Need::Read, Need::Write, Need::Configure] {
            assert!(allowed(Some(&member), &private, need));
            assert_eq!(allowed(Some(&reader), &private, need), need == Need::Read);
            assert!(!allowed(Some(&stranger), &private, need));
            assert!(!allowed(None, &private, need));
            assert_eq!(allowed(Some(&stranger), &public, need), need == Need::Read);
            assert_eq!(allowed(None, &public, need), need == Need::Read);
        }
    }
}
