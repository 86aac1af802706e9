//! Projects.

use std::collections::HashMap;

use himmel_core::Error;
use himmel_db::{AnyRow, Db, WriteTx};
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

/// Every project, or the projects of one domain.
pub async fn list(db: &Db, domain_id: Option<&str>) -> Result<Vec<Project>, Error> {
    let rows = match domain_id {
        Some(d) => {
            sqlx::query("SELECT * FROM projects WHERE domain_id = $1 ORDER BY name")
                .bind(d)
                .fetch_all(db.pool())
                .await
        }
        None => {
            sqlx::query("SELECT * FROM projects ORDER BY name")
                .fetch_all(db.pool())
                .await
        }
    }
    .map_err(db_err)?;
    Ok(rows.iter().map(Project::from_row).collect())
}

/// Tags of every project, for lists.
pub async fn all_tags(db: &Db) -> Result<HashMap<String, Vec<String>>, Error> {
    let rows = sqlx::query("SELECT project_id, name FROM project_tags ORDER BY name")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in &rows {
        out.entry(s(r, "project_id"))
            .or_default()
            .push(s(r, "name"));
    }
    Ok(out)
}

/// The projects below `project`, breadth first.
pub async fn subtree(db: &Db, project: &Project) -> Result<Vec<Project>, Error> {
    let mut out: Vec<Project> = Vec::new();
    let mut frontier = vec![project.id.clone()];
    while let Some(id) = frontier.pop() {
        if out.len() > 10_000 {
            break; // a cycle, which create never makes; stop rather than spin
        }
        let rows = sqlx::query("SELECT * FROM projects WHERE parent_id = $1 ORDER BY name")
            .bind(&id)
            .fetch_all(db.pool())
            .await
            .map_err(db_err)?;
        for r in &rows {
            let child = Project::from_row(r);
            frontier.push(child.id.clone());
            out.push(child);
        }
    }
    Ok(out)
}

pub async fn has_children(db: &Db, project_id: &str) -> Result<bool, Error> {
    let row = sqlx::query("SELECT id FROM projects WHERE parent_id = $1 LIMIT 1")
        .bind(project_id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.is_some())
}

fn conflict(e: sqlx::Error, p: &Project) -> Error {
    if himmel_db::is_unique_violation(&e) {
        Error::Conflict(format!(
            "Conflict occurred attempting to store project - it is not permitted to have two \
             projects with the same name in the same domain : {}.",
            p.name
        ))
    } else {
        db_err(e)
    }
}

async fn write_tags(tx: &mut WriteTx, project_id: &str, tags: &[String]) -> Result<(), Error> {
    sqlx::query("DELETE FROM project_tags WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut ***tx)
        .await
        .map_err(db_err)?;
    for t in tags {
        sqlx::query("INSERT INTO project_tags (project_id, name) VALUES ($1, $2)")
            .bind(project_id)
            .bind(t)
            .execute(&mut ***tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

pub async fn create(db: &Db, p: &Project, tags: &[String]) -> Result<(), Error> {
    let now = super::now_us();
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO projects (id, name, domain_id, parent_id, description, enabled, is_domain, \
         extra, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $8)",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.domain_id)
    .bind(&p.parent_id)
    .bind(&p.description)
    .bind(himmel_db::b(p.enabled))
    .bind(p.extra.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, p))?;
    write_tags(&mut tx, &p.id, tags).await?;
    tx.commit().await.map_err(db_err)
}

/// Saves a changed project; `tags` replaces the tag set when given.
pub async fn update(db: &Db, p: &Project, tags: Option<&[String]>) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "UPDATE projects SET name = $2, description = $3, enabled = $4, extra = $5, updated_at = $6 \
         WHERE id = $1",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(himmel_db::b(p.enabled))
    .bind(p.extra.to_string())
    .bind(super::now_us())
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, p))?;
    if let Some(tags) = tags {
        write_tags(&mut tx, &p.id, tags).await?;
    }
    tx.commit().await.map_err(db_err)
}

pub async fn set_tags(db: &Db, project_id: &str, tags: &[String]) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    write_tags(&mut tx, project_id, tags).await?;
    tx.commit().await.map_err(db_err)
}

/// Deletes a project with its tags and the role assignments on it.
pub async fn delete(db: &Db, project_id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for step in [
        "DELETE FROM role_assignments WHERE target_type = 'project' AND target_id = $1",
        "DELETE FROM project_tags WHERE project_id = $1",
        "DELETE FROM projects WHERE id = $1",
    ] {
        sqlx::query(step)
            .bind(project_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}
