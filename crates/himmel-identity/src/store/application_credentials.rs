//! Application credentials and the access rules they carry. The secret is
//! kept only as an Argon2 hash; roles and access rules are JSON lists on
//! the credential (`[{"id", "name"}]`, `[{"id", "service", "path",
//! "method"}]`), and each user's access rules also live in `access_rules`
//! so they can be listed and reused across credentials.

use himmel_core::time::from_unix_micros;
use himmel_core::Error;
use himmel_db::{AnyRow, Db};
use serde_json::{json, Value};

use super::{i, opt_i, s};
use crate::db_err;

#[derive(Debug, Clone)]
pub struct AppCred {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub project_id: String,
    pub description: String,
    pub secret_hash: String,
    pub expires_at: Option<i64>,
    pub unrestricted: bool,
    /// `[{"id", "name"}]`
    pub roles: Value,
    /// `[{"id", "service", "path", "method"}]`
    pub access_rules: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub id: String,
    pub user_id: String,
    pub service: String,
    pub path: String,
    pub method: String,
}

impl AppCred {
    fn from_row(row: &AnyRow) -> AppCred {
        let list = |col: &str| serde_json::from_str(&s(row, col)).unwrap_or_else(|_| json!([]));
        AppCred {
            id: s(row, "id"),
            name: s(row, "name"),
            user_id: s(row, "user_id"),
            project_id: s(row, "project_id"),
            description: s(row, "description"),
            secret_hash: s(row, "secret_hash"),
            expires_at: opt_i(row, "expires_at"),
            unrestricted: i(row, "unrestricted") != 0,
            roles: list("roles"),
            access_rules: list("access_rules"),
        }
    }

    pub fn is_expired(&self, now_us: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now_us)
    }

    pub fn to_json(&self, base: &str) -> Value {
        let roles: Vec<Value> = self
            .roles
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| json!({"id": r["id"], "name": r["name"], "domain_id": null}))
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "user_id": self.user_id,
            "project_id": self.project_id,
            "expires_at": self.expires_at.map(|e| naive_micro(from_unix_micros(e))),
            "unrestricted": self.unrestricted,
            "roles": roles,
            "access_rules": self.access_rules,
            "system": null,
            "links": {"self": format!(
                "{base}/v3/users/{}/application_credentials/{}", self.user_id, self.id
            )},
        })
    }
}

impl AccessRule {
    fn from_row(row: &AnyRow) -> AccessRule {
        AccessRule {
            id: s(row, "id"),
            user_id: s(row, "user_id"),
            service: s(row, "service"),
            path: s(row, "path"),
            method: s(row, "method"),
        }
    }

    /// The rule as an application credential carries it.
    pub fn brief(&self) -> Value {
        json!({"id": self.id, "service": self.service, "path": self.path, "method": self.method})
    }

    pub fn to_json(&self, base: &str) -> Value {
        let mut v = self.brief();
        v["links"] = json!({"self": format!(
            "{base}/v3/users/{}/access_rules/{}", self.user_id, self.id
        )});
        v
    }
}

/// Stores a new credential and the access rules it introduces, together.
pub async fn create(db: &Db, cred: &AppCred, new_rules: &[AccessRule]) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for r in new_rules {
        sqlx::query(
            "INSERT INTO access_rules (id, user_id, service, path, method) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.id)
        .bind(&r.user_id)
        .bind(&r.service)
        .bind(&r.path)
        .bind(&r.method)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    sqlx::query(
        "INSERT INTO application_credentials (id, name, user_id, project_id, description, secret_hash, \
         expires_at, unrestricted, roles, access_rules, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&cred.id)
    .bind(&cred.name)
    .bind(&cred.user_id)
    .bind(&cred.project_id)
    .bind(&cred.description)
    .bind(&cred.secret_hash)
    .bind(cred.expires_at)
    .bind(himmel_db::b(cred.unrestricted))
    .bind(cred.roles.to_string())
    .bind(cred.access_rules.to_string())
    .bind(super::now_us())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if himmel_db::is_unique_violation(&e) {
            Error::Conflict(format!(
                "Conflict occurred attempting to store application_credential - Duplicate entry found with name {}.",
                cred.name
            ))
        } else {
            db_err(e)
        }
    })?;
    tx.commit().await.map_err(db_err)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<AppCred>, Error> {
    let row = sqlx::query("SELECT * FROM application_credentials WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(AppCred::from_row))
}

pub async fn get_by_name(db: &Db, user_id: &str, name: &str) -> Result<Option<AppCred>, Error> {
    let row = sqlx::query("SELECT * FROM application_credentials WHERE user_id = $1 AND name = $2")
        .bind(user_id)
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(AppCred::from_row))
}

/// True while the credential exists (tokens issued through it check this).
pub async fn exists(db: &Db, id: &str) -> Result<bool, Error> {
    let row = sqlx::query("SELECT id FROM application_credentials WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.is_some())
}

pub async fn list(db: &Db, user_id: &str, name: Option<&str>) -> Result<Vec<AppCred>, Error> {
    let rows = match name {
        Some(n) => sqlx::query(
            "SELECT * FROM application_credentials WHERE user_id = $1 AND name = $2 ORDER BY created_at, id",
        )
        .bind(user_id)
        .bind(n),
        None => sqlx::query(
            "SELECT * FROM application_credentials WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user_id),
    }
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(AppCred::from_row).collect())
}

pub async fn delete(db: &Db, id: &str) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query("DELETE FROM application_credentials WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

pub async fn access_rules(db: &Db, user_id: &str) -> Result<Vec<AccessRule>, Error> {
    let rows = sqlx::query(
        "SELECT * FROM access_rules WHERE user_id = $1 ORDER BY service, path, method, id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(AccessRule::from_row).collect())
}

pub async fn access_rule(db: &Db, id: &str) -> Result<Option<AccessRule>, Error> {
    let row = sqlx::query("SELECT * FROM access_rules WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(AccessRule::from_row))
}

/// Deletes an access rule no application credential of its user uses.
pub async fn delete_access_rule(db: &Db, rule: &AccessRule) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    // Checked inside the write transaction, so no credential can start
    // using the rule between the check and the delete.
    let in_use = sqlx::query("SELECT access_rules FROM application_credentials WHERE user_id = $1")
        .bind(&rule.user_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?
        .iter()
        .any(|row| {
            serde_json::from_str::<Vec<Value>>(&s(row, "access_rules"))
                .unwrap_or_default()
                .iter()
                .any(|r| r["id"] == rule.id.as_str())
        });
    if in_use {
        return Err(Error::Forbidden(format!(
            "Access rule {} is in use by an application credential.",
            rule.id
        )));
    }
    sqlx::query("DELETE FROM access_rules WHERE id = $1")
        .bind(&rule.id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Keystone shows an application credential's expiry without a zone
/// designator (`2026-01-01T00:00:00.000000`); clients compare the strings.
fn naive_micro(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}
