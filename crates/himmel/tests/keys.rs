//! `himmel admin keys …` as an operator runs them: inside a running region
//! (control socket) and on a stopped one; every key operation is in the
//! audit trail, which still verifies.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::*;

fn keys(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_himmel"))
        .args(["admin", "keys"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
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
async fn key_operations_run_inside_the_region_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut server = Server::start(dir.path(), free_port(), None);
    server.wait_ready(&http).await;
    let token = issue(&http, &server.url, &admin_password(dir.path()))
        .await
        .unwrap();
    let project = admin_project_id(&http, &server.url, &token).await;

    assert_eq!(
        keys(dir.path(), &["rotate-project-key", &project])["version"],
        1
    );
    assert_eq!(
        keys(dir.path(), &["rotate-project-key", &project])["version"],
        2
    );
    let rotated = keys(dir.path(), &["rotate-root"]);
    assert_eq!(rotated["root"], "file:2");
    assert_eq!(rotated["rewrapped_project_keys"], 2);
    let root_file = std::fs::read_to_string(dir.path().join("root.key")).unwrap();
    assert_eq!(root_file.lines().count(), 2);

    let events = get_json(&http, &format!("{}/v3/audit/events", server.url), &token).await;
    let names: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    for wanted in [
        "key-manager:create_project_key",
        "key-manager:rotate_project_key",
        "key-manager:rotate_root_key",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} not in {names:?}"
        );
    }

    // a stopped region: the command does the work itself, and records it
    server.signal("-TERM");
    assert!(server.child.wait().unwrap().success());
    assert!(!dir.path().join("control.sock").exists());
    assert_eq!(
        keys(dir.path(), &["destroy-project-keys", &project])["destroyed_key_versions"],
        2
    );
    assert!(verify_trail(dir.path(), None).contains("OK"));
}
