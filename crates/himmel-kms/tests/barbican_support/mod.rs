//! A region with identity and the Key Manager in-process on a random
//! port, on SQLite or (when HIMMEL_TEST_POSTGRES is set) PostgreSQL, and
//! the users the Key Manager tests act as.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use himmel_http::{AuditRecord, AuditSink, Pipeline};
use himmel_identity::{Config, Identity};
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

#[derive(Clone, Copy, Debug)]
pub enum Engine {
    Sqlite,
    Postgres,
}

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
    admin_password: String,
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
        let db = match engine {
            Engine::Sqlite => {
                himmel_db::Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
                    .await
                    .unwrap()
            }
            Engine::Postgres => {
                let Ok(url) = std::env::var("HIMMEL_TEST_POSTGRES") else {
                    eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set (the project's test command sets it)");
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
        let root = Arc::new(KeyFile::open_or_create(&dir.path().join("root.key")).unwrap());
        let keyring = Keyring::new(db.clone(), root, Duration::from_secs(60), None);
        let audit = Arc::new(MemorySink::default());
        let pipeline = Pipeline::new(Arc::new(identity.clone()), audit.clone());
        let app = himmel_identity::routes(&pipeline, identity.clone())
            .merge(himmel_kms::api::routes(
                &pipeline,
                KeyManager::new(db.clone(), keyring),
            ))
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
        let admin_password = created.admin_password.unwrap();
        let admin = token(&http, &url, "admin", &admin_password, "admin").await;
        let setup = Setup {
            http: &http,
            url: &url,
            admin: &admin,
        };
        setup.project("p1").await;
        setup.project("p2").await;
        let alice = setup.user("alice", "p1", "member").await;
        let dave = setup.user("dave", "p1", "member").await;
        let bob = setup.user("bob", "p1", "reader").await;
        let carol = setup.user("carol", "p2", "member").await;
        Some(Region {
            url,
            db,
            dir,
            http,
            audit,
            admin_password,
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

async fn token(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    project: &str,
) -> String {
    let auth = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}
    }});
    let r = http
        .post(format!("{url}/v3/auth/tokens"))
        .json(&auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "token for {user}: {:?}", r.text().await);
    r.headers()["x-subject-token"].to_str().unwrap().to_owned()
}

struct Setup<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
    admin: &'a str,
}

impl Setup<'_> {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("x-auth-token", self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{path}");
        r.json().await.unwrap()
    }

    async fn project(&self, name: &str) {
        self.post(
            "/v3/projects",
            json!({"project": {"name": name, "domain_id": "default"}}),
        )
        .await;
    }

    async fn role_id(&self, name: &str) -> String {
        let r: Value = self
            .http
            .get(format!("{}/v3/roles?name={name}", self.url))
            .header("x-auth-token", self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["roles"][0]["id"].as_str().unwrap().to_owned()
    }

    async fn project_id(&self, name: &str) -> String {
        let r: Value = self
            .http
            .get(format!("{}/v3/projects?name={name}", self.url))
            .header("x-auth-token", self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["projects"][0]["id"].as_str().unwrap().to_owned()
    }

    async fn user(&self, name: &str, project: &str, role: &str) -> User {
        let password = format!("{name}-secret-pw");
        let user = self
            .post(
                "/v3/users",
                json!({"user": {"name": name, "domain_id": "default", "password": password}}),
            )
            .await;
        let user_id = user["user"]["id"].as_str().unwrap().to_owned();
        let project_id = self.project_id(project).await;
        let role_id = self.role_id(role).await;
        let r = self
            .http
            .put(format!(
                "{}/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
                self.url
            ))
            .header("x-auth-token", self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        User {
            id: user_id,
            project_id,
            token: token(self.http, self.url, name, &password, project).await,
        }
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
