//! The binary as an operator runs it: first start, readiness, clean
//! shutdown, and a crash (`kill -9`) that must lose nothing acknowledged.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test]
async fn first_start_issues_a_token_within_two_seconds_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut server = Server::start(dir.path(), free_port(), None);
    server.wait_ready(&http).await;
    let token = issue(&http, &server.url, &admin_password(dir.path()))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(!token.is_empty());
    assert!(
        elapsed < Duration::from_secs(2),
        "first token after {elapsed:?}"
    );
    let mode = std::fs::metadata(dir.path().join("clouds.yaml")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077,
        0
    );

    server.signal("-TERM");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "SIGTERM exit status {status:?}");
    assert!(verify_trail(dir.path(), None).contains("OK"));
}

async fn crash_loses_nothing_acknowledged(database: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let http = reqwest::Client::new();
    let server = Server::start(dir.path(), port, database);
    server.wait_ready(&http).await;
    let password = admin_password(dir.path());
    let admin = issue(&http, &server.url, &password).await.unwrap();

    // Revoke tokens concurrently and kill the server while it works.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, url, password, admin) = (
            http.clone(),
            server.url.clone(),
            password.clone(),
            admin.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for _ in 0..200 {
                let Ok(t) = issue(&http, &url, &password).await else {
                    break;
                };
                let r = http
                    .delete(format!("{url}/v3/auth/tokens"))
                    .header("x-auth-token", &admin)
                    .header("x-subject-token", &t)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 204 => acknowledged.push(t),
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.signal("-KILL");
    let mut revoked = Vec::new();
    for t in tasks {
        revoked.extend(t.await.unwrap());
    }
    drop(server);
    assert!(
        !revoked.is_empty(),
        "no revocation was acknowledged before the crash"
    );

    let server = Server::start(dir.path(), port, database);
    server.wait_ready(&http).await;
    for t in &revoked {
        let r = http
            .get(format!("{}/v3/auth/tokens", server.url))
            .header("x-auth-token", &admin)
            .header("x-subject-token", t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "an acknowledged revocation was lost");
    }
    // The admin token was never revoked and survives the restart.
    let r = http
        .get(format!("{}/v3/auth/tokens", server.url))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
    let summary = verify_trail(dir.path(), database);
    let events: usize = summary
        .split(": ")
        .nth(2)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Every acknowledged revocation and the issue before it are in the trail.
    assert!(
        events >= revoked.len() * 2,
        "trail has {events} events for {} acknowledged revocations",
        revoked.len()
    );
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_write_sqlite() {
    crash_loses_nothing_acknowledged(None).await;
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_write_postgres() {
    let Ok(base) = std::env::var("HIMMEL_TEST_POSTGRES") else {
        eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set (the project's test command sets it)");
        return;
    };
    let url = himmel_db::testing::fresh_postgres_url(&base).await;
    crash_loses_nothing_acknowledged(Some(&url)).await;
}
