//! Queries on `kms_project_keys`. Wrapped keys are stored base64 (TEXT), as
//! the portable-SQL rules of himmel-db ask.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use himmel_db::Db;
use sqlx::Row;

use crate::root::WrappedKek;
use crate::KmsError;

pub const PRIMARY: &str = "primary";
pub const ACTIVE: &str = "active";
pub const DESTROYED: &str = "destroyed";

#[derive(Debug, Clone)]
pub struct KekRow {
    pub project_id: String,
    pub version: u32,
    pub state: String,
    pub wrapped: WrappedKek,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<KekRow, KmsError> {
    let wrapped: String = row.try_get("wrapped")?;
    let version: i64 = row.try_get("version")?;
    Ok(KekRow {
        project_id: row.try_get("project_id")?,
        version: u32::try_from(version)
            .map_err(|_| KmsError::Store(format!("key version {version} out of range")))?,
        state: row.try_get("state")?,
        wrapped: WrappedKek {
            root_ref: row.try_get("root_ref")?,
            blob: B64
                .decode(wrapped)
                .map_err(|_| KmsError::Corrupted("a stored project key is not base64".into()))?,
        },
    })
}

const COLUMNS: &str = "project_id, version, state, root_ref, wrapped";

pub async fn get(db: &Db, project_id: &str, version: u32) -> Result<Option<KekRow>, KmsError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM kms_project_keys WHERE project_id = $1 AND version = $2"
    ))
    .bind(project_id)
    .bind(i64::from(version))
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn primary(db: &Db, project_id: &str) -> Result<Option<KekRow>, KmsError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM kms_project_keys WHERE project_id = $1 AND state = $2"
    ))
    .bind(project_id)
    .bind(PRIMARY)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every key of every project, destroyed ones excluded.
pub async fn all_live(db: &Db) -> Result<Vec<KekRow>, KmsError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM kms_project_keys WHERE state <> $1 ORDER BY project_id, version"
    ))
    .bind(DESTROYED)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Adds version `row.version` as the project's primary key. A rotation
/// (`replace`) demotes the previous primary; a first key is only added when
/// the project has no primary yet. Returns false when another writer was
/// first (the version is taken, or a first key exists already).
pub async fn insert_primary(db: &Db, row: &KekRow, replace: bool) -> Result<bool, KmsError> {
    let mut tx = db.begin_write().await?;
    let taken = sqlx::query(
        "SELECT 1 FROM kms_project_keys WHERE project_id = $1 AND (version = $2 OR state = $3)",
    )
    .bind(&row.project_id)
    .bind(i64::from(row.version))
    .bind(if replace { "" } else { PRIMARY })
    .fetch_optional(&mut **tx)
    .await?;
    if taken.is_some() {
        return Ok(false);
    }
    let now = himmel_core::time::now().timestamp_micros();
    sqlx::query("UPDATE kms_project_keys SET state = $1, updated_at = $2 WHERE project_id = $3 AND state = $4")
        .bind(ACTIVE)
        .bind(now)
        .bind(&row.project_id)
        .bind(PRIMARY)
        .execute(&mut **tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO kms_project_keys (project_id, version, state, root_ref, wrapped, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&row.project_id)
    .bind(i64::from(row.version))
    .bind(PRIMARY)
    .bind(&row.wrapped.root_ref)
    .bind(B64.encode(&row.wrapped.blob))
    .bind(now)
    .execute(&mut **tx)
    .await;
    match inserted {
        Err(e) if himmel_db::is_unique_violation(&e) => return Ok(false),
        other => other?,
    };
    tx.commit().await?;
    Ok(true)
}

/// The highest version a project has used, destroyed ones included.
pub async fn last_version(db: &Db, project_id: &str) -> Result<u32, KmsError> {
    let row = sqlx::query("SELECT MAX(version) AS v FROM kms_project_keys WHERE project_id = $1")
        .bind(project_id)
        .fetch_one(db.pool())
        .await?;
    let v: Option<i64> = row.try_get("v")?;
    Ok(v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0))
}

/// Replaces a key's wrapping, only if it is still `old` (a concurrent
/// rotation or destruction wins).
pub async fn rewrap(
    db: &Db,
    project_id: &str,
    version: u32,
    old: &WrappedKek,
    new: &WrappedKek,
) -> Result<bool, KmsError> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE kms_project_keys SET root_ref = $1, wrapped = $2, updated_at = $3 \
         WHERE project_id = $4 AND version = $5 AND root_ref = $6 AND wrapped = $7 AND state <> $8",
    )
    .bind(&new.root_ref)
    .bind(B64.encode(&new.blob))
    .bind(himmel_core::time::now().timestamp_micros())
    .bind(project_id)
    .bind(i64::from(version))
    .bind(&old.root_ref)
    .bind(B64.encode(&old.blob))
    .bind(DESTROYED)
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Crypto-shreds every key of a project: the wrapped keys are overwritten,
/// the rows stay so that versions are never reused. Returns how many keys
/// were destroyed.
pub async fn destroy(db: &Db, project_id: &str) -> Result<u64, KmsError> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE kms_project_keys SET state = $1, root_ref = '', wrapped = '', updated_at = $2 \
         WHERE project_id = $3 AND state <> $1",
    )
    .bind(DESTROYED)
    .bind(himmel_core::time::now().timestamp_micros())
    .bind(project_id)
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Projects that hold live keys but no longer exist in the identity store.
pub async fn orphaned_projects(db: &Db) -> Result<Vec<String>, KmsError> {
    let rows = sqlx::query(
        "SELECT DISTINCT k.project_id FROM kms_project_keys k \
         LEFT JOIN projects p ON p.id = k.project_id \
         WHERE p.id IS NULL AND k.state <> $1",
    )
    .bind(DESTROYED)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| r.try_get("project_id").map_err(KmsError::from))
        .collect()
}
