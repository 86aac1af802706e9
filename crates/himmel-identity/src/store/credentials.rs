//! Credentials (ec2, totp, cert). The blob is a secret: it is stored only
//! encrypted with the credential key repository, as Keystone does, and
//! decrypted when read. An ec2 credential's id is the hex SHA-256 of its
//! access key, and the access key is kept in clear in `access` so S3 can
//! find the credential without decrypting every blob.

use himmel_core::Error;
use himmel_db::AnyRow;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{json as json_col, opt_s, s};
use crate::{db_err, Identity};

/// The credential types we store.
pub const TYPES: &[&str] = &["ec2", "totp", "cert"];

#[derive(Debug, Clone)]
pub struct Credential {
    pub id: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub kind: String,
    /// The blob in clear.
    pub blob: String,
    pub extra: Value,
}

impl Credential {
    pub fn to_json(&self, base: &str) -> Value {
        let mut v = json!({
            "id": self.id,
            "user_id": self.user_id,
            "project_id": self.project_id,
            "type": self.kind,
            "blob": self.blob,
            "links": {"self": format!("{base}/v3/credentials/{}", self.id)},
        });
        super::domains::merge_extra(&mut v, &self.extra);
        v
    }

    /// The access key of an ec2 credential.
    pub fn access(&self) -> Option<String> {
        (self.kind == "ec2")
            .then(|| ec2_blob(&self.blob).ok())
            .flatten()
            .map(|b| b.access)
    }
}

/// The parts of an ec2 blob we rely on.
pub struct Ec2Blob {
    pub access: String,
    pub secret: Option<String>,
    pub trust_id: Option<String>,
    pub app_cred_id: Option<String>,
}

/// Parses an ec2 blob: a JSON object with at least a string `access`.
pub fn ec2_blob(blob: &str) -> Result<Ec2Blob, Error> {
    let v: Value = serde_json::from_str(blob)
        .map_err(|_| Error::BadRequest("Invalid blob in credential".into()))?;
    let obj = v.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
        Error::BadRequest("Invalid input for field 'blob': an ec2 blob is a JSON object.".into())
    })?;
    let access = obj
        .get("access")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            Error::BadRequest("Invalid input for field 'access': required in an ec2 blob.".into())
        })?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(Ec2Blob {
        access: access.to_owned(),
        secret: text("secret"),
        trust_id: text("trust_id"),
        app_cred_id: text("app_cred_id"),
    })
}

/// Keystone's id for an ec2 credential: hex SHA-256 of the access key.
pub fn ec2_id(access: &str) -> String {
    hex::encode(Sha256::digest(access.as_bytes()))
}

fn from_row(id: &Identity, row: &AnyRow) -> Result<Credential, Error> {
    let sealed = s(row, "blob");
    let blob = id
        .credential_keys()
        .decrypt(&sealed)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            Error::Internal(format!(
                "credential {} cannot be decrypted with the credential keys",
                s(row, "id")
            ))
        })?;
    Ok(Credential {
        id: s(row, "id"),
        user_id: s(row, "user_id"),
        project_id: opt_s(row, "project_id"),
        kind: s(row, "type"),
        blob,
        extra: json_col(row, "extra"),
    })
}

fn duplicate(cred_id: &str) -> Error {
    Error::Conflict(format!(
        "Conflict occurred attempting to store credential - Duplicate ID, {cred_id}."
    ))
}

pub async fn create(id: &Identity, c: &Credential) -> Result<(), Error> {
    let sealed = id.credential_keys().encrypt(c.blob.as_bytes());
    let mut tx = id.db().begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO credentials (id, user_id, project_id, type, access, blob, extra, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&c.id)
    .bind(&c.user_id)
    .bind(&c.project_id)
    .bind(&c.kind)
    .bind(c.access())
    .bind(sealed)
    .bind(c.extra.to_string())
    .bind(super::now_us())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if himmel_db::is_unique_violation(&e) {
            duplicate(&c.id)
        } else {
            db_err(e)
        }
    })?;
    tx.commit().await.map_err(db_err)
}

pub async fn update(id: &Identity, c: &Credential) -> Result<(), Error> {
    let sealed = id.credential_keys().encrypt(c.blob.as_bytes());
    let mut tx = id.db().begin_write().await.map_err(db_err)?;
    sqlx::query(
        "UPDATE credentials SET user_id = $2, project_id = $3, type = $4, access = $5, blob = $6, \
         extra = $7 WHERE id = $1",
    )
    .bind(&c.id)
    .bind(&c.user_id)
    .bind(&c.project_id)
    .bind(&c.kind)
    .bind(c.access())
    .bind(sealed)
    .bind(c.extra.to_string())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if himmel_db::is_unique_violation(&e) {
            duplicate(&c.id)
        } else {
            db_err(e)
        }
    })?;
    tx.commit().await.map_err(db_err)
}

pub async fn get(id: &Identity, cred_id: &str) -> Result<Option<Credential>, Error> {
    let row = sqlx::query("SELECT * FROM credentials WHERE id = $1")
        .bind(cred_id)
        .fetch_optional(id.db().pool())
        .await
        .map_err(db_err)?;
    row.map(|r| from_row(id, &r)).transpose()
}

/// Credentials, optionally only a user's and only of one type.
pub async fn list(
    id: &Identity,
    user_id: Option<&str>,
    kind: Option<&str>,
) -> Result<Vec<Credential>, Error> {
    let mut sql = String::from("SELECT * FROM credentials WHERE 1 = 1");
    let mut binds = Vec::new();
    for (col, value) in [("user_id", user_id), ("type", kind)] {
        if let Some(v) = value {
            binds.push(v);
            sql.push_str(&format!(" AND {col} = ${}", binds.len()));
        }
    }
    sql.push_str(" ORDER BY created_at, id");
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = q.bind(b);
    }
    let rows = q.fetch_all(id.db().pool()).await.map_err(db_err)?;
    rows.iter().map(|r| from_row(id, r)).collect()
}

/// Deletes a credential; false when there was none.
pub async fn delete(id: &Identity, cred_id: &str) -> Result<bool, Error> {
    let mut tx = id.db().begin_write().await.map_err(db_err)?;
    let done = sqlx::query("DELETE FROM credentials WHERE id = $1")
        .bind(cred_id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}

/// What S3 needs to check a request signed with an ec2 access key.
#[derive(Debug, Clone)]
pub struct Ec2Secret {
    pub user_id: String,
    pub project_id: Option<String>,
    pub secret: String,
    /// Set when the credential was created through an application
    /// credential: requests signed with it get no more than that did.
    pub app_cred_id: Option<String>,
}

/// Looks up an ec2 access key. The caller still has to check that the
/// user is enabled and holds roles on the project.
pub async fn ec2_secret_for_access(
    id: &Identity,
    access: &str,
) -> Result<Option<Ec2Secret>, Error> {
    let row = sqlx::query("SELECT * FROM credentials WHERE access = $1 AND type = 'ec2'")
        .bind(access)
        .fetch_optional(id.db().pool())
        .await
        .map_err(db_err)?;
    let Some(row) = row else { return Ok(None) };
    let cred = from_row(id, &row)?;
    let blob = ec2_blob(&cred.blob)?;
    Ok(blob.secret.map(|secret| Ec2Secret {
        user_id: cred.user_id,
        project_id: cred.project_id,
        secret,
        app_cred_id: blob.app_cred_id,
    }))
}
