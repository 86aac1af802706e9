//! Roles (global and domain-specific) and the implied-role graph.

use std::collections::{BTreeMap, BTreeSet};

use himmel_core::Error;
use himmel_db::{AnyRow, Db};
use serde_json::{json, Value};

use super::{json as json_col, now_us, s};
use crate::db_err;

#[derive(Debug, Clone)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// `None` for a global role.
    pub domain_id: Option<String>,
    pub description: String,
    pub options: Value,
    pub extra: Value,
}

impl Role {
    pub fn from_row(row: &AnyRow) -> Role {
        let domain_id = s(row, "domain_id");
        Role {
            id: s(row, "id"),
            name: s(row, "name"),
            domain_id: (!domain_id.is_empty()).then_some(domain_id),
            description: s(row, "description"),
            options: json_col(row, "options"),
            extra: json_col(row, "extra"),
        }
    }

    pub fn is_immutable(&self) -> bool {
        self.options.get("immutable").and_then(Value::as_bool) == Some(true)
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "domain_id": self.domain_id,
            "description": self.description,
            "options": self.options,
            "links": {"self": format!("/v3/roles/{}", self.id)},
        });
        super::domains::merge_extra(&mut v, &self.extra);
        v
    }

    /// The short form used inside role inferences.
    pub fn to_ref_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "links": {"self": format!("/v3/roles/{}", self.id)},
        });
        if !self.description.is_empty() {
            v["description"] = self.description.clone().into();
        }
        v
    }
}

/// The columns a create or update writes.
pub struct RoleFields {
    pub name: String,
    pub domain_id: Option<String>,
    pub description: String,
    pub options: Value,
    pub extra: Value,
}

fn conflict(name: &str, domain_id: Option<&str>) -> Error {
    match domain_id {
        Some(d) => Error::Conflict(format!(
            "Conflict occurred attempting to store role - Duplicate entry found with name {name} at domain ID {d}."
        )),
        None => Error::Conflict(format!(
            "Conflict occurred attempting to store role - Duplicate entry found with name {name}."
        )),
    }
}

fn write_err(e: sqlx::Error, name: &str, domain_id: Option<&str>) -> Error {
    if himmel_db::is_unique_violation(&e) {
        conflict(name, domain_id)
    } else {
        db_err(e)
    }
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Role>, Error> {
    let row = sqlx::query("SELECT * FROM roles WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Role::from_row))
}

/// The role, or Keystone's 404.
pub async fn require(db: &Db, id: &str) -> Result<Role, Error> {
    get(db, id)
        .await?
        .ok_or_else(|| Error::not_found("role", id))
}

/// Roles in one domain (`Some`) or the global ones (`None`), by name.
pub async fn list(
    db: &Db,
    domain_id: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<Role>, Error> {
    let rows = sqlx::query(
        "SELECT * FROM roles WHERE domain_id = $1 AND ($2 = '' OR name = $2) ORDER BY name, id",
    )
    .bind(domain_id.unwrap_or(""))
    .bind(name.unwrap_or(""))
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(Role::from_row).collect())
}

pub async fn all(db: &Db) -> Result<Vec<Role>, Error> {
    let rows = sqlx::query("SELECT * FROM roles")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    Ok(rows.iter().map(Role::from_row).collect())
}

pub async fn create(db: &Db, f: &RoleFields) -> Result<Role, Error> {
    let id = himmel_core::ids::new_id();
    let now = now_us();
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO roles (id, name, domain_id, description, options, extra, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&id)
    .bind(&f.name)
    .bind(f.domain_id.as_deref().unwrap_or(""))
    .bind(&f.description)
    .bind(f.options.to_string())
    .bind(f.extra.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| write_err(e, &f.name, f.domain_id.as_deref()))?;
    tx.commit().await.map_err(db_err)?;
    Ok(Role {
        id,
        name: f.name.clone(),
        domain_id: f.domain_id.clone(),
        description: f.description.clone(),
        options: f.options.clone(),
        extra: f.extra.clone(),
    })
}

pub async fn update(db: &Db, id: &str, f: &RoleFields) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "UPDATE roles SET name = $2, description = $3, options = $4, extra = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(&f.name)
    .bind(&f.description)
    .bind(f.options.to_string())
    .bind(f.extra.to_string())
    .bind(now_us())
    .execute(&mut **tx)
    .await
    .map_err(|e| write_err(e, &f.name, f.domain_id.as_deref()))?;
    tx.commit().await.map_err(db_err)
}

/// Deletes the role with its assignments and implications.
pub async fn delete(db: &Db, id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for sql in [
        "DELETE FROM role_assignments WHERE role_id = $1",
        "DELETE FROM implied_roles WHERE prior_role_id = $1 OR implied_role_id = $1",
        "DELETE FROM roles WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

/// Every implication as prior -> implied ids.
pub async fn implications(db: &Db) -> Result<BTreeMap<String, BTreeSet<String>>, Error> {
    let rows = sqlx::query("SELECT prior_role_id, implied_role_id FROM implied_roles")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        out.entry(s(r, "prior_role_id"))
            .or_default()
            .insert(s(r, "implied_role_id"));
    }
    Ok(out)
}

/// Every role reachable from `start` through `graph` (excluding `start`
/// unless a cycle leads back to it).
pub fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&String> = graph.get(start).into_iter().flatten().collect();
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) {
            stack.extend(graph.get(id).into_iter().flatten());
        }
    }
    seen
}

/// Roles that imply `role_id`, directly or through others.
pub fn implied_by(graph: &BTreeMap<String, BTreeSet<String>>, role_id: &str) -> BTreeSet<String> {
    let mut reverse: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (prior, implied) in graph {
        for i in implied {
            reverse.entry(i.clone()).or_default().insert(prior.clone());
        }
    }
    reachable(&reverse, role_id)
}

pub async fn implication_exists(db: &Db, prior: &str, implied: &str) -> Result<bool, Error> {
    let row = sqlx::query(
        "SELECT prior_role_id FROM implied_roles WHERE prior_role_id = $1 AND implied_role_id = $2",
    )
    .bind(prior)
    .bind(implied)
    .fetch_optional(db.pool())
    .await
    .map_err(db_err)?;
    Ok(row.is_some())
}

/// Adds `prior` implies `implied`; already present is fine.
pub async fn add_implication(db: &Db, prior: &str, implied: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(prior)
    .bind(implied)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

pub async fn delete_implication(db: &Db, prior: &str, implied: &str) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done =
        sqlx::query("DELETE FROM implied_roles WHERE prior_role_id = $1 AND implied_role_id = $2")
            .bind(prior)
            .bind(implied)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

/// True when holding `role` gives one of the global roles named in
/// `names` (it is one, or implies one).
pub async fn confers_any(db: &Db, role: &Role, names: &[&str]) -> Result<bool, Error> {
    let named = |r: &Role| r.domain_id.is_none() && names.contains(&r.name.as_str());
    if named(role) {
        return Ok(true);
    }
    let reached = reachable(&implications(db).await?, &role.id);
    if reached.is_empty() {
        return Ok(false);
    }
    Ok(all(db)
        .await?
        .iter()
        .any(|r| named(r) && reached.contains(&r.id)))
}
