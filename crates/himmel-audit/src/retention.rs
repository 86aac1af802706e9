//! Retention: old events are deleted, and a signed `prune` checkpoint over
//! the last deleted event anchors the chain, so what remains still verifies
//! and a deletion that no prune signed is still caught.

use std::time::Duration;

use chrono::{DateTime, Utc};
use himmel_db::{Db, Row};

use crate::chain::{Checkpoint, KIND_PRUNE};
use crate::store;
use crate::verify::{verify_store, VerifyFailure};
use crate::AuditKey;

/// How long events are kept unless configured otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// How often the background task prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub pruned: u64,
    /// Seq of the prune checkpoint written, when anything was pruned.
    pub anchor_seq: Option<i64>,
}

/// Deletes the events recorded before `older_than`. Only a prefix of the
/// chain is ever removed: deletion stops at the first event that is recent
/// enough, even if some later one is older (clocks and queues reorder).
/// The chain is verified first, so a tampered stretch is reported instead
/// of being signed over and deleted.
pub async fn prune(
    db: &Db,
    key: &AuditKey,
    older_than: DateTime<Utc>,
) -> Result<PruneReport, VerifyFailure> {
    verify_store(db, &key.verifying_key()).await?;
    let cutoff = older_than.timestamp_micros();
    let mut tx = db.begin_write().await?;
    let keep_from: Option<i64> =
        sqlx::query("SELECT MIN(seq) AS seq FROM audit_events WHERE at >= $1")
            .bind(cutoff)
            .fetch_one(&mut **tx)
            .await?
            .try_get("seq")?;
    let last =
        sqlx::query("SELECT seq, hash FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 1")
            .bind(keep_from.unwrap_or(i64::MAX))
            .fetch_optional(&mut **tx)
            .await?;
    let Some(last) = last else {
        return Ok(PruneReport {
            pruned: 0,
            anchor_seq: None,
        });
    };
    let (seq, hash): (i64, String) = (last.try_get("seq")?, last.try_get("hash")?);
    let pruned = sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
        .bind(seq)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    // Checkpoints over deleted events can no longer be checked; the prune
    // checkpoint replaces them.
    sqlx::query("DELETE FROM audit_checkpoints WHERE seq <= $1")
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    let anchor = Checkpoint::sign(key, KIND_PRUNE, seq, &hash, Utc::now().timestamp_micros());
    store::insert_checkpoint(&mut tx, &anchor).await?;
    tx.commit().await?;
    tracing::info!(
        pruned,
        through_seq = seq,
        "audit events past retention deleted"
    );
    Ok(PruneReport {
        pruned,
        anchor_seq: Some(seq),
    })
}

/// Prunes now and then once a day, keeping `retention` worth of events.
pub fn spawn_retention(db: Db, key: AuditKey, retention: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_EVERY);
        loop {
            ticks.tick().await;
            let Ok(keep) = chrono::Duration::from_std(retention) else {
                tracing::error!("audit retention is out of range; not pruning");
                return;
            };
            if let Err(e) = prune(&db, &key, Utc::now() - keep).await {
                tracing::error!(error = %e, "audit retention did not prune");
            }
        }
    })
}
