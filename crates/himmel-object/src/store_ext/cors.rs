//! A bucket's CORS rules, kept apart from the bucket row (table
//! `s3_bucket_cors`, one JSON document per bucket).

use himmel_db::Db;

use crate::cors::Rule;
use crate::store::DbResult;

pub async fn put(db: &Db, bucket_id: &str, rules: &[Rule]) -> DbResult<()> {
    let doc = serde_json::to_string(rules).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO s3_bucket_cors (bucket_id, rules) VALUES ($1, $2) \
         ON CONFLICT (bucket_id) DO UPDATE SET rules = excluded.rules",
    )
    .bind(bucket_id)
    .bind(doc)
    .execute(&mut **tx)
    .await?;
    tx.commit().await
}

pub async fn get(db: &Db, bucket_id: &str) -> DbResult<Option<Vec<Rule>>> {
    let doc: Option<String> =
        sqlx::query_scalar("SELECT rules FROM s3_bucket_cors WHERE bucket_id = $1")
            .bind(bucket_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
}

/// The rules of the bucket named `name`, for requests that carry no
/// credentials (a browser's preflight).
pub async fn rules_by_bucket_name(db: &Db, name: &str) -> DbResult<Option<Vec<Rule>>> {
    let doc: Option<String> = sqlx::query_scalar(
        "SELECT c.rules FROM s3_bucket_cors c JOIN s3_buckets b ON b.id = c.bucket_id \
         WHERE b.name = $1",
    )
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
}

/// Returns whether the bucket had rules.
pub async fn delete(db: &Db, bucket_id: &str) -> DbResult<bool> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query("DELETE FROM s3_bucket_cors WHERE bucket_id = $1")
        .bind(bucket_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n > 0)
}
