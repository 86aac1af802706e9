//! Queries. Every resource is a JSON body in `compute_resources` with the
//! columns queries need copied beside it (see the migration); these generic
//! functions read and write any [`Resource`]. Writes take a connection that
//! is inside a write transaction; the caller commits.

pub mod quota;

use himmel_core::Error;
use himmel_db::{AnyRow, Row};
use sqlx::AnyConnection;

use crate::model::Resource;

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::internal(e)
}

fn decode<R: Resource>(row: &AnyRow) -> Result<R, Error> {
    let body: String = row.try_get("body").map_err(db_err)?;
    serde_json::from_str(&body).map_err(Error::internal)
}

fn decode_all<R: Resource>(rows: &[AnyRow]) -> Result<Vec<R>, Error> {
    rows.iter().map(decode).collect()
}

pub async fn get<R: Resource>(conn: &mut AnyConnection, id: &str) -> Result<Option<R>, Error> {
    let row = sqlx::query("SELECT body FROM compute_resources WHERE kind = $1 AND id = $2")
        .bind(R::KIND)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(decode).transpose()
}

/// Every row of a kind, oldest first; `project` narrows to one project.
pub async fn list<R: Resource>(
    conn: &mut AnyConnection,
    project: Option<&str>,
) -> Result<Vec<R>, Error> {
    let rows = match project {
        None => {
            sqlx::query(
                "SELECT body FROM compute_resources WHERE kind = $1 ORDER BY created_at, id",
            )
            .bind(R::KIND)
            .fetch_all(&mut *conn)
            .await
        }
        Some(p) => {
            sqlx::query(
                "SELECT body FROM compute_resources WHERE kind = $1 AND project_id = $2 \
                 ORDER BY created_at, id",
            )
            .bind(R::KIND)
            .bind(p)
            .fetch_all(&mut *conn)
            .await
        }
    }
    .map_err(db_err)?;
    decode_all(&rows)
}

/// Rows of a kind owned by one user.
pub async fn list_for_user<R: Resource>(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Vec<R>, Error> {
    let rows = sqlx::query(
        "SELECT body FROM compute_resources WHERE kind = $1 AND user_id = $2 ORDER BY created_at, id",
    )
    .bind(R::KIND)
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

/// Rows of a kind under one parent (the actions of a server).
pub async fn children<R: Resource>(
    conn: &mut AnyConnection,
    parent_id: &str,
) -> Result<Vec<R>, Error> {
    let rows = sqlx::query(
        "SELECT body FROM compute_resources WHERE kind = $1 AND parent_id = $2 ORDER BY created_at, id",
    )
    .bind(R::KIND)
    .bind(parent_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

/// Rows of a kind on one compute host.
pub async fn on_host<R: Resource>(conn: &mut AnyConnection, host: &str) -> Result<Vec<R>, Error> {
    let rows = sqlx::query(
        "SELECT body FROM compute_resources WHERE kind = $1 AND host = $2 ORDER BY created_at, id",
    )
    .bind(R::KIND)
    .bind(host)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    decode_all(&rows)
}

/// Inserts `r`; a clash on its unique key is a 409 with `conflict()`.
pub async fn insert<R: Resource>(
    conn: &mut AnyConnection,
    r: &R,
    conflict: impl FnOnce() -> String,
) -> Result<(), Error> {
    let body = serde_json::to_string(r).map_err(Error::internal)?;
    let res = sqlx::query(
        "INSERT INTO compute_resources (id, kind, project_id, user_id, parent_id, unique_key, host, created_at, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(r.id())
    .bind(R::KIND)
    .bind(r.project_id())
    .bind(r.user_id())
    .bind(r.parent_id())
    .bind(r.unique_key())
    .bind(r.host())
    .bind(himmel_core::time::now().timestamp_micros())
    .bind(body)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if himmel_db::is_unique_violation(&e) => Err(Error::Conflict(conflict())),
        Err(e) => Err(db_err(e)),
    }
}

/// Writes `r` over its row (its unique key and host may change).
pub async fn update<R: Resource>(conn: &mut AnyConnection, r: &R) -> Result<(), Error> {
    let body = serde_json::to_string(r).map_err(Error::internal)?;
    let res = sqlx::query(
        "UPDATE compute_resources SET body = $1, unique_key = $2, host = $3 WHERE kind = $4 AND id = $5",
    )
    .bind(body)
    .bind(r.unique_key())
    .bind(r.host())
    .bind(R::KIND)
    .bind(r.id())
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if himmel_db::is_unique_violation(&e) => Err(Error::Conflict(format!(
            "A {} with these attributes already exists.",
            R::KIND
        ))),
        Err(e) => Err(db_err(e)),
    }
}

pub async fn delete(conn: &mut AnyConnection, kind: &str, id: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM compute_resources WHERE kind = $1 AND id = $2")
        .bind(kind)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Deletes every row of a kind under a parent (a server's actions).
pub async fn delete_children(
    conn: &mut AnyConnection,
    kind: &str,
    parent_id: &str,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM compute_resources WHERE kind = $1 AND parent_id = $2")
        .bind(kind)
        .bind(parent_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Highest keypair number so far (keypairs show an integer id).
pub async fn next_number(conn: &mut AnyConnection, kind: &str) -> Result<i64, Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM compute_resources WHERE kind = $1")
        .bind(kind)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(n + 1)
}

/// Waits for the named lock until the end of the transaction, so that
/// "count, then insert" of one project runs one at a time on PostgreSQL.
pub async fn lock(conn: &mut AnyConnection, name: &str) -> Result<(), Error> {
    sqlx::query("INSERT INTO compute_locks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query("UPDATE compute_locks SET name = name WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
