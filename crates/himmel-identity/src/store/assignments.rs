//! Effective roles: what a user holds on a project, a domain or the system,
//! through direct and group assignments, inheritance down the project tree
//! and implied roles.

use std::collections::{BTreeMap, BTreeSet};

use himmel_core::Error;
use himmel_db::Db;

use super::projects::{self, Project};
use super::{i, s};
use crate::db_err;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleRef {
    pub id: String,
    pub name: String,
}

/// Where roles are held.
pub enum On<'a> {
    Project(&'a Project),
    Domain(&'a str),
    System,
}

struct Assignment {
    target_type: String,
    target_id: String,
    role_id: String,
    inherited: bool,
}

async fn assignments_of_user(db: &Db, user_id: &str) -> Result<Vec<Assignment>, Error> {
    let rows = sqlx::query(
        "SELECT target_type, target_id, role_id, inherited FROM role_assignments \
         WHERE (actor_type = 'user' AND actor_id = $1) \
            OR (actor_type = 'group' AND actor_id IN (SELECT group_id FROM group_members WHERE user_id = $1))",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows
        .iter()
        .map(|r| Assignment {
            target_type: s(r, "target_type"),
            target_id: s(r, "target_id"),
            role_id: s(r, "role_id"),
            inherited: i(r, "inherited") != 0,
        })
        .collect())
}

/// Role ids directly assigned (before implication) to the user on `on`.
async fn direct_role_ids(db: &Db, user_id: &str, on: &On<'_>) -> Result<BTreeSet<String>, Error> {
    let all = assignments_of_user(db, user_id).await?;
    let mut out = BTreeSet::new();
    match on {
        On::System => {
            out.extend(
                all.iter()
                    .filter(|a| a.target_type == "system")
                    .map(|a| a.role_id.clone()),
            );
        }
        On::Domain(id) => {
            out.extend(
                all.iter()
                    .filter(|a| a.target_type == "domain" && a.target_id == *id && !a.inherited)
                    .map(|a| a.role_id.clone()),
            );
        }
        On::Project(p) => {
            out.extend(
                all.iter()
                    .filter(|a| a.target_type == "project" && a.target_id == p.id && !a.inherited)
                    .map(|a| a.role_id.clone()),
            );
            if all.iter().any(|a| a.inherited) {
                let ancestors = projects::ancestors(db, p).await?;
                out.extend(
                    all.iter()
                        .filter(|a| {
                            a.inherited
                                && ((a.target_type == "domain" && a.target_id == p.domain_id)
                                    || (a.target_type == "project"
                                        && ancestors.iter().any(|anc| anc.id == a.target_id)))
                        })
                        .map(|a| a.role_id.clone()),
                );
            }
        }
    }
    Ok(out)
}

/// The user's effective roles on `on`, implied roles included and
/// domain-specific roles replaced by what they imply (as Keystone does).
pub async fn effective_roles(db: &Db, user_id: &str, on: &On<'_>) -> Result<Vec<RoleRef>, Error> {
    let direct = direct_role_ids(db, user_id, on).await?;
    if direct.is_empty() {
        return Ok(vec![]);
    }
    expand(db, direct).await
}

/// Expands role ids through the implied-role graph and names them.
pub async fn expand(db: &Db, role_ids: BTreeSet<String>) -> Result<Vec<RoleRef>, Error> {
    let implied_rows = sqlx::query("SELECT prior_role_id, implied_role_id FROM implied_roles")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    let mut implies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &implied_rows {
        implies
            .entry(s(r, "prior_role_id"))
            .or_default()
            .push(s(r, "implied_role_id"));
    }
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = role_ids.into_iter().collect();
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) {
            stack.extend(implies.get(&id).into_iter().flatten().cloned());
        }
    }
    let roles = sqlx::query("SELECT id, name, domain_id FROM roles")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    let mut out: Vec<RoleRef> = roles
        .iter()
        .filter(|r| seen.contains(&s(r, "id")) && s(r, "domain_id").is_empty())
        .map(|r| RoleRef {
            id: s(r, "id"),
            name: s(r, "name"),
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Projects the user has any role on (directly, through groups or by
/// inheritance), as `/v3/auth/projects` lists them.
pub async fn projects_for_user(db: &Db, user_id: &str) -> Result<Vec<Project>, Error> {
    let all = assignments_of_user(db, user_id).await?;
    let mut ids: BTreeSet<String> = all
        .iter()
        .filter(|a| a.target_type == "project" && !a.inherited)
        .map(|a| a.target_id.clone())
        .collect();
    let inherited_domains: Vec<&str> = all
        .iter()
        .filter(|a| a.inherited && a.target_type == "domain")
        .map(|a| a.target_id.as_str())
        .collect();
    let inherited_projects: Vec<&str> = all
        .iter()
        .filter(|a| a.inherited && a.target_type == "project")
        .map(|a| a.target_id.as_str())
        .collect();
    if !inherited_domains.is_empty() || !inherited_projects.is_empty() {
        let rows = sqlx::query("SELECT * FROM projects")
            .fetch_all(db.pool())
            .await
            .map_err(db_err)?;
        let every: Vec<Project> = rows.iter().map(Project::from_row).collect();
        for p in &every {
            if inherited_domains.contains(&p.domain_id.as_str()) {
                ids.insert(p.id.clone());
            }
            let mut parent = p.parent_id.clone();
            let mut depth = 0;
            while let (Some(pid), true) = (parent, depth < 64) {
                if inherited_projects.contains(&pid.as_str()) {
                    ids.insert(p.id.clone());
                    break;
                }
                parent = every
                    .iter()
                    .find(|x| x.id == pid)
                    .and_then(|x| x.parent_id.clone());
                depth += 1;
            }
        }
    }
    let mut out = Vec::new();
    for id in ids {
        if let Some(p) = projects::get(db, &id).await? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Domains the user has a role on.
pub async fn domains_for_user(
    db: &Db,
    user_id: &str,
) -> Result<Vec<super::domains::Domain>, Error> {
    let all = assignments_of_user(db, user_id).await?;
    let ids: BTreeSet<String> = all
        .iter()
        .filter(|a| a.target_type == "domain" && !a.inherited)
        .map(|a| a.target_id.clone())
        .collect();
    let mut out = Vec::new();
    for id in ids {
        if let Some(d) = super::domains::get(db, &id).await? {
            out.push(d);
        }
    }
    Ok(out)
}
