//! 100,000 events: the writer keeps up and verify stays fast.

mod common;

use std::time::Instant;

use chrono::Utc;
use common::{project_ctx, record, start, Env};
use himmel_audit::verify_store;

async fn hundred_thousand_events_verify_quickly(env: Env) {
    let log = start(&env).await;
    let ctx = Some(project_ctx("u1", "p1"));
    let t = Instant::now();
    for i in 0..100_000 {
        log.record(record(i, ctx.clone(), Utc::now()), false)
            .await
            .unwrap();
    }
    log.flush().await.unwrap();
    let written = t.elapsed();
    let t = Instant::now();
    let summary = verify_store(&env.db, &env.key.verifying_key())
        .await
        .unwrap();
    let verified = t.elapsed();
    eprintln!("100k events: written in {written:?}, verified in {verified:?}");
    assert_eq!(summary.events, 100_000);
    assert!(
        summary.checkpoints >= 1 && summary.unsigned_tail < 10_000,
        "{summary:?}"
    );
    // About 5 s on an idle two-core machine in a debug build; the bound is
    // loose so a busy machine does not fail it, yet catches anything
    // worse than linear.
    assert!(verified.as_secs() < 60, "verify took {verified:?}");
}

on_both_engines!(hundred_thousand_events_verify_quickly);
