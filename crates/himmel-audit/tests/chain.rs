//! The hash chain end to end: the writer appends, verify recomputes, and
//! every kind of tampering is named at the first broken event.

mod common;

use chrono::Utc;
use common::{fill, project_ctx, record, start, start_with, Env};
use himmel_audit::{verify_store, Problem, VerifyFailure};

async fn event_at(env: &Env, seq: i64) -> (String, String) {
    let row = sqlx::query("SELECT id, body FROM audit_events WHERE seq = $1")
        .bind(seq)
        .fetch_one(env.db.pool())
        .await
        .unwrap();
    use himmel_db::Row;
    (row.get("id"), row.get("body"))
}

fn broken(result: Result<himmel_audit::Summary, VerifyFailure>) -> himmel_audit::VerifyError {
    match result {
        Err(VerifyFailure::Broken(e)) => e,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

async fn appends_and_verifies(env: Env) {
    let log = start_with(&env, 10).await;
    for i in 0..25 {
        log.record(
            record(i, Some(project_ctx("u1", "p1")), Utc::now()),
            i % 2 == 0,
        )
        .await
        .unwrap();
    }
    log.shutdown().await.unwrap();
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    assert_eq!(summary.events, 25);
    assert_eq!((summary.first_seq, summary.last_seq), (Some(1), Some(25)));
    // Every 10 events, plus the shutdown checkpoint over the head.
    assert_eq!(summary.last_checkpoint_seq, Some(25));
    assert!(summary.checkpoints >= 3, "{summary:?}");
    assert_eq!(summary.unsigned_tail, 0);
    // Records after shutdown are refused, not silently dropped.
    assert!(log
        .record(record(99, None, Utc::now()), true)
        .await
        .is_err());
}

async fn restart_continues_the_chain(env: Env) {
    let log = start(&env).await;
    fill(&log, 7).await;
    log.shutdown().await.unwrap();
    let log = start(&env).await;
    fill(&log, 5).await;
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    assert_eq!(summary.events, 12);
    assert_eq!(summary.unsigned_tail, 5, "{summary:?}");
}

async fn flipped_byte_names_the_event(env: Env) {
    let log = start(&env).await;
    fill(&log, 50).await;
    let (id, body) = event_at(&env, 23).await;
    let tampered = body
        .replacen("\"outcome\":\"success\"", "\"outcome\":\"succesS\"", 1)
        .replacen("\"outcome\":\"failure\"", "\"outcome\":\"failurE\"", 1);
    assert_ne!(tampered, body);
    sqlx::query("UPDATE audit_events SET body = $1 WHERE seq = 23")
        .bind(tampered)
        .execute(env.db.pool())
        .await
        .unwrap();
    let err = broken(verify_store(&env.db, &env.key.verifying_key()).await);
    assert_eq!(err.event, Some((23, id.clone())));
    assert!(matches!(err.problem, Problem::HashMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(&id) && err.to_string().contains("seq 23"),
        "{err}"
    );
}

async fn rehashed_event_breaks_the_next_link(env: Env) {
    let log = start(&env).await;
    fill(&log, 10).await;
    let (_, body) = event_at(&env, 4).await;
    let row = sqlx::query("SELECT prev_hash FROM audit_events WHERE seq = 4")
        .fetch_one(env.db.pool())
        .await
        .unwrap();
    use himmel_db::Row;
    let prev: String = row.get("prev_hash");
    let forged = body.replace("/v3/users/", "/v3/users/x");
    let forged_hash = himmel_audit::chain::link_hash(&prev, &forged);
    sqlx::query("UPDATE audit_events SET body = $1, hash = $2 WHERE seq = 4")
        .bind(&forged)
        .bind(&forged_hash)
        .execute(env.db.pool())
        .await
        .unwrap();
    let (next_id, _) = event_at(&env, 5).await;
    let err = broken(verify_store(&env.db, &env.key.verifying_key()).await);
    assert_eq!(err.event, Some((5, next_id)));
    assert!(matches!(err.problem, Problem::BrokenLink { .. }), "{err}");
}

async fn edited_column_is_caught(env: Env) {
    let log = start(&env).await;
    fill(&log, 5).await;
    sqlx::query("UPDATE audit_events SET project_id = 'elsewhere' WHERE seq = 2")
        .execute(env.db.pool())
        .await
        .unwrap();
    let err = broken(verify_store(&env.db, &env.key.verifying_key()).await);
    assert_eq!(err.event.as_ref().map(|e| e.0), Some(2));
    assert_eq!(
        err.problem,
        Problem::ColumnMismatch {
            column: "project_id"
        }
    );
}

async fn deleted_events_are_caught(env: Env) {
    let log = start_with(&env, 10).await;
    fill(&log, 30).await;
    log.shutdown().await.unwrap();
    // From the middle: the next event reports the gap.
    sqlx::query("DELETE FROM audit_events WHERE seq = 12")
        .execute(env.db.pool())
        .await
        .unwrap();
    let err = broken(verify_store(&env.db, &env.key.verifying_key()).await);
    assert_eq!(err.event.as_ref().map(|e| e.0), Some(13));
    assert_eq!(err.problem, Problem::SeqGap { expected: 12 });
    // From the start, without a signed prune record.
    sqlx::query("DELETE FROM audit_events WHERE seq <= 12")
        .execute(env.db.pool())
        .await
        .unwrap();
    let err = broken(verify_store(&env.db, &env.key.verifying_key()).await);
    assert_eq!(err.event.as_ref().map(|e| e.0), Some(13));
    assert_eq!(err.problem, Problem::Unanchored);
}

async fn cut_tail_is_caught_by_checkpoint(env: Env) {
    let log = start_with(&env, 10).await;
    fill(&log, 30).await;
    log.shutdown().await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq > 25")
        .execute(env.db.pool())
        .await
        .unwrap();
    let err = broken(verify_store(&env.db, &env.key.verifying_key()).await);
    assert_eq!(err.checkpoint_seq, Some(30));
    assert_eq!(err.problem, Problem::CheckpointBeyondHead { head_seq: 25 });
}

async fn forged_checkpoint_is_caught(env: Env) {
    let log = start_with(&env, 10).await;
    fill(&log, 20).await;
    log.shutdown().await.unwrap();
    // Batches may end past a multiple of 10, so checkpoint seqs vary.
    let signed = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    let seq = signed.last_checkpoint_seq.unwrap();
    sqlx::query("UPDATE audit_checkpoints SET at = at + 1 WHERE seq = $1")
        .bind(seq)
        .execute(env.db.pool())
        .await
        .unwrap();
    let err = broken(verify_store(&env.db, &env.key.verifying_key()).await);
    assert_eq!(err.checkpoint_seq, Some(seq));
    assert_eq!(err.problem, Problem::BadSignature);
    // A different key does not vouch for this chain either.
    let other = common::sqlite().await.key;
    let err = broken(verify_store(&env.db, &other.verifying_key()).await);
    assert!(matches!(err.problem, Problem::UnknownKey { .. }), "{err}");
}

async fn group_commit_batches_concurrent_writers(env: Env) {
    let log = start(&env).await;
    let before = log.commits();
    let mut tasks = Vec::new();
    for i in 0..400 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.record(record(i, Some(project_ctx("u1", "p1")), Utc::now()), true)
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let commits = log.commits() - before;
    assert!(
        commits < 100,
        "400 durable records took {commits} transactions"
    );
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    assert_eq!(summary.events, 400);
}

async fn quiet_periods_get_checkpoints(env: Env) {
    let config = himmel_audit::AuditConfig {
        checkpoint_interval: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let log = himmel_audit::AuditLog::start(env.db.clone(), env.key.clone(), config)
        .await
        .unwrap();
    for i in 0..3 {
        log.record(record(i, None, Utc::now()), true).await.unwrap();
    }
    let signed = async {
        loop {
            let s = verify_store(&env.db, &env.key.verifying_key())
                .await
                .unwrap();
            if s.unsigned_tail == 0 {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let summary = tokio::time::timeout(std::time::Duration::from_secs(10), signed)
        .await
        .expect("the quiet head was never signed");
    assert_eq!(summary.last_checkpoint_seq, Some(3));
}

async fn a_second_writer_is_chained_onto_not_overwritten(env: Env) {
    // Two processes on one database: each write that collides re-reads
    // the head and is chained after the other's events.
    let a = start(&env).await;
    fill(&a, 5).await;
    let b = start(&env).await;
    fill(&b, 5).await;
    a.record(record(99, None, Utc::now()), true).await.unwrap();
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    assert_eq!((summary.events, summary.last_seq), (11, Some(11)));
}

on_both_engines!(
    quiet_periods_get_checkpoints,
    a_second_writer_is_chained_onto_not_overwritten,
    appends_and_verifies,
    restart_continues_the_chain,
    flipped_byte_names_the_event,
    rehashed_event_breaks_the_next_link,
    edited_column_is_caught,
    deleted_events_are_caught,
    cut_tail_is_caught_by_checkpoint,
    forged_checkpoint_is_caught,
    group_commit_batches_concurrent_writers,
);
