//! A region with identity and networking in-process on a random port, for
//! integration tests. SQLite, or PostgreSQL when HIMMEL_TEST_POSTGRES is set
//! and the test asks for it.

#![allow(dead_code)]

use std::sync::Arc;

use serde_json::{json, Value};

#[allow(unused_imports)] // not every test binary names them all
pub use himmel_testkit::{Base, Engine, Member};

pub struct Region {
    base: Base,
    pub network: himmel_network::NetworkService,
    _dir: tempfile::TempDir,
}

/// The identity side (url, admin token, http client, members) is the shared test region's.
impl std::ops::Deref for Region {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
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
        let network = himmel_network::NetworkService::new(db.clone());
        let app = prepared
            .identity_routes()
            .merge(himmel_network::routes(&prepared.pipeline, network.clone()));
        Some(Region {
            base: prepared.serve(app).await,
            network,
            _dir: dir,
        })
    }

    /// Sends a request; returns status and JSON body (Null if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.json_request(method, &format!("/networking{path}"), token, body, headers)
            .await
    }

    /// POSTs and expects 201; returns the created object.
    pub async fn create(&self, token: &str, collection: &str, key: &str, body: Value) -> Value {
        let (status, v) = self
            .call(
                "POST",
                &format!("/v2.0/{collection}"),
                token,
                Some(json!({ key: body })),
            )
            .await;
        assert_eq!(status, 201, "create {key}: {v}");
        v[key].clone()
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
