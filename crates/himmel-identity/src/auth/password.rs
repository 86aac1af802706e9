//! The `password` method, with Keystone's lockout and expiry rules.

use himmel_core::Error;
use serde_json::Value;

use super::{find_user, unauthorized, MethodResult};
use crate::store::users;
use crate::Identity;

pub async fn authenticate(id: &Identity, section: &Value) -> Result<MethodResult, Error> {
    let user_ref = section
        .get("user")
        .ok_or_else(|| Error::BadRequest("Invalid input for field 'user'.".into()))?;
    let password = user_ref
        .get("password")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest("Invalid input for field 'password'.".into()))?;
    if password.len() > crate::password::MAX_PASSWORD_LEN {
        return Err(unauthorized());
    }
    let user = find_user(id, user_ref).await?;
    if !user.enabled {
        return Err(unauthorized());
    }
    let sc = &id.config().security;
    let now = crate::store::now_us();
    if sc.lockout_failure_attempts > 0
        && !user.option_bool("ignore_lockout_failure_attempts")
        && user.failed_auth_count >= i64::from(sc.lockout_failure_attempts)
    {
        let until = user.failed_auth_at.unwrap_or(0) + (sc.lockout_duration as i64) * 1_000_000;
        if sc.lockout_duration == 0 || now < until {
            return Err(Error::Unauthorized(format!(
                "The account is locked for user: {}.",
                user.id
            )));
        }
    }
    let Some(hash) = user.password_hash.clone() else {
        return Err(unauthorized());
    };
    let ok = id
        .verified_passwords()
        .verify(&user.id, &hash, password)
        .await?;
    if !ok {
        users::record_failed_auth(id.db(), &user.id).await?;
        return Err(unauthorized());
    }
    users::record_successful_auth(id.db(), &user).await?;
    if user.password_expires_at.is_some_and(|e| e <= now)
        && !user.option_bool("ignore_password_expiry")
    {
        return Err(Error::Unauthorized(format!(
            "The password is expired and needs to be changed for user: {}.",
            user.id
        )));
    }
    Ok(MethodResult {
        user,
        parent_audit_id: None,
        expires_cap_us: None,
        methods: vec!["password".into()],
        app_cred: None,
    })
}
