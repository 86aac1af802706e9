//! Who may do what to a bucket.
//!
//! * The bucket's own project: `reader` reads (get, head, list), `member`
//!   (and the roles implying it) also writes and configures.
//! * Everyone else, signed or anonymous: only what the bucket's canned ACL
//!   `public-read` grants (listing the bucket and reading its objects, not
//!   reading its configuration).
//!
//! A bucket policy ([`crate::bucket_policy`]) comes first: its explicit
//! Deny refuses, its Allow grants, otherwise the rules above decide.
//!
//! Requests from other projects are refused with `AccessDenied`, the same
//! answer whether or not they may learn the bucket exists.

use s3s::access::{S3Access, S3AccessContext};
use s3s::S3Result;

use crate::audit::Slot;
use crate::auth::{Caller, Keys};
use crate::store::Bucket;

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read objects or list them.
    Read,
    /// Read the bucket's configuration (location, versioning, encryption,
    /// tags, lock configuration, CORS): the owner's, never granted by
    /// `public-read`, as in S3.
    ReadConfig,
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
                Need::Read | Need::ReadConfig => c.has_role("reader") || c.has_role("member"),
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

/// The whole decision for a request on `bucket`: its policy first, then
/// the project rules. `key` names the object when it is not the one in
/// the request's path (a copy's source).
pub fn decide(
    caller: Option<&Caller>,
    facts: Option<&Facts>,
    bucket: &Bucket,
    need: Need,
    key: Option<&str>,
) -> bool {
    by_bucket_policy(caller, facts, bucket, need, key)
        .unwrap_or_else(|| allowed(caller, bucket, need))
}

/// What each bucket or object operation needs of the caller (the handlers
/// ask for exactly this; a copy also needs Read on its source).
pub const OPERATIONS: &[(&str, Need)] = &[
    ("HeadBucket", Need::Read),
    ("GetBucketLocation", Need::ReadConfig),
    ("ListObjects", Need::Read),
    ("ListObjectsV2", Need::Read),
    ("ListObjectVersions", Need::Read),
    ("ListMultipartUploads", Need::Read),
    ("GetBucketVersioning", Need::ReadConfig),
    ("GetBucketEncryption", Need::ReadConfig),
    ("GetBucketTagging", Need::ReadConfig),
    ("GetObjectLockConfiguration", Need::ReadConfig),
    ("GetBucketCors", Need::ReadConfig),
    ("PutBucketVersioning", Need::Configure),
    ("PutBucketEncryption", Need::Configure),
    ("DeleteBucketEncryption", Need::Configure),
    ("PutBucketTagging", Need::Configure),
    ("DeleteBucketTagging", Need::Configure),
    ("GetBucketAcl", Need::Configure),
    ("PutBucketAcl", Need::Configure),
    ("GetBucketPolicy", Need::Configure),
    ("PutBucketPolicy", Need::Configure),
    ("DeleteBucketPolicy", Need::Configure),
    ("GetBucketPolicyStatus", Need::Configure),
    ("PutObjectLockConfiguration", Need::Configure),
    ("PutBucketCors", Need::Configure),
    ("DeleteBucketCors", Need::Configure),
    ("DeleteBucket", Need::Configure),
    ("GetObject", Need::Read),
    ("HeadObject", Need::Read),
    ("GetObjectTagging", Need::Read),
    ("GetObjectRetention", Need::Read),
    ("GetObjectLegalHold", Need::Read),
    ("ListParts", Need::Read),
    ("PutObject", Need::Write),
    ("CopyObject", Need::Write),
    ("DeleteObject", Need::Write),
    ("DeleteObjects", Need::Write),
    ("PutObjectTagging", Need::Write),
    ("DeleteObjectTagging", Need::Write),
    ("PutObjectRetention", Need::Write),
    ("PutObjectLegalHold", Need::Write),
    ("CreateMultipartUpload", Need::Write),
    ("UploadPart", Need::Write),
    ("UploadPartCopy", Need::Write),
    ("CompleteMultipartUpload", Need::Write),
    ("AbortMultipartUpload", Need::Write),
];

/// A public-read bucket policy (anyone may get objects) that also refuses
/// every request from outside 10.0.0.0/8, as used by the matrix.
const MATRIX_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
    {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
     "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}"#;

/// The golden matrix: operation x persona x bucket setup -> allow/deny.
pub fn render_matrix() -> String {
    use std::sync::Arc;
    let persona = |project: &str, roles: &[&str]| Caller {
        context: Arc::new(himmel_core::context::RequestContext {
            request_id: String::new(),
            user_id: format!("user-of-{project}"),
            user_name: String::new(),
            user_domain_id: String::new(),
            user_domain_name: String::new(),
            scope: himmel_core::context::Scope::Unscoped,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            methods: vec![],
            audit_ids: vec![],
            application_credential_id: None,
            expires_at: String::new(),
            source_addr: String::new(),
        }),
        project_id: project.into(),
    };
    let personas = [
        (
            "owner-admin",
            Some(persona("p1", &["admin", "member", "reader"])),
        ),
        ("owner-member", Some(persona("p1", &["member", "reader"]))),
        ("owner-reader", Some(persona("p1", &["reader"]))),
        (
            "other-project-admin",
            Some(persona("p2", &["admin", "member", "reader"])),
        ),
        ("anonymous", None),
    ];
    let bucket = |acl: Option<&str>, policy: Option<&str>| Bucket {
        name: "b".into(),
        id: "id".into(),
        project_id: "p1".into(),
        versioning: String::new(),
        object_lock: false,
        config: crate::store::BucketConfig {
            acl: acl.map(str::to_string),
            policy: policy.map(str::to_string),
            ..Default::default()
        },
        created_at: 0,
    };
    let setups = [
        ("private", bucket(None, None), "10.1.1.1"),
        (
            "acl:public-read",
            bucket(Some("public-read"), None),
            "10.1.1.1",
        ),
        (
            "policy:inside-10/8",
            bucket(None, Some(MATRIX_POLICY)),
            "10.1.1.1",
        ),
        (
            "policy:outside-10/8",
            bucket(None, Some(MATRIX_POLICY)),
            "192.0.2.1",
        ),
    ];
    let mut out = String::from("# operation | persona");
    for (name, _, _) in &setups {
        out.push_str(&format!(" | {name}"));
    }
    out.push('\n');
    for (op, need) in OPERATIONS {
        for (who, caller) in &personas {
            out.push_str(&format!("{op} | {who}"));
            for (_, b, ip) in &setups {
                let facts = Facts {
                    operation: op.to_string(),
                    key: Some("k".into()),
                    source_ip: ip.parse().ok(),
                };
                let ok = decide(caller.as_ref(), Some(&facts), b, *need, None);
                out.push_str(if ok { " | allow" } else { " | deny" });
            }
            out.push('\n');
        }
    }
    out
}

/// What a bucket policy looks at, noted by the access hook.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The S3 operation's name (`GetObject`, ...).
    pub operation: String,
    /// The object key of an object operation.
    pub key: Option<String>,
    pub source_ip: Option<std::net::IpAddr>,
}

/// The bucket policy's word on a request (None: the bucket has none, or
/// it says nothing about this request).
pub fn by_bucket_policy(
    caller: Option<&Caller>,
    facts: Option<&Facts>,
    bucket: &Bucket,
    need: Need,
    key: Option<&str>,
) -> Option<bool> {
    let doc = bucket.config.policy.as_deref()?;
    let facts = facts?;
    let policy = match crate::bucket_policy::parse(doc, &bucket.name) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(bucket = %bucket.name, error = %e, "stored bucket policy does not parse");
            return None;
        }
    };
    let owner_member =
        caller.is_some_and(|c| c.project_id == bucket.project_id && c.has_role("member"));
    if owner_member && facts.operation.ends_with("BucketPolicy") {
        return None;
    }
    let action = crate::bucket_policy::action(&facts.operation, need == Need::Read);
    let resource = crate::bucket_policy::resource(&bucket.name, key.or(facts.key.as_deref()));
    let request = crate::bucket_policy::Request {
        action: &action,
        resource: &resource,
        caller: caller.map(|c| (c.project_id.as_str(), c.context.user_id.as_str())),
        source_ip: facts.source_ip,
        // The S3 listener speaks plain HTTP (TLS ends in front of it, if
        // anywhere, and is not vouched for).
        secure_transport: false,
    };
    match crate::bucket_policy::Policy::evaluate(&policy, &request) {
        crate::bucket_policy::Decision::Deny => Some(false),
        crate::bucket_policy::Decision::Allow => Some(true),
        crate::bucket_policy::Decision::Silent => None,
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
        let key = match cx.s3_path() {
            s3s::path::S3Path::Object { key, .. } => Some(key.to_string()),
            _ => None,
        };
        let source_ip = cx
            .extensions_mut()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let facts_operation = cx.s3_op().name().to_string();
        cx.extensions_mut().insert(Facts {
            operation: facts_operation,
            key,
            source_ip,
        });
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
