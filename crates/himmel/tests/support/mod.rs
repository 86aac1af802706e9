//! Running the `himmel` binary as an operator does, for the tests in this
//! directory.
#![allow(dead_code)] // each test file uses a different part

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(dir: &Path, port: u16, database: Option<&str>) -> Server {
        Server::start_with(dir, port, database, |_| {})
    }

    /// Starts a region after `configure` added its own options or
    /// environment to the command.
    pub fn start_with(
        dir: &Path,
        port: u16,
        database: Option<&str>,
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_himmel"));
        cmd.args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // regions run side by side: each its own S3 port
            .args(["--s3-listen", &format!("127.0.0.1:{}", free_port())])
            .env("HIMMEL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(db) = database {
            cmd.args(["--database", db]);
        }
        configure(&mut cmd);
        Server {
            child: cmd.spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn wait_ready(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/healthz", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server did not become ready");
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn admin_password(dir: &Path) -> String {
    let yaml = std::fs::read_to_string(dir.join("clouds.yaml")).unwrap();
    let line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("password:"))
        .unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

pub fn auth(password: &str) -> Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
}

pub async fn issue(http: &reqwest::Client, url: &str, password: &str) -> reqwest::Result<String> {
    let r = http
        .post(format!("{url}/v3/auth/tokens"))
        .json(&auth(password))
        .send()
        .await?
        .error_for_status()?;
    Ok(r.headers()["x-subject-token"].to_str().unwrap().to_string())
}

pub fn verify_trail(dir: &Path, database: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_himmel"));
    cmd.args(["admin", "audit", "verify", "--data-dir"])
        .arg(dir);
    if let Some(db) = database {
        cmd.args(["--database", db]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = http
        .get(url)
        .header("x-auth-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

/// The id of the admin project of a fresh region.
pub async fn admin_project_id(http: &reqwest::Client, url: &str, token: &str) -> String {
    let projects = get_json(http, &format!("{url}/v3/projects?name=admin"), token).await;
    projects["projects"][0]["id"].as_str().unwrap().to_string()
}
