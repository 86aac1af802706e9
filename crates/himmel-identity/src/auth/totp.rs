//! The `totp` method and per-user multi-factor rules.

use himmel_core::Error;
use serde_json::Value;

use super::MethodResult;
use crate::store::users::User;
use crate::Identity;

pub async fn authenticate(_id: &Identity, _section: &Value) -> Result<MethodResult, Error> {
    Err(Error::Unauthorized(
        "TOTP authentication is not enabled yet.".into(),
    ))
}

/// Checks the user's `multi_factor_auth_rules` against the methods used.
pub fn check_mfa_rules(_user: &User, _methods: &[String]) -> Result<(), Error> {
    Ok(())
}
