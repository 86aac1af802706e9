//! S3 object lock: records that must not be deleted.
//!
//! A bucket created with object lock has versioning on for good. Each
//! version may carry a retention (mode and retain-until date) and a legal
//! hold. While either holds, the version cannot be deleted (deleting the key
//! without a version id still only adds a delete marker; a new PUT is always
//! a new version, so nothing is ever overwritten):
//!
//! * COMPLIANCE: nobody can delete the version or shorten or weaken its
//!   retention until the date has passed.
//! * GOVERNANCE: like COMPLIANCE, except that a caller allowed to bypass
//!   governance retention ([`crate::policy::may_bypass_governance`]) who
//!   sends `x-amz-bypass-governance-retention: true` may delete the version
//!   or shorten or remove its retention.
//! * Legal hold: no deletion while ON, whatever the retention; any member
//!   of the bucket's project may switch it on and off.
//!
//! A bucket may have a default retention that new versions get when their
//! request names none.

use s3s::dto::{ObjectLockLegalHoldStatus, ObjectLockMode, Timestamp};
use s3s::{s3_error, S3Result};
use serde::{Deserialize, Serialize};

use crate::store::Bucket;

pub const GOVERNANCE: &str = "GOVERNANCE";
pub const COMPLIANCE: &str = "COMPLIANCE";

const DAY_US: i64 = 86_400 * 1_000_000;
/// S3 limits default retention to 100 years (36,500 days).
const MAX_DAYS: i32 = 36_500;
const MAX_YEARS: i32 = 100;

/// The lock of one object version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    /// "", GOVERNANCE or COMPLIANCE.
    pub mode: String,
    /// Retain until (unix microseconds); 0 without retention.
    pub until: i64,
    pub legal_hold: bool,
}

impl Lock {
    pub fn is_empty(&self) -> bool {
        self.mode.is_empty() && !self.legal_hold
    }

    /// Whether the retention still holds at `now`.
    pub fn retained(&self, now: i64) -> bool {
        !self.mode.is_empty() && self.until > now
    }

    /// Whether the version may be deleted at `now`.
    pub fn may_delete(&self, now: i64, bypass_governance: bool) -> bool {
        !self.legal_hold && (!self.retained(now) || (self.mode == GOVERNANCE && bypass_governance))
    }
}

/// A bucket's default retention for new versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: String,
    pub days: Option<i32>,
    pub years: Option<i32>,
}

impl DefaultRetention {
    /// Checks a configuration as S3 does: a mode, and either days or years.
    pub fn new(mode: Option<&str>, days: Option<i32>, years: Option<i32>) -> S3Result<Self> {
        let mode = match mode {
            Some(m @ (GOVERNANCE | COMPLIANCE)) => m.to_string(),
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The default retention needs a Mode of GOVERNANCE or COMPLIANCE."
                ))
            }
        };
        match (days, years) {
            (Some(_), Some(_)) | (None, None) => Err(s3_error!(
                MalformedXML,
                "The default retention needs either Days or Years."
            )),
            (Some(d), None) if !(1..=MAX_DAYS).contains(&d) => Err(s3_error!(
                InvalidArgument,
                "Default retention period must be a positive integer value of at most {MAX_DAYS} days."
            )),
            (None, Some(y)) if !(1..=MAX_YEARS).contains(&y) => Err(s3_error!(
                InvalidArgument,
                "Default retention period must be a positive integer value of at most {MAX_YEARS} years."
            )),
            _ => Ok(DefaultRetention { mode, days, years }),
        }
    }

    /// The retain-until date of a version made at `now`.
    pub fn until(&self, now: i64) -> i64 {
        let days = match (self.days, self.years) {
            (Some(d), _) => i64::from(d),
            (None, Some(y)) => i64::from(y) * 365,
            (None, None) => 0,
        };
        now + days * DAY_US
    }
}

/// What a retention change needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Allowed,
    /// Shortens or removes a GOVERNANCE retention.
    NeedsBypass,
    /// Shortens, weakens or removes a COMPLIANCE retention.
    Refused,
}

/// Whether `current` may become (`mode`, `until`) at `now`; an empty mode
/// removes the retention.
pub fn retention_change(current: &Lock, mode: &str, until: i64, now: i64) -> Change {
    if !current.retained(now) {
        return Change::Allowed;
    }
    let stricter_or_same = !mode.is_empty()
        && until >= current.until
        && (current.mode == GOVERNANCE || mode == COMPLIANCE);
    match (stricter_or_same, current.mode.as_str()) {
        (true, _) => Change::Allowed,
        (false, COMPLIANCE) => Change::Refused,
        (false, _) => Change::NeedsBypass,
    }
}

pub fn micros(t: &Timestamp) -> i64 {
    let nanos = time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos() / 1000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

pub fn check_mode(mode: &str) -> S3Result<()> {
    match mode {
        GOVERNANCE | COMPLIANCE => Ok(()),
        _ => Err(s3_error!(
            InvalidArgument,
            "The object lock mode must be GOVERNANCE or COMPLIANCE."
        )),
    }
}

pub fn check_future(until: i64, now: i64) -> S3Result<()> {
    if until <= now {
        return Err(s3_error!(
            InvalidArgument,
            "The retain until date must be in the future!"
        ));
    }
    Ok(())
}

pub fn legal_hold_status(s: &ObjectLockLegalHoldStatus) -> S3Result<bool> {
    match s.as_str() {
        ObjectLockLegalHoldStatus::ON => Ok(true),
        ObjectLockLegalHoldStatus::OFF => Ok(false),
        _ => Err(s3_error!(
            MalformedXML,
            "The legal hold status must be ON or OFF."
        )),
    }
}

pub fn missing_configuration() -> s3s::S3Error {
    s3_error!(
        InvalidRequest,
        "Bucket is missing Object Lock Configuration"
    )
}

/// The lock a new version gets from the `x-amz-object-lock-*` headers of
/// its PUT, copy or multipart create, or else from the bucket's default.
/// None of them: no lock.
pub fn requested(
    bucket: &Bucket,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
    now: i64,
) -> S3Result<Lock> {
    let asked = mode.is_some() || until.is_some() || hold.is_some();
    if asked && !bucket.object_lock {
        return Err(missing_configuration());
    }
    let mut lock = Lock {
        legal_hold: hold.map(legal_hold_status).transpose()?.unwrap_or(false),
        ..Default::default()
    };
    match (mode, until) {
        (Some(m), Some(u)) => {
            check_mode(m.as_str())?;
            lock.until = micros(u);
            check_future(lock.until, now)?;
            lock.mode = m.as_str().to_string();
        }
        (None, None) => {
            if let Some(d) = &bucket.config.object_lock_default {
                lock.mode = d.mode.clone();
                lock.until = d.until(now);
            }
        }
        _ => {
            return Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
        ))
        }
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(mode: &str, until: i64, legal_hold: bool) -> Lock {
        Lock {
            mode: mode.into(),
            until,
            legal_hold,
        }
    }

    #[test]
    fn only_governance_yields_and_only_to_a_bypass() {
        let now = 1_000;
        assert!(!lock(COMPLIANCE, 2_000, false).may_delete(now, true));
        assert!(!lock(GOVERNANCE, 2_000, false).may_delete(now, false));
        assert!(lock(GOVERNANCE, 2_000, false).may_delete(now, true));
        assert!(
            lock(COMPLIANCE, 500, false).may_delete(now, false),
            "expired"
        );
        assert!(
            !lock(COMPLIANCE, 500, true).may_delete(now, true),
            "legal hold"
        );
        assert!(!lock("", 0, true).may_delete(now, true), "legal hold");
        assert!(lock("", 0, false).may_delete(now, false));
    }

    #[test]
    fn compliance_retention_only_grows() {
        let now = 1_000;
        let c = lock(COMPLIANCE, 2_000, false);
        assert_eq!(
            retention_change(&c, COMPLIANCE, 3_000, now),
            Change::Allowed
        );
        assert_eq!(
            retention_change(&c, COMPLIANCE, 2_000, now),
            Change::Allowed
        );
        assert_eq!(
            retention_change(&c, COMPLIANCE, 1_500, now),
            Change::Refused
        );
        assert_eq!(
            retention_change(&c, GOVERNANCE, 9_000, now),
            Change::Refused
        );
        assert_eq!(retention_change(&c, "", 0, now), Change::Refused);
        let g = lock(GOVERNANCE, 2_000, false);
        assert_eq!(
            retention_change(&g, GOVERNANCE, 3_000, now),
            Change::Allowed
        );
        assert_eq!(
            retention_change(&g, COMPLIANCE, 2_000, now),
            Change::Allowed
        );
        assert_eq!(
            retention_change(&g, GOVERNANCE, 1_500, now),
            Change::NeedsBypass
        );
        assert_eq!(retention_change(&g, "", 0, now), Change::NeedsBypass);
        let expired = lock(COMPLIANCE, 900, false);
        assert_eq!(
            retention_change(&expired, GOVERNANCE, 1_100, now),
            Change::Allowed
        );
    }

    #[test]
    fn default_retention_is_days_or_years() {
        assert!(DefaultRetention::new(Some(GOVERNANCE), Some(1), None).is_ok());
        assert!(DefaultRetention::new(Some(COMPLIANCE), None, Some(2)).is_ok());
        assert!(DefaultRetention::new(Some(GOVERNANCE), Some(1), Some(1)).is_err());
        assert!(DefaultRetention::new(Some(GOVERNANCE), None, None).is_err());
        assert!(DefaultRetention::new(Some(GOVERNANCE), Some(0), None).is_err());
        assert!(DefaultRetention::new(Some("FOREVER"), Some(1), None).is_err());
        assert!(DefaultRetention::new(None, Some(1), None).is_err());
        let d = DefaultRetention::new(Some(COMPLIANCE), Some(2), None).unwrap();
        assert_eq!(d.until(5), 5 + 2 * DAY_US);
        let y = DefaultRetention::new(Some(COMPLIANCE), None, Some(1)).unwrap();
        assert_eq!(y.until(0), 365 * DAY_US);
    }
}
