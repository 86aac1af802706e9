//! Queries on audit_events and audit_checkpoints. Portable SQL only (see
//! himmel-db): `$n` placeholders, BIGINT integers, TEXT everything else.

use himmel_db::{AnyRow, Db, Engine, Row};
use sqlx::Any;

use crate::cadf::{Event, Indexed};
use crate::chain::{Checkpoint, StoredEvent, GENESIS, KIND_PRUNE};

/// An event with its place in the chain, ready to insert.
pub struct Chained<'a> {
    pub seq: i64,
    pub prev_hash: &'a str,
    pub hash: &'a str,
    pub event: &'a Event,
}

/// Rows per multi-row INSERT. Small on purpose: SQLite looks a `$n`
/// parameter up by a linear scan of the statement's parameter names, so
/// binding costs grow with the square of the parameters per statement.
const INSERT_CHUNK: usize = 16;

pub async fn insert_events(
    conn: &mut sqlx::AnyConnection,
    events: &[Chained<'_>],
) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO audit_events (seq, id, at, project_id, domain_id, initiator_id, action, \
             outcome, body, prev_hash, hash) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 11;
            sql.push('(');
            for c in 1..=11 {
                if c > 1 {
                    sql.push(',');
                }
                sql.push('$');
                sql.push_str(&(b + c).to_string());
            }
            sql.push(')');
        }
        let mut q = sqlx::query::<Any>(&sql);
        for e in chunk {
            let ix = &e.event.indexed;
            q = q
                .bind(e.seq)
                .bind(ix.id.as_str())
                .bind(ix.at_us)
                .bind(ix.project_id.as_deref())
                .bind(ix.domain_id.as_deref())
                .bind(ix.initiator_id.as_deref())
                .bind(ix.action.as_str())
                .bind(ix.outcome.as_str())
                .bind(e.event.body.as_str())
                .bind(e.prev_hash)
                .bind(e.hash);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores a checkpoint; a checkpoint already at that seq wins (a prune
/// anchor and a shutdown checkpoint may name the same head).
pub async fn insert_checkpoint(
    conn: &mut sqlx::AnyConnection,
    cp: &Checkpoint,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, kind, hash, at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING",
    )
    .bind(cp.seq)
    .bind(cp.kind.as_str())
    .bind(cp.hash.as_str())
    .bind(cp.at)
    .bind(cp.key_id.as_str())
    .bind(cp.signature.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// The (seq, hash) new events continue from: the last event, else the
/// last prune anchor, else the genesis.
pub async fn chain_head(db: &Db) -> Result<(i64, String), sqlx::Error> {
    let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(db.pool())
        .await?;
    if let Some(row) = last {
        return Ok((row.try_get("seq")?, row.try_get("hash")?));
    }
    let anchor = sqlx::query(
        "SELECT seq, hash FROM audit_checkpoints WHERE kind = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(KIND_PRUNE)
    .fetch_optional(db.pool())
    .await?;
    match anchor {
        Some(row) => Ok((row.try_get("seq")?, row.try_get("hash")?)),
        None => Ok((0, GENESIS.to_string())),
    }
}

/// Seq of the last checkpoint (any kind), 0 when there is none.
pub async fn last_checkpoint_seq(db: &Db) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT MAX(seq) AS seq FROM audit_checkpoints")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0))
}

pub async fn checkpoints(conn: &mut sqlx::AnyConnection) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, kind, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                seq: r.try_get("seq")?,
                kind: r.try_get("kind")?,
                hash: r.try_get("hash")?,
                at: r.try_get("at")?,
                key_id: r.try_get("key_id")?,
                signature: r.try_get("signature")?,
            })
        })
        .collect()
}

/// Up to `limit` events with seq > `after`, in chain order, with columns.
pub async fn events_after(
    conn: &mut sqlx::AnyConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, id, at, project_id, domain_id, initiator_id, action, outcome, body, \
         prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(stored_event).collect()
}

fn stored_event(r: &AnyRow) -> Result<StoredEvent, sqlx::Error> {
    let id: String = r.try_get("id")?;
    Ok(StoredEvent {
        seq: r.try_get("seq")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
        body: r.try_get("body")?,
        columns: Some(Indexed {
            id: id.clone(),
            at_us: r.try_get("at")?,
            project_id: r.try_get("project_id")?,
            domain_id: r.try_get("domain_id")?,
            initiator_id: r.try_get("initiator_id")?,
            action: r.try_get("action")?,
            outcome: r.try_get("outcome")?,
        }),
        id,
    })
}

/// A read transaction that sees one consistent snapshot of the trail, so
/// verify and export never mix states of a concurrent prune.
pub async fn snapshot(db: &Db) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    if db.engine() == Engine::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}
