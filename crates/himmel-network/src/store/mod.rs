//! Queries. Every resource is a JSON body in `net_resources` with the
//! columns queries need copied beside it (see the migration); these generic
//! functions read and write any [`Resource`]. Writes take a connection that
//! is inside a write transaction; the API layer commits.

pub mod ipam;
pub mod quota;
pub mod segments;

use std::collections::HashMap;

use himmel_core::Error;
use himmel_db::{AnyRow, Db, Row};
use sqlx::AnyConnection;

use crate::model::{self, FloatingIp, Network, Port, Resource, Router, SecurityGroup};
use crate::model::{SecurityGroupRule, Subnet};

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::internal(e)
}

fn decode<R: Resource>(row: &AnyRow) -> Result<R, Error> {
    let body: String = row.try_get("body").map_err(db_err)?;
    serde_json::from_str(&body).map_err(Error::internal)
}

/// Which rows of a kind a caller may read.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Every row (administrators, system readers, the reconciler).
    All,
    /// The project's own rows and rows visible to all.
    Project(String),
}

pub async fn get<R: Resource>(conn: &mut AnyConnection, id: &str) -> Result<Option<R>, Error> {
    let row = sqlx::query("SELECT body FROM net_resources WHERE kind = $1 AND id = $2")
        .bind(R::KIND)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(decode).transpose()
}

/// The rows of a kind with the given ids (missing ids are left out), in one query per
/// few hundred ids rather than one per id.
pub async fn get_many<R: Resource>(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, R>, Error> {
    // Well under every engine's limit on bound parameters.
    const CHUNK: usize = 500;
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT body FROM net_resources WHERE kind = $1 AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(R::KIND);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(db_err)? {
            let r: R = decode(&row)?;
            found.insert(r.meta().id.clone(), r);
        }
    }
    Ok(found)
}

/// Every row of a kind the caller may see, oldest first.
pub async fn list<R: Resource>(
    conn: &mut AnyConnection,
    visibility: &Visibility,
) -> Result<Vec<R>, Error> {
    let rows = match visibility {
        Visibility::All => {
            sqlx::query("SELECT body FROM net_resources WHERE kind = $1 ORDER BY created_at, id")
                .bind(R::KIND)
                .fetch_all(&mut *conn)
                .await
        }
        Visibility::Project(p) => {
            sqlx::query(
                "SELECT body FROM net_resources WHERE kind = $1 \
                 AND (project_id = $2 OR visible_to_all = 1) ORDER BY created_at, id",
            )
            .bind(R::KIND)
            .bind(p)
            .fetch_all(&mut *conn)
            .await
        }
    }
    .map_err(db_err)?;
    rows.iter().map(decode).collect()
}

/// Rows of a kind whose parent (network, security group) is `parent`.
pub async fn children<R: Resource>(
    conn: &mut AnyConnection,
    parent: &str,
) -> Result<Vec<R>, Error> {
    let rows = sqlx::query(
        "SELECT body FROM net_resources WHERE kind = $1 AND parent_id = $2 ORDER BY created_at, id",
    )
    .bind(R::KIND)
    .bind(parent)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(decode).collect()
}

/// (parent, id) of every row of a kind, oldest first.
pub async fn parent_ids(
    conn: &mut AnyConnection,
    kind: &str,
) -> Result<Vec<(String, String)>, Error> {
    sqlx::query_as(
        "SELECT COALESCE(parent_id, ''), id FROM net_resources WHERE kind = $1 ORDER BY created_at, id",
    )
    .bind(kind)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)
}

/// Number of rows of a kind a project owns (for quotas).
pub async fn count(conn: &mut AnyConnection, kind: &str, project_id: &str) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM net_resources WHERE kind = $1 AND project_id = $2")
        .bind(kind)
        .bind(project_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)
}

/// Waits for the named lock (a row of `net_locks`) until the end of the
/// transaction: allocations that look for a free value and then insert it
/// run one after another instead of colliding.
pub async fn lock(conn: &mut AnyConnection, name: &str) -> Result<(), Error> {
    sqlx::query("UPDATE net_locks SET name = name WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Waits for the lock on one resource row until the end of the
/// transaction (addresses of one subnet are allocated one at a time).
pub async fn lock_row(conn: &mut AnyConnection, kind: &str, id: &str) -> Result<(), Error> {
    sqlx::query(
        "UPDATE net_resources SET revision_number = revision_number WHERE kind = $1 AND id = $2",
    )
    .bind(kind)
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Fills in the id, revision and timestamps of a new resource.
pub fn stamp_new(meta: &mut model::Meta) {
    let now = himmel_core::time::iso_seconds(himmel_core::time::now());
    if meta.id.is_empty() {
        meta.id = uuid::Uuid::new_v4().to_string();
    }
    meta.revision_number = 0;
    meta.created_at = now.clone();
    meta.updated_at = now;
}

/// Inserts a new resource. A clash of its unique key is a 409 with
/// `conflict` as the message.
pub async fn insert<R: Resource>(
    conn: &mut AnyConnection,
    r: &R,
    conflict: impl FnOnce() -> String,
) -> Result<(), Error> {
    let body = serde_json::to_string(r).map_err(Error::internal)?;
    let res = sqlx::query(
        "INSERT INTO net_resources (id, kind, project_id, parent_id, visible_to_all, unique_key, \
         revision_number, created_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&r.meta().id)
    .bind(R::KIND)
    .bind(&r.meta().project_id)
    .bind(r.parent_id())
    .bind(himmel_db::b(r.visible_to_all()))
    .bind(r.unique_key())
    .bind(r.meta().revision_number)
    .bind(now_micros())
    .bind(body)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if himmel_db::is_unique_violation(&e) => Err(Error::Conflict(conflict())),
        Err(e) => Err(db_err(e)),
    }
}

fn now_micros() -> i64 {
    himmel_core::time::now().timestamp_micros()
}

/// Writes a changed resource: bumps its revision and `updated_at`. Fails
/// with 409 when someone else changed it since it was read (its revision
/// moved), so concurrent updates never silently overwrite each other.
pub async fn update<R: Resource>(conn: &mut AnyConnection, r: &mut R) -> Result<(), Error> {
    let read_revision = r.meta().revision_number;
    let meta = r.meta_mut();
    meta.revision_number = read_revision + 1;
    meta.updated_at = himmel_core::time::iso_seconds(himmel_core::time::now());
    let body = serde_json::to_string(r).map_err(Error::internal)?;
    let res = sqlx::query(
        "UPDATE net_resources SET body = $1, revision_number = $2, visible_to_all = $3, \
         unique_key = $4 WHERE kind = $5 AND id = $6 AND revision_number = $7",
    )
    .bind(body)
    .bind(r.meta().revision_number)
    .bind(himmel_db::b(r.visible_to_all()))
    .bind(r.unique_key())
    .bind(R::KIND)
    .bind(&r.meta().id)
    .bind(read_revision)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(done) if done.rows_affected() == 1 => Ok(()),
        Ok(_) => Err(Error::Conflict(format!(
            "The {} {} was changed concurrently; retry.",
            R::KIND,
            r.meta().id
        ))),
        Err(e) if himmel_db::is_unique_violation(&e) => Err(Error::Conflict(format!(
            "The {} {} clashes with an existing one.",
            R::KIND,
            r.meta().id
        ))),
        Err(e) => Err(db_err(e)),
    }
}

pub async fn delete(conn: &mut AnyConnection, kind: &str, id: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM net_resources WHERE kind = $1 AND id = $2")
        .bind(kind)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Sets a port's status (the reconciler calls this once the port's
/// dataplane is in place, or when it is gone). Unknown ports are ignored:
/// the port may have been deleted meanwhile.
pub async fn set_port_status(db: &Db, id: &str, status: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    if let Some(mut port) = get::<Port>(&mut tx, id).await? {
        if port.status != status {
            port.status = status.to_string();
            update(&mut tx, &mut port).await?;
        }
    }
    tx.commit().await.map_err(db_err)
}

/// Everything the dataplane needs, read in one transaction so that it is
/// one consistent state.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub networks: Vec<Network>,
    pub subnets: Vec<Subnet>,
    pub ports: Vec<Port>,
    pub routers: Vec<Router>,
    pub floating_ips: Vec<FloatingIp>,
    pub security_groups: Vec<SecurityGroup>,
    pub security_group_rules: Vec<SecurityGroupRule>,
}

pub async fn snapshot(db: &Db) -> Result<Snapshot, Error> {
    let mut tx = db.pool().begin().await.map_err(db_err)?;
    let all = Visibility::All;
    let snap = Snapshot {
        networks: list(&mut tx, &all).await?,
        subnets: list(&mut tx, &all).await?,
        ports: list(&mut tx, &all).await?,
        routers: list(&mut tx, &all).await?,
        floating_ips: list(&mut tx, &all).await?,
        security_groups: list(&mut tx, &all).await?,
        security_group_rules: list(&mut tx, &all).await?,
    };
    tx.commit().await.map_err(db_err)?;
    Ok(snap)
}
