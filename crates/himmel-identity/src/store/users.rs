//! Users.

use himmel_core::Error;
use himmel_db::{AnyRow, Db};
use serde_json::{json, Value};

use super::{i, json as json_col, opt_i, opt_s, s};
use crate::db_err;

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub default_project_id: Option<String>,
    pub description: String,
    pub email: Option<String>,
    pub enabled: bool,
    pub password_hash: Option<String>,
    pub password_created_at: Option<i64>,
    pub password_expires_at: Option<i64>,
    pub failed_auth_count: i64,
    pub failed_auth_at: Option<i64>,
    pub options: Value,
    pub extra: Value,
}

impl User {
    pub fn from_row(row: &AnyRow) -> User {
        User {
            id: s(row, "id"),
            name: s(row, "name"),
            domain_id: s(row, "domain_id"),
            default_project_id: opt_s(row, "default_project_id"),
            description: s(row, "description"),
            email: opt_s(row, "email"),
            enabled: himmel_db::get_bool(row, "enabled"),
            password_hash: opt_s(row, "password_hash"),
            password_created_at: opt_i(row, "password_created_at"),
            password_expires_at: opt_i(row, "password_expires_at"),
            failed_auth_count: i(row, "failed_auth_count"),
            failed_auth_at: opt_i(row, "failed_auth_at"),
            options: json_col(row, "options"),
            extra: json_col(row, "extra"),
        }
    }

    pub fn option_bool(&self, name: &str) -> bool {
        self.options
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn password_expires_at_iso(&self) -> Value {
        match self.password_expires_at {
            Some(us) => Value::String(himmel_core::time::iso_micro(
                himmel_core::time::from_unix_micros(us),
            )),
            None => Value::Null,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "domain_id": self.domain_id,
            "enabled": self.enabled,
            "password_expires_at": self.password_expires_at_iso(),
            "options": self.options,
            "links": {"self": format!("/v3/users/{}", self.id)},
        });
        let obj = v.as_object_mut().expect("object");
        if let Some(p) = &self.default_project_id {
            obj.insert("default_project_id".into(), p.clone().into());
        }
        if !self.description.is_empty() {
            obj.insert("description".into(), self.description.clone().into());
        }
        if let Some(e) = &self.email {
            obj.insert("email".into(), e.clone().into());
        }
        super::domains::merge_extra(&mut v, &self.extra);
        v
    }
}

pub async fn get(db: &Db, id: &str) -> Result<Option<User>, Error> {
    let row = sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(User::from_row))
}

pub async fn get_by_name(db: &Db, domain_id: &str, name: &str) -> Result<Option<User>, Error> {
    let row = sqlx::query("SELECT * FROM users WHERE domain_id = $1 AND name = $2")
        .bind(domain_id)
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(User::from_row))
}

/// Records a failed password login (for lockout).
pub async fn record_failed_auth(db: &Db, user_id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query("UPDATE users SET failed_auth_count = failed_auth_count + 1, failed_auth_at = $2 WHERE id = $1")
        .bind(user_id)
        .bind(super::now_us())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Clears the failure count after a successful login.
pub async fn record_successful_auth(db: &Db, user: &User) -> Result<(), Error> {
    if user.failed_auth_count == 0 {
        return Ok(()); // nothing to write on the hot path
    }
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query("UPDATE users SET failed_auth_count = 0, failed_auth_at = NULL WHERE id = $1")
        .bind(&user.id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}
