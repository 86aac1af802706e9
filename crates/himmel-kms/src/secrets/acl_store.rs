//! Queries on the read ACLs of secrets and containers.

use himmel_core::Error;
use himmel_db::{b, get_bool, sqlx, Db, Row};

use super::model::{Acl, AclEntity};

const READ: &str = "read";

/// The read ACL of a resource: the explicit one, or the implicit default.
pub async fn get(db: &Db, entity: AclEntity, id: &str) -> Result<Acl, Error> {
    let row = sqlx::query(
        "SELECT project_access, created_at, updated_at FROM kms_acls \
         WHERE entity_type = $1 AND entity_id = $2 AND operation = $3",
    )
    .bind(entity.as_str())
    .bind(id)
    .bind(READ)
    .fetch_optional(db.pool())
    .await
    .map_err(Error::internal)?;
    let Some(row) = row else {
        return Ok(Acl::default());
    };
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM kms_acl_users WHERE entity_type = $1 AND entity_id = $2 \
         AND operation = $3 ORDER BY user_id",
    )
    .bind(entity.as_str())
    .bind(id)
    .bind(READ)
    .fetch_all(db.pool())
    .await
    .map_err(Error::internal)?;
    Ok(Acl {
        explicit: true,
        project_access: get_bool(&row, "project_access"),
        users,
        created_at: row.try_get("created_at").map_err(Error::internal)?,
        updated_at: row.try_get("updated_at").map_err(Error::internal)?,
    })
}

/// Writes the read ACL of a resource as `acl` says (project access and
/// the whole user list).
pub async fn put(db: &Db, entity: AclEntity, id: &str, acl: &Acl, now: i64) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    let updated = sqlx::query(
        "UPDATE kms_acls SET project_access = $1, updated_at = $2 \
         WHERE entity_type = $3 AND entity_id = $4 AND operation = $5",
    )
    .bind(b(acl.project_access))
    .bind(now)
    .bind(entity.as_str())
    .bind(id)
    .bind(READ)
    .execute(&mut **tx)
    .await
    .map_err(Error::internal)?
    .rows_affected();
    if updated == 0 {
        sqlx::query(
            "INSERT INTO kms_acls (entity_type, entity_id, operation, project_access, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(entity.as_str())
        .bind(id)
        .bind(READ)
        .bind(b(acl.project_access))
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?;
    }
    sqlx::query(
        "DELETE FROM kms_acl_users WHERE entity_type = $1 AND entity_id = $2 AND operation = $3",
    )
    .bind(entity.as_str())
    .bind(id)
    .bind(READ)
    .execute(&mut **tx)
    .await
    .map_err(Error::internal)?;
    for user in &acl.users {
        sqlx::query(
            "INSERT INTO kms_acl_users (entity_type, entity_id, operation, user_id) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(entity.as_str())
        .bind(id)
        .bind(READ)
        .bind(user)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?;
    }
    tx.commit().await.map_err(Error::internal)
}

/// Removes the explicit ACL: the resource is back to project access.
pub async fn delete(db: &Db, entity: AclEntity, id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    for sql in [
        "DELETE FROM kms_acls WHERE entity_type = $1 AND entity_id = $2",
        "DELETE FROM kms_acl_users WHERE entity_type = $1 AND entity_id = $2",
    ] {
        sqlx::query(sql)
            .bind(entity.as_str())
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(Error::internal)?;
    }
    tx.commit().await.map_err(Error::internal)
}
