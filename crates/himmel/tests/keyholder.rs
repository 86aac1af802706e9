//! `himmel keyholder …` as a key holder's operator runs it: init, serve in
//! its own process, revoke and unrevoke while it serves, read its log.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use himmel_kms::keyholder::Layout;
use himmel_kms::root::keyholder::KeyHolderClient;
use himmel_kms::root::RootKeyProvider;
use himmel_kms::{Key, KmsError};

fn himmel(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_himmel"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("HIMMEL_LOG", "warn")
        .output()
        .unwrap()
}

fn himmel_ok(args: &[&str], dir: &Path) -> String {
    let out = himmel(args, dir);
    assert!(
        out.status.success(),
        "himmel {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct KeyHolderProcess(Child);

impl Drop for KeyHolderProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, port: u16) -> KeyHolderProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_himmel"))
        .args(["keyholder", "serve", "--dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("HIMMEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the key holder did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    KeyHolderProcess(child)
}

#[tokio::test]
async fn an_operator_revokes_and_restores_a_project_while_the_key_holder_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kh");
    let printed = himmel_ok(&["keyholder", "init"], &dir);
    let layout = Layout::new(&dir);
    assert!(printed.contains(&layout.region_dir().display().to_string()));
    assert!(printed.contains("provider = \"keyholder\""), "{printed}");
    let again = himmel(&["keyholder", "init"], &dir);
    assert!(
        !again.status.success(),
        "a second init overwrote the root key"
    );

    let port = support::free_port();
    let _holder = serve(&dir, port);
    let client = KeyHolderClient::new(
        &format!("https://localhost:{port}"),
        &layout.region_ca(),
        &layout.region_cert(),
        &layout.region_key(),
    )
    .unwrap();
    let kek = Key::generate();
    let wrapped = client.wrap("p1", b"kek/p1/1", &kek).await.unwrap();
    let opened = client.unwrap("p1", b"kek/p1/1", &wrapped).await.unwrap();
    assert_eq!(opened.as_bytes(), kek.as_bytes());

    himmel_ok(&["keyholder", "revoke", "p1"], &dir);
    assert!(matches!(
        client.unwrap("p1", b"kek/p1/1", &wrapped).await,
        Err(KmsError::Revoked(_))
    ));
    himmel_ok(&["keyholder", "unrevoke", "p1"], &dir);
    client.unwrap("p1", b"kek/p1/1", &wrapped).await.unwrap();

    let log = himmel_ok(&["keyholder", "log"], &dir);
    let lines: Vec<Vec<&str>> = log
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let ops: Vec<(&str, &str)> = lines
        .iter()
        .map(|cols| (cols[1], *cols.last().unwrap()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("wrap", "ok"),
            ("unwrap", "ok"),
            ("revoke", "ok"),
            ("unwrap", "revoked"),
            ("unrevoke", "ok"),
            ("unwrap", "ok"),
        ],
        "{log}"
    );
    assert!(log.contains("CN=himmel region"), "{log}");
    let json = himmel_ok(&["keyholder", "log", "--json"], &dir);
    for line in json.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["project"], "p1");
    }

    let bad = himmel(&["keyholder", "revoke", "p1\nrevoke p2"], &dir);
    assert!(!bad.status.success());
}

#[test]
fn serve_refuses_a_directory_that_was_never_initialised() {
    let tmp = tempfile::tempdir().unwrap();
    let port = support::free_port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_himmel"))
        .args([
            "keyholder",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keyholder init"));
    assert!(!himmel(&["keyholder", "revoke", "p1"], tmp.path())
        .status
        .success());
}

/// A region started with `config`, its errors going to `stderr`.
fn start_region(data: &Path, config: &Path, stderr: &Path) -> support::Server {
    let port = support::free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_himmel"));
    cmd.args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--s3-listen",
            &format!("127.0.0.1:{}", support::free_port()),
        ])
        .env("HIMMEL_CONFIG", config)
        .env("HIMMEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap());
    support::Server {
        child: cmd.spawn().unwrap(),
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn admin_keys(data: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_himmel"))
        .args(["admin", "keys"])
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("HIMMEL_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_region_keeps_its_root_key_in_the_key_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let kh = tmp.path().join("kh");
    himmel_ok(&["keyholder", "init"], &kh);
    let kh_port = support::free_port();
    let holder = serve(&kh, kh_port);
    let config = tmp.path().join("himmel.toml");
    std::fs::write(
        &config,
        format!(
            "[root_key]\nprovider = \"keyholder\"\nkeyholder_url = \"https://localhost:{kh_port}\"\n\
             keyholder_dir = {:?}\ncache_seconds = 1\n",
            Layout::new(&kh).region_dir()
        ),
    )
    .unwrap();
    let data = tmp.path().join("region");
    let http = reqwest::Client::new();
    let stderr = tmp.path().join("region.err");
    let region = start_region(&data, &config, &stderr);
    region.wait_ready(&http).await;

    let token = support::issue(&http, &region.url, &support::admin_password(&data))
        .await
        .unwrap();
    let projects: serde_json::Value = http
        .get(format!("{}/v3/projects?name=admin", region.url))
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project = projects["projects"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        admin_keys(&data, &["rotate-project-key", &project])["version"],
        1
    );
    let rotated = admin_keys(&data, &["rotate-root"]);
    assert_eq!(rotated["root"], "keyholder:file:2", "{rotated}");
    assert_eq!(rotated["rewrapped_project_keys"], 1, "{rotated}");
    drop(region);

    let log = himmel_ok(&["keyholder", "log", "--json"], &kh);
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("wrap", "ok"),
            ("rotate", "ok"),
            ("unwrap", "ok"),
            ("wrap", "ok")
        ],
        "{log}"
    );
    assert!(entries.iter().all(|e| e["client"] == "CN=himmel region"));

    // A revoked project does not keep the region from starting ...
    himmel_ok(&["keyholder", "revoke", &project], &kh);
    let region = start_region(&data, &config, &stderr);
    region.wait_ready(&http).await;
    drop(region);

    // ... an unreachable key holder does, and says why.
    drop(holder);
    let mut region = start_region(&data, &config, &stderr);
    let status = region.child.wait().unwrap();
    assert!(!status.success());
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert!(said.contains("key holder"), "{said}");
}
