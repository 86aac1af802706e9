//! Exports verify without the store, and tampering with them is named.

mod common;

use common::{fill, start_with, Env};
use himmel_audit::{export, verify_export, Problem, VerifyFailure};

async fn exported(env: &Env) -> String {
    let log = start_with(env, 10).await;
    fill(&log, 25).await;
    log.shutdown().await.unwrap();
    let mut out = Vec::new();
    let summary = export(&env.db, &env.key, &mut out).await.unwrap();
    assert_eq!(summary.events, 25);
    String::from_utf8(out).unwrap()
}

async fn export_round_trips(env: Env) {
    let text = exported(&env).await;
    assert!(text
        .lines()
        .next()
        .unwrap()
        .contains(&env.key.public_key_hex()));
    let trusted = env.key.verifying_key();
    let summary = verify_export(text.as_bytes(), Some(&trusted))
        .await
        .unwrap();
    assert_eq!((summary.events, summary.last_seq), (25, Some(25)));
    assert_eq!(summary.last_checkpoint_seq, Some(25));
    // Without a trusted key the embedded one is used.
    let summary = verify_export(text.as_bytes(), None).await.unwrap();
    assert_eq!(summary.key_id, env.key.key_id());
    // Secrets never reach an export.
    assert!(!text.to_lowercase().contains("password\":"));
}

async fn tampered_export_names_the_event(env: Env) {
    let text = exported(&env).await;
    let lines: Vec<&str> = text.lines().collect();
    // The event line, not a checkpoint that may also sit at seq 17 when a
    // batch of events happened to end there.
    let target = lines
        .iter()
        .position(|l| l.contains("\"type\":\"event\",\"seq\":17,"))
        .unwrap();
    let mut tampered: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    tampered[target] = tampered[target].replacen("192.0.2.7", "192.0.2.8", 1);
    assert_ne!(tampered[target], lines[target]);
    let tampered = tampered.join("\n");
    let Err(VerifyFailure::Broken(err)) = verify_export(tampered.as_bytes(), None).await else {
        panic!("a tampered export verified");
    };
    assert_eq!(err.event.as_ref().map(|e| e.0), Some(17));
    assert!(matches!(err.problem, Problem::HashMismatch { .. }), "{err}");
}

async fn export_signed_by_another_key_is_refused(env: Env) {
    let text = exported(&env).await;
    let other = common::sqlite().await.key;
    let err = verify_export(text.as_bytes(), Some(&other.verifying_key()))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyFailure::Unreadable(_)), "{err}");
    assert!(err.to_string().contains("trusted audit key"), "{err}");
    // Truncating the end of an export is caught by the last checkpoint.
    let cut: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"type\":\"event\",\"seq\":25,"))
        .collect();
    let Err(VerifyFailure::Broken(err)) = verify_export(cut.join("\n").as_bytes(), None).await
    else {
        panic!("a truncated export verified");
    };
    assert_eq!(err.problem, Problem::CheckpointBeyondHead { head_seq: 24 });
}

on_both_engines!(
    export_round_trips,
    tampered_export_names_the_event,
    export_signed_by_another_key_is_refused
);
