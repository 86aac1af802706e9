//! Pruning keeps the rest verifiable and tampering detectable.

mod common;

use chrono::{Duration, Utc};
use common::{project_ctx, record, start, Env};
use himmel_audit::{prune, verify_store, AuditLog, Problem, VerifyFailure};

/// 20 events from 100 days ago, then 10 from now.
async fn old_and_new(env: &Env) -> AuditLog {
    let log = start(env).await;
    let old = Utc::now() - Duration::days(100);
    for i in 0..30 {
        let at = if i < 20 { old } else { Utc::now() };
        log.record(record(i, Some(project_ctx("u1", "p1")), at), false)
            .await
            .unwrap();
    }
    log.flush().await.unwrap();
    log
}

fn cutoff() -> chrono::DateTime<Utc> {
    Utc::now() - Duration::days(90)
}

async fn pruned_chain_still_verifies(env: Env) {
    let log = old_and_new(&env).await;
    let report = prune(&env.db, &env.key, cutoff()).await.unwrap();
    assert_eq!((report.pruned, report.anchor_seq), (20, Some(20)));
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    assert_eq!((summary.events, summary.first_seq), (10, Some(21)));
    // The chain goes on after the prune, and across a restart.
    common::fill(&log, 5).await;
    log.shutdown().await.unwrap();
    let log = start(&env).await;
    common::fill(&log, 5).await;
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    assert_eq!((summary.events, summary.last_seq), (20, Some(40)));
    // Nothing more is old enough.
    assert_eq!(prune(&env.db, &env.key, cutoff()).await.unwrap().pruned, 0);
}

async fn deleting_more_than_the_prune_is_caught(env: Env) {
    old_and_new(&env).await;
    prune(&env.db, &env.key, cutoff()).await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = 21")
        .execute(env.db.pool())
        .await
        .unwrap();
    let Err(VerifyFailure::Broken(err)) = verify_store(&env.db, &env.key.verifying_key()).await
    else {
        panic!("deleting the first remaining event went unnoticed");
    };
    assert_eq!(err.event.map(|e| e.0), Some(22));
    assert_eq!(err.problem, Problem::Unanchored);
}

async fn forged_anchor_is_caught(env: Env) {
    old_and_new(&env).await;
    prune(&env.db, &env.key, cutoff()).await.unwrap();
    // Move the anchor forward to hide one more event: the signature breaks.
    sqlx::query("DELETE FROM audit_events WHERE seq = 21")
        .execute(env.db.pool())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_checkpoints SET seq = 21, hash = (SELECT prev_hash FROM audit_events WHERE seq = 22) \
         WHERE kind = 'prune'",
    )
    .execute(env.db.pool())
    .await
    .unwrap();
    let Err(VerifyFailure::Broken(err)) = verify_store(&env.db, &env.key.verifying_key()).await
    else {
        panic!("a forged prune record went unnoticed");
    };
    assert_eq!(err.checkpoint_seq, Some(21));
    assert_eq!(err.problem, Problem::BadSignature);
}

async fn tampered_old_events_are_not_pruned_away(env: Env) {
    old_and_new(&env).await;
    sqlx::query("UPDATE audit_events SET body = replace(body, 'u3', 'u4') WHERE seq = 4")
        .execute(env.db.pool())
        .await
        .unwrap();
    let err = prune(&env.db, &env.key, cutoff()).await.unwrap_err();
    assert!(err.to_string().contains("seq 4"), "{err}");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(env.db.pool())
        .await
        .unwrap();
    assert_eq!(n, 30, "the evidence must stay");
}

async fn pruning_everything_keeps_the_head(env: Env) {
    let log = start(&env).await;
    let old = Utc::now() - Duration::days(100);
    for i in 0..12 {
        log.record(record(i, None, old), false).await.unwrap();
    }
    log.shutdown().await.unwrap();
    let report = prune(&env.db, &env.key, cutoff()).await.unwrap();
    assert_eq!(report.anchor_seq, Some(12));
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    assert_eq!(summary.events, 0);
    // A restart continues from the anchor.
    let log = start(&env).await;
    common::fill(&log, 3).await;
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    assert_eq!((summary.first_seq, summary.last_seq), (Some(13), Some(15)));
}

on_both_engines!(
    pruned_chain_still_verifies,
    deleting_more_than_the_prune_is_caught,
    forged_anchor_is_caught,
    tampered_old_events_are_not_pruned_away,
    pruning_everything_keeps_the_head,
);
