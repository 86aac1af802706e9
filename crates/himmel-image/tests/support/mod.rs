//! A region with identity and images in-process on a random port, for
//! integration tests. SQLite, or PostgreSQL when HIMMEL_TEST_POSTGRES is set
//! and the test asks for it.

#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;

#[allow(unused_imports)] // not every test binary names them all
pub use himmel_testkit::{Base, Engine, Member};

/// The size limit of the test regions' images (to test 413 cheaply).
pub const MAX_IMAGE_SIZE: u64 = 8 << 20;

pub struct Region {
    base: Base,
    pub images: himmel_image::ImageService,
    pub keyring: himmel_kms::Keyring,
    pub admin_project: String,
    pub dir: tempfile::TempDir,
}

/// The identity side (url, admin token, http client, members) is the shared test region's.
impl std::ops::Deref for Region {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
    }
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
        let db = himmel_testkit::open_db(engine, dir.path()).await?;
        let prepared =
            himmel_testkit::Prepared::new(&db, dir.path(), Arc::new(himmel_testkit::NullSink))
                .await;
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
        let app = prepared
            .identity_routes()
            .merge(himmel_image::routes(&prepared.pipeline, images.clone()))
            // As in the region: JSON bodies are small, image data streams.
            .layer(axum::extract::DefaultBodyLimit::max(114_688));
        let base = prepared.serve(app).await;
        let admin_project: String =
            himmel_db::sqlx::query_scalar("SELECT id FROM projects WHERE name = 'admin'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        Some(Region {
            base,
            images,
            keyring,
            admin_project,
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

    /// A request context for `token` (for the Rust API).
    pub async fn context(&self, token: &str) -> himmel_core::RequestContext {
        use himmel_http::Authenticator;
        self.identity
            .authenticate(token, "127.0.0.1")
            .await
            .unwrap()
    }
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
