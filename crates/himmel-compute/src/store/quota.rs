//! Compute quotas: Nova's defaults, per-project overrides, and the usage
//! they are checked against. -1 means unlimited.

use std::collections::BTreeMap;

use himmel_core::Error;
use himmel_db::Row;
use sqlx::AnyConnection;

use super::db_err;
use crate::model::{Keypair, Server};
use crate::scheduler::model::ServerGroup;

/// Nova's quota resources (microversion 2.1 shape) and their defaults.
pub const DEFAULTS: &[(&str, i64)] = &[
    ("instances", 10),
    ("cores", 20),
    ("ram", 51200),
    ("key_pairs", 100),
    ("metadata_items", 128),
    ("injected_files", 5),
    ("injected_file_content_bytes", 10240),
    ("injected_file_path_bytes", 255),
    ("server_groups", 10),
    ("server_group_members", 10),
    ("fixed_ips", -1),
    ("floating_ips", 10),
    ("security_groups", 10),
    ("security_group_rules", 20),
];

pub fn is_resource(name: &str) -> bool {
    DEFAULTS.iter().any(|(n, _)| *n == name)
}

pub fn defaults() -> BTreeMap<String, i64> {
    DEFAULTS.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

/// The project's limits: defaults with its overrides applied.
pub async fn limits(
    conn: &mut AnyConnection,
    project_id: &str,
) -> Result<BTreeMap<String, i64>, Error> {
    let mut out = defaults();
    let rows = sqlx::query("SELECT resource, hard_limit FROM compute_quotas WHERE project_id = $1")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        let name: String = row.try_get("resource").map_err(db_err)?;
        let limit: i64 = row.try_get("hard_limit").map_err(db_err)?;
        out.insert(name, limit);
    }
    Ok(out)
}

pub async fn set(
    conn: &mut AnyConnection,
    project_id: &str,
    resource: &str,
    limit: i64,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM compute_quotas WHERE project_id = $1 AND resource = $2")
        .bind(project_id)
        .bind(resource)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO compute_quotas (project_id, resource, hard_limit) VALUES ($1, $2, $3)",
    )
    .bind(project_id)
    .bind(resource)
    .bind(limit)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub async fn reset(conn: &mut AnyConnection, project_id: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM compute_quotas WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// What a project uses now: instances, cores and ram of its servers
/// (a resizing server counts its larger flavor), its server groups, and
/// `user_id`'s keypairs.
pub async fn usage(
    conn: &mut AnyConnection,
    project_id: &str,
    user_id: &str,
) -> Result<BTreeMap<String, i64>, Error> {
    let servers: Vec<Server> = super::list(conn, Some(project_id)).await?;
    let mut out: BTreeMap<String, i64> = DEFAULTS.iter().map(|(n, _)| (n.to_string(), 0)).collect();
    for s in &servers {
        let (mut cores, mut ram) = (s.flavor.vcpus as i64, s.flavor.ram as i64);
        if let Some(old) = &s.old_flavor {
            cores = cores.max(old.vcpus as i64);
            ram = ram.max(old.ram as i64);
        }
        *out.entry("instances".into()).or_default() += 1;
        *out.entry("cores".into()).or_default() += cores;
        *out.entry("ram".into()).or_default() += ram;
    }
    let groups: Vec<ServerGroup> = super::list(conn, Some(project_id)).await?;
    out.insert("server_groups".into(), groups.len() as i64);
    let keypairs: Vec<Keypair> = super::list_for_user(conn, user_id).await?;
    out.insert("key_pairs".into(), keypairs.len() as i64);
    Ok(out)
}

/// Refuses (403, as Nova) when adding `wanted` would pass a limit.
pub async fn check(
    conn: &mut AnyConnection,
    project_id: &str,
    user_id: &str,
    wanted: &[(&str, i64)],
) -> Result<(), Error> {
    super::lock(conn, &format!("quota/{project_id}")).await?;
    let limits = limits(conn, project_id).await?;
    let used = usage(conn, project_id, user_id).await?;
    let mut over = Vec::new();
    for (resource, adding) in wanted {
        let limit = limits.get(*resource).copied().unwrap_or(-1);
        let in_use = used.get(*resource).copied().unwrap_or(0);
        if limit >= 0 && in_use + adding > limit {
            over.push(format!(
                "{resource}: Requested {adding}, but already used {in_use} of {limit} {resource}"
            ));
        }
    }
    if over.is_empty() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "Quota exceeded for {}",
            over.join(", ")
        )))
    }
}
