//! Verification of the live store and of export files, and the export
//! format itself: JSON lines, a header with the public key first, then the
//! checkpoints, then the events in chain order.

use std::fmt;

use ed25519_dalek::VerifyingKey;
use himmel_db::Db;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::chain::{Checkpoint, StoredEvent, Summary, Verifier, VerifyError};
use crate::key::{key_id, parse_public_key_hex};
use crate::store;
use crate::AuditKey;

pub const EXPORT_FORMAT: &str = "himmel-audit-export/1";

/// Events read from the store per query.
const PAGE: i64 = 5000;

/// Verification did not pass: the chain is broken, or it could not be read.
#[derive(Debug)]
pub enum VerifyFailure {
    Broken(VerifyError),
    Unreadable(anyhow::Error),
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyFailure::Broken(e) => write!(f, "audit chain broken: {e}"),
            VerifyFailure::Unreadable(e) => write!(f, "audit trail could not be read: {e:#}"),
        }
    }
}

impl std::error::Error for VerifyFailure {}

impl From<VerifyError> for VerifyFailure {
    fn from(e: VerifyError) -> Self {
        VerifyFailure::Broken(e)
    }
}

impl From<sqlx::Error> for VerifyFailure {
    fn from(e: sqlx::Error) -> Self {
        VerifyFailure::Unreadable(e.into())
    }
}

/// Recomputes the whole chain in the store and checks every checkpoint
/// against `key`.
pub async fn verify_store(db: &Db, key: &VerifyingKey) -> Result<Summary, VerifyFailure> {
    let mut tx = store::snapshot(db).await?;
    let mut verifier = Verifier::new(*key, store::checkpoints(&mut tx).await?);
    let mut page = store::events_after(&mut tx, i64::MIN, PAGE).await?;
    loop {
        // Check this page on other threads while the next one is read.
        let more = (page.len() as i64 == PAGE)
            .then(|| page.last().map(|e| e.seq))
            .flatten();
        let check = tokio::task::spawn_blocking(move || {
            let result = verifier.events(&page);
            (verifier, result)
        });
        let next = async {
            match more {
                Some(after) => store::events_after(&mut tx, after, PAGE).await.map(Some),
                None => Ok(None),
            }
        };
        let (checked, next) = tokio::join!(check, next);
        let (v, result) = checked.map_err(|e| VerifyFailure::Unreadable(e.into()))?;
        verifier = v;
        result?;
        match next? {
            Some(p) => page = p,
            None => break,
        }
    }
    tx.rollback().await?;
    Ok(verifier.finish()?)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        public_key: String,
        key_id: String,
        exported_at: String,
    },
    Checkpoint(Checkpoint),
    Event {
        seq: i64,
        id: String,
        prev_hash: String,
        hash: String,
        body: String,
    },
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub events: u64,
    pub checkpoints: usize,
}

/// Writes the trail as JSON lines: header (with the public key),
/// checkpoints, events. Read from one snapshot, so it is self-consistent
/// while the region keeps writing.
pub async fn export<W: AsyncWrite + Unpin>(
    db: &Db,
    key: &AuditKey,
    out: W,
) -> anyhow::Result<ExportSummary> {
    let mut out = tokio::io::BufWriter::new(out);
    let mut tx = store::snapshot(db).await?;
    let header = Line::Header {
        format: EXPORT_FORMAT.into(),
        public_key: key.public_key_hex(),
        key_id: key.key_id(),
        exported_at: himmel_core::time::iso_micro(chrono::Utc::now()),
    };
    write_line(&mut out, &header).await?;
    let checkpoints = store::checkpoints(&mut tx).await?;
    let n_checkpoints = checkpoints.len();
    for cp in checkpoints {
        write_line(&mut out, &Line::Checkpoint(cp)).await?;
    }
    let mut events = 0u64;
    let mut after = i64::MIN;
    loop {
        let page = store::events_after(&mut tx, after, PAGE).await?;
        for ev in &page {
            let line = Line::Event {
                seq: ev.seq,
                id: ev.id.clone(),
                prev_hash: ev.prev_hash.clone(),
                hash: ev.hash.clone(),
                body: ev.body.clone(),
            };
            write_line(&mut out, &line).await?;
            events += 1;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.seq,
            _ => break,
        }
    }
    tx.rollback().await?;
    out.flush().await?;
    Ok(ExportSummary {
        events,
        checkpoints: n_checkpoints,
    })
}

async fn write_line<W: AsyncWrite + Unpin>(out: &mut W, line: &Line) -> anyhow::Result<()> {
    let mut s = serde_json::to_string(line)?;
    s.push('\n');
    out.write_all(s.as_bytes()).await?;
    Ok(())
}

/// Verifies an export without the store. `trusted` is the region's public
/// key when the verifier has it; without it the key in the export is used,
/// which proves integrity only against someone who lacks the signing key
/// (the summary's key_id says which key it was).
pub async fn verify_export<R: AsyncBufRead + Unpin>(
    reader: R,
    trusted: Option<&VerifyingKey>,
) -> Result<Summary, VerifyFailure> {
    let unreadable =
        |n: usize, msg: String| VerifyFailure::Unreadable(anyhow::anyhow!("line {n}: {msg}"));
    let mut lines = reader.lines();
    let mut n = 0usize;
    let mut next = || {
        n += 1;
        n
    };
    let first = lines
        .next_line()
        .await
        .map_err(|e| VerifyFailure::Unreadable(e.into()))?;
    let line_no = next();
    let key = match first.as_deref().map(serde_json::from_str::<Line>) {
        Some(Ok(Line::Header {
            format, public_key, ..
        })) if format == EXPORT_FORMAT => {
            let embedded = parse_public_key_hex(&public_key)
                .map_err(|e| unreadable(line_no, e.to_string()))?;
            match trusted {
                Some(t) if key_id(t) != key_id(&embedded) => {
                    return Err(unreadable(
                        line_no,
                        format!(
                            "export carries key {} but the trusted audit key is {}",
                            key_id(&embedded),
                            key_id(t)
                        ),
                    ))
                }
                Some(t) => *t,
                None => embedded,
            }
        }
        _ => return Err(unreadable(line_no, format!("not a {EXPORT_FORMAT} header"))),
    };
    let mut checkpoints = Vec::new();
    let mut verifier: Option<Verifier> = None;
    let mut batch = Vec::new();
    while let Some(text) = lines
        .next_line()
        .await
        .map_err(|e| VerifyFailure::Unreadable(e.into()))?
    {
        let line_no = next();
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(&text).map_err(|e| unreadable(line_no, e.to_string()))? {
            Line::Header { .. } => return Err(unreadable(line_no, "second header".into())),
            Line::Checkpoint(cp) if verifier.is_none() && batch.is_empty() => checkpoints.push(cp),
            Line::Checkpoint(_) => {
                return Err(unreadable(
                    line_no,
                    "checkpoint after the first event".into(),
                ))
            }
            Line::Event {
                seq,
                id,
                prev_hash,
                hash,
                body,
            } => {
                batch.push(StoredEvent {
                    seq,
                    id,
                    prev_hash,
                    hash,
                    body,
                    columns: None,
                });
                if batch.len() >= PAGE as usize {
                    let v = verifier.get_or_insert_with(|| {
                        Verifier::new(key, std::mem::take(&mut checkpoints))
                    });
                    v.events(&batch)?;
                    batch.clear();
                }
            }
        }
    }
    let mut verifier = verifier.unwrap_or_else(|| Verifier::new(key, checkpoints));
    verifier.events(&batch)?;
    Ok(verifier.finish()?)
}
