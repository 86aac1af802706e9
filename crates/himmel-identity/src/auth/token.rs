//! The `token` method: rescoping an existing token.

use himmel_core::Error;
use serde_json::Value;

use super::MethodResult;
use crate::Identity;

pub async fn authenticate(id: &Identity, section: &Value) -> Result<MethodResult, Error> {
    let token = section
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest("Invalid input for field 'id'.".into()))?;
    // A revoked or unknown token is a 404 "Could not find token", as Keystone answers.
    let info = id.validate(token).await?;
    if info.app_cred.is_some() {
        return Err(Error::Forbidden(
            "A token issued through an application credential cannot be rescoped.".into(),
        ));
    }
    let mut methods = info.methods.clone();
    if !methods.iter().any(|m| m == "token") {
        methods.insert(0, "token".into());
    }
    Ok(MethodResult {
        // The chain id of a rescoped token is the original token's audit id.
        parent_audit_id: info.audit_ids.last().cloned(),
        expires_cap_us: Some(info.expires_at_us),
        methods,
        user: info.user,
        app_cred: None,
    })
}
