//! Groups and their members.

use himmel_core::Error;
use himmel_db::{AnyRow, Db};
use serde_json::{json, Value};

use super::users::User;
use super::{json as json_col, s};
use crate::db_err;

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: String,
    pub extra: Value,
}

impl Group {
    pub fn from_row(row: &AnyRow) -> Group {
        Group {
            id: s(row, "id"),
            name: s(row, "name"),
            domain_id: s(row, "domain_id"),
            description: s(row, "description"),
            extra: json_col(row, "extra"),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "domain_id": self.domain_id,
            "description": self.description,
            "links": {"self": format!("/v3/groups/{}", self.id)},
        });
        super::domains::merge_extra(&mut v, &self.extra);
        v
    }
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Group>, Error> {
    let row = sqlx::query("SELECT * FROM groups WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Group::from_row))
}

/// Every group, or the groups of one domain.
pub async fn list(db: &Db, domain_id: Option<&str>) -> Result<Vec<Group>, Error> {
    let rows = match domain_id {
        Some(d) => {
            sqlx::query("SELECT * FROM groups WHERE domain_id = $1 ORDER BY name")
                .bind(d)
                .fetch_all(db.pool())
                .await
        }
        None => {
            sqlx::query("SELECT * FROM groups ORDER BY name")
                .fetch_all(db.pool())
                .await
        }
    }
    .map_err(db_err)?;
    Ok(rows.iter().map(Group::from_row).collect())
}

fn conflict(e: sqlx::Error, g: &Group) -> Error {
    if himmel_db::is_unique_violation(&e) {
        Error::Conflict(format!(
            "Conflict occurred attempting to store group - Duplicate entry found with name {} at \
             domain ID {}.",
            g.name, g.domain_id
        ))
    } else {
        db_err(e)
    }
}

pub async fn create(db: &Db, g: &Group) -> Result<(), Error> {
    let now = super::now_us();
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO groups (id, name, domain_id, description, extra, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&g.id)
    .bind(&g.name)
    .bind(&g.domain_id)
    .bind(&g.description)
    .bind(g.extra.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, g))?;
    tx.commit().await.map_err(db_err)
}

pub async fn update(db: &Db, g: &Group) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "UPDATE groups SET name = $2, description = $3, extra = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(&g.id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(g.extra.to_string())
    .bind(super::now_us())
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, g))?;
    tx.commit().await.map_err(db_err)
}

/// Deletes a group, its memberships and the role assignments it holds.
pub async fn delete(db: &Db, group_id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for step in [
        "DELETE FROM role_assignments WHERE actor_type = 'group' AND actor_id = $1",
        "DELETE FROM group_members WHERE group_id = $1",
        "DELETE FROM groups WHERE id = $1",
    ] {
        sqlx::query(step)
            .bind(group_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

pub async fn members(db: &Db, group_id: &str) -> Result<Vec<User>, Error> {
    let rows = sqlx::query(
        "SELECT u.* FROM users u JOIN group_members m ON m.user_id = u.id \
         WHERE m.group_id = $1 ORDER BY u.name",
    )
    .bind(group_id)
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(User::from_row).collect())
}

pub async fn groups_of(db: &Db, user_id: &str) -> Result<Vec<Group>, Error> {
    let rows = sqlx::query(
        "SELECT g.* FROM groups g JOIN group_members m ON m.group_id = g.id \
         WHERE m.user_id = $1 ORDER BY g.name",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(Group::from_row).collect())
}

pub async fn is_member(db: &Db, group_id: &str, user_id: &str) -> Result<bool, Error> {
    let row = sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.is_some())
}

/// Adds a member; adding one twice is not an error (Keystone's PUT).
pub async fn add_member(db: &Db, group_id: &str, user_id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(group_id)
    .bind(user_id)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Removes a member; false when the user was not one.
pub async fn remove_member(db: &Db, group_id: &str, user_id: &str) -> Result<bool, Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    let done = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}
