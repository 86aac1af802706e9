//! Queries on containers and the secrets they hold.

use himmel_core::Error;
use himmel_db::{sqlx, AnyRow, Db, Row};

use super::model::{Container, ContainerRef};
use super::query::{Param, Where};

const COLUMNS: &str =
    "id, project_id, creator_id, name, container_type, status, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Container, sqlx::Error> {
    Ok(Container {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        creator_id: row.try_get("creator_id")?,
        name: row.try_get("name")?,
        container_type: row.try_get("container_type")?,
        status: row.try_get("status")?,
        secret_refs: vec![],
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn refs(db: &Db, container_id: &str) -> Result<Vec<ContainerRef>, Error> {
    let rows = sqlx::query(
        "SELECT secret_id, ref_name FROM kms_container_secrets WHERE container_id = $1 \
         ORDER BY position",
    )
    .bind(container_id)
    .fetch_all(db.pool())
    .await
    .map_err(Error::internal)?;
    rows.iter()
        .map(|r| {
            Ok(ContainerRef {
                secret_id: r.try_get("secret_id")?,
                name: r.try_get("ref_name")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(Error::internal)
}

pub async fn insert(db: &Db, c: &Container) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    sqlx::query(
        "INSERT INTO kms_containers (id, project_id, creator_id, name, container_type, status, \
         revision, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)",
    )
    .bind(&c.id)
    .bind(&c.project_id)
    .bind(&c.creator_id)
    .bind(&c.name)
    .bind(&c.container_type)
    .bind(&c.status)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(Error::internal)?;
    for (position, r) in c.secret_refs.iter().enumerate() {
        sqlx::query(
            "INSERT INTO kms_container_secrets (container_id, secret_id, ref_name, position) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.id)
        .bind(&r.secret_id)
        .bind(&r.name)
        .bind(position as i64)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?;
    }
    tx.commit().await.map_err(Error::internal)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Container>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM kms_containers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await
    .map_err(Error::internal)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut c = from_row(&row).map_err(Error::internal)?;
    c.secret_refs = refs(db, &c.id).await?;
    Ok(Some(c))
}

/// One page of a project's containers (optionally by name and type) and
/// the total that match.
pub async fn list(
    db: &Db,
    project_id: &str,
    name: Option<&str>,
    container_type: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Container>, i64), Error> {
    let mut w = Where::default();
    w.add("project_id = ?", Param::Text(project_id.to_owned()));
    if let Some(n) = name {
        w.add("LOWER(name) LIKE LOWER(?)", Param::Text(n.to_owned()));
    }
    if let Some(t) = container_type {
        w.add("container_type = ?", Param::Text(t.to_owned()));
    }
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM kms_containers{}",
            w.sql()
        )))
        .fetch_one(db.pool())
        .await
        .map_err(Error::internal)?;
    let sql = format!(
        "SELECT {COLUMNS} FROM kms_containers{} ORDER BY created_at, id LIMIT {} OFFSET {}",
        w.sql(),
        w.next_placeholder(0),
        w.next_placeholder(1)
    );
    let rows = w
        .bind(sqlx::query(&sql))
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await
        .map_err(Error::internal)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut c = from_row(row).map_err(Error::internal)?;
        c.secret_refs = refs(db, &c.id).await?;
        out.push(c);
    }
    Ok((out, total))
}

pub async fn delete(db: &Db, id: &str) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    for sql in [
        "DELETE FROM kms_container_secrets WHERE container_id = $1",
        "DELETE FROM kms_acls WHERE entity_type = 'container' AND entity_id = $1",
        "DELETE FROM kms_acl_users WHERE entity_type = 'container' AND entity_id = $1",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(Error::internal)?;
    }
    let n = sqlx::query("DELETE FROM kms_containers WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?
        .rows_affected();
    tx.commit().await.map_err(Error::internal)?;
    Ok(n == 1)
}

/// Adds a secret to a container; false when it holds that secret already.
pub async fn add_secret(db: &Db, container_id: &str, r: &ContainerRef) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    let next: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(position), -1) + 1 FROM kms_container_secrets WHERE container_id = $1",
    )
    .bind(container_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(Error::internal)?;
    let inserted = sqlx::query(
        "INSERT INTO kms_container_secrets (container_id, secret_id, ref_name, position) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(container_id)
    .bind(&r.secret_id)
    .bind(&r.name)
    .bind(next)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => {
            tx.commit().await.map_err(Error::internal)?;
            Ok(true)
        }
        Err(e) if himmel_db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(Error::internal(e)),
    }
}

/// Removes a secret (by id and reference name); false when not there.
pub async fn remove_secret(db: &Db, container_id: &str, r: &ContainerRef) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    let n = sqlx::query(
        "DELETE FROM kms_container_secrets WHERE container_id = $1 AND secret_id = $2 \
         AND ref_name = $3",
    )
    .bind(container_id)
    .bind(&r.secret_id)
    .bind(&r.name)
    .execute(&mut **tx)
    .await
    .map_err(Error::internal)?
    .rows_affected();
    tx.commit().await.map_err(Error::internal)?;
    Ok(n == 1)
}
