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
