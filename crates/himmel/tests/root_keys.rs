//! A region on each kind of root key, end to end through the Key Manager
//! API: a PKCS#11 token (SoftHSM2) and an external key holder.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const TOKEN_LABEL: &str = "himmel-region";
const PIN: &str = "4711-user";

async fn store_secret(http: &reqwest::Client, url: &str, token: &str, payload: &str) -> String {
    let r = http
        .post(format!("{url}/key-manager/v1/secrets"))
        .header("x-auth-token", token)
        .json(&json!({"name": "kept", "payload": payload, "payload_content_type": "text/plain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["secret_ref"].as_str().unwrap().to_string()
}

async fn read_payload(http: &reqwest::Client, secret_ref: &str, token: &str) -> (u16, String) {
    let r = http
        .get(format!("{secret_ref}/payload"))
        .header("x-auth-token", token)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn write_config(dir: &Path, root_key: &str) -> PathBuf {
    let path = dir.join("himmel.toml");
    std::fs::write(&path, format!("[root_key]\n{root_key}")).unwrap();
    path
}

fn softhsm_module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_region_on_a_softhsm_token_reads_its_data_after_a_restart_and_nothing_without_the_key() {
    let Some(module) = softhsm_module() else {
        eprintln!("skipping: SoftHSM2 is not installed (Debian package softhsm2; scripts/test-deps installs it as root)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let softhsm_conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &softhsm_conf,
        format!("directories.tokendir = {}\n", tokens.display()),
    )
    .unwrap();
    run_ok(
        Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &softhsm_conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                TOKEN_LABEL,
                "--pin",
                PIN,
                "--so-pin",
                "4711-so",
            ]),
    );
    let config = write_config(
        tmp.path(),
        &format!(
            "provider = \"pkcs11\"\npkcs11_module = \"{}\"\npkcs11_token = \"{TOKEN_LABEL}\"\n",
            module.display()
        ),
    );
    let data = tmp.path().join("region");
    let http = reqwest::Client::new();
    let start = || {
        Server::start_with(&data, free_port(), None, |cmd| {
            cmd.arg("--config")
                .arg(&config)
                .env("SOFTHSM2_CONF", &softhsm_conf)
                .env("HIMMEL_PKCS11_PIN", PIN);
        })
    };

    let server = start();
    server.wait_ready(&http).await;
    let token = issue(&http, &server.url, &admin_password(&data))
        .await
        .unwrap();
    let secret_ref = store_secret(&http, &server.url, &token, "on the token").await;
    assert!(
        !data.join("root.key").exists(),
        "no root key file next to the data"
    );
    drop(server);

    let server = start();
    server.wait_ready(&http).await;
    let token = issue(&http, &server.url, &admin_password(&data))
        .await
        .unwrap();
    let secret_ref = secret_ref.replace(
        &secret_ref[..secret_ref.find("/key-manager").unwrap()],
        &server.url,
    );
    assert_eq!(
        read_payload(&http, &secret_ref, &token).await,
        (200, "on the token".to_string())
    );
    drop(server);

    // the token loses its key: the region says so and does not start
    run_ok(
        Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &softhsm_conf)
            .arg("--module")
            .arg(&module)
            .args([
                "--token-label",
                TOKEN_LABEL,
                "--login",
                "--pin",
                PIN,
                "--delete-object",
                "--type",
                "secrkey",
                "--label",
                "himmel-root-1",
            ]),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_himmel"))
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--s3-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--config")
        .arg(&config)
        .env("SOFTHSM2_CONF", &softhsm_conf)
        .env("HIMMEL_PKCS11_PIN", PIN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not open the project keys wrapped by pkcs11:1"),
        "{stderr}"
    );
}

struct KeyHolder(Child);

impl Drop for KeyHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keyholder(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_himmel"))
        .arg("keyholder")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keyholder {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_key_holder_revocation_stops_reads_within_the_cache_time_and_unrevoke_restores_them() {
    let tmp = tempfile::tempdir().unwrap();
    let kh_dir = tmp.path().join("keyholder");
    keyholder(&["init"], &kh_dir);
    let kh_port = free_port();
    let _kh = KeyHolder(
        Command::new(env!("CARGO_BIN_EXE_himmel"))
            .args(["keyholder", "serve", "--dir"])
            .arg(&kh_dir)
            .args(["--listen", &format!("127.0.0.1:{kh_port}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let config = write_config(
        tmp.path(),
        &format!(
            "provider = \"keyholder\"\nkeyholder_url = \"https://127.0.0.1:{kh_port}\"\nkeyholder_dir = \"{}\"\ncache_seconds = 1\n",
            kh_dir.join("region").display()
        ),
    );
    let data = tmp.path().join("region");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", kh_port)).is_err() {
        assert!(Instant::now() < deadline, "the key holder did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = Server::start_with(&data, free_port(), None, |cmd| {
        cmd.arg("--config").arg(&config);
    });
    server.wait_ready(&http).await;
    let token = issue(&http, &server.url, &admin_password(&data))
        .await
        .unwrap();
    let project = admin_project_id(&http, &server.url, &token).await;
    let secret_ref = store_secret(&http, &server.url, &token, "held elsewhere").await;
    assert_eq!(
        read_payload(&http, &secret_ref, &token).await,
        (200, "held elsewhere".to_string())
    );

    keyholder(&["revoke", &project], &kh_dir);
    let revoked_at = Instant::now();
    let status = loop {
        let (status, _) = read_payload(&http, &secret_ref, &token).await;
        if status != 200 || revoked_at.elapsed() > Duration::from_secs(10) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 403, "reads still worked 10 s after the revocation");
    assert!(
        revoked_at.elapsed() < Duration::from_secs(3),
        "revocation took {:?}",
        revoked_at.elapsed()
    );

    keyholder(&["unrevoke", &project], &kh_dir);
    assert_eq!(
        read_payload(&http, &secret_ref, &token).await,
        (200, "held elsewhere".to_string())
    );

    let log = keyholder(&["log", "--json"], &kh_dir);
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // the key holder saw it all, in order: the key made, the revocation,
    // the refused unwrap, the restoration, the unwrap that served the read
    let project_events: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["project"] == project.as_str())
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("wrap", "ok"),
        ("revoke", "ok"),
        ("unwrap", "revoked"),
        ("unrevoke", "ok"),
        ("unwrap", "ok"),
    ];
    let mut rest = project_events.iter();
    for (op, outcome) in expected {
        assert!(
            rest.any(|(o, r)| o == op && r == outcome),
            "no {op}/{outcome} in order in the key holder's log:\n{log}"
        );
    }
}
