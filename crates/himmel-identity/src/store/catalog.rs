//! The service catalog, as tokens and `/v3/auth/catalog` show it.

use himmel_core::Error;
use himmel_db::Db;
use serde_json::{json, Value};

use super::{opt_s, s};
use crate::db_err;

/// Services with their enabled endpoints. `$(project_id)s` and
/// `$(tenant_id)s` in URLs are replaced by the token's project.
pub async fn catalog(db: &Db, project_id: Option<&str>) -> Result<Value, Error> {
    let services =
        sqlx::query("SELECT id, type, name FROM services WHERE enabled = 1 ORDER BY type")
            .fetch_all(db.pool())
            .await
            .map_err(db_err)?;
    let endpoints = sqlx::query(
        "SELECT id, service_id, interface, region_id, url FROM endpoints WHERE enabled = 1",
    )
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    let mut out = Vec::new();
    for svc in &services {
        let id = s(svc, "id");
        let mut eps = Vec::new();
        for ep in endpoints.iter().filter(|e| s(e, "service_id") == id) {
            let url = s(ep, "url");
            if project_id.is_none()
                && (url.contains("$(project_id)s") || url.contains("$(tenant_id)s"))
            {
                continue; // cannot be filled in without a project
            }
            let pid = project_id.unwrap_or_default();
            let url = url
                .replace("$(project_id)s", pid)
                .replace("$(tenant_id)s", pid);
            let region = opt_s(ep, "region_id");
            eps.push(json!({
                "id": s(ep, "id"),
                "interface": s(ep, "interface"),
                "region": region,
                "region_id": region,
                "url": url,
            }));
        }
        out.push(
            json!({"id": id, "type": s(svc, "type"), "name": s(svc, "name"), "endpoints": eps}),
        );
    }
    Ok(Value::Array(out))
}
