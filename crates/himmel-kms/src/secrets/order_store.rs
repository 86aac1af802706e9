//! Queries on orders.

use himmel_core::Error;
use himmel_db::{sqlx, AnyRow, Db, Row};

use super::model::Order;

const COLUMNS: &str =
    "id, project_id, creator_id, order_type, meta, status, secret_id, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Order, Error> {
    let get = |e: sqlx::Error| Error::internal(e);
    let meta: String = row.try_get("meta").map_err(get)?;
    Ok(Order {
        id: row.try_get("id").map_err(get)?,
        project_id: row.try_get("project_id").map_err(get)?,
        creator_id: row.try_get("creator_id").map_err(get)?,
        order_type: row.try_get("order_type").map_err(get)?,
        meta: serde_json::from_str(&meta).map_err(Error::internal)?,
        status: row.try_get("status").map_err(get)?,
        secret_id: row.try_get("secret_id").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
    })
}

pub async fn insert(db: &Db, o: &Order) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    sqlx::query(
        "INSERT INTO kms_orders (id, project_id, creator_id, order_type, meta, status, secret_id, \
         revision, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
    )
    .bind(&o.id)
    .bind(&o.project_id)
    .bind(&o.creator_id)
    .bind(&o.order_type)
    .bind(o.meta.to_string())
    .bind(&o.status)
    .bind(&o.secret_id)
    .bind(o.created_at)
    .bind(o.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(Error::internal)?;
    tx.commit().await.map_err(Error::internal)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Order>, Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM kms_orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(Error::internal)?;
    row.map(|r| from_row(&r)).transpose()
}

/// One page of a project's orders and their total.
pub async fn list(
    db: &Db,
    project_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Order>, i64), Error> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kms_orders WHERE project_id = $1")
        .bind(project_id)
        .fetch_one(db.pool())
        .await
        .map_err(Error::internal)?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM kms_orders WHERE project_id = $1 ORDER BY created_at, id \
         LIMIT $2 OFFSET $3"
    ))
    .bind(project_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await
    .map_err(Error::internal)?;
    let orders = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((orders, total))
}

pub async fn delete(db: &Db, id: &str) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    let n = sqlx::query("DELETE FROM kms_orders WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?
        .rows_affected();
    tx.commit().await.map_err(Error::internal)?;
    Ok(n == 1)
}
