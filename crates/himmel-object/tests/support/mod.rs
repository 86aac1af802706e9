//! A region with identity and the S3 API in-process on random ports, for
//! integration tests: SQLite, or PostgreSQL when HIMMEL_TEST_POSTGRES is
//! set. Requests are signed with SigV4 by an EC2 credential of a member of
//! a fresh project, as a client would sign them.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};

pub use himmel_testkit::{Base, Engine};

/// The S3 region name (S3 wants it lowercase).
const S3_REGION: &str = "regionone";

pub struct Region {
    base: Base,
    pub db: himmel_db::Db,
    pub s3_url: String,
    access: String,
    secret: String,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Region {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
    }
}

/// What the S3 API answered.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Panics with the answer unless the status is `want`.
    pub fn expect(self, want: u16) -> Reply {
        assert_eq!(self.status, want, "{}", self.text());
        self
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
        let s3_url = serve_s3(&db, &prepared.identity, dir.path()).await;
        let app = prepared.identity_routes();
        let base = prepared.serve(app).await;
        let project = base
            .identity_call(
                "/projects",
                json!({"project": {"name": "objects", "domain_id": "default"}}),
            )
            .await;
        let project_id = project["project"]["id"].as_str().unwrap().to_string();
        let user = base
            .identity_call(
                "/users",
                json!({"user": {"name": "writer", "domain_id": "default", "password": "pw-writer-1"}}),
            )
            .await;
        let user_id = user["user"]["id"].as_str().unwrap().to_string();
        base.grant(&project_id, &user_id, "member").await;
        let access = hex::encode(rand::random::<[u8; 10]>());
        let secret = hex::encode(rand::random::<[u8; 20]>());
        base.identity_call(
            "/credentials",
            json!({"credential": {"type": "ec2", "user_id": user_id, "project_id": project_id,
                "blob": json!({"access": access, "secret": secret}).to_string()}}),
        )
        .await;
        Some(Region {
            base,
            db,
            s3_url,
            access,
            secret,
            dir,
        })
    }

    /// The region's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Opens the object store again on the same database and directory, as
    /// a restart does (orphan sweep included), and serves it on a new port.
    pub async fn restart_s3(&mut self) {
        self.s3_url = serve_s3(&self.db, &self.base.identity, self.dir.path()).await;
    }

    /// Every regular file under the object data directory (segment files).
    pub fn object_files(&self) -> Vec<PathBuf> {
        files_under(&self.dir.path().join("objects"))
    }

    /// Every regular file under the data directory.
    pub fn all_files(&self) -> Vec<PathBuf> {
        files_under(self.dir.path())
    }

    /// Sends a SigV4-signed S3 request (unsigned payload); `path_and_query`
    /// must be URI-encoded already. Every header given is signed.
    pub async fn s3(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let host = self.s3_url.split("://").nth(1).unwrap().to_string();
        let now = chrono::Utc::now();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let day = now.format("%Y%m%d").to_string();
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        signed.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())),
        );
        signed.sort();
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.contains('=') {
                    p.to_string()
                } else {
                    format!("{p}=")
                }
            })
            .collect();
        params.sort();
        let names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
        let canonical = format!(
            "{method}\n{path}\n{}\n{}\n{}\nUNSIGNED-PAYLOAD",
            params.join("&"),
            signed
                .iter()
                .map(|(k, v)| format!("{k}:{v}\n"))
                .collect::<String>(),
            names.join(";")
        );
        let scope = format!("{day}/{}/s3/aws4_request", S3_REGION);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{}", self.secret).as_bytes(), day.as_bytes());
        for part in [S3_REGION.as_bytes(), b"s3", b"aws4_request"] {
            key = hmac(&key, part);
        }
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            self.access,
            names.join(";")
        );
        let mut req = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path_and_query}", self.s3_url),
            )
            .header("authorization", auth)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .header("x-amz-date", amz_date)
            .timeout(Duration::from_secs(60))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("S3 request");
        Reply {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.bytes().await.expect("S3 response body").to_vec(),
        }
    }

    pub async fn put(&self, path: &str, body: &[u8]) -> Reply {
        self.s3("PUT", path, &[], body.to_vec()).await.expect(200)
    }

    pub async fn get(&self, path: &str) -> Vec<u8> {
        self.s3("GET", path, &[], vec![]).await.expect(200).body
    }
}

async fn serve_s3(db: &himmel_db::Db, identity: &himmel_identity::Identity, dir: &Path) -> String {
    let root = himmel_kms::root::file::KeyFile::open_or_create(&dir.join("root.key")).unwrap();
    let keyring =
        himmel_kms::Keyring::new(db.clone(), Arc::new(root), Duration::from_secs(60), None);
    let store =
        himmel_object::ObjectStore::open(db.clone(), identity.clone(), keyring, dir, S3_REGION)
            .await
            .expect("opening the object store");
    let app = store.router(Arc::new(himmel_testkit::NullSink));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serving S3");
    });
    url
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .flat_map(|p| if p.is_dir() { files_under(&p) } else { vec![p] })
        .collect()
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
