//! An identity service in-process on a random port, for integration tests.
//! SQLite by default; PostgreSQL when HIMMEL_TEST_POSTGRES is set and the
//! test asks for it through [`Region::start_on`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use himmel_http::{AuditRecord, AuditSink, Pipeline};
use himmel_identity::{Config, Identity};
use serde_json::{json, Value};

/// Keeps every audit record, so tests can assert on the trail.
#[derive(Default)]
pub struct MemorySink(pub Mutex<Vec<AuditRecord>>);

#[async_trait::async_trait]
impl AuditSink for MemorySink {
    async fn record(&self, r: AuditRecord, _durable: bool) -> Result<(), himmel_core::Error> {
        self.0.lock().unwrap().push(r);
        Ok(())
    }
}

pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct Region {
    pub url: String,
    pub identity: Identity,
    pub admin_password: String,
    pub audit: Arc<MemorySink>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Region {
    pub async fn start() -> Region {
        Self::start_on(Engine::Sqlite).await.expect("sqlite region")
    }

    /// Starts a region on `engine`; `None` when PostgreSQL is not available.
    pub async fn start_on(engine: Engine) -> Option<Region> {
        Self::start_with(engine, Default::default()).await
    }

    pub async fn start_with(
        engine: Engine,
        security: himmel_identity::SecurityCompliance,
    ) -> Option<Region> {
        let dir = tempfile::tempdir().unwrap();
        let db = match engine {
            Engine::Sqlite => {
                himmel_db::Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
                    .await
                    .unwrap()
            }
            Engine::Postgres => {
                let url = std::env::var("HIMMEL_TEST_POSTGRES").ok()?;
                himmel_db::testing::fresh_postgres(&url).await
            }
        };
        let identity = Identity::open(
            db.clone(),
            Config {
                token_expiration: 3600,
                fernet_dir: dir.path().join("fernet"),
                max_active_keys: 3,
                credential_key_dir: dir.path().join("credential-keys"),
                security,
                region: "RegionOne".into(),
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let created = himmel_identity::bootstrap::Bootstrap {
            region: "RegionOne",
            identity_url: &format!("{url}/v3"),
        }
        .run(&db)
        .await
        .unwrap();
        let audit = Arc::new(MemorySink::default());
        let pipeline = Pipeline::new(Arc::new(identity.clone()), audit.clone());
        let app = himmel_identity::routes(&pipeline, identity.clone())
            .layer(axum::extract::DefaultBodyLimit::max(114_688));
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Some(Region {
            url,
            identity,
            admin_password: created.admin_password.unwrap(),
            audit,
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    /// Issues a token; returns (token, body) or panics with the response.
    pub async fn token(&self, auth: Value) -> (String, Value) {
        let r = self
            .http
            .post(format!("{}/v3/auth/tokens", self.url))
            .json(&auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "token issue failed: {:?}", r.text().await);
        let token = r.headers()["x-subject-token"].to_str().unwrap().to_string();
        (token, r.json().await.unwrap())
    }

    pub async fn admin_token(&self) -> String {
        self.token(password_auth(
            "admin",
            "Default",
            &self.admin_password,
            json!({"project": {"name": "admin", "domain": {"id": "default"}}}),
        ))
        .await
        .0
    }

    /// Sends a request with a token; returns status and JSON body (Null if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}{}", self.url, path))
            .header("x-auth-token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

pub fn password_auth(user: &str, domain: &str, password: &str, scope: Value) -> Value {
    let mut auth = json!({"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"name": domain}, "password": password}}}}});
    if !scope.is_null() {
        auth["auth"]["scope"] = scope;
    }
    auth
}

impl Region {
    /// Grants a global role straight in the database, for tests of other
    /// APIs (the grant API has tests of its own).
    pub async fn grant_direct(
        &self,
        user_id: &str,
        target_type: &str,
        target_id: &str,
        role: &str,
    ) {
        let db = self.identity.db();
        let role_id: String = himmel_db::sqlx::query_scalar(
            "SELECT id FROM roles WHERE domain_id = '' AND name = $1",
        )
        .bind(role)
        .fetch_one(db.pool())
        .await
        .unwrap();
        himmel_db::sqlx::query(
            "INSERT INTO role_assignments (actor_type, actor_id, target_type, target_id, role_id, inherited) \
             VALUES ('user', $1, $2, $3, $4, 0)",
        )
        .bind(user_id)
        .bind(target_type)
        .bind(target_id)
        .bind(role_id)
        .execute(db.pool())
        .await
        .unwrap();
    }
}
