//! PutBucketCors, GetBucketCors and DeleteBucketCors (matching in
//! [`crate::cors`]).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::{db_error, require_integrity_header};
use crate::cors::{self, Rule};
use crate::policy::Need;
use crate::store_ext::cors as cors_store;
use crate::ObjectStore;

fn rule_of(r: &CORSRule) -> Rule {
    Rule {
        id: r.id.clone(),
        allowed_origins: r.allowed_origins.clone(),
        allowed_methods: r.allowed_methods.clone(),
        allowed_headers: r.allowed_headers.clone().unwrap_or_default(),
        expose_headers: r.expose_headers.clone().unwrap_or_default(),
        max_age_seconds: r.max_age_seconds,
    }
}

fn dto_of(r: Rule) -> CORSRule {
    CORSRule {
        id: r.id,
        allowed_origins: r.allowed_origins,
        allowed_methods: r.allowed_methods,
        allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
        expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
        max_age_seconds: r.max_age_seconds,
    }
}

pub async fn put(
    s: &ObjectStore,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let bucket = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    require_integrity_header(&req.headers)?;
    let rules: Vec<Rule> = req
        .input
        .cors_configuration
        .cors_rules
        .iter()
        .map(rule_of)
        .collect();
    cors::validate(&rules).map_err(|m| s3_error!(InvalidRequest, "{m}"))?;
    cors_store::put(s.db(), &bucket.id, &rules)
        .await
        .map_err(db_error)?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub async fn get(
    s: &ObjectStore,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let bucket = s.bucket(&req, &req.input.bucket, Need::ReadConfig).await?;
    let rules = cors_store::get(s.db(), &bucket.id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| {
            s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            )
        })?;
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(rules.into_iter().map(dto_of).collect()),
    }))
}

pub async fn delete(
    s: &ObjectStore,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let bucket = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    cors_store::delete(s.db(), &bucket.id)
        .await
        .map_err(db_error)?;
    Ok(S3Response::new(DeleteBucketCorsOutput {}))
}
