//! Queries on secrets and their user metadata.

use himmel_core::Error;
use himmel_db::{sqlx, AnyRow, Db, Row};

use super::model::Secret;
use super::query::{Param, Where};

const COLUMNS: &str = "id, project_id, creator_id, name, secret_type, algorithm, bit_length, \
                       mode, expiration, content_type, status, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Secret, sqlx::Error> {
    Ok(Secret {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        creator_id: row.try_get("creator_id")?,
        name: row.try_get("name")?,
        secret_type: row.try_get("secret_type")?,
        algorithm: row.try_get("algorithm")?,
        bit_length: row.try_get("bit_length")?,
        mode: row.try_get("mode")?,
        expiration: row.try_get("expiration")?,
        content_type: row.try_get("content_type")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts a secret, with its sealed payload when it has one.
pub async fn insert(db: &Db, s: &Secret, sealed: Option<&str>) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    sqlx::query(
        "INSERT INTO kms_secrets (id, project_id, creator_id, name, secret_type, algorithm, \
         bit_length, mode, expiration, content_type, sealed, status, revision, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $14)",
    )
    .bind(&s.id)
    .bind(&s.project_id)
    .bind(&s.creator_id)
    .bind(&s.name)
    .bind(&s.secret_type)
    .bind(&s.algorithm)
    .bind(s.bit_length)
    .bind(&s.mode)
    .bind(s.expiration)
    .bind(&s.content_type)
    .bind(sealed)
    .bind(&s.status)
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(Error::internal)?;
    tx.commit().await.map_err(Error::internal)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Secret>, Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM kms_secrets WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(Error::internal)?;
    row.map(|r| from_row(&r))
        .transpose()
        .map_err(Error::internal)
}

/// The sealed payload of a secret, if it has one.
pub async fn sealed(db: &Db, id: &str) -> Result<Option<String>, Error> {
    let v: Option<Option<String>> =
        sqlx::query_scalar("SELECT sealed FROM kms_secrets WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await
            .map_err(Error::internal)?;
    Ok(v.flatten())
}

/// Stores the payload of a secret created without one. False when the
/// secret already has a payload (or is gone).
pub async fn set_payload(
    db: &Db,
    id: &str,
    content_type: &str,
    sealed: &str,
    now: i64,
) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    let done = sqlx::query(
        "UPDATE kms_secrets SET content_type = $1, sealed = $2, updated_at = $3, \
         revision = revision + 1 WHERE id = $4 AND sealed IS NULL",
    )
    .bind(content_type)
    .bind(sealed)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(Error::internal)?
    .rows_affected();
    tx.commit().await.map_err(Error::internal)?;
    Ok(done == 1)
}

/// Deletes a secret with everything hanging on it (metadata, ACL, its
/// places in containers). False when it did not exist.
pub async fn delete(db: &Db, id: &str) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    for sql in [
        "DELETE FROM kms_secret_metadata WHERE secret_id = $1",
        "DELETE FROM kms_acls WHERE entity_type = 'secret' AND entity_id = $1",
        "DELETE FROM kms_acl_users WHERE entity_type = 'secret' AND entity_id = $1",
        "DELETE FROM kms_container_secrets WHERE secret_id = $1",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(Error::internal)?;
    }
    let n = sqlx::query("DELETE FROM kms_secrets WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?
        .rows_affected();
    tx.commit().await.map_err(Error::internal)?;
    Ok(n == 1)
}

/// A date filter of a list request: `column op value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }
}

/// What a secret list asks for (validated).
#[derive(Debug, Default)]
pub struct ListFilter {
    /// The caller's project; `None` with `acl_user` set lists by ACL only.
    pub project_id: Option<String>,
    pub acl_user: Option<String>,
    pub name: Option<String>,
    pub algorithm: Option<String>,
    pub mode: Option<String>,
    pub bits: Option<i64>,
    pub secret_type: Option<String>,
    /// (column, comparison, microseconds)
    pub dates: Vec<(&'static str, Cmp, i64)>,
    /// (column, descending)
    pub sort: Vec<(&'static str, bool)>,
    pub offset: i64,
    pub limit: i64,
    pub now: i64,
}

/// One page of secrets and the total that match.
pub async fn list(db: &Db, f: &ListFilter) -> Result<(Vec<Secret>, i64), Error> {
    let mut w = Where::default();
    if let Some(p) = &f.project_id {
        w.add("project_id = ?", Param::Text(p.clone()));
    }
    if let Some(u) = &f.acl_user {
        w.add(
            "id IN (SELECT entity_id FROM kms_acl_users WHERE entity_type = 'secret' \
             AND operation = 'read' AND user_id = ?)",
            Param::Text(u.clone()),
        );
    }
    // "Similar to", as Barbican's LIKE on a case-insensitive collation.
    for (column, value) in [
        ("name", &f.name),
        ("algorithm", &f.algorithm),
        ("mode", &f.mode),
    ] {
        if let Some(v) = value {
            w.add(
                &format!("LOWER({column}) LIKE LOWER(?)"),
                Param::Text(v.clone()),
            );
        }
    }
    if let Some(b) = f.bits {
        w.add("bit_length = ?", Param::Int(b));
    }
    if let Some(t) = &f.secret_type {
        w.add("secret_type = ?", Param::Text(t.clone()));
    }
    for (column, cmp, at) in &f.dates {
        w.add(&format!("{column} {} ?", cmp.sql()), Param::Int(*at));
    }
    w.add("(expiration IS NULL OR expiration > ?)", Param::Int(f.now));

    let count_sql = format!("SELECT COUNT(*) FROM kms_secrets{}", w.sql());
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&count_sql))
        .fetch_one(db.pool())
        .await
        .map_err(Error::internal)?;

    let mut order: Vec<String> = f
        .sort
        .iter()
        .map(|(c, desc)| format!("{c} {}", if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push("created_at ASC".into());
    order.push("id ASC".into());
    let sql = format!(
        "SELECT {COLUMNS} FROM kms_secrets{} ORDER BY {} LIMIT {} OFFSET {}",
        w.sql(),
        order.join(", "),
        w.next_placeholder(0),
        w.next_placeholder(1),
    );
    let rows = w
        .bind(sqlx::query(&sql))
        .bind(f.limit)
        .bind(f.offset)
        .fetch_all(db.pool())
        .await
        .map_err(Error::internal)?;
    let secrets = rows
        .iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::internal)?;
    Ok((secrets, total))
}

/// The user metadata of a secret, sorted by key.
pub async fn metadata(db: &Db, secret_id: &str) -> Result<Vec<(String, String)>, Error> {
    let rows = sqlx::query(
        "SELECT meta_key, meta_value FROM kms_secret_metadata WHERE secret_id = $1 \
         ORDER BY meta_key",
    )
    .bind(secret_id)
    .fetch_all(db.pool())
    .await
    .map_err(Error::internal)?;
    rows.iter()
        .map(|r| Ok((r.try_get("meta_key")?, r.try_get("meta_value")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(Error::internal)
}

/// Replaces all user metadata of a secret.
pub async fn replace_metadata(
    db: &Db,
    secret_id: &str,
    items: &[(String, String)],
    now: i64,
) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    sqlx::query("DELETE FROM kms_secret_metadata WHERE secret_id = $1")
        .bind(secret_id)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?;
    for (k, v) in items {
        sqlx::query(
            "INSERT INTO kms_secret_metadata (secret_id, meta_key, meta_value, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(secret_id)
        .bind(k)
        .bind(v)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?;
    }
    tx.commit().await.map_err(Error::internal)
}

/// Adds one metadata key; false when the key exists already.
pub async fn add_metadatum(
    db: &Db,
    secret_id: &str,
    key: &str,
    value: &str,
    now: i64,
) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    let r = sqlx::query(
        "INSERT INTO kms_secret_metadata (secret_id, meta_key, meta_value, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(secret_id)
    .bind(key)
    .bind(value)
    .bind(now)
    .execute(&mut **tx)
    .await;
    match r {
        Ok(_) => {
            tx.commit().await.map_err(Error::internal)?;
            Ok(true)
        }
        Err(e) if himmel_db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(Error::internal(e)),
    }
}

/// Changes one existing metadata key; false when it does not exist.
pub async fn update_metadatum(
    db: &Db,
    secret_id: &str,
    key: &str,
    value: &str,
    now: i64,
) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    let n = sqlx::query(
        "UPDATE kms_secret_metadata SET meta_value = $1, updated_at = $2 \
         WHERE secret_id = $3 AND meta_key = $4",
    )
    .bind(value)
    .bind(now)
    .bind(secret_id)
    .bind(key)
    .execute(&mut **tx)
    .await
    .map_err(Error::internal)?
    .rows_affected();
    tx.commit().await.map_err(Error::internal)?;
    Ok(n == 1)
}

pub async fn delete_metadatum(db: &Db, secret_id: &str, key: &str) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(Error::internal)?;
    let n = sqlx::query("DELETE FROM kms_secret_metadata WHERE secret_id = $1 AND meta_key = $2")
        .bind(secret_id)
        .bind(key)
        .execute(&mut **tx)
        .await
        .map_err(Error::internal)?
        .rows_affected();
    tx.commit().await.map_err(Error::internal)?;
    Ok(n == 1)
}
