//! Placement queries. Writes take a connection inside a write transaction
//! and serialise on the `placement` lock first, so that "check capacity,
//! then allocate" never interleaves between two writers (PostgreSQL; SQLite
//! has one writer anyway).

use std::collections::BTreeMap;

use himmel_core::Error;
use himmel_db::{AnyRow, Row};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::store::{db_err, lock};

/// The resource classes servers consume.
pub const VCPU: &str = "VCPU";
pub const MEMORY_MB: &str = "MEMORY_MB";
pub const DISK_GB: &str = "DISK_GB";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Provider {
    pub uuid: String,
    pub name: String,
    pub generation: i64,
    pub parent_provider_uuid: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Inventory {
    pub total: i64,
    #[serde(default)]
    pub reserved: i64,
    #[serde(default = "one")]
    pub min_unit: i64,
    #[serde(default = "max_int")]
    pub max_unit: i64,
    #[serde(default = "one")]
    pub step_size: i64,
    #[serde(default = "ratio_one")]
    pub allocation_ratio: f64,
}

fn one() -> i64 {
    1
}
fn max_int() -> i64 {
    i32::MAX as i64
}
fn ratio_one() -> f64 {
    1.0
}

impl Inventory {
    /// What may be allocated in all: (total - reserved) × ratio.
    pub fn capacity(&self) -> i64 {
        ((self.total - self.reserved) as f64 * self.allocation_ratio).floor() as i64
    }

    /// Rejects values placement's schema rejects.
    pub fn validate(&self, class: &str) -> Result<(), Error> {
        let bad = self.total < 1
            || self.reserved < 0
            || self.min_unit < 1
            || self.max_unit < 1
            || self.step_size < 1
            || self.min_unit > self.max_unit
            || self.allocation_ratio.is_nan()
            || self.allocation_ratio <= 0.0
            || self.allocation_ratio > 3.4e38;
        if bad {
            return Err(Error::BadRequest(format!(
                "Unable to update inventory for resource provider: invalid values for {class}"
            )));
        }
        if self.reserved > self.total {
            return Err(Error::BadRequest(format!(
                "Unable to update inventory: the reserved value of {class} exceeds the total"
            )));
        }
        Ok(())
    }
}

/// Resources per class.
pub type Resources = BTreeMap<String, i64>;

/// The requested amounts of one consumer on one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub provider_uuid: String,
    pub resources: Resources,
}

pub async fn serialise(conn: &mut AnyConnection) -> Result<(), Error> {
    lock(conn, "placement").await
}

fn provider_from(row: &AnyRow) -> Result<Provider, Error> {
    Ok(Provider {
        uuid: row.try_get("uuid").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        generation: row.try_get("generation").map_err(db_err)?,
        parent_provider_uuid: row.try_get("parent_uuid").map_err(db_err)?,
    })
}

pub async fn providers(conn: &mut AnyConnection) -> Result<Vec<Provider>, Error> {
    let rows = sqlx::query(
        "SELECT uuid, name, generation, parent_uuid FROM placement_providers ORDER BY created_at, uuid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(provider_from).collect()
}

pub async fn provider(conn: &mut AnyConnection, uuid: &str) -> Result<Option<Provider>, Error> {
    let row = sqlx::query(
        "SELECT uuid, name, generation, parent_uuid FROM placement_providers WHERE uuid = $1",
    )
    .bind(uuid)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(provider_from).transpose()
}

pub async fn provider_named(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<Provider>, Error> {
    let row = sqlx::query(
        "SELECT uuid, name, generation, parent_uuid FROM placement_providers WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(provider_from).transpose()
}

pub fn not_found(uuid: &str) -> Error {
    Error::NotFound(format!("No resource provider with uuid {uuid} found"))
}

pub async fn create_provider(
    conn: &mut AnyConnection,
    uuid: &str,
    name: &str,
    parent: Option<&str>,
) -> Result<Provider, Error> {
    let now = himmel_core::time::now().timestamp_micros();
    let res = sqlx::query(
        "INSERT INTO placement_providers (uuid, name, generation, parent_uuid, created_at, updated_at) \
         VALUES ($1, $2, 0, $3, $4, $4)",
    )
    .bind(uuid)
    .bind(name)
    .bind(parent)
    .bind(now)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(Provider {
            uuid: uuid.into(),
            name: name.into(),
            generation: 0,
            parent_provider_uuid: parent.map(str::to_string),
        }),
        Err(e) if himmel_db::is_unique_violation(&e) => Err(Error::Conflict(format!(
            "Conflicting resource provider name: {name} already exists."
        ))),
        Err(e) => Err(db_err(e)),
    }
}

pub async fn rename_provider(
    conn: &mut AnyConnection,
    uuid: &str,
    name: &str,
) -> Result<(), Error> {
    let res = sqlx::query(
        "UPDATE placement_providers SET name = $1, generation = generation + 1, updated_at = $2 WHERE uuid = $3",
    )
    .bind(name)
    .bind(himmel_core::time::now().timestamp_micros())
    .bind(uuid)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if himmel_db::is_unique_violation(&e) => Err(Error::Conflict(format!(
            "Conflicting resource provider name: {name} already exists."
        ))),
        Err(e) => Err(db_err(e)),
    }
}

/// Deletes a provider without allocations (one with allocations is a 409).
pub async fn delete_provider(conn: &mut AnyConnection, uuid: &str) -> Result<(), Error> {
    if !usages(conn, uuid).await?.is_empty() {
        return Err(Error::Conflict(format!(
            "Unable to delete resource provider {uuid}: Resource provider has allocations."
        )));
    }
    for table in ["placement_inventories"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE provider_uuid = $1"))
            .bind(uuid)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    sqlx::query("DELETE FROM placement_providers WHERE uuid = $1")
        .bind(uuid)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Bumps the generation; a caller naming another generation gets a 409.
pub async fn bump_generation(
    conn: &mut AnyConnection,
    uuid: &str,
    expected: Option<i64>,
) -> Result<i64, Error> {
    let p = provider(conn, uuid).await?.ok_or_else(|| not_found(uuid))?;
    if let Some(g) = expected {
        if g != p.generation {
            return Err(Error::Conflict(format!(
                "resource provider generation conflict: {uuid} is at generation {}, not {g}",
                p.generation
            )));
        }
    }
    sqlx::query(
        "UPDATE placement_providers SET generation = generation + 1, updated_at = $1 WHERE uuid = $2",
    )
    .bind(himmel_core::time::now().timestamp_micros())
    .bind(uuid)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(p.generation + 1)
}

pub async fn inventories(
    conn: &mut AnyConnection,
    uuid: &str,
) -> Result<BTreeMap<String, Inventory>, Error> {
    let rows = sqlx::query(
        "SELECT resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio_milli \
         FROM placement_inventories WHERE provider_uuid = $1",
    )
    .bind(uuid)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut out = BTreeMap::new();
    for r in &rows {
        let ratio: i64 = r.try_get("allocation_ratio_milli").map_err(db_err)?;
        out.insert(
            r.try_get("resource_class").map_err(db_err)?,
            Inventory {
                total: r.try_get("total").map_err(db_err)?,
                reserved: r.try_get("reserved").map_err(db_err)?,
                min_unit: r.try_get("min_unit").map_err(db_err)?,
                max_unit: r.try_get("max_unit").map_err(db_err)?,
                step_size: r.try_get("step_size").map_err(db_err)?,
                allocation_ratio: ratio as f64 / 1000.0,
            },
        );
    }
    Ok(out)
}

/// Replaces a provider's inventories. A class that is in use cannot be
/// removed, and no class may shrink below what is allocated of it.
pub async fn replace_inventories(
    conn: &mut AnyConnection,
    uuid: &str,
    generation: Option<i64>,
    new: &BTreeMap<String, Inventory>,
) -> Result<i64, Error> {
    for (class, inv) in new {
        inv.validate(class)?;
    }
    let generation = bump_generation(conn, uuid, generation).await?;
    let used = usages(conn, uuid).await?;
    for (class, amount) in &used {
        match new.get(class) {
            None => {
                return Err(Error::Conflict(format!(
                    "Inventory for '{class}' on resource provider '{uuid}' in use."
                )))
            }
            Some(inv) if inv.capacity() < *amount => {
                return Err(Error::Conflict(format!(
                    "Unable to update inventory for resource provider {uuid}: \
                     the capacity of {class} would be below its usage {amount}"
                )))
            }
            Some(_) => {}
        }
    }
    sqlx::query("DELETE FROM placement_inventories WHERE provider_uuid = $1")
        .bind(uuid)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    for (class, inv) in new {
        sqlx::query(
            "INSERT INTO placement_inventories (provider_uuid, resource_class, total, reserved, \
             min_unit, max_unit, step_size, allocation_ratio_milli) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid)
        .bind(class)
        .bind(inv.total)
        .bind(inv.reserved)
        .bind(inv.min_unit)
        .bind(inv.max_unit)
        .bind(inv.step_size)
        .bind((inv.allocation_ratio * 1000.0).round() as i64)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(generation)
}

/// What is allocated on a provider, per class (classes in use only).
pub async fn usages(conn: &mut AnyConnection, uuid: &str) -> Result<Resources, Error> {
    let rows = sqlx::query(
        "SELECT resource_class, CAST(SUM(used) AS BIGINT) AS used FROM placement_allocations \
         WHERE provider_uuid = $1 GROUP BY resource_class",
    )
    .bind(uuid)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("resource_class").map_err(db_err)?,
                r.try_get("used").map_err(db_err)?,
            ))
        })
        .collect()
}

/// What a project (and optionally one of its users) holds, per class.
pub async fn project_usages(
    conn: &mut AnyConnection,
    project_id: &str,
    user_id: Option<&str>,
) -> Result<Resources, Error> {
    let rows = sqlx::query(
        "SELECT resource_class, CAST(SUM(used) AS BIGINT) AS used FROM placement_allocations \
         WHERE project_id = $1 AND ($2 = '' OR user_id = $2) GROUP BY resource_class",
    )
    .bind(project_id)
    .bind(user_id.unwrap_or_default())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("resource_class").map_err(db_err)?,
                r.try_get("used").map_err(db_err)?,
            ))
        })
        .collect()
}

/// A consumer's allocations (per provider), its project and user.
pub struct ConsumerAllocations {
    pub allocations: Vec<Allocation>,
    pub project_id: String,
    pub user_id: String,
}

pub async fn consumer_allocations(
    conn: &mut AnyConnection,
    consumer: &str,
) -> Result<ConsumerAllocations, Error> {
    let rows = sqlx::query(
        "SELECT provider_uuid, resource_class, used, project_id, user_id FROM placement_allocations \
         WHERE consumer_uuid = $1 ORDER BY provider_uuid, resource_class",
    )
    .bind(consumer)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut out = ConsumerAllocations {
        allocations: vec![],
        project_id: String::new(),
        user_id: String::new(),
    };
    for r in &rows {
        let provider: String = r.try_get("provider_uuid").map_err(db_err)?;
        out.project_id = r.try_get("project_id").map_err(db_err)?;
        out.user_id = r.try_get("user_id").map_err(db_err)?;
        if out.allocations.last().map(|a| &a.provider_uuid) != Some(&provider) {
            out.allocations.push(Allocation {
                provider_uuid: provider,
                resources: Resources::new(),
            });
        }
        if let Some(a) = out.allocations.last_mut() {
            a.resources.insert(
                r.try_get("resource_class").map_err(db_err)?,
                r.try_get("used").map_err(db_err)?,
            );
        }
    }
    Ok(out)
}

/// Every consumer's allocations on one provider.
pub async fn provider_allocations(
    conn: &mut AnyConnection,
    uuid: &str,
) -> Result<BTreeMap<String, Resources>, Error> {
    let rows = sqlx::query(
        "SELECT consumer_uuid, resource_class, used FROM placement_allocations WHERE provider_uuid = $1",
    )
    .bind(uuid)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut out: BTreeMap<String, Resources> = BTreeMap::new();
    for r in &rows {
        let consumer: String = r.try_get("consumer_uuid").map_err(db_err)?;
        out.entry(consumer).or_default().insert(
            r.try_get("resource_class").map_err(db_err)?,
            r.try_get("used").map_err(db_err)?,
        );
    }
    Ok(out)
}

/// Removes a consumer's allocations, bumping its providers' generations.
pub async fn delete_allocations(conn: &mut AnyConnection, consumer: &str) -> Result<bool, Error> {
    serialise(conn).await?;
    let old = consumer_allocations(conn, consumer).await?;
    sqlx::query("DELETE FROM placement_allocations WHERE consumer_uuid = $1")
        .bind(consumer)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    for a in &old.allocations {
        bump_generation(conn, &a.provider_uuid, None).await?;
    }
    Ok(!old.allocations.is_empty())
}

/// Why `amount` of `class` does not fit on a provider, or None when it does
/// (with the consumer's own earlier allocations there already removed).
pub fn misfit(
    class: &str,
    amount: i64,
    inventory: Option<&Inventory>,
    used_by_others: i64,
) -> Option<String> {
    let Some(inv) = inventory else {
        return Some(format!("the provider has no inventory of {class}"));
    };
    if amount < inv.min_unit || amount > inv.max_unit || amount % inv.step_size != 0 {
        return Some(format!(
            "{amount} {class} is outside min_unit {}, max_unit {}, step_size {}",
            inv.min_unit, inv.max_unit, inv.step_size
        ));
    }
    if used_by_others + amount > inv.capacity() {
        return Some(format!(
            "{class}: {amount} requested, {} of capacity {} free",
            inv.capacity() - used_by_others,
            inv.capacity()
        ));
    }
    None
}

/// Replaces a consumer's allocations after checking that every amount fits
/// its provider's inventory; a misfit is a 409 and changes nothing.
pub async fn replace_allocations(
    conn: &mut AnyConnection,
    consumer: &str,
    project_id: &str,
    user_id: &str,
    allocations: &[Allocation],
) -> Result<(), Error> {
    serialise(conn).await?;
    let old = consumer_allocations(conn, consumer).await?;
    for a in allocations {
        if provider(conn, &a.provider_uuid).await?.is_none() {
            return Err(Error::BadRequest(format!(
                "Allocation for resource provider '{}' that does not exist.",
                a.provider_uuid
            )));
        }
        let inv = inventories(conn, &a.provider_uuid).await?;
        let used = usages(conn, &a.provider_uuid).await?;
        let mine = old
            .allocations
            .iter()
            .find(|o| o.provider_uuid == a.provider_uuid);
        for (class, amount) in &a.resources {
            let own = mine.and_then(|m| m.resources.get(class)).unwrap_or(&0);
            let others = used.get(class).unwrap_or(&0) - own;
            if let Some(why) = misfit(class, *amount, inv.get(class), others) {
                return Err(Error::Conflict(format!(
                    "Unable to allocate inventory: resource provider {}: {why}",
                    a.provider_uuid
                )));
            }
        }
    }
    sqlx::query("DELETE FROM placement_allocations WHERE consumer_uuid = $1")
        .bind(consumer)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    for a in allocations {
        for (class, amount) in &a.resources {
            sqlx::query(
                "INSERT INTO placement_allocations (consumer_uuid, provider_uuid, resource_class, used, project_id, user_id) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(consumer)
            .bind(&a.provider_uuid)
            .bind(class)
            .bind(amount)
            .bind(project_id)
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        }
    }
    let touched: std::collections::BTreeSet<&str> = old
        .allocations
        .iter()
        .chain(allocations)
        .map(|a| a.provider_uuid.as_str())
        .collect();
    for p in touched {
        bump_generation(conn, p, None).await?;
    }
    Ok(())
}
