//! Object lock: the bucket's configuration, and the retention and legal
//! hold of object versions (rules in [`crate::lock`]).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::{db_error, require_integrity_header, timestamp};
use crate::lock::{self, Change, DefaultRetention, Lock};
use crate::policy::{self, Need};
use crate::store::{self, Bucket, ObjectRow};
use crate::store_ext::lock as lock_store;
use crate::ObjectStore;

pub async fn put_configuration(
    s: &ObjectStore,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let mut b = s.bucket(&req, &req.input.bucket, Need::Configure).await?;
    require_integrity_header(&req.headers)?;
    let config = req
        .input
        .object_lock_configuration
        .as_ref()
        .ok_or_else(|| s3_error!(MalformedXML, "The object lock configuration is missing."))?;
    if config.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some(ObjectLockEnabled::ENABLED) {
        return Err(s3_error!(
            MalformedXML,
            "ObjectLockEnabled must be Enabled."
        ));
    }
    // An existing bucket may take object lock once its versioning is on.
    if !b.object_lock && !b.versioning_enabled() {
        return Err(s3_error!(
            InvalidBucketState,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
        ));
    }
    let default = match &config.rule {
        None => None,
        Some(rule) => {
            let d = rule.default_retention.as_ref().ok_or_else(|| {
                s3_error!(
                    MalformedXML,
                    "An object lock rule needs a DefaultRetention."
                )
            })?;
            Some(DefaultRetention::new(
                d.mode.as_ref().map(|m| m.as_str()),
                d.days,
                d.years,
            )?)
        }
    };
    b.object_lock = true;
    b.config.object_lock_default = default;
    store::update_bucket(s.db(), &b).await.map_err(db_error)?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub async fn get_configuration(
    s: &ObjectStore,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let b = s.bucket(&req, &req.input.bucket, Need::ReadConfig).await?;
    if !b.object_lock {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    }
    let rule = b.config.object_lock_default.map(|d| ObjectLockRule {
        default_retention: Some(s3s::dto::DefaultRetention {
            mode: Some(ObjectLockRetentionMode::from(d.mode)),
            days: d.days,
            years: d.years,
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        }),
    }))
}

/// The version a retention or legal hold request is about, in a bucket
/// with object lock.
async fn locked_version(
    s: &ObjectStore,
    bucket: &Bucket,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<ObjectRow> {
    if !bucket.object_lock {
        return Err(lock::missing_configuration());
    }
    s.load_object(bucket, key, version_id).await
}

pub fn lock_of(row: &ObjectRow) -> Lock {
    Lock {
        mode: row.lock_mode.clone(),
        until: row.lock_until,
        legal_hold: row.legal_hold,
    }
}

pub async fn put_retention(
    s: &ObjectStore,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    require_integrity_header(&req.headers)?;
    let row = locked_version(s, &bucket, &input.key, input.version_id.as_deref()).await?;
    let now = store::now_us();
    let retention = input.retention.clone().unwrap_or_default();
    let (mode, until) = match (&retention.mode, &retention.retain_until_date) {
        (Some(m), Some(u)) => {
            lock::check_mode(m.as_str())?;
            let until = lock::micros(u);
            lock::check_future(until, now)?;
            (m.as_str().to_string(), until)
        }
        (None, None) => (String::new(), 0),
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "A retention needs both Mode and RetainUntilDate."
            ))
        }
    };
    let bypass = input.bypass_governance_retention == Some(true)
        && policy::may_bypass_governance(req.extensions.get(), &bucket);
    let current = lock_of(&row);
    match lock::retention_change(&current, &mode, until, now) {
        Change::Allowed => {}
        Change::NeedsBypass if bypass => {}
        Change::NeedsBypass | Change::Refused => {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied because object protected by object lock."
            ))
        }
    }
    let changed = lock_store::set_retention(
        s.db(),
        &row.id,
        (&row.lock_mode, row.lock_until),
        &mode,
        until,
    )
    .await
    .map_err(db_error)?;
    if !changed {
        return Err(s3_error!(
            OperationAborted,
            "A conflicting conditional operation is currently in progress against this resource. \
             Please try again."
        ));
    }
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub async fn get_retention(
    s: &ObjectStore,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let row = locked_version(s, &bucket, &input.key, input.version_id.as_deref()).await?;
    if row.lock_mode.is_empty() {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    }
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(row.lock_mode.clone())),
            retain_until_date: Some(timestamp(row.lock_until)),
        }),
    }))
}

pub async fn put_legal_hold(
    s: &ObjectStore,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Write).await?;
    require_integrity_header(&req.headers)?;
    let row = locked_version(s, &bucket, &input.key, input.version_id.as_deref()).await?;
    let status = input
        .legal_hold
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .ok_or_else(|| s3_error!(MalformedXML, "The legal hold needs a Status."))?;
    let on = lock::legal_hold_status(status)?;
    lock_store::set_legal_hold(s.db(), &row.id, on)
        .await
        .map_err(db_error)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub async fn get_legal_hold(
    s: &ObjectStore,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let input = &req.input;
    let bucket = s.bucket(&req, &input.bucket, Need::Read).await?;
    let row = locked_version(s, &bucket, &input.key, input.version_id.as_deref()).await?;
    // A hold given when the version was written counts as applied.
    if !row.legal_hold
        && !lock_store::legal_hold_applied(s.db(), &row.id)
            .await
            .map_err(db_error)?
    {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    }
    let status = if row.legal_hold {
        ObjectLockLegalHoldStatus::ON
    } else {
        ObjectLockLegalHoldStatus::OFF
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from_static(status)),
        }),
    }))
}

/// The lock headers GET and HEAD report for a version.
pub struct Shown {
    pub mode: Option<ObjectLockMode>,
    pub until: Option<Timestamp>,
    pub legal_hold: Option<ObjectLockLegalHoldStatus>,
}

pub fn shown(bucket: &Bucket, row: &ObjectRow) -> Shown {
    if !bucket.object_lock {
        return Shown {
            mode: None,
            until: None,
            legal_hold: None,
        };
    }
    let retained = !row.lock_mode.is_empty();
    Shown {
        mode: retained.then(|| ObjectLockMode::from(row.lock_mode.clone())),
        until: retained.then(|| timestamp(row.lock_until)),
        legal_hold: Some(ObjectLockLegalHoldStatus::from_static(if row.legal_hold {
            ObjectLockLegalHoldStatus::ON
        } else {
            ObjectLockLegalHoldStatus::OFF
        })),
    }
}
