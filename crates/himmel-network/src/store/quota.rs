//! Quotas: per-project limits on how many of each resource a project may
//! own, checked inside the creating transaction.

use std::collections::BTreeMap;

use himmel_core::Error;
use sqlx::AnyConnection;

use super::db_err;

/// Neutron's default limits; -1 is unlimited.
pub const DEFAULTS: &[(&str, i64)] = &[
    ("network", 100),
    ("subnet", 100),
    ("port", 500),
    ("router", 10),
    ("floatingip", 50),
    ("security_group", 10),
    ("security_group_rule", 100),
];

pub fn is_resource(name: &str) -> bool {
    DEFAULTS.iter().any(|(r, _)| *r == name)
}

pub fn defaults() -> BTreeMap<String, i64> {
    DEFAULTS.iter().map(|(r, n)| (r.to_string(), *n)).collect()
}

/// A project's effective limits.
pub async fn limits(
    conn: &mut AnyConnection,
    project_id: &str,
) -> Result<BTreeMap<String, i64>, Error> {
    let mut out = defaults();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT resource, hard_limit FROM net_quotas WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    for (r, n) in rows {
        if is_resource(&r) {
            out.insert(r, n);
        }
    }
    Ok(out)
}

/// Projects with at least one limit set.
pub async fn projects_with_limits(conn: &mut AnyConnection) -> Result<Vec<String>, Error> {
    sqlx::query_scalar("SELECT DISTINCT project_id FROM net_quotas ORDER BY project_id")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)
}

pub async fn set(
    conn: &mut AnyConnection,
    project_id: &str,
    resource: &str,
    limit: i64,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM net_quotas WHERE project_id = $1 AND resource = $2")
        .bind(project_id)
        .bind(resource)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query("INSERT INTO net_quotas (project_id, resource, hard_limit) VALUES ($1, $2, $3)")
        .bind(project_id)
        .bind(resource)
        .bind(limit)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Back to the defaults.
pub async fn reset(conn: &mut AnyConnection, project_id: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM net_quotas WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Refuses (409 OverQuota) when the project would own more than its limit
/// of `resource` after creating `adding` more.
pub async fn check(
    conn: &mut AnyConnection,
    project_id: &str,
    resource: &str,
    adding: i64,
) -> Result<(), Error> {
    let limit = limits(conn, project_id)
        .await?
        .get(resource)
        .copied()
        .unwrap_or(-1);
    if limit < 0 {
        return Ok(());
    }
    // Queue behind any other transaction creating this resource for this
    // project until it commits, then count what it committed too.
    sqlx::query(
        "INSERT INTO net_quota_locks (project_id, resource) VALUES ($1, $2) \
         ON CONFLICT (project_id, resource) DO UPDATE SET resource = excluded.resource",
    )
    .bind(project_id)
    .bind(resource)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let used = super::count(conn, resource, project_id).await?;
    if used + adding > limit {
        return Err(Error::Conflict(format!(
            "Quota exceeded for resources: ['{resource}']."
        )));
    }
    Ok(())
}
