//! A region with identity and images in-process on a random port, for
//! integration tests. SQLite, or PostgreSQL when HIMMEL_TEST_POSTGRES is set
//! and the test asks for it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use himmel_http::{AuditRecord, AuditSink, Pipeline};
use himmel_identity::{Config, Identity};
use serde_json::{json, Value};

struct NullSink;

#[async_trait::async_trait]
impl AuditSink for NullSink {
    async fn record(&self, _: AuditRecord, _durable: bool) -> Result<(), himmel_core::Error> {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The size limit of the test regions' images (to test 413 cheaply).
pub const MAX_IMAGE_SIZE: u64 = 8 << 20;

pub struct Region {
    pub url: String,
    pub identity: Identity,
    pub images: himmel_image::ImageService,
    pub keyring: himmel_kms::Keyring,
    pub admin: String,
    pub admin_project: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

/// A project member's token, and the project's id.
pub struct Member {
    pub token: String,
    pub project_id: String,
}

/// A response: status, headers, body bytes.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Region {
    /// Starts a region on `engine`; `None` when PostgreSQL is not available.
    pub async fn start(engine: Engine) -> Option<Region> {
        let dir = tempfile::tempdir().unwrap();
        let db = match engine {
            Engine::Sqlite => {
                himmel_db::Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
                    .await
                    .unwrap()
            }
            Engine::Postgres => {
                let Ok(url) = std::env::var("HIMMEL_TEST_POSTGRES") else {
                    eprintln!("skipping the PostgreSQL run: HIMMEL_TEST_POSTGRES is not set");
                    return None;
                };
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
                security: Default::default(),
                region: "RegionOne".into(),
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let created = himmel_identity::bootstrap::Bootstrap {
            region: "RegionOne",
            identity_url: &format!("{url}/v3"),
        }
        .run(&db)
        .await
        .unwrap();
        let root =
            himmel_kms::root::file::KeyFile::open_or_create(&dir.path().join("root.key")).unwrap();
        let keyring = himmel_kms::Keyring::new(
            db.clone(),
            Arc::new(root),
            std::time::Duration::from_secs(60),
            None,
        );
        let images = himmel_image::ImageService::open(
            db.clone(),
            keyring.clone(),
            dir.path(),
            MAX_IMAGE_SIZE,
        )
        .await
        .unwrap();
        let pipeline = Pipeline::new(Arc::new(identity.clone()), Arc::new(NullSink));
        let app = himmel_identity::routes(&pipeline, identity.clone())
            .merge(himmel_image::routes(&pipeline, images.clone()))
            // As in the region: JSON bodies are small, image data streams.
            .layer(axum::extract::DefaultBodyLimit::max(114_688));
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let http = reqwest::Client::new();
        let password = created.admin_password.unwrap();
        let admin = token(&http, &url, "admin", &password, "admin").await;
        let admin_project: String =
            himmel_db::sqlx::query_scalar("SELECT id FROM projects WHERE name = 'admin'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        Some(Region {
            url,
            identity,
            images,
            keyring,
            admin,
            admin_project,
            http,
            dir,
        })
    }

    /// Sends a request under `/image`; `body` is JSON, or raw bytes with
    /// their content type.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}/image{}", self.url, path))
            .header("x-auth-token", token);
        if let Some((ct, bytes)) = body {
            req = req.header("content-type", ct).body(bytes);
        }
        let r = req.send().await.unwrap();
        Reply {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }

    /// Sends JSON; returns status and JSON body (Null if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let r = self.send(method, path, token, body).await;
        (r.status, r.json())
    }

    /// A JSON-patch update.
    pub async fn patch(&self, id: &str, token: &str, ops: Value) -> (u16, Value) {
        let r = self
            .send(
                "PATCH",
                &format!("/v2/images/{id}"),
                token,
                Some((
                    "application/openstack-images-v2.1-json-patch",
                    ops.to_string().into_bytes(),
                )),
            )
            .await;
        (r.status, r.json())
    }

    /// Creates an image (expects 201); returns it.
    pub async fn create_image(&self, token: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", "/v2/images", token, Some(body)).await;
        assert_eq!(status, 201, "create image: {v}");
        v
    }

    /// Uploads `data` to image `id` (expects 204).
    pub async fn upload(&self, id: &str, token: &str, data: Vec<u8>) {
        let r = self
            .send(
                "PUT",
                &format!("/v2/images/{id}/file"),
                token,
                Some(("application/octet-stream", data)),
            )
            .await;
        assert_eq!(
            r.status,
            204,
            "upload: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    /// A new project with a user holding `role` on it; returns its token.
    pub async fn member(&self, name: &str, role: &str) -> Member {
        let project = self
            .identity_call(
                "/projects",
                json!({"project": {"name": name, "domain_id": "default"}}),
            )
            .await;
        let project_id = project["project"]["id"].as_str().unwrap().to_string();
        self.user_in(name, &project_id, role).await
    }

    /// A request context for `token` (for the Rust API).
    pub async fn context(&self, token: &str) -> himmel_core::RequestContext {
        use himmel_http::Authenticator;
        self.identity
            .authenticate(token, "127.0.0.1")
            .await
            .unwrap()
    }

    async fn identity_call(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/v3{path}", self.url))
            .header("x-auth-token", &self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Another user with `role` on an existing project.
    pub async fn user_in(&self, name: &str, project_id: &str, role: &str) -> Member {
        let user_name = format!("{name}-{role}-user");
        let user = self
            .identity_call(
                "/users",
                json!({"user": {"name": user_name, "domain_id": "default", "password": "secret-pass-1"}}),
            )
            .await;
        let user_id = user["user"]["id"].as_str().unwrap();
        let role_id: String = himmel_db::sqlx::query_scalar(
            "SELECT id FROM roles WHERE domain_id = '' AND name = $1",
        )
        .bind(role)
        .fetch_one(self.identity.db().pool())
        .await
        .unwrap();
        let r = self
            .http
            .put(format!(
                "{}/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
                self.url
            ))
            .header("x-auth-token", &self.admin)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let token = token_for_project_id(
            &self.http,
            &self.url,
            &user_name,
            "secret-pass-1",
            project_id,
        )
        .await;
        Member {
            token,
            project_id: project_id.to_string(),
        }
    }
}

async fn issue(http: &reqwest::Client, url: &str, body: Value) -> String {
    let r = http
        .post(format!("{url}/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.headers()["x-subject-token"].to_str().unwrap().to_string()
}

async fn token(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    project: &str,
) -> String {
    issue(
        http,
        url,
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}),
    )
    .await
}

async fn token_for_project_id(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    project_id: &str,
) -> String {
    issue(
        http,
        url,
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"id": project_id}}}}),
    )
    .await
}

/// Runs `test` on SQLite, then on PostgreSQL when available.
#[macro_export]
macro_rules! on_both_engines {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let region = support::Region::start(support::Engine::Sqlite)
                    .await
                    .unwrap();
                ($body)(region).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(region) = support::Region::start(support::Engine::Postgres).await {
                    ($body)(region).await;
                }
            }
        }
    };
}
