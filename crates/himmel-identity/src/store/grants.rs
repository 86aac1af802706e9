//! Role grants as stored: one row per (actor, target, role, inherited).

use std::collections::{BTreeSet, HashMap};

use himmel_core::Error;
use himmel_db::{AnyRow, Db};

use super::{i, s};
use crate::db_err;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActorType {
    User,
    Group,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::Group => "group",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetType {
    Project,
    Domain,
    System,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Project => "project",
            TargetType::Domain => "domain",
            TargetType::System => "system",
        }
    }
}

/// The target id stored for system grants.
pub const SYSTEM_ALL: &str = "all";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub actor_type: ActorType,
    pub actor_id: String,
    pub target_type: TargetType,
    pub target_id: String,
    pub role_id: String,
    pub inherited: bool,
}

impl Grant {
    fn from_row(r: &AnyRow) -> Option<Grant> {
        let actor_type = match s(r, "actor_type").as_str() {
            "user" => ActorType::User,
            "group" => ActorType::Group,
            _ => return None,
        };
        let target_type = match s(r, "target_type").as_str() {
            "project" => TargetType::Project,
            "domain" => TargetType::Domain,
            "system" => TargetType::System,
            _ => return None,
        };
        Some(Grant {
            actor_type,
            actor_id: s(r, "actor_id"),
            target_type,
            target_id: s(r, "target_id"),
            role_id: s(r, "role_id"),
            inherited: i(r, "inherited") != 0,
        })
    }

    /// The grant's own URL, as `links.assignment` shows it.
    pub fn path(&self) -> String {
        let target = match self.target_type {
            TargetType::System => "/system".to_string(),
            t => format!("/{}s/{}", t.as_str(), self.target_id),
        };
        let path = format!(
            "{target}/{}s/{}/roles/{}",
            self.actor_type.as_str(),
            self.actor_id,
            self.role_id
        );
        if self.inherited {
            format!("/v3/OS-INHERIT{path}/inherited_to_projects")
        } else {
            format!("/v3{path}")
        }
    }
}

/// Which grants to list; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub actor: Option<(ActorType, &'a str)>,
    pub target: Option<(TargetType, &'a str)>,
    pub role_id: Option<&'a str>,
    pub inherited: Option<bool>,
}

pub async fn list(db: &Db, f: &Filter<'_>) -> Result<Vec<Grant>, Error> {
    let rows = sqlx::query(
        "SELECT actor_type, actor_id, target_type, target_id, role_id, inherited FROM role_assignments \
         WHERE ($1 = '' OR actor_type = $1) AND ($2 = '' OR actor_id = $2) \
           AND ($3 = '' OR target_type = $3) AND ($4 = '' OR target_id = $4) \
           AND ($5 = '' OR role_id = $5) AND ($6 < 0 OR inherited = $6) \
         ORDER BY actor_type, actor_id, target_type, target_id, role_id, inherited",
    )
    .bind(f.actor.map(|a| a.0.as_str()).unwrap_or(""))
    .bind(f.actor.map(|a| a.1).unwrap_or(""))
    .bind(f.target.map(|t| t.0.as_str()).unwrap_or(""))
    .bind(f.target.map(|t| t.1).unwrap_or(""))
    .bind(f.role_id.unwrap_or(""))
    .bind(f.inherited.map(i64::from).unwrap_or(-1))
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().filter_map(Grant::from_row).collect())
}

pub async fn exists(db: &Db, g: &Grant) -> Result<bool, Error> {
    let row = sqlx::query(
        "SELECT role_id FROM role_assignments WHERE actor_type = $1 AND actor_id = $2 \
         AND target_type = $3 AND target_id = $4 AND role_id = $5 AND inherited = $6",
    )
    .bind(g.actor_type.as_str())
    .bind(&g.actor_id)
    .bind(g.target_type.as_str())
    .bind(&g.target_id)
    .bind(&g.role_id)
    .bind(i64::from(g.inherited))
    .fetch_optional(db.pool())
    .await
    .map_err(db_err)?;
    Ok(row.is_some())
}

/// Stores the grant; granting twice is not an error (as in Keystone).
pub async fn create(db: &Db, g: &Grant) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO role_assignments (actor_type, actor_id, target_type, target_id, role_id, inherited) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(g.actor_type.as_str())
    .bind(&g.actor_id)
    .bind(g.target_type.as_str())
    .bind(&g.target_id)
    .bind(&g.role_id)
    .bind(i64::from(g.inherited))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Removes the grant; false when there was none.
pub async fn delete(db: &Db, g: &Grant) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query(
        "DELETE FROM role_assignments WHERE actor_type = $1 AND actor_id = $2 \
         AND target_type = $3 AND target_id = $4 AND role_id = $5 AND inherited = $6",
    )
    .bind(g.actor_type.as_str())
    .bind(&g.actor_id)
    .bind(g.target_type.as_str())
    .bind(&g.target_id)
    .bind(&g.role_id)
    .bind(i64::from(g.inherited))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

/// A group's domain, or `None` when there is no such group.
pub async fn group_domain(db: &Db, group_id: &str) -> Result<Option<String>, Error> {
    let row = sqlx::query("SELECT domain_id FROM groups WHERE id = $1")
        .bind(group_id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(|r| s(r, "domain_id")))
}

pub async fn group_members(db: &Db, group_id: &str) -> Result<Vec<String>, Error> {
    let rows =
        sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
            .bind(group_id)
            .fetch_all(db.pool())
            .await
            .map_err(db_err)?;
    Ok(rows.iter().map(|r| s(r, "user_id")).collect())
}

pub async fn groups_of_user(db: &Db, user_id: &str) -> Result<BTreeSet<String>, Error> {
    let rows = sqlx::query("SELECT group_id FROM group_members WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    Ok(rows.iter().map(|r| s(r, "group_id")).collect())
}

/// Users who hold the grant: its user, or every member of its group.
pub async fn holders(db: &Db, g: &Grant) -> Result<Vec<String>, Error> {
    match g.actor_type {
        ActorType::User => Ok(vec![g.actor_id.clone()]),
        ActorType::Group => group_members(db, &g.actor_id).await,
    }
}

/// Every project, for expanding inherited grants and subtrees.
pub async fn all_projects(db: &Db) -> Result<Vec<super::projects::Project>, Error> {
    let rows = sqlx::query("SELECT * FROM projects")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    Ok(rows
        .iter()
        .map(super::projects::Project::from_row)
        .collect())
}

/// Names and domains of users, groups and domains, for `include_names`.
#[derive(Default)]
pub struct Names {
    /// id -> (name, domain_id)
    pub users: HashMap<String, (String, String)>,
    pub groups: HashMap<String, (String, String)>,
    /// id -> name
    pub domains: HashMap<String, String>,
}

pub async fn names(db: &Db) -> Result<Names, Error> {
    let mut out = Names::default();
    for (table, map) in [("users", &mut out.users), ("groups", &mut out.groups)] {
        let rows = sqlx::query(&format!("SELECT id, name, domain_id FROM {table}"))
            .fetch_all(db.pool())
            .await
            .map_err(db_err)?;
        map.extend(
            rows.iter()
                .map(|r| (s(r, "id"), (s(r, "name"), s(r, "domain_id")))),
        );
    }
    let rows = sqlx::query("SELECT id, name FROM domains")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    out.domains
        .extend(rows.iter().map(|r| (s(r, "id"), s(r, "name"))));
    Ok(out)
}
