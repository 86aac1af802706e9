//! The entry points `himmel admin audit verify|export` call.

mod common;

use chrono::Utc;
use common::{project_ctx, record};
use himmel_audit::admin::{export_command, start_for_region, verify_command};
use himmel_audit::VerifyFailure;
use himmel_db::Db;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_verify_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/state.db", dir.path().display());
    let db = Db::connect(&url).await.unwrap();
    let log = start_for_region(db, dir.path(), "region-a", himmel_audit::DEFAULT_RETENTION)
        .await
        .unwrap();
    for i in 0..30 {
        log.record(record(i, Some(project_ctx("u1", "p1")), Utc::now()), true)
            .await
            .unwrap();
    }
    log.shutdown().await.unwrap();

    let live = verify_command(dir.path(), &url, None).await.unwrap();
    assert_eq!((live.events, live.unsigned_tail), (30, 0));
    assert!(
        live.to_string().starts_with("audit chain OK: 30 events"),
        "{live}"
    );

    let out = dir.path().join("trail.jsonl");
    let exported = export_command(dir.path(), &url, Some(&out)).await.unwrap();
    assert_eq!(exported.events, 30);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let from_file = verify_command(dir.path(), &url, Some(&out)).await.unwrap();
    assert_eq!(from_file, live);

    let text = std::fs::read_to_string(&out)
        .unwrap()
        .replacen("region-a", "region-b", 3);
    std::fs::write(&out, text).unwrap();
    let err = verify_command(dir.path(), &url, Some(&out))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyFailure::Broken(_)), "{err}");
    assert!(err.to_string().contains("event seq 1 "), "{err}");
}

#[tokio::test]
async fn verify_without_a_key_refuses_instead_of_creating_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/state.db", dir.path().display());
    let err = verify_command(dir.path(), &url, None).await.unwrap_err();
    assert!(err.to_string().contains("no audit key"), "{err}");
    assert!(!dir.path().join(himmel_audit::KEY_FILE_NAME).exists());
}
