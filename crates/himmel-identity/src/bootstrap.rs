//! First start: the records every region needs. Idempotent, so it runs on
//! every start and only creates what is missing.

use himmel_core::Error;
use himmel_db::Db;

use crate::db_err;
use crate::store::now_us;

pub const DEFAULT_DOMAIN_ID: &str = "default";
pub const ADMIN_PROJECT: &str = "admin";
pub const ADMIN_USER: &str = "admin";

/// The roles of Keystone's secure-RBAC defaults, each implying the next.
pub const ROLE_CHAIN: &[&str] = &["admin", "manager", "member", "reader"];

pub struct Bootstrap<'a> {
    pub region: &'a str,
    /// The identity endpoint, e.g. `http://127.0.0.1:5000/v3`.
    pub identity_url: &'a str,
}

/// What bootstrap created for the operator to see once.
pub struct Created {
    pub admin_password: Option<String>,
}

impl Bootstrap<'_> {
    pub async fn run(&self, db: &Db) -> Result<Created, Error> {
        let mut tx = db.begin_write().await.map_err(db_err)?;
        let now = now_us();
        sqlx::query(
            "INSERT INTO domains (id, name, description, enabled, created_at, updated_at) \
             VALUES ($1, 'Default', 'The default domain', 1, $2, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(DEFAULT_DOMAIN_ID)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;

        let mut role_ids = Vec::new();
        for name in ROLE_CHAIN.iter().chain(["service"].iter()) {
            sqlx::query(
                "INSERT INTO roles (id, name, domain_id, created_at, updated_at) VALUES ($1, $2, '', $3, $3) \
                 ON CONFLICT (domain_id, name) DO NOTHING",
            )
            .bind(himmel_core::ids::new_id())
            .bind(*name)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
            let id: String =
                sqlx::query_scalar("SELECT id FROM roles WHERE domain_id = '' AND name = $1")
                    .bind(*name)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db_err)?;
            role_ids.push(id);
        }
        for pair in role_ids[..ROLE_CHAIN.len()].windows(2) {
            sqlx::query(
                "INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&pair[0])
            .bind(&pair[1])
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        }
        let admin_role = &role_ids[0];

        sqlx::query(
            "INSERT INTO projects (id, name, domain_id, description, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, 'Bootstrap project for initializing the cloud.', 1, $4, $4) \
             ON CONFLICT (domain_id, name) DO NOTHING",
        )
        .bind(himmel_core::ids::new_id())
        .bind(ADMIN_PROJECT)
        .bind(DEFAULT_DOMAIN_ID)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        let project_id: String =
            sqlx::query_scalar("SELECT id FROM projects WHERE domain_id = $1 AND name = $2")
                .bind(DEFAULT_DOMAIN_ID)
                .bind(ADMIN_PROJECT)
                .fetch_one(&mut **tx)
                .await
                .map_err(db_err)?;

        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM users WHERE domain_id = $1 AND name = $2")
                .bind(DEFAULT_DOMAIN_ID)
                .bind(ADMIN_USER)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_err)?;
        let mut admin_password = None;
        let user_id = match existing {
            Some(id) => id,
            None => {
                let id = himmel_core::ids::new_id();
                let password = random_password();
                let pw = password.clone();
                let hash = tokio::task::spawn_blocking(move || crate::password::hash(&pw))
                    .await
                    .map_err(Error::internal)??;
                sqlx::query(
                    "INSERT INTO users (id, name, domain_id, default_project_id, enabled, password_hash, \
                     password_created_at, options, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $6, $6)",
                )
                .bind(&id)
                .bind(ADMIN_USER)
                .bind(DEFAULT_DOMAIN_ID)
                .bind(&project_id)
                .bind(hash)
                .bind(now)
                // The bootstrap admin must never lock itself out of the cloud.
                .bind(r#"{"ignore_lockout_failure_attempts": true, "ignore_password_expiry": true, "ignore_change_password_upon_first_use": true}"#)
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
                admin_password = Some(password);
                id
            }
        };
        for (target_type, target_id) in [("project", project_id.as_str()), ("system", "all")] {
            sqlx::query(
                "INSERT INTO role_assignments (actor_type, actor_id, target_type, target_id, role_id, inherited) \
                 VALUES ('user', $1, $2, $3, $4, 0) ON CONFLICT DO NOTHING",
            )
            .bind(&user_id)
            .bind(target_type)
            .bind(target_id)
            .bind(admin_role)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        }

        sqlx::query(
            "INSERT INTO regions (id, description) VALUES ($1, '') ON CONFLICT (id) DO NOTHING",
        )
        .bind(self.region)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        ensure_service(
            &mut tx,
            "identity",
            "keystone",
            self.region,
            self.identity_url,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Created { admin_password })
    }
}

/// Makes sure a service of `service_type` exists with public, internal and
/// admin endpoints at `url` in `region` (updating the URL if it moved).
pub async fn ensure_service(
    tx: &mut himmel_db::WriteTx,
    service_type: &str,
    name: &str,
    region: &str,
    url: &str,
) -> Result<(), Error> {
    let existing: Option<String> =
        sqlx::query_scalar("SELECT id FROM services WHERE type = $1 ORDER BY id LIMIT 1")
            .bind(service_type)
            .fetch_optional(&mut ***tx)
            .await
            .map_err(db_err)?;
    let service_id = match existing {
        Some(id) => id,
        None => {
            let id = himmel_core::ids::new_id();
            sqlx::query("INSERT INTO services (id, type, name, enabled) VALUES ($1, $2, $3, 1)")
                .bind(&id)
                .bind(service_type)
                .bind(name)
                .execute(&mut ***tx)
                .await
                .map_err(db_err)?;
            id
        }
    };
    for interface in ["public", "internal", "admin"] {
        let updated = sqlx::query(
            "UPDATE endpoints SET url = $1 WHERE service_id = $2 AND interface = $3 AND region_id = $4",
        )
        .bind(url)
        .bind(&service_id)
        .bind(interface)
        .bind(region)
        .execute(&mut ***tx)
        .await
        .map_err(db_err)?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO endpoints (id, service_id, interface, region_id, url, enabled) VALUES ($1, $2, $3, $4, $5, 1)",
            )
            .bind(himmel_core::ids::new_id())
            .bind(&service_id)
            .bind(interface)
            .bind(region)
            .bind(url)
            .execute(&mut ***tx)
            .await
            .map_err(db_err)?;
        }
    }
    Ok(())
}

fn random_password() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}
