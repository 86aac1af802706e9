//! Projects.

use himmel_core::Error;
use himmel_db::{AnyRow, Db};
use serde_json::{json, Value};

use super::{json as json_col, opt_s, s};
use crate::db_err;

#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub parent_id: Option<String>,
    pub description: String,
    pub enabled: bool,
    pub is_domain: bool,
    pub extra: Value,
}

impl Project {
    pub fn from_row(row: &AnyRow) -> Project {
        Project {
            id: s(row, "id"),
            name: s(row, "name"),
            domain_id: s(row, "domain_id"),
            parent_id: opt_s(row, "parent_id"),
            description: s(row, "description"),
            enabled: himmel_db::get_bool(row, "enabled"),
            is_domain: himmel_db::get_bool(row, "is_domain"),
            extra: json_col(row, "extra"),
        }
    }

    /// The project as the API shows it; `tags` are loaded separately.
    pub fn to_json(&self, tags: &[String]) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "domain_id": self.domain_id,
            // Keystone shows a top-level project's parent as its domain.
            "parent_id": self.parent_id.clone().unwrap_or_else(|| self.domain_id.clone()),
            "description": self.description,
            "enabled": self.enabled,
            "is_domain": self.is_domain,
            "tags": tags,
            "options": {},
            "links": {"self": format!("/v3/projects/{}", self.id)},
        });
        super::domains::merge_extra(&mut v, &self.extra);
        v
    }
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Project>, Error> {
    let row = sqlx::query("SELECT * FROM projects WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Project::from_row))
}

pub async fn get_by_name(db: &Db, domain_id: &str, name: &str) -> Result<Option<Project>, Error> {
    let row = sqlx::query("SELECT * FROM projects WHERE domain_id = $1 AND name = $2")
        .bind(domain_id)
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Project::from_row))
}

/// The project's ancestors, nearest first.
pub async fn ancestors(db: &Db, project: &Project) -> Result<Vec<Project>, Error> {
    let mut out = Vec::new();
    let mut next = project.parent_id.clone();
    while let Some(id) = next {
        if out.len() > 64 {
            break; // a hierarchy this deep is a cycle; stop rather than spin
        }
        match get(db, &id).await? {
            Some(p) => {
                next = p.parent_id.clone();
                out.push(p);
            }
            None => break,
        }
    }
    Ok(out)
}

pub async fn tags(db: &Db, project_id: &str) -> Result<Vec<String>, Error> {
    let rows = sqlx::query("SELECT name FROM project_tags WHERE project_id = $1 ORDER BY name")
        .bind(project_id)
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    Ok(rows.iter().map(|r| s(r, "name")).collect())
}
