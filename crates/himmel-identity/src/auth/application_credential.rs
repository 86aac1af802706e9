//! The `application_credential` method: `{"id", "secret"}` or
//! `{"name", "secret", "user": {"id"} | {"name", "domain"}}`. The token is
//! scoped to the credential's project, carries at most its roles and does
//! not outlive it.

use himmel_core::Error;
use serde_json::Value;

use super::{find_user, unauthorized, MethodResult};
use crate::store::application_credentials as app_creds;
use crate::store::{projects, users};
use crate::Identity;

fn field(name: &str) -> Error {
    Error::BadRequest(format!("Invalid input for field '{name}'."))
}

pub async fn authenticate(id: &Identity, section: &Value) -> Result<MethodResult, Error> {
    let db = id.db();
    let secret = section
        .get("secret")
        .and_then(Value::as_str)
        .ok_or_else(|| field("secret"))?;
    let cred = match (section.get("id"), section.get("name")) {
        (Some(Value::String(cred_id)), _) => app_creds::get(db, cred_id).await?,
        (None, Some(Value::String(name))) => {
            let user_ref = section
                .get("user")
                .filter(|u| u.is_object())
                .ok_or_else(|| field("user"))?;
            let user = find_user(id, user_ref).await?;
            app_creds::get_by_name(db, &user.id, name).await?
        }
        _ => return Err(field("id")),
    }
    .ok_or_else(unauthorized)?;
    if secret.len() > crate::password::MAX_PASSWORD_LEN || cred.is_expired(crate::store::now_us()) {
        return Err(unauthorized());
    }
    let ok = id
        .verified_passwords()
        .verify(&cred.id, &cred.secret_hash, secret)
        .await?;
    if !ok {
        return Err(unauthorized());
    }
    let user = users::get(db, &cred.user_id)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(unauthorized)?;
    let project = projects::get(db, &cred.project_id)
        .await?
        .filter(|p| p.enabled)
        .ok_or_else(unauthorized)?;
    Ok(MethodResult {
        user,
        parent_audit_id: None,
        expires_cap_us: cred.expires_at,
        methods: vec!["application_credential".into()],
        app_cred: Some((cred.id, project)),
    })
}
