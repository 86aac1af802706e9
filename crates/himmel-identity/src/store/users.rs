//! Users.

use himmel_core::Error;
use himmel_db::{AnyRow, Db, WriteTx};
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

/// Every user, or the users of one domain.
pub async fn list(db: &Db, domain_id: Option<&str>) -> Result<Vec<User>, Error> {
    let rows = match domain_id {
        Some(d) => {
            sqlx::query("SELECT * FROM users WHERE domain_id = $1 ORDER BY name")
                .bind(d)
                .fetch_all(db.pool())
                .await
        }
        None => {
            sqlx::query("SELECT * FROM users ORDER BY name")
                .fetch_all(db.pool())
                .await
        }
    }
    .map_err(db_err)?;
    Ok(rows.iter().map(User::from_row).collect())
}

fn conflict(e: sqlx::Error, u: &User) -> Error {
    if himmel_db::is_unique_violation(&e) {
        Error::Conflict(format!(
            "Conflict occurred attempting to store user - Duplicate entry found with name {} at \
             domain ID {}.",
            u.name, u.domain_id
        ))
    } else {
        db_err(e)
    }
}

/// Remembers a password hash; keeps the newest `keep` of the user's.
async fn remember_password(
    tx: &mut WriteTx,
    user_id: &str,
    hash: &str,
    at: i64,
    keep: u32,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, created_at) VALUES ($1, $2, $3)",
    )
    .bind(user_id)
    .bind(hash)
    .bind(at)
    .execute(&mut ***tx)
    .await
    .map_err(db_err)?;
    let rows = sqlx::query(
        "SELECT created_at FROM password_history WHERE user_id = $1 ORDER BY created_at DESC",
    )
    .bind(user_id)
    .fetch_all(&mut ***tx)
    .await
    .map_err(db_err)?;
    if let Some(oldest_kept) = rows.get(keep.max(1) as usize - 1) {
        sqlx::query("DELETE FROM password_history WHERE user_id = $1 AND created_at < $2")
            .bind(user_id)
            .bind(i(oldest_kept, "created_at"))
            .execute(&mut ***tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Creates a user; `history` is how many password hashes to keep.
pub async fn create(db: &Db, u: &User, history: u32) -> Result<(), Error> {
    let now = super::now_us();
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO users (id, name, domain_id, default_project_id, description, email, enabled, \
         password_hash, password_created_at, password_expires_at, options, extra, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(&u.id)
    .bind(&u.name)
    .bind(&u.domain_id)
    .bind(&u.default_project_id)
    .bind(&u.description)
    .bind(&u.email)
    .bind(himmel_db::b(u.enabled))
    .bind(&u.password_hash)
    .bind(u.password_created_at)
    .bind(u.password_expires_at)
    .bind(u.options.to_string())
    .bind(u.extra.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, u))?;
    if let Some(hash) = &u.password_hash {
        remember_password(&mut tx, &u.id, hash, now, history).await?;
    }
    tx.commit().await.map_err(db_err)
}

/// Saves a user's attributes (not the password: see [`set_password`]).
pub async fn update(db: &Db, u: &User) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "UPDATE users SET name = $2, default_project_id = $3, description = $4, email = $5, \
         enabled = $6, options = $7, extra = $8, password_expires_at = $9, updated_at = $10 \
         WHERE id = $1",
    )
    .bind(&u.id)
    .bind(&u.name)
    .bind(&u.default_project_id)
    .bind(&u.description)
    .bind(&u.email)
    .bind(himmel_db::b(u.enabled))
    .bind(u.options.to_string())
    .bind(u.extra.to_string())
    .bind(u.password_expires_at)
    .bind(super::now_us())
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, u))?;
    tx.commit().await.map_err(db_err)
}

/// Sets a new password hash, clears failed logins and keeps the history.
pub async fn set_password(
    db: &Db,
    user_id: &str,
    hash: &str,
    expires_at: Option<i64>,
    history: u32,
) -> Result<(), Error> {
    let now = super::now_us();
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "UPDATE users SET password_hash = $2, password_created_at = $3, password_expires_at = $4, \
         failed_auth_count = 0, failed_auth_at = NULL, updated_at = $3 WHERE id = $1",
    )
    .bind(user_id)
    .bind(hash)
    .bind(now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    remember_password(&mut tx, user_id, hash, now, history).await?;
    tx.commit().await.map_err(db_err)
}

/// The user's newest `n` password hashes, the current one included.
pub async fn recent_passwords(db: &Db, user_id: &str, n: u32) -> Result<Vec<String>, Error> {
    let rows = sqlx::query(
        "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY created_at DESC",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows
        .iter()
        .take(n as usize)
        .map(|r| s(r, "password_hash"))
        .collect())
}

/// Deletes a user with the role assignments it holds; memberships,
/// credentials and password history go with it.
pub async fn delete(db: &Db, user_id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for step in [
        "DELETE FROM role_assignments WHERE actor_type = 'user' AND actor_id = $1",
        "DELETE FROM group_members WHERE user_id = $1",
        "DELETE FROM password_history WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        sqlx::query(step)
            .bind(user_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}
