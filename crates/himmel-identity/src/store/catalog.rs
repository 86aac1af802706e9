//! Regions, services and endpoints, and the service catalog built from
//! them as tokens and `/v3/auth/catalog` show it.
//!
//! The catalog is read on every token issue and validation, so it is kept
//! in memory: writes through this module drop it at once, and it is
//! re-read at least every [`REFRESH`] so writes by other API servers on the
//! same database (or by bootstrap) show up too.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use himmel_core::Error;
use himmel_db::{AnyRow, Db};
use serde_json::{json, Value};

use super::{json as json_col, opt_s, s};
use crate::db_err;

const REFRESH: Duration = Duration::from_secs(2);

// ---- regions ----

#[derive(Debug, Clone)]
pub struct Region {
    pub id: String,
    pub description: String,
    pub parent_region_id: Option<String>,
    pub extra: Value,
}

impl Region {
    fn from_row(r: &AnyRow) -> Region {
        Region {
            id: s(r, "id"),
            description: s(r, "description"),
            parent_region_id: opt_s(r, "parent_region_id"),
            extra: json_col(r, "extra"),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "description": self.description,
            "parent_region_id": self.parent_region_id,
            "links": {"self": format!("/v3/regions/{}", self.id)},
        });
        super::domains::merge_extra(&mut v, &self.extra);
        v
    }
}

pub async fn get_region(db: &Db, id: &str) -> Result<Option<Region>, Error> {
    let row = sqlx::query("SELECT * FROM regions WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Region::from_row))
}

pub async fn list_regions(db: &Db, parent_region_id: Option<&str>) -> Result<Vec<Region>, Error> {
    let rows =
        sqlx::query("SELECT * FROM regions WHERE ($1 = '' OR parent_region_id = $1) ORDER BY id")
            .bind(parent_region_id.unwrap_or(""))
            .fetch_all(db.pool())
            .await
            .map_err(db_err)?;
    Ok(rows.iter().map(Region::from_row).collect())
}

fn region_conflict(e: sqlx::Error, id: &str) -> Error {
    if himmel_db::is_unique_violation(&e) {
        Error::Conflict(format!(
            "Conflict occurred attempting to store region - Duplicate ID, {id}."
        ))
    } else {
        db_err(e)
    }
}

pub async fn create_region(db: &Db, r: &Region) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO regions (id, description, parent_region_id, extra) VALUES ($1, $2, $3, $4)",
    )
    .bind(&r.id)
    .bind(&r.description)
    .bind(&r.parent_region_id)
    .bind(r.extra.to_string())
    .execute(&mut **tx)
    .await
    .map_err(|e| region_conflict(e, &r.id))?;
    tx.commit().await.map_err(db_err)?;
    invalidate(db);
    Ok(())
}

pub async fn update_region(db: &Db, r: &Region) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(
        "UPDATE regions SET description = $2, parent_region_id = $3, extra = $4 WHERE id = $1",
    )
    .bind(&r.id)
    .bind(&r.description)
    .bind(&r.parent_region_id)
    .bind(r.extra.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    invalidate(db);
    Ok(())
}

/// The region and every region below it.
pub async fn region_subtree(db: &Db, id: &str) -> Result<Vec<String>, Error> {
    let all = list_regions(db, None).await?;
    let mut out = vec![id.to_string()];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].clone();
        for r in &all {
            if r.parent_region_id.as_deref() == Some(parent.as_str()) && !out.contains(&r.id) {
                out.push(r.id.clone());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// True when making `parent` the parent of `id` would close a loop.
pub async fn would_cycle(db: &Db, id: &str, parent: &str) -> Result<bool, Error> {
    Ok(region_subtree(db, id).await?.iter().any(|r| r == parent))
}

pub async fn region_has_endpoints(db: &Db, ids: &[String]) -> Result<bool, Error> {
    for id in ids {
        let row = sqlx::query("SELECT id FROM endpoints WHERE region_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(db.pool())
            .await
            .map_err(db_err)?;
        if row.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes the regions (a region and its subtree) in one transaction.
pub async fn delete_regions(db: &Db, ids: &[String]) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for id in ids {
        sqlx::query("DELETE FROM regions WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    invalidate(db);
    Ok(())
}

// ---- services ----

#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub service_type: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub extra: Value,
}

impl Service {
    fn from_row(r: &AnyRow) -> Service {
        Service {
            id: s(r, "id"),
            service_type: s(r, "type"),
            name: s(r, "name"),
            description: s(r, "description"),
            enabled: himmel_db::get_bool(r, "enabled"),
            extra: json_col(r, "extra"),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "type": self.service_type,
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "links": {"self": format!("/v3/services/{}", self.id)},
        });
        super::domains::merge_extra(&mut v, &self.extra);
        v
    }
}

pub async fn get_service(db: &Db, id: &str) -> Result<Option<Service>, Error> {
    let row = sqlx::query("SELECT * FROM services WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Service::from_row))
}

pub async fn list_services(
    db: &Db,
    service_type: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<Service>, Error> {
    let rows = sqlx::query(
        "SELECT * FROM services WHERE ($1 = '' OR type = $1) AND ($2 = '' OR name = $2) ORDER BY type, id",
    )
    .bind(service_type.unwrap_or(""))
    .bind(name.unwrap_or(""))
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(Service::from_row).collect())
}

/// Creates (`insert`) or rewrites the service.
pub async fn save_service(db: &Db, svc: &Service, insert: bool) -> Result<(), Error> {
    let sql = if insert {
        "INSERT INTO services (id, type, name, description, enabled, extra) VALUES ($1, $2, $3, $4, $5, $6)"
    } else {
        "UPDATE services SET type = $2, name = $3, description = $4, enabled = $5, extra = $6 WHERE id = $1"
    };
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(sql)
        .bind(&svc.id)
        .bind(&svc.service_type)
        .bind(&svc.name)
        .bind(&svc.description)
        .bind(himmel_db::b(svc.enabled))
        .bind(svc.extra.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    invalidate(db);
    Ok(())
}

/// Deletes the service and its endpoints.
pub async fn delete_service(db: &Db, id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    for sql in [
        "DELETE FROM endpoints WHERE service_id = $1",
        "DELETE FROM services WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    invalidate(db);
    Ok(())
}

// ---- endpoints ----

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub service_id: String,
    pub interface: String,
    pub region_id: Option<String>,
    pub url: String,
    pub enabled: bool,
    pub extra: Value,
}

impl Endpoint {
    fn from_row(r: &AnyRow) -> Endpoint {
        Endpoint {
            id: s(r, "id"),
            service_id: s(r, "service_id"),
            interface: s(r, "interface"),
            region_id: opt_s(r, "region_id"),
            url: s(r, "url"),
            enabled: himmel_db::get_bool(r, "enabled"),
            extra: json_col(r, "extra"),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "service_id": self.service_id,
            "interface": self.interface,
            "region_id": self.region_id,
            // Keystone still shows the pre-region_id attribute.
            "region": self.region_id,
            "url": self.url,
            "enabled": self.enabled,
            "links": {"self": format!("/v3/endpoints/{}", self.id)},
        });
        super::domains::merge_extra(&mut v, &self.extra);
        v
    }
}

pub async fn get_endpoint(db: &Db, id: &str) -> Result<Option<Endpoint>, Error> {
    let row = sqlx::query("SELECT * FROM endpoints WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(Endpoint::from_row))
}

#[derive(Default)]
pub struct EndpointFilter<'a> {
    pub interface: Option<&'a str>,
    pub service_id: Option<&'a str>,
    pub region_id: Option<&'a str>,
}

pub async fn list_endpoints(db: &Db, f: &EndpointFilter<'_>) -> Result<Vec<Endpoint>, Error> {
    let rows = sqlx::query(
        "SELECT * FROM endpoints WHERE ($1 = '' OR interface = $1) AND ($2 = '' OR service_id = $2) \
         AND ($3 = '' OR region_id = $3) ORDER BY service_id, interface, id",
    )
    .bind(f.interface.unwrap_or(""))
    .bind(f.service_id.unwrap_or(""))
    .bind(f.region_id.unwrap_or(""))
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(Endpoint::from_row).collect())
}

/// Creates (`insert`) or rewrites the endpoint.
pub async fn save_endpoint(db: &Db, ep: &Endpoint, insert: bool) -> Result<(), Error> {
    let sql = if insert {
        "INSERT INTO endpoints (id, service_id, interface, region_id, url, enabled, extra) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    } else {
        "UPDATE endpoints SET service_id = $2, interface = $3, region_id = $4, url = $5, enabled = $6, extra = $7 \
         WHERE id = $1"
    };
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query(sql)
        .bind(&ep.id)
        .bind(&ep.service_id)
        .bind(&ep.interface)
        .bind(&ep.region_id)
        .bind(&ep.url)
        .bind(himmel_db::b(ep.enabled))
        .bind(ep.extra.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    invalidate(db);
    Ok(())
}

pub async fn delete_endpoint(db: &Db, id: &str) -> Result<(), Error> {
    let mut tx = db.begin_write().await.map_err(db_err)?;
    sqlx::query("DELETE FROM endpoints WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    invalidate(db);
    Ok(())
}

// ---- the catalog ----

struct CatalogService {
    id: String,
    service_type: String,
    name: String,
    endpoints: Vec<Endpoint>,
}

/// One database's catalog in memory. The key is the pool's connection
/// options: held weakly, so the address cannot be reused by another pool
/// while the entry exists.
struct Cached {
    key: Weak<sqlx::any::AnyConnectOptions>,
    loaded: Instant,
    services: Arc<Vec<CatalogService>>,
}

static CACHE: Mutex<Vec<Cached>> = Mutex::new(Vec::new());

fn same_db(entry: &Cached, key: &Arc<sqlx::any::AnyConnectOptions>) -> bool {
    std::ptr::eq(entry.key.as_ptr(), Arc::as_ptr(key))
}

fn cached(db: &Db) -> Option<Arc<Vec<CatalogService>>> {
    let key = db.pool().connect_options();
    let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .iter()
        .find(|c| same_db(c, &key) && c.loaded.elapsed() < REFRESH)
        .map(|c| c.services.clone())
}

fn store(db: &Db, services: Arc<Vec<CatalogService>>, loaded: Instant) {
    let key = db.pool().connect_options();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|c| c.key.strong_count() > 0 && !same_db(c, &key));
    cache.push(Cached {
        key: Arc::downgrade(&key),
        loaded,
        services,
    });
}

/// Drops this database's cached catalog (after a write).
fn invalidate(db: &Db) {
    let key = db.pool().connect_options();
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|c| c.key.strong_count() > 0 && !same_db(c, &key));
}

async fn load(db: &Db) -> Result<Arc<Vec<CatalogService>>, Error> {
    if let Some(hit) = cached(db) {
        return Ok(hit);
    }
    // Stamped before reading, so a write that lands during the read is
    // picked up by the next refresh at the latest.
    let started = Instant::now();
    let services = sqlx::query("SELECT * FROM services WHERE enabled = 1 ORDER BY type, id")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    let endpoints = sqlx::query("SELECT * FROM endpoints WHERE enabled = 1 ORDER BY interface, id")
        .fetch_all(db.pool())
        .await
        .map_err(db_err)?;
    let endpoints: Vec<Endpoint> = endpoints.iter().map(Endpoint::from_row).collect();
    let out: Vec<CatalogService> = services
        .iter()
        .map(Service::from_row)
        .map(|svc| CatalogService {
            endpoints: endpoints
                .iter()
                .filter(|e| e.service_id == svc.id)
                .cloned()
                .collect(),
            id: svc.id,
            service_type: svc.service_type,
            name: svc.name,
        })
        .collect();
    let out = Arc::new(out);
    store(db, out.clone(), started);
    Ok(out)
}

/// Services with their enabled endpoints. `$(project_id)s` and
/// `$(tenant_id)s` in URLs are replaced by the token's project.
pub async fn catalog(db: &Db, project_id: Option<&str>) -> Result<Value, Error> {
    let services = load(db).await?;
    let mut out = Vec::with_capacity(services.len());
    for svc in services.iter() {
        let mut eps = Vec::with_capacity(svc.endpoints.len());
        for ep in &svc.endpoints {
            let needs_project =
                ep.url.contains("$(project_id)s") || ep.url.contains("$(tenant_id)s");
            let url = match project_id {
                Some(pid) if needs_project => ep
                    .url
                    .replace("$(project_id)s", pid)
                    .replace("$(tenant_id)s", pid),
                None if needs_project => continue, // cannot be filled in without a project
                _ => ep.url.clone(),
            };
            eps.push(json!({
                "id": ep.id,
                "interface": ep.interface,
                "region": ep.region_id,
                "region_id": ep.region_id,
                "url": url,
            }));
        }
        out.push(
            json!({"id": svc.id, "type": svc.service_type, "name": svc.name, "endpoints": eps}),
        );
    }
    Ok(Value::Array(out))
}
