//! Domains.

use himmel_core::Error;
use himmel_db::{AnyRow, Db};
use serde_json::{json, Value};

use super::{json as json_col, s};
use crate::db_err;

#[derive(Debug, Clone)]
pub struct Domain {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub extra: Value,
}

impl Domain {
    pub fn from_row(row: &AnyRow) -> Domain {
        Domain {
            id: s(row, "id"),
            name: s(row, "name"),
            description: s(row, "description"),
            enabled: himmel_db::get_bool(row, "enabled"),
            extra: json_col(row, "extra"),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "tags": [],
            "options": {},
            "links": {"self": format!("/v3/domains/{}", self.id)},
        });
        merge_extra(&mut v, &self.extra);
        v
    }
}

/// Merges free-form attributes (Keystone keeps unknown fields) into `v`.
pub fn merge_extra(v: &mut Value, extra: &Value) {
    if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in extra {
            obj.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Domain>, Error> {
    let row = sqlx::query("SELECT * FROM domains WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Domain::from_row))
}

pub async fn get_by_name(db: &Db, name: &str) -> Result<Option<Domain>, Error> {
    let row = sqlx::query("SELECT * FROM domains WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Domain::from_row))
}

/// Resolves a `{"id": …}` or `{"name": …}` domain reference.
pub async fn resolve(db: &Db, reference: &Value) -> Result<Domain, Error> {
    let found = if let Some(id) = reference.get("id").and_then(Value::as_str) {
        get(db, id).await?
    } else if let Some(name) = reference.get("name").and_then(Value::as_str) {
        get_by_name(db, name).await?
    } else {
        return Err(Error::BadRequest("A domain needs an id or a name.".into()));
    };
    let label = reference
        .get("id")
        .or(reference.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    found.ok_or_else(|| Error::Unauthorized(format!("Could not find domain: {label}.")))
}

pub async fn list(db: &Db) -> Result<Vec<Domain>, Error> {
    let rows = sqlx::query("SELECT * FROM domains ORDER BY name")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    Ok(rows.iter().map(Domain::from_row).collect())
}

fn conflict(e: sqlx::Error, d: &Domain) -> Error {
    if himmel_db::is_unique_violation(&e) {
        Error::Conflict(format!(
            "Conflict occurred attempting to store domain - Duplicate entry found with name {}.",
            d.name
        ))
    } else {
        db_err(e)
    }
}

pub async fn create(db: &Db, d: &Domain) -> Result<(), Error> {
    let now = super::now_us();
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO domains (id, name, description, enabled, extra, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&d.id)
    .bind(&d.name)
    .bind(&d.description)
    .bind(himmel_db::b(d.enabled))
    .bind(d.extra.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, d))?;
    tx.commit().await.map_err(db_err)
}

pub async fn update(db: &Db, d: &Domain) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "UPDATE domains SET name = $2, description = $3, enabled = $4, extra = $5, updated_at = $6 \
         WHERE id = $1",
    )
    .bind(&d.id)
    .bind(&d.name)
    .bind(&d.description)
    .bind(himmel_db::b(d.enabled))
    .bind(d.extra.to_string())
    .bind(super::now_us())
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, d))?;
    tx.commit().await.map_err(db_err)
}

/// Deletes a domain with everything in it: its projects, users and groups,
/// its domain-specific roles, and every role assignment on or by them.
/// Credentials, memberships and password history go with their users.
pub async fn delete_cascade(db: &Db, domain_id: &str) -> Result<(), Error> {
    const STEPS: &[&str] = &[
        "DELETE FROM role_assignments WHERE target_type = 'project' \
         AND target_id IN (SELECT id FROM projects WHERE domain_id = $1)",
        "DELETE FROM role_assignments WHERE target_type = 'domain' AND target_id = $1",
        "DELETE FROM role_assignments WHERE actor_type = 'user' \
         AND actor_id IN (SELECT id FROM users WHERE domain_id = $1)",
        "DELETE FROM role_assignments WHERE actor_type = 'group' \
         AND actor_id IN (SELECT id FROM groups WHERE domain_id = $1)",
        "DELETE FROM roles WHERE domain_id = $1",
        "DELETE FROM project_tags WHERE project_id IN (SELECT id FROM projects WHERE domain_id = $1)",
        "DELETE FROM projects WHERE domain_id = $1",
        "DELETE FROM group_members WHERE group_id IN (SELECT id FROM groups WHERE domain_id = $1) \
         OR user_id IN (SELECT id FROM users WHERE domain_id = $1)",
        "DELETE FROM groups WHERE domain_id = $1",
        "DELETE FROM users WHERE domain_id = $1",
        "DELETE FROM domains WHERE id = $1",
    ];
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for step in STEPS {
        sqlx::query(step)
            .bind(domain_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}
