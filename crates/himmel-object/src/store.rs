//! Queries on the S3 metadata tables (portable SQL, see himmel-db).

use himmel_db::{AnyRow, Db, Row, Tx};
use serde::{Deserialize, Serialize};

pub type DbResult<T> = Result<T, sqlx::Error>;

/// The byte-order sort key of an object key (see the migration).
pub fn sort_key(key: &str) -> String {
    hex::encode(key.as_bytes())
}

/// Every sort key under `prefix` is `>= lower` and `< upper`.
pub fn prefix_bounds(prefix: &str) -> (String, String) {
    let lower = sort_key(prefix);
    let upper = format!("{lower}g");
    (lower, upper)
}

fn s(row: &AnyRow, col: &str) -> String {
    row.try_get::<String, _>(col).unwrap_or_default()
}

fn i(row: &AnyRow, col: &str) -> i64 {
    row.try_get::<i64, _>(col).unwrap_or_default()
}

/// A bucket's sub-resources, kept as one JSON document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BucketConfig {
    /// Bucket tags, in the order given.
    pub tags: Option<Vec<(String, String)>>,
    /// Canned ACL: "private" (default) or "public-read".
    pub acl: Option<String>,
    /// The bucket policy document as the client sent it.
    pub policy: Option<String>,
    /// Record Get/Put/Delete object requests in the audit trail too.
    pub audit_data_events: bool,
    /// Object lock: the retention new versions get by default.
    pub object_lock_default: Option<crate::lock::DefaultRetention>,
    /// Default encryption set with PutBucketEncryption (None: SSE-S3).
    pub encryption: Option<crate::sse_kms::DefaultEncryption>,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    pub id: String,
    pub project_id: String,
    pub versioning: String,
    pub object_lock: bool,
    pub config: BucketConfig,
    pub created_at: i64,
}

impl Bucket {
    fn from_row(row: &AnyRow) -> Bucket {
        Bucket {
            name: s(row, "name"),
            id: s(row, "id"),
            project_id: s(row, "project_id"),
            versioning: s(row, "versioning"),
            object_lock: i(row, "object_lock") != 0,
            config: serde_json::from_str(&s(row, "config")).unwrap_or_default(),
            created_at: i(row, "created_at"),
        }
    }

    pub fn versioning_enabled(&self) -> bool {
        self.versioning == "Enabled"
    }
}

pub async fn create_bucket(db: &Db, b: &Bucket) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO s3_buckets (name, id, project_id, versioning, object_lock, config, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&b.name)
    .bind(&b.id)
    .bind(&b.project_id)
    .bind(&b.versioning)
    .bind(himmel_db::b(b.object_lock))
    .bind(serde_json::to_string(&b.config).unwrap_or_default())
    .bind(b.created_at)
    .execute(&mut **tx)
    .await?;
    tx.commit().await
}

pub async fn get_bucket(db: &Db, name: &str) -> DbResult<Option<Bucket>> {
    let row = sqlx::query("SELECT * FROM s3_buckets WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(Bucket::from_row))
}

pub async fn list_buckets(db: &Db, project_id: &str) -> DbResult<Vec<Bucket>> {
    let rows = sqlx::query("SELECT * FROM s3_buckets WHERE project_id = $1 ORDER BY name")
        .bind(project_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(Bucket::from_row).collect())
}

/// Deletes the bucket when it holds no object version and no upload;
/// returns false when it is not empty.
pub async fn delete_bucket(db: &Db, b: &Bucket) -> DbResult<bool> {
    let mut tx = db.begin_write().await?;
    let objects: i64 = sqlx::query("SELECT COUNT(*) AS n FROM s3_objects WHERE bucket_id = $1")
        .bind(&b.id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    let uploads: i64 = sqlx::query("SELECT COUNT(*) AS n FROM s3_uploads WHERE bucket_id = $1")
        .bind(&b.id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    if objects + uploads > 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM s3_buckets WHERE id = $1")
        .bind(&b.id)
        .execute(&mut **tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn update_bucket(db: &Db, b: &Bucket) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE s3_buckets SET versioning = $1, object_lock = $2, config = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(&b.versioning)
    .bind(himmel_db::b(b.object_lock))
    .bind(serde_json::to_string(&b.config).unwrap_or_default())
    .bind(now_us())
    .bind(&b.id)
    .execute(&mut **tx)
    .await?;
    tx.commit().await
}

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// One object version or delete marker.
#[derive(Debug, Clone, Default)]
pub struct ObjectRow {
    pub id: String,
    pub bucket_id: String,
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified: i64,
    /// (file id, plaintext size) per segment, in order.
    pub segments: Vec<(String, u64)>,
    /// Sealed metadata (base64 in the table).
    pub meta: Vec<u8>,
    pub sse: String,
    pub sse_key_id: String,
    pub sse_key_hash: String,
    pub tags: String,
    pub lock_mode: String,
    pub lock_until: i64,
    pub legal_hold: bool,
    /// A small object's sealed data ([`crate::inline`]), empty when the
    /// data is in `segments`. It rides with the row through the commit, so
    /// data and version become durable and visible together.
    pub inline: Vec<u8>,
}

/// Every column of `s3_objects` but `inline_data`: listings, and the rows a
/// write replaces or removes, never need a small object's data, and
/// leaving it out keeps those queries from reading it (PostgreSQL keeps
/// it out of line; in SQLite it is the last column).
const ROW_COLUMNS: &str = "id, bucket_id, object_key, sort_key, version_id, is_latest, \
     delete_marker, size, etag, last_modified, segments, meta, sse, sse_key_id, sse_key_hash, tags, \
     lock_mode, lock_until, legal_hold, legal_hold_applied, created_at";

impl ObjectRow {
    fn from_row(row: &AnyRow) -> ObjectRow {
        use base64::Engine as _;
        ObjectRow {
            id: s(row, "id"),
            bucket_id: s(row, "bucket_id"),
            key: s(row, "object_key"),
            version_id: s(row, "version_id"),
            is_latest: i(row, "is_latest") != 0,
            delete_marker: i(row, "delete_marker") != 0,
            size: i(row, "size") as u64,
            etag: s(row, "etag"),
            last_modified: i(row, "last_modified"),
            segments: serde_json::from_str(&s(row, "segments")).unwrap_or_default(),
            meta: base64::engine::general_purpose::STANDARD
                .decode(s(row, "meta"))
                .unwrap_or_default(),
            sse: s(row, "sse"),
            sse_key_id: s(row, "sse_key_id"),
            sse_key_hash: s(row, "sse_key_hash"),
            tags: s(row, "tags"),
            lock_mode: s(row, "lock_mode"),
            lock_until: i(row, "lock_until"),
            legal_hold: i(row, "legal_hold") != 0,
            // Absent from ROW_COLUMNS queries: then the row reads as if
            // its data were in files, which those callers never look at.
            inline: base64::engine::general_purpose::STANDARD
                .decode(s(row, "inline_data"))
                .unwrap_or_default(),
        }
    }

    /// Whether the data is sealed into the row rather than in files.
    pub fn is_inline(&self) -> bool {
        !self.inline.is_empty()
    }

    /// The plaintext size of each part: one per segment, or the whole
    /// object when it is stored inline.
    pub fn part_sizes(&self) -> Vec<u64> {
        if self.is_inline() {
            vec![self.size]
        } else {
            self.segments.iter().map(|(_, size)| *size).collect()
        }
    }

    pub fn file_ids(&self) -> Vec<String> {
        self.segments.iter().map(|(id, _)| id.clone()).collect()
    }
}

/// The columns an insert sets, in order.
const INSERT_COLUMNS: &str = "id, bucket_id, object_key, sort_key, version_id, is_latest, \
     delete_marker, size, etag, last_modified, segments, meta, sse, sse_key_id, sse_key_hash, tags, \
     lock_mode, lock_until, legal_hold, created_at, inline_data";
const INSERT_COLUMN_COUNT: usize = 21;

/// `rows` groups of `per_row` numbered placeholders, each group rendered
/// by `render` from its placeholders and the groups joined by `join`.
fn placeholders(
    rows: usize,
    per_row: usize,
    join: &str,
    render: impl Fn(&[String]) -> String,
) -> String {
    (0..rows)
        .map(|r| {
            let names: Vec<String> = (1..=per_row)
                .map(|c| format!("${}", r * per_row + c))
                .collect();
            render(&names)
        })
        .collect::<Vec<_>>()
        .join(join)
}

/// Inserts `rows` as latest versions in one statement.
async fn insert_latest(tx: &mut Tx, rows: &[&ObjectRow]) -> DbResult<()> {
    use base64::Engine as _;
    let values = placeholders(rows.len(), INSERT_COLUMN_COUNT, ", ", |p| {
        format!("({})", p.join(", "))
    });
    let sql = format!("INSERT INTO s3_objects ({INSERT_COLUMNS}) VALUES {values}");
    let mut q = sqlx::query(&sql);
    let created_at = now_us();
    for o in rows {
        q = q
            .bind(&o.id)
            .bind(&o.bucket_id)
            .bind(&o.key)
            .bind(sort_key(&o.key))
            .bind(&o.version_id)
            .bind(himmel_db::b(true))
            .bind(himmel_db::b(o.delete_marker))
            .bind(o.size as i64)
            .bind(&o.etag)
            .bind(o.last_modified)
            .bind(serde_json::to_string(&o.segments).unwrap_or_default())
            .bind(base64::engine::general_purpose::STANDARD.encode(&o.meta))
            .bind(&o.sse)
            .bind(&o.sse_key_id)
            .bind(&o.sse_key_hash)
            .bind(&o.tags)
            .bind(&o.lock_mode)
            .bind(o.lock_until)
            .bind(himmel_db::b(o.legal_hold))
            .bind(created_at)
            .bind(base64::engine::general_purpose::STANDARD.encode(&o.inline));
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Makes `o` the latest version of its key. A version with the same
/// version id (the "null" version) is replaced; the replaced rows are
/// returned so their files can be removed after the commit.
pub async fn put_object(db: &Db, o: &ObjectRow) -> DbResult<Vec<ObjectRow>> {
    let mut tx = db.begin_write().await?;
    let replaced = put_object_in(&mut tx, o).await?;
    tx.commit().await?;
    Ok(replaced)
}

pub async fn put_object_in(tx: &mut Tx, o: &ObjectRow) -> DbResult<Vec<ObjectRow>> {
    Ok(put_distinct_keys(tx, &[o]).await?.pop().unwrap_or_default())
}

/// Does what [`put_object_in`] does for each of `rows` in turn, in a few
/// statements instead of three per row: the group commit's transaction
/// then costs about the same for a batch as for one version. Returns the
/// replaced rows of each.
pub async fn put_objects_in(tx: &mut Tx, rows: &[&ObjectRow]) -> DbResult<Vec<Vec<ObjectRow>>> {
    let mut replaced = Vec::with_capacity(rows.len());
    let mut start = 0;
    while start < rows.len() {
        // A run in which no key repeats: its versions do not affect one
        // another, so they can go in together. A repeated key starts the
        // next run, which then sees this one's version as the one before.
        let mut keys = std::collections::HashSet::new();
        let end = start
            + rows[start..]
                .iter()
                .take_while(|r| keys.insert((r.bucket_id.as_str(), r.key.as_str())))
                .count();
        replaced.extend(put_distinct_keys(tx, &rows[start..end]).await?);
        start = end;
    }
    Ok(replaced)
}

/// [`put_objects_in`] for rows whose keys all differ.
async fn put_distinct_keys(tx: &mut Tx, rows: &[&ObjectRow]) -> DbResult<Vec<Vec<ObjectRow>>> {
    let sort_keys: Vec<String> = rows.iter().map(|r| sort_key(&r.key)).collect();
    let same_version = placeholders(rows.len(), 3, " OR ", |p| {
        format!(
            "(bucket_id = {} AND sort_key = {} AND version_id = {})",
            p[0], p[1], p[2]
        )
    });
    let sql = format!("DELETE FROM s3_objects WHERE {same_version} RETURNING {ROW_COLUMNS}");
    let mut q = sqlx::query(&sql);
    for (o, sk) in rows.iter().zip(&sort_keys) {
        q = q.bind(&o.bucket_id).bind(sk).bind(&o.version_id);
    }
    let mut replaced = vec![Vec::new(); rows.len()];
    for gone in q
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(ObjectRow::from_row)
    {
        let owner = rows.iter().position(|r| {
            r.bucket_id == gone.bucket_id && r.key == gone.key && r.version_id == gone.version_id
        });
        if let Some(i) = owner {
            replaced[i].push(gone);
        }
    }
    let same_key = placeholders(rows.len(), 2, " OR ", |p| {
        format!("(bucket_id = {} AND sort_key = {})", p[0], p[1])
    });
    let sql = format!("UPDATE s3_objects SET is_latest = 0 WHERE is_latest = 1 AND ({same_key})");
    let mut q = sqlx::query(&sql);
    for (o, sk) in rows.iter().zip(&sort_keys) {
        q = q.bind(&o.bucket_id).bind(sk);
    }
    q.execute(&mut **tx).await?;
    insert_latest(tx, rows).await?;
    Ok(replaced)
}

pub async fn get_latest(db: &Db, bucket_id: &str, key: &str) -> DbResult<Option<ObjectRow>> {
    let row = sqlx::query(
        "SELECT * FROM s3_objects WHERE bucket_id = $1 AND sort_key = $2 AND is_latest = 1",
    )
    .bind(bucket_id)
    .bind(sort_key(key))
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(ObjectRow::from_row))
}

pub async fn get_version(
    db: &Db,
    bucket_id: &str,
    key: &str,
    version_id: &str,
) -> DbResult<Option<ObjectRow>> {
    let row = sqlx::query(
        "SELECT * FROM s3_objects WHERE bucket_id = $1 AND sort_key = $2 AND version_id = $3",
    )
    .bind(bucket_id)
    .bind(sort_key(key))
    .bind(version_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(ObjectRow::from_row))
}

/// Removes one version; when it was the latest, the newest remaining
/// version becomes the latest. Returns the removed row.
pub async fn delete_version(
    db: &Db,
    bucket_id: &str,
    key: &str,
    version_id: &str,
) -> DbResult<Option<ObjectRow>> {
    let mut tx = db.begin_write().await?;
    let sk = sort_key(key);
    let row = sqlx::query(&format!(
        "SELECT {ROW_COLUMNS} FROM s3_objects WHERE bucket_id = $1 AND sort_key = $2 AND version_id = $3"
    ))
    .bind(bucket_id)
    .bind(&sk)
    .bind(version_id)
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(ObjectRow::from_row);
    let Some(row) = row else { return Ok(None) };
    sqlx::query("DELETE FROM s3_objects WHERE id = $1")
        .bind(&row.id)
        .execute(&mut **tx)
        .await?;
    if row.is_latest {
        let newest: Option<String> = sqlx::query(
            "SELECT id FROM s3_objects WHERE bucket_id = $1 AND sort_key = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(bucket_id)
        .bind(&sk)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| s(&r, "id"));
        if let Some(id) = newest {
            sqlx::query("UPDATE s3_objects SET is_latest = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(Some(row))
}

/// Latest, not-deleted objects with sort keys in `(after, upper)` and
/// `>= lower`, in key order.
pub async fn list_latest(
    db: &Db,
    bucket_id: &str,
    after: &str,
    lower: &str,
    upper: &str,
    limit: i64,
) -> DbResult<Vec<ObjectRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ROW_COLUMNS} FROM s3_objects WHERE bucket_id = $1 AND is_latest = 1 AND delete_marker = 0 \
         AND sort_key > $2 AND sort_key >= $3 AND sort_key < $4 ORDER BY sort_key LIMIT $5"
    ))
    .bind(bucket_id)
    .bind(after)
    .bind(lower)
    .bind(upper)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(ObjectRow::from_row).collect())
}

/// All versions with sort keys in `[from, upper)` and `>= lower`, by key
/// then newest first.
pub async fn list_versions(
    db: &Db,
    bucket_id: &str,
    from: &str,
    lower: &str,
    upper: &str,
    limit: i64,
) -> DbResult<Vec<ObjectRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ROW_COLUMNS} FROM s3_objects WHERE bucket_id = $1 \
         AND sort_key >= $2 AND sort_key >= $3 AND sort_key < $4 \
         ORDER BY sort_key, created_at DESC, id DESC LIMIT $5"
    ))
    .bind(bucket_id)
    .bind(from)
    .bind(lower)
    .bind(upper)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(ObjectRow::from_row).collect())
}

pub async fn set_object_tags(db: &Db, id: &str, tags: &str) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE s3_objects SET tags = $1 WHERE id = $2")
        .bind(tags)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    tx.commit().await
}

/// Every file id that metadata refers to (objects and upload parts).
pub async fn referenced_files(db: &Db) -> DbResult<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for row in sqlx::query("SELECT segments FROM s3_objects")
        .fetch_all(db.pool())
        .await?
    {
        let segs: Vec<(String, u64)> =
            serde_json::from_str(&s(&row, "segments")).unwrap_or_default();
        out.extend(segs.into_iter().map(|(id, _)| id));
    }
    for row in sqlx::query("SELECT file_id FROM s3_parts")
        .fetch_all(db.pool())
        .await?
    {
        out.insert(s(&row, "file_id"));
    }
    Ok(out)
}

/// A multipart upload in progress.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    pub id: String,
    pub bucket_id: String,
    pub key: String,
    pub meta: Vec<u8>,
    pub sse: String,
    pub sse_key_id: String,
    pub sse_key_hash: String,
    pub tags: String,
    pub initiator: String,
    pub created_at: i64,
}

impl Upload {
    fn from_row(row: &AnyRow) -> Upload {
        use base64::Engine as _;
        Upload {
            id: s(row, "id"),
            bucket_id: s(row, "bucket_id"),
            key: s(row, "object_key"),
            meta: base64::engine::general_purpose::STANDARD
                .decode(s(row, "meta"))
                .unwrap_or_default(),
            sse: s(row, "sse"),
            sse_key_id: s(row, "sse_key_id"),
            sse_key_hash: s(row, "sse_key_hash"),
            tags: s(row, "tags"),
            initiator: s(row, "initiator"),
            created_at: i(row, "created_at"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Part {
    pub number: i64,
    pub file_id: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: i64,
}

impl Part {
    fn from_row(row: &AnyRow) -> Part {
        Part {
            number: i(row, "part_number"),
            file_id: s(row, "file_id"),
            size: i(row, "size") as u64,
            etag: s(row, "etag"),
            last_modified: i(row, "last_modified"),
        }
    }
}

pub async fn create_upload(db: &Db, u: &Upload) -> DbResult<()> {
    use base64::Engine as _;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO s3_uploads (id, bucket_id, object_key, sort_key, meta, sse, sse_key_id, sse_key_hash, tags, \
         initiator, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&u.id)
    .bind(&u.bucket_id)
    .bind(&u.key)
    .bind(sort_key(&u.key))
    .bind(base64::engine::general_purpose::STANDARD.encode(&u.meta))
    .bind(&u.sse)
    .bind(&u.sse_key_id)
    .bind(&u.sse_key_hash)
    .bind(&u.tags)
    .bind(&u.initiator)
    .bind(u.created_at)
    .execute(&mut **tx)
    .await?;
    tx.commit().await
}

pub async fn get_upload(db: &Db, bucket_id: &str, key: &str, id: &str) -> DbResult<Option<Upload>> {
    let row =
        sqlx::query("SELECT * FROM s3_uploads WHERE id = $1 AND bucket_id = $2 AND sort_key = $3")
            .bind(id)
            .bind(bucket_id)
            .bind(sort_key(key))
            .fetch_optional(db.pool())
            .await?;
    Ok(row.as_ref().map(Upload::from_row))
}

pub async fn list_uploads(
    db: &Db,
    bucket_id: &str,
    lower: &str,
    upper: &str,
) -> DbResult<Vec<Upload>> {
    let rows = sqlx::query(
        "SELECT * FROM s3_uploads WHERE bucket_id = $1 AND sort_key >= $2 AND sort_key < $3 \
         ORDER BY sort_key, created_at, id",
    )
    .bind(bucket_id)
    .bind(lower)
    .bind(upper)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(Upload::from_row).collect())
}

/// Records a part; returns the file of a part it replaced.
pub async fn put_part(db: &Db, upload_id: &str, p: &Part) -> DbResult<Option<String>> {
    let mut tx = db.begin_write().await?;
    let old: Option<String> =
        sqlx::query("SELECT file_id FROM s3_parts WHERE upload_id = $1 AND part_number = $2")
            .bind(upload_id)
            .bind(p.number)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| s(&r, "file_id"));
    sqlx::query("DELETE FROM s3_parts WHERE upload_id = $1 AND part_number = $2")
        .bind(upload_id)
        .bind(p.number)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO s3_parts (upload_id, part_number, file_id, size, etag, last_modified) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(upload_id)
    .bind(p.number)
    .bind(&p.file_id)
    .bind(p.size as i64)
    .bind(&p.etag)
    .bind(p.last_modified)
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    Ok(old)
}

pub async fn list_parts(db: &Db, upload_id: &str) -> DbResult<Vec<Part>> {
    let rows = sqlx::query("SELECT * FROM s3_parts WHERE upload_id = $1 ORDER BY part_number")
        .bind(upload_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(Part::from_row).collect())
}

/// Ends an upload: deletes its rows (and, when `object` is given, makes
/// that the latest version of the key in the same transaction). Returns
/// the rows it replaced, or None when the upload was already gone.
pub async fn finish_upload(
    db: &Db,
    upload_id: &str,
    object: Option<&ObjectRow>,
) -> DbResult<Option<Vec<ObjectRow>>> {
    let mut tx = db.begin_write().await?;
    let gone = sqlx::query("DELETE FROM s3_uploads WHERE id = $1")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Ok(None);
    }
    sqlx::query("DELETE FROM s3_parts WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?;
    let replaced = match object {
        Some(o) => put_object_in(&mut tx, o).await?,
        None => vec![],
    };
    tx.commit().await?;
    Ok(Some(replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_bytewise_and_bound_prefixes() {
        let mut keys = vec!["b", "a/c", "a", "a/b", "é", "Z", "a0"];
        keys.sort();
        let mut by_hex = keys.clone();
        by_hex.sort_by_key(|k| sort_key(k));
        assert_eq!(keys, by_hex);
        let (lo, hi) = prefix_bounds("a/");
        for k in ["a/", "a/b", "a/\u{10ffff}"] {
            let sk = sort_key(k);
            assert!(sk >= lo && sk < hi, "{k}");
        }
        for k in ["a", "a0", "b"] {
            let sk = sort_key(k);
            assert!(!(sk >= lo && sk < hi), "{k}");
        }
    }
}
