//! Buckets: create, head, delete, list, location, versioning, encryption,
//! tagging, canned ACL.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::{caller, db_error, timestamp};
use crate::audit::DATA_EVENTS_TAG;
use crate::auth::Caller;
use crate::policy::Need;
use crate::sse::{SSE_KMS, SSE_S3};
use crate::sse_kms::DefaultEncryption;
use crate::store::{self, Bucket, BucketConfig};
use crate::ObjectStore;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

pub async fn list(
    s: &ObjectStore,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let c = caller(&req)?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let buckets = store::list_buckets(s.db(), &c.project_id)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .map(|b| s3s::dto::Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_at)),
            bucket_region: Some(s.region().to_string()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner(&c.project_id)),
        prefix: req.input.prefix,
        ..Default::default()
    }))
}

pub(crate) fn owner(project_id: &str) -> Owner {
    Owner {
        id: Some(project_id.to_string()),
        display_name: Some(project_id.to_string()),
    }
}

pub async fn create(
    s: &ObjectStore,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let c = caller(&req)?;
    if !c.has_role("member") {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    let input = &req.input;
    if !s3s::path::check_bucket_name(&input.bucket) {
        return Err(s3_error!(
            InvalidBucketName,
            "The specified bucket is not valid."
        ));
    }
    if let Some(loc) = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
    {
        if !loc.as_str().is_empty() && !loc.as_str().eq_ignore_ascii_case(s.region()) {
            return Err(s3_error!(
                InvalidLocationConstraint,
                "The specified location-constraint is not valid for this region ({}).",
                s.region()
            ));
        }
    }
    let acl = match input.acl.as_ref().map(|a| a.as_str()) {
        None | Some("private") => None,
        Some("public-read") => Some("public-read".to_string()),
        Some(other) => {
            return Err(s3_error!(
                NotImplemented,
                "The canned ACL {other} is not supported."
            ))
        }
    };
    // Object lock needs versioning, as on S3, and keeps it on.
    let object_lock = input.object_lock_enabled_for_bucket == Some(true);
    let bucket = Bucket {
        name: input.bucket.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        project_id: c.project_id.clone(),
        versioning: if object_lock {
            "Enabled".into()
        } else {
            String::new()
        },
        object_lock,
        config: BucketConfig {
            acl,
            ..Default::default()
        },
        created_at: store::now_us(),
    };
    if let Err(e) = store::create_bucket(s.db(), &bucket).await {
        if himmel_db::is_unique_violation(&e) {
            let existing = store::get_bucket(s.db(), &bucket.name)
                .await
                .map_err(db_error)?;
            return Err(match existing {
                Some(b) if b.project_id == c.project_id => s3_error!(
                    BucketAlreadyOwnedByYou,
                    "Your previous request to create the named bucket succeeded and you already own it."
                ),
                _ => s3_error!(
                    BucketAlreadyExists,
                    "The requested bucket name is not available."
                ),
            });
        }
        return Err(db_error(e));
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", bucket.name)),
    }))
}

pub async fn head(
    s: &ObjectStore,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    s.bucket(&req, &req.input.bucket, Need::Read).await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(s.region().to_string()),
        ..Default::default()
    }))
}

pub async fn delete(
    s: &ObjectStore,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    if !store::delete_bucket(s.db(), &bucket)
        .await
        .map_err(db_error)?
    {
        return Err(s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty."
        ));
    }
    crate::store_ext::cors::delete(s.db(), &bucket.id)
        .await
        .map_err(db_error)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn location(
    s: &ObjectStore,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    s.bucket(&req, &req.input.bucket, Need::ReadConfig).await?;
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: Some(BucketLocationConstraint::from(s.region().to_string())),
    }))
}

pub async fn get_versioning(
    s: &ObjectStore,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let b = s.bucket(&req, &req.input.bucket, Need::ReadConfig).await?;
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: (!b.versioning.is_empty()).then(|| BucketVersioningStatus::from(b.versioning)),
        mfa_delete: None,
    }))
}

pub async fn put_versioning(
    s: &ObjectStore,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    let status = req
        .input
        .versioning_configuration
        .status
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    match status.as_str() {
        "Enabled" => b.versioning = status,
        "Suspended" if b.object_lock => {
            return Err(s3_error!(
                InvalidBucketState,
                "Versioning cannot be suspended on a bucket with object lock."
            ))
        }
        // Suspending a bucket that never had versioning changes nothing.
        "Suspended" if b.versioning.is_empty() => {}
        "Suspended" => b.versioning = status,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "The versioning status must be Enabled or Suspended."
            ))
        }
    }
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}

pub async fn get_encryption(
    s: &ObjectStore,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let b = s.bucket(&req, &req.input.bucket, Need::ReadConfig).await?;
    // Every object is encrypted; without another choice, under the project
    // key (SSE-S3).
    let (algorithm, key_id) = match b.config.encryption {
        Some(d) => (d.algorithm, d.kms_key_id),
        None => (SSE_S3.to_string(), None),
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
            rules: vec![ServerSideEncryptionRule {
                apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                    sse_algorithm: ServerSideEncryption::from(algorithm),
                    kms_master_key_id: key_id,
                }),
                bucket_key_enabled: Some(false),
            }],
        }),
    }))
}

pub async fn put_encryption(
    s: &ObjectStore,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    let rules = &req.input.server_side_encryption_configuration.rules;
    let [rule] = rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "The encryption configuration needs exactly one rule."
        ));
    };
    let default = rule
        .apply_server_side_encryption_by_default
        .as_ref()
        .ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "The rule needs ApplyServerSideEncryptionByDefault."
            )
        })?;
    let algorithm = default.sse_algorithm.as_str();
    let key_id = default.kms_master_key_id.as_deref();
    b.config.encryption = match (algorithm, key_id) {
        (SSE_S3, None) => None,
        (SSE_KMS, None) => Some(DefaultEncryption {
            algorithm: SSE_KMS.into(),
            kms_key_id: None,
        }),
        (SSE_KMS, Some(id)) => {
            // The key must be usable now by whoever configures it.
            let key = s.kms_key(req.extensions.get::<Caller>(), id).await?;
            Some(DefaultEncryption {
                algorithm: SSE_KMS.into(),
                kms_key_id: key.kms_key_id.clone(),
            })
        }
        (SSE_S3, Some(_)) => {
            return Err(s3_error!(
                InvalidArgument,
                "A KMSMasterKeyID is only allowed with the aws:kms algorithm."
            ))
        }
        (other, _) => {
            return Err(s3_error!(
                InvalidArgument,
                "The server-side encryption algorithm {other} is not supported."
            ))
        }
    };
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::new(PutBucketEncryptionOutput {}))
}

pub async fn delete_encryption(
    s: &ObjectStore,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    b.config.encryption = None;
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::with_status(
        DeleteBucketEncryptionOutput {},
        http::StatusCode::NO_CONTENT,
    ))
}

pub(crate) fn check_tags(tags: &[Tag]) -> S3Result<Vec<(String, String)>> {
    if tags.len() > 50 {
        return Err(s3_error!(InvalidTag, "At most 50 tags are allowed."));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(tags.len());
    for t in tags {
        let key = t.key.clone().unwrap_or_default();
        let value = t.value.clone().unwrap_or_default();
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "A tag key must have 1 to 128 characters, a value at most 256."
            ));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
        out.push((key, value));
    }
    Ok(out)
}

pub(crate) fn tag_set(tags: &[(String, String)]) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

pub async fn get_tagging(
    s: &ObjectStore,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let b = s.bucket(&req, &req.input.bucket, Need::ReadConfig).await?;
    let Some(tags) = b.config.tags else {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    };
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: tag_set(&tags),
    }))
}

pub async fn put_tagging(
    s: &ObjectStore,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    let tags = check_tags(&req.input.tagging.tag_set)?;
    b.config.audit_data_events = tags
        .iter()
        .any(|(k, v)| k == DATA_EVENTS_TAG && v.eq_ignore_ascii_case("true"));
    b.config.tags = Some(tags);
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::new(PutBucketTaggingOutput {}))
}

pub async fn delete_tagging(
    s: &ObjectStore,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    b.config.tags = None;
    b.config.audit_data_events = false;
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::with_status(
        DeleteBucketTaggingOutput {},
        http::StatusCode::NO_CONTENT,
    ))
}

pub async fn get_acl(
    s: &ObjectStore,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    let mut grants = vec![Grant {
        grantee: Some(Grantee {
            id: Some(b.project_id.clone()),
            display_name: Some(b.project_id.clone()),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }];
    if b.config.acl.as_deref() == Some("public-read") {
        grants.push(Grant {
            grantee: Some(Grantee {
                type_: Type::from_static(Type::GROUP),
                uri: Some(ALL_USERS.to_string()),
                id: None,
                display_name: None,
                email_address: None,
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
    }
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants),
        owner: Some(owner(&b.project_id)),
    }))
}

pub async fn put_acl(
    s: &ObjectStore,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    b.config.acl = match req.input.acl.as_ref().map(|a| a.as_str()) {
        Some("private") => None,
        Some("public-read") => Some("public-read".into()),
        _ => {
            return Err(s3_error!(
                NotImplemented,
                "Only the canned ACLs private and public-read are supported."
            ))
        }
    };
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub async fn put_policy(
    s: &ObjectStore,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    if let Err(why) = crate::bucket_policy::parse(&req.input.policy, &b.name) {
        return Err(s3_error!(MalformedPolicy, "{why}"));
    }
    b.config.policy = Some(req.input.policy.clone());
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::with_status(
        PutBucketPolicyOutput {},
        http::StatusCode::NO_CONTENT,
    ))
}

pub async fn get_policy(
    s: &ObjectStore,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    let Some(policy) = b.config.policy else {
        return Err(s3_error!(
            NoSuchBucketPolicy,
            "The bucket policy does not exist"
        ));
    };
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(policy),
    }))
}

pub async fn delete_policy(
    s: &ObjectStore,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    b.config.policy = None;
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::with_status(
        DeleteBucketPolicyOutput {},
        http::StatusCode::NO_CONTENT,
    ))
}

pub async fn get_policy_status(
    s: &ObjectStore,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    let Some(doc) = b.config.policy else {
        return Err(s3_error!(
            NoSuchBucketPolicy,
            "The bucket policy does not exist"
        ));
    };
    let public = crate::bucket_policy::parse(&doc, &b.name).is_ok_and(|p| p.is_public());
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(public),
        }),
    }))
}
