//! Object lock queries: retention and legal hold of a version, the lock an
//! upload was created with, and deleting a version only while unlocked.

use himmel_db::{Db, Row};

use crate::lock::Lock;
use crate::store::{sort_key, DbResult, ObjectRow};

/// Records the lock a multipart upload will give its object.
pub async fn put_upload_lock(db: &Db, upload_id: &str, lock: &Lock) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO s3_upload_locks (upload_id, lock_mode, lock_until, legal_hold) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(upload_id)
    .bind(&lock.mode)
    .bind(lock.until)
    .bind(himmel_db::b(lock.legal_hold))
    .execute(&mut **tx)
    .await?;
    tx.commit().await
}

pub async fn get_upload_lock(db: &Db, upload_id: &str) -> DbResult<Option<Lock>> {
    let row = sqlx::query("SELECT * FROM s3_upload_locks WHERE upload_id = $1")
        .bind(upload_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| Lock {
        mode: r.try_get("lock_mode").unwrap_or_default(),
        until: r.try_get("lock_until").unwrap_or_default(),
        legal_hold: r.try_get::<i64, _>("legal_hold").unwrap_or_default() != 0,
    }))
}

pub async fn delete_upload_lock(db: &Db, upload_id: &str) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM s3_upload_locks WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?;
    tx.commit().await
}

/// Sets a version's retention if it is still `expected` (another request
/// may have changed it since it was read); false when it changed.
pub async fn set_retention(
    db: &Db,
    object_id: &str,
    expected: (&str, i64),
    mode: &str,
    until: i64,
) -> DbResult<bool> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE s3_objects SET lock_mode = $1, lock_until = $2 \
         WHERE id = $3 AND lock_mode = $4 AND lock_until = $5",
    )
    .bind(mode)
    .bind(until)
    .bind(object_id)
    .bind(expected.0)
    .bind(expected.1)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

pub async fn set_legal_hold(db: &Db, object_id: &str, on: bool) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE s3_objects SET legal_hold = $1, legal_hold_applied = 1 WHERE id = $2")
        .bind(himmel_db::b(on))
        .bind(object_id)
        .execute(&mut **tx)
        .await?;
    tx.commit().await
}

/// Whether PutObjectLegalHold was ever applied to the version.
pub async fn legal_hold_applied(db: &Db, object_id: &str) -> DbResult<bool> {
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT legal_hold_applied FROM s3_objects WHERE id = $1")
            .bind(object_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(applied.unwrap_or(0) != 0)
}

/// What deleting a version of a locked bucket did.
pub enum Removal {
    Removed,
    /// Under legal hold or retention: nothing was deleted.
    Locked,
    Gone,
}

/// Deletes version `row` unless it is locked at `now`; the lock is checked
/// by the DELETE itself, so a retention set meanwhile still holds. A
/// GOVERNANCE retention yields when `bypass_governance`. When the latest
/// version went, the newest remaining one becomes the latest.
pub async fn delete_unlocked_version(
    db: &Db,
    row: &ObjectRow,
    now: i64,
    bypass_governance: bool,
) -> DbResult<Removal> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "DELETE FROM s3_objects WHERE id = $1 AND legal_hold = 0 \
         AND (lock_until <= $2 OR (lock_mode = 'GOVERNANCE' AND $3 = 1))",
    )
    .bind(&row.id)
    .bind(now)
    .bind(himmel_db::b(bypass_governance))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        let still_there = sqlx::query("SELECT id FROM s3_objects WHERE id = $1")
            .bind(&row.id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        return Ok(if still_there {
            Removal::Locked
        } else {
            Removal::Gone
        });
    }
    let sk = sort_key(&row.key);
    let latest: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM s3_objects WHERE bucket_id = $1 AND sort_key = $2 AND is_latest = 1",
    )
    .bind(&row.bucket_id)
    .bind(&sk)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    if latest == 0 {
        let newest: Option<String> = sqlx::query(
            "SELECT id FROM s3_objects WHERE bucket_id = $1 AND sort_key = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(&row.bucket_id)
        .bind(&sk)
        .fetch_optional(&mut **tx)
        .await?
        .and_then(|r| r.try_get("id").ok());
        if let Some(id) = newest {
            sqlx::query("UPDATE s3_objects SET is_latest = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(Removal::Removed)
}
