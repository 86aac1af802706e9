//! A region with identity and the Key Manager in-process on a random
//! port, on SQLite or (when HIMMEL_TEST_POSTGRES is set) PostgreSQL, and
//! the users the Key Manager tests act as.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use himmel_http::{AuditRecord, AuditSink};
use himmel_kms::root::file::KeyFile;
use himmel_kms::{KeyManager, Keyring};
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

pub use himmel_testkit::Engine;

/// One user with a project-scoped token.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub project_id: String,
    pub token: String,
}

pub struct Region {
    pub url: String,
    pub db: himmel_db::Db,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub audit: Arc<MemorySink>,
    /// Member of project `p1` (creates the secrets of most tests).
    pub alice: User,
    /// Another member of `p1`.
    pub dave: User,
    /// Reader of `p1`.
    pub bob: User,
    /// Member of project `p2`.
    pub carol: User,
}

/// A response: status, headers, body as text.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Asserts a Barbican error body with this status.
    pub fn assert_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        let body = self.json();
        assert_eq!(body["code"], json!(status), "error body: {}", self.text);
        assert!(body["title"].is_string(), "error body: {}", self.text);
        body["description"]
            .as_str()
            .unwrap_or_else(|| panic!("error body without description: {}", self.text))
            .to_owned()
    }
}

impl Region {
    pub async fn start(engine: Engine) -> Option<Region> {
        let dir = tempfile::tempdir().unwrap();
        let db = himmel_testkit::open_db(engine, dir.path()).await?;
        let audit = Arc::new(MemorySink::default());
        let prepared = himmel_testkit::Prepared::new(&db, dir.path(), audit.clone()).await;
        let root = Arc::new(KeyFile::open_or_create(&dir.path().join("root.key")).unwrap());
        let keyring = Keyring::new(db.clone(), root, Duration::from_secs(60), None);
        let app = prepared
            .identity_routes()
            .merge(himmel_kms::api::routes(
                &prepared.pipeline,
                KeyManager::new(db.clone(), keyring),
            ))
            .layer(axum::extract::DefaultBodyLimit::max(114_688));
        let base = prepared.serve(app).await;
        let p1 = project(&base, "p1").await;
        let p2 = project(&base, "p2").await;
        let alice = user(&base, "alice", &p1, "member").await;
        let dave = user(&base, "dave", &p1, "member").await;
        let bob = user(&base, "bob", &p1, "reader").await;
        let carol = user(&base, "carol", &p2, "member").await;
        let (url, http) = (base.url, base.http);
        Some(Region {
            url,
            db,
            dir,
            http,
            audit,
            alice,
            dave,
            bob,
            carol,
        })
    }

    /// Sends a request as `user`; `body` JSON when given.
    pub async fn call(&self, user: &User, method: &str, path: &str, body: Option<Value>) -> Resp {
        let mut req = self.request(user, method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req).await
    }

    /// A request builder for `path` under the Key Manager, as `user`.
    pub fn request(&self, user: &User, method: &str, path: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/key-manager{path}", self.url)
        };
        self.http
            .request(m, url)
            .header("x-auth-token", &user.token)
    }

    /// Stores a text secret as `user`; returns its id.
    pub async fn store_text(&self, user: &User, name: &str, payload: &str) -> String {
        let r = self
            .call(
                user,
                "POST",
                "/v1/secrets",
                Some(
                    json!({"name": name, "payload": payload, "payload_content_type": "text/plain"}),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "store failed: {}", r.text);
        id_of(&r.json()["secret_ref"])
    }

    /// The payload of a secret as text, or the failed response's status.
    pub async fn payload(&self, user: &User, id: &str) -> Result<String, u16> {
        let r = send(
            self.request(user, "GET", &format!("/v1/secrets/{id}/payload"))
                .header("accept", "text/plain"),
        )
        .await;
        if r.status == 200 {
            Ok(r.text)
        } else {
            Err(r.status)
        }
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Resp {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp {
        status,
        headers,
        text,
    }
}

pub fn id_of(secret_ref: &Value) -> String {
    secret_ref
        .as_str()
        .unwrap_or_else(|| panic!("not a ref: {secret_ref}"))
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Makes project `name`; returns its id.
async fn project(base: &himmel_testkit::Base, name: &str) -> String {
    let created = base
        .identity_call(
            "/projects",
            json!({"project": {"name": name, "domain_id": "default"}}),
        )
        .await;
    created["project"]["id"].as_str().unwrap().to_owned()
}

/// Makes user `name` with `role` on the project, signed in to it.
async fn user(base: &himmel_testkit::Base, name: &str, project_id: &str, role: &str) -> User {
    let password = format!("{name}-secret-pw");
    let created = base
        .identity_call(
            "/users",
            json!({"user": {"name": name, "domain_id": "default", "password": password}}),
        )
        .await;
    let id = created["user"]["id"].as_str().unwrap().to_owned();
    base.grant(project_id, &id, role).await;
    let token = himmel_testkit::issue_token(
        &base.http,
        &base.url,
        himmel_testkit::password_auth(name, &password, json!({"id": project_id})),
    )
    .await;
    User {
        id,
        project_id: project_id.to_owned(),
        token,
    }
}

/// Runs async scenarios `fn(Region)` on SQLite and, when configured,
/// PostgreSQL.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let region = $crate::barbican_support::Region::start(
                        $crate::barbican_support::Engine::Sqlite).await.unwrap();
                    super::$name(region).await;
                }
            )*
        }
        mod postgres_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(region) = $crate::barbican_support::Region::start(
                        $crate::barbican_support::Engine::Postgres).await {
                        super::$name(region).await;
                    }
                }
            )*
        }
    };
}
