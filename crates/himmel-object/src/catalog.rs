//! The S3 endpoints in the Keystone catalog (types `object-store-s3` and
//! `s3`).
//!
//! S3 clients sign each request for a region named in its credential
//! scope, and S3 allows only AWS-style names there (`[a-z0-9-]+`), so an
//! OpenStack region such as `RegionOne` cannot be signed for. Users take
//! the region to sign for from where the catalog lists the endpoint, so
//! the S3 endpoints live in the S3 region: a child region of the
//! OpenStack one when the two names differ.

use himmel_db::Db;

/// Lists the S3 listener at `url` under `s3_region` (made a child of
/// `region` when the names differ) and drops S3 endpoints an earlier
/// start left in another region. Idempotent.
pub async fn register(db: &Db, region: &str, s3_region: &str, url: &str) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO regions (id, description, parent_region_id) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(s3_region)
    .bind(format!("S3 signing region of {region}"))
    .bind((s3_region != region).then_some(region))
    .execute(&mut **tx)
    .await?;
    for service_type in ["object-store-s3", "s3"] {
        sqlx::query(
            "DELETE FROM endpoints WHERE region_id <> $1 \
             AND service_id IN (SELECT id FROM services WHERE type = $2)",
        )
        .bind(s3_region)
        .bind(service_type)
        .execute(&mut **tx)
        .await?;
        himmel_identity::bootstrap::ensure_service(
            &mut tx,
            service_type,
            service_type,
            s3_region,
            url,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
