//! The in-process region the service crates' integration tests share: a state database on
//! SQLite or PostgreSQL, identity bootstrapped on a random port, an admin token, and helpers
//! that make a project with a user holding a role. Each crate's `tests/support` adds its own
//! service routes and request helpers on top.
//!
//! Only the tests use this crate (as a dev-dependency); nothing here is built into `himmel`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use himmel_http::{AuditRecord, AuditSink, Pipeline};
use himmel_identity::{Config, Identity};
use serde_json::{json, Value};

/// The region name the test regions use.
pub const REGION: &str = "RegionOne";
const USER_PASSWORD: &str = "secret-pass-1";

#[derive(Clone, Copy, Debug)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The state database: SQLite in `dir`, or a fresh PostgreSQL database; `None` (after saying
/// why) when PostgreSQL is asked for but HIMMEL_TEST_POSTGRES is not set.
pub async fn open_db(engine: Engine, dir: &Path) -> Option<himmel_db::Db> {
    match engine {
        Engine::Sqlite => Some(
            himmel_db::Db::connect(&format!("sqlite://{}/state.db", dir.display()))
                .await
                .expect("opening SQLite"),
        ),
        Engine::Postgres => {
            let Ok(url) = std::env::var("HIMMEL_TEST_POSTGRES") else {
                eprintln!("skipping the PostgreSQL run: HIMMEL_TEST_POSTGRES is not set (the project's test command sets it)");
                return None;
            };
            Some(himmel_db::testing::fresh_postgres(&url).await)
        }
    }
}

/// An audit sink that forgets every record (tests that check the trail bring their own).
pub struct NullSink;

#[async_trait::async_trait]
impl AuditSink for NullSink {
    async fn record(&self, _: AuditRecord, _durable: bool) -> Result<(), himmel_core::Error> {
        Ok(())
    }
}

/// Identity opened and bootstrapped, its listener bound but not yet serving: the crate under
/// test builds its services and routes with `pipeline`, then calls [`Prepared::serve`].
pub struct Prepared {
    pub identity: Identity,
    pub pipeline: Pipeline,
    pub url: String,
    listener: tokio::net::TcpListener,
    admin_password: String,
}

impl Prepared {
    pub async fn new(db: &himmel_db::Db, dir: &Path, audit: Arc<dyn AuditSink>) -> Prepared {
        let identity = Identity::open(
            db.clone(),
            Config {
                token_expiration: 3600,
                fernet_dir: dir.join("fernet"),
                max_active_keys: 3,
                credential_key_dir: dir.join("credential-keys"),
                security: Default::default(),
                region: REGION.into(),
            },
        )
        .await
        .expect("opening identity");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let created = himmel_identity::bootstrap::Bootstrap {
            region: REGION,
            identity_url: &format!("{url}/v3"),
        }
        .run(db)
        .await
        .expect("bootstrap");
        let pipeline = Pipeline::new(Arc::new(identity.clone()), audit);
        Prepared {
            identity,
            pipeline,
            url,
            listener,
            admin_password: created.admin_password.expect("a first bootstrap"),
        }
    }

    /// The identity routes, to merge the service's routes into.
    pub fn identity_routes(&self) -> axum::Router {
        himmel_identity::routes(&self.pipeline, self.identity.clone())
    }

    /// Serves `app` and signs in as the bootstrap admin.
    pub async fn serve(self, app: axum::Router) -> Base {
        tokio::spawn(async move {
            axum::serve(
                self.listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serving");
        });
        let http = reqwest::Client::new();
        let admin = issue_token(
            &http,
            &self.url,
            password_auth(
                "admin",
                &self.admin_password,
                json!({"name": "admin", "domain": {"id": "default"}}),
            ),
        )
        .await;
        Base {
            url: self.url,
            identity: self.identity,
            admin,
            admin_password: self.admin_password,
            http,
        }
    }
}

/// A running test region's identity side: its URL, the admin's token and an HTTP client.
pub struct Base {
    pub url: String,
    pub identity: Identity,
    pub admin: String,
    pub admin_password: String,
    pub http: reqwest::Client,
}

/// A user's project-scoped token, and the project's id.
#[derive(Clone, Debug)]
pub struct Member {
    pub token: String,
    pub project_id: String,
}

impl Base {
    /// Sends a request to `path` (below the region's URL) with `token` and optional JSON
    /// `body`; returns the status and the JSON body (Null when there is none).
    pub async fn json_request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("x-auth-token", token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("response body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POSTs `body` to the identity API as the admin; panics unless it succeeds.
    pub async fn identity_call(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/v3{path}", self.url))
            .header("x-auth-token", &self.admin)
            .json(&body)
            .send()
            .await
            .expect("identity request");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("identity JSON")
    }

    /// A new project with a user holding `role` on it.
    pub async fn member(&self, name: &str, role: &str) -> Member {
        let project = self
            .identity_call(
                "/projects",
                json!({"project": {"name": name, "domain_id": "default"}}),
            )
            .await;
        let project_id = project["project"]["id"]
            .as_str()
            .expect("project id")
            .to_string();
        self.user_in(name, &project_id, role).await
    }

    /// Another user (named after `name` and `role`) with `role` on an existing project.
    pub async fn user_in(&self, name: &str, project_id: &str, role: &str) -> Member {
        let user_name = format!("{name}-{role}-user");
        let user = self
            .identity_call(
                "/users",
                json!({"user": {"name": user_name, "domain_id": "default", "password": USER_PASSWORD}}),
            )
            .await;
        let user_id = user["user"]["id"].as_str().expect("user id");
        self.grant(project_id, user_id, role).await;
        let token = issue_token(
            &self.http,
            &self.url,
            password_auth(&user_name, USER_PASSWORD, json!({"id": project_id})),
        )
        .await;
        Member {
            token,
            project_id: project_id.to_string(),
        }
    }

    /// Gives `user_id` the global role named `role` on `project_id`.
    pub async fn grant(&self, project_id: &str, user_id: &str, role: &str) {
        let role_id: String = himmel_db::sqlx::query_scalar(
            "SELECT id FROM roles WHERE domain_id = '' AND name = $1",
        )
        .bind(role)
        .fetch_one(self.identity.db().pool())
        .await
        .expect("a global role of that name");
        let r = self
            .http
            .put(format!(
                "{}/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
                self.url
            ))
            .header("x-auth-token", &self.admin)
            .send()
            .await
            .expect("role assignment");
        assert!(r.status().is_success(), "granting {role}: {}", r.status());
    }
}

/// A password authentication body scoped to `project` (`{"id": ..}` or `{"name": .., "domain": ..}`).
pub fn password_auth(user: &str, password: &str, project: Value) -> Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": project}}})
}

/// Issues a token with `body`; panics unless identity answers 201.
pub async fn issue_token(http: &reqwest::Client, url: &str, body: Value) -> String {
    let r = http
        .post(format!("{url}/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 201, "issuing a token");
    r.headers()["x-subject-token"]
        .to_str()
        .expect("token header")
        .to_string()
}
