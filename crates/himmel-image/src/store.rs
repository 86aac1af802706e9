//! Queries over `images`, `image_tags` and `image_members` (portable SQL:
//! see himmel-db).

use std::collections::{BTreeMap, HashMap, HashSet};

use himmel_core::Error;
use himmel_db::sqlx::{self, Row};
use himmel_db::{b, get_bool, AnyRow, Db};

use crate::model::{Image, Status, StoredData, Visibility};

fn db_err(e: sqlx::Error) -> Error {
    Error::internal(format!("image store: {e}"))
}

fn now() -> i64 {
    himmel_core::time::now().timestamp_micros()
}

const COLUMNS: &str = "id, name, owner, status, visibility, protected, os_hidden, disk_format, \
    container_format, min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, \
    os_hash_value, properties, file_id, key_project, data_key, staged_file_id, staged_data_key, \
    staged_size, created_at, updated_at";

fn stored(
    file: Option<String>,
    project: Option<String>,
    key: Option<String>,
) -> Option<StoredData> {
    Some(StoredData {
        file_id: file?,
        key_project: project?,
        data_key: hex::decode(key?).ok()?,
    })
}

fn opt_u64(row: &AnyRow, col: &str) -> Option<u64> {
    row.get::<Option<i64>, _>(col).map(|v| v.max(0) as u64)
}

fn from_row(row: &AnyRow) -> Result<Image, Error> {
    let status: String = row.get("status");
    let visibility: String = row.get("visibility");
    let properties: String = row.get("properties");
    let key_project: Option<String> = row.get("key_project");
    Ok(Image {
        id: row.get("id"),
        name: row.get("name"),
        owner: row.get("owner"),
        status: Status::parse(&status)
            .ok_or_else(|| Error::internal(format!("unknown image status {status}")))?,
        visibility: Visibility::parse(&visibility).map_err(Error::internal)?,
        protected: get_bool(row, "protected"),
        os_hidden: get_bool(row, "os_hidden"),
        disk_format: row.get("disk_format"),
        container_format: row.get("container_format"),
        min_disk: row.get::<i64, _>("min_disk").max(0) as u64,
        min_ram: row.get::<i64, _>("min_ram").max(0) as u64,
        size: opt_u64(row, "size"),
        virtual_size: opt_u64(row, "virtual_size"),
        checksum: row.get("checksum"),
        os_hash_algo: row.get("os_hash_algo"),
        os_hash_value: row.get("os_hash_value"),
        properties: serde_json::from_str::<BTreeMap<String, String>>(&properties)
            .map_err(Error::internal)?,
        tags: Default::default(),
        data: stored(row.get("file_id"), key_project.clone(), row.get("data_key")),
        staged: stored(
            row.get("staged_file_id"),
            key_project,
            row.get("staged_data_key"),
        ),
        staged_size: opt_u64(row, "staged_size"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn props_json(image: &Image) -> String {
    serde_json::to_string(&image.properties).unwrap_or_else(|_| "{}".into())
}

pub async fn insert(db: &Db, image: &Image) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let sql = format!(
        "INSERT INTO images ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         NULL, NULL, NULL, NULL, NULL, $12, NULL, NULL, NULL, NULL, NULL, NULL, $13, $13)"
    );
    let r = sqlx::query(&sql)
        .bind(&image.id)
        .bind(&image.name)
        .bind(&image.owner)
        .bind(image.status.as_str())
        .bind(image.visibility.as_str())
        .bind(b(image.protected))
        .bind(b(image.os_hidden))
        .bind(&image.disk_format)
        .bind(&image.container_format)
        .bind(image.min_disk as i64)
        .bind(image.min_ram as i64)
        .bind(props_json(image))
        .bind(image.created_at)
        .execute(&mut *tx.tx)
        .await;
    if let Err(e) = r {
        return Err(if himmel_db::is_unique_violation(&e) {
            Error::Conflict(format!(
                "An image with identifier {} already exists",
                image.id
            ))
        } else {
            db_err(e)
        });
    }
    for tag in &image.tags {
        sqlx::query("INSERT INTO image_tags (image_id, tag) VALUES ($1, $2)")
            .bind(&image.id)
            .bind(tag)
            .execute(&mut *tx.tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Image>, Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM images WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    let Some(row) = row else { return Ok(None) };
    let mut image = from_row(&row)?;
    image.tags = sqlx::query_scalar("SELECT tag FROM image_tags WHERE image_id = $1")
        .bind(id)
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?
        .into_iter()
        .collect();
    Ok(Some(image))
}

/// Every image the caller could see: all of them for the cloud
/// administrator, else the project's own, public and community images and
/// those shared with the project. The caller filters further.
pub async fn candidates(db: &Db, project: Option<&str>, all: bool) -> Result<Vec<Image>, Error> {
    let (where_images, where_tags) = if all {
        (String::new(), String::new())
    } else {
        let cond = "owner = $1 OR visibility IN ('public', 'community') OR id IN \
                    (SELECT image_id FROM image_members WHERE member_id = $1)";
        (
            format!("WHERE {cond}"),
            format!("WHERE image_id IN (SELECT id FROM images WHERE {cond})"),
        )
    };
    let project = project.unwrap_or_default();
    let images_sql = format!("SELECT {COLUMNS} FROM images {where_images}");
    let tags_sql = format!("SELECT image_id, tag FROM image_tags {where_tags}");
    let (mut images_q, mut tags_q) = (sqlx::query(&images_sql), sqlx::query(&tags_sql));
    if !all {
        images_q = images_q.bind(project);
        tags_q = tags_q.bind(project);
    }
    let rows = images_q.fetch_all(db.pool()).await.map_err(db_err)?;
    let tag_rows = tags_q.fetch_all(db.pool()).await.map_err(db_err)?;
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    for r in &tag_rows {
        tags.entry(r.get("image_id"))
            .or_default()
            .push(r.get("tag"));
    }
    rows.iter()
        .map(|r| {
            let mut i = from_row(r)?;
            if let Some(t) = tags.remove(&i.id) {
                i.tags = t.into_iter().collect();
            }
            Ok(i)
        })
        .collect()
}

/// Writes the caller-settable attributes, properties and tags of `image`
/// (read the same row before, in the same request).
pub async fn update(db: &Db, image: &Image) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query(
        "UPDATE images SET name = $2, owner = $3, visibility = $4, protected = $5, os_hidden = $6, \
         disk_format = $7, container_format = $8, min_disk = $9, min_ram = $10, properties = $11, \
         updated_at = $12 WHERE id = $1",
    )
    .bind(&image.id)
    .bind(&image.name)
    .bind(&image.owner)
    .bind(image.visibility.as_str())
    .bind(b(image.protected))
    .bind(b(image.os_hidden))
    .bind(&image.disk_format)
    .bind(&image.container_format)
    .bind(image.min_disk as i64)
    .bind(image.min_ram as i64)
    .bind(props_json(image))
    .bind(now())
    .execute(&mut *tx.tx)
    .await
    .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(crate::access::not_found(&image.id));
    }
    sqlx::query("DELETE FROM image_tags WHERE image_id = $1")
        .bind(&image.id)
        .execute(&mut *tx.tx)
        .await
        .map_err(db_err)?;
    for tag in &image.tags {
        sqlx::query("INSERT INTO image_tags (image_id, tag) VALUES ($1, $2)")
            .bind(&image.id)
            .bind(tag)
            .execute(&mut *tx.tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

/// Deletes the image row (tags and members go with it); returns the data
/// files it referred to, for the caller to remove.
pub async fn delete(db: &Db, id: &str) -> Result<Vec<String>, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let files = sqlx::query("SELECT file_id, staged_file_id FROM images WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx.tx)
        .await
        .map_err(db_err)?;
    let Some(files) = files else {
        return Err(crate::access::not_found(id));
    };
    for table in ["image_tags", "image_members"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE image_id = $1"))
            .bind(id)
            .execute(&mut *tx.tx)
            .await
            .map_err(db_err)?;
    }
    sqlx::query("DELETE FROM images WHERE id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(["file_id", "staged_file_id"]
        .iter()
        .filter_map(|c| files.get::<Option<String>, _>(*c))
        .collect())
}

/// Moves the image from one of `from` to `to`; false when it was in
/// another status (someone else got there first).
pub async fn transition(db: &Db, id: &str, from: &[Status], to: Status) -> Result<bool, Error> {
    let list = from
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query(&format!(
        "UPDATE images SET status = $2, updated_at = $3 WHERE id = $1 AND status IN ({list})"
    ))
    .bind(id)
    .bind(to.as_str())
    .bind(now())
    .execute(&mut *tx.tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// What an upload wrote.
pub struct Uploaded {
    pub file_id: String,
    pub key_project: String,
    pub data_key: Vec<u8>,
    pub size: u64,
    pub md5: String,
    pub sha512: String,
}

/// Makes uploaded data the image's data and the image active, if it is
/// still in status `from`; false otherwise (deleted meanwhile).
pub async fn activate(db: &Db, id: &str, from: Status, up: &Uploaded) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query(
        "UPDATE images SET status = 'active', file_id = $3, key_project = $4, data_key = $5, \
         size = $6, virtual_size = NULL, checksum = $7, os_hash_algo = 'sha512', \
         os_hash_value = $8, staged_file_id = NULL, staged_data_key = NULL, staged_size = NULL, \
         updated_at = $9 WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(&up.file_id)
    .bind(&up.key_project)
    .bind(hex::encode(&up.data_key))
    .bind(up.size as i64)
    .bind(&up.md5)
    .bind(&up.sha512)
    .bind(now())
    .execute(&mut *tx.tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// Records staged data (`PUT /stage`) on an image in status `uploading`.
pub async fn set_staged(db: &Db, id: &str, up: &Uploaded) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query(
        "UPDATE images SET staged_file_id = $2, key_project = $3, staged_data_key = $4, \
         staged_size = $5, updated_at = $6 WHERE id = $1 AND status = 'uploading'",
    )
    .bind(id)
    .bind(&up.file_id)
    .bind(&up.key_project)
    .bind(hex::encode(&up.data_key))
    .bind(up.size as i64)
    .bind(now())
    .execute(&mut *tx.tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// Forgets staged data (a failed import); returns its file for removal.
pub async fn clear_staged(db: &Db, id: &str) -> Result<Option<String>, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let file: Option<Option<String>> =
        sqlx::query_scalar("SELECT staged_file_id FROM images WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx.tx)
            .await
            .map_err(db_err)?;
    sqlx::query(
        "UPDATE images SET staged_file_id = NULL, staged_data_key = NULL, staged_size = NULL, \
         status = 'queued', updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now())
    .execute(&mut *tx.tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(file.flatten())
}

/// After a crash: an upload in flight (`saving`) can be retried from
/// `queued`, an import in flight (`importing`) from `uploading`.
pub async fn recover_interrupted(db: &Db) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for (from, to) in [("saving", "queued"), ("importing", "uploading")] {
        sqlx::query("UPDATE images SET status = $2 WHERE status = $1")
            .bind(from)
            .bind(to)
            .execute(&mut *tx.tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

/// Every data file an image refers to.
pub async fn referenced_files(db: &Db) -> Result<HashSet<String>, Error> {
    let rows = sqlx::query("SELECT file_id, staged_file_id FROM images")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    Ok(rows
        .iter()
        .flat_map(|r| {
            [
                r.get::<Option<String>, _>("file_id"),
                r.get::<Option<String>, _>("staged_file_id"),
            ]
        })
        .flatten()
        .collect())
}

// --- members ---

#[derive(Debug, Clone)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

fn member_from_row(r: &AnyRow) -> Member {
    Member {
        image_id: r.get("image_id"),
        member_id: r.get("member_id"),
        status: r.get("status"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// The membership status of `project` in image `image_id`, if any.
pub async fn member_status(
    db: &Db,
    image_id: &str,
    project: Option<&str>,
) -> Result<Option<String>, Error> {
    let Some(project) = project else {
        return Ok(None);
    };
    sqlx::query_scalar("SELECT status FROM image_members WHERE image_id = $1 AND member_id = $2")
        .bind(image_id)
        .bind(project)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)
}

/// The caller's memberships: image id -> status.
pub async fn memberships(db: &Db, project: &str) -> Result<HashMap<String, String>, Error> {
    let rows = sqlx::query("SELECT image_id, status FROM image_members WHERE member_id = $1")
        .bind(project)
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    Ok(rows
        .iter()
        .map(|r| (r.get("image_id"), r.get("status")))
        .collect())
}

pub async fn add_member(db: &Db, image_id: &str, member_id: &str) -> Result<Member, Error> {
    let t = now();
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let r = sqlx::query(
        "INSERT INTO image_members (image_id, member_id, status, created_at, updated_at) \
         VALUES ($1, $2, 'pending', $3, $3)",
    )
    .bind(image_id)
    .bind(member_id)
    .bind(t)
    .execute(&mut *tx.tx)
    .await;
    if let Err(e) = r {
        return Err(if himmel_db::is_unique_violation(&e) {
            Error::Conflict(format!(
                "Member {member_id} already exists for image {image_id}."
            ))
        } else {
            db_err(e)
        });
    }
    tx.commit().await.map_err(db_err)?;
    Ok(Member {
        image_id: image_id.into(),
        member_id: member_id.into(),
        status: "pending".into(),
        created_at: t,
        updated_at: t,
    })
}

pub async fn members(db: &Db, image_id: &str) -> Result<Vec<Member>, Error> {
    let rows = sqlx::query(
        "SELECT image_id, member_id, status, created_at, updated_at FROM image_members \
         WHERE image_id = $1 ORDER BY created_at, member_id",
    )
    .bind(image_id)
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(member_from_row).collect())
}

pub async fn member(db: &Db, image_id: &str, member_id: &str) -> Result<Option<Member>, Error> {
    let row = sqlx::query(
        "SELECT image_id, member_id, status, created_at, updated_at FROM image_members \
         WHERE image_id = $1 AND member_id = $2",
    )
    .bind(image_id)
    .bind(member_id)
    .fetch_optional(db.pool())
    .await
    .map_err(db_err)?;
    Ok(row.as_ref().map(member_from_row))
}

pub async fn set_member_status(
    db: &Db,
    image_id: &str,
    member_id: &str,
    status: &str,
) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query(
        "UPDATE image_members SET status = $3, updated_at = $4 WHERE image_id = $1 AND member_id = $2",
    )
    .bind(image_id)
    .bind(member_id)
    .bind(status)
    .bind(now())
    .execute(&mut *tx.tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_member(db: &Db, image_id: &str, member_id: &str) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query("DELETE FROM image_members WHERE image_id = $1 AND member_id = $2")
        .bind(image_id)
        .bind(member_id)
        .execute(&mut *tx.tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}
