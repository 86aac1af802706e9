//! The hash chain and its verification, independent of where the events
//! are read from (the live store or an export file).
//!
//! `hash = SHA-256(prev_hash || body)` in lowercase hex, where `body` is the
//! canonical event JSON as stored and the first event links to [`GENESIS`].
//! Signed checkpoints vouch for `(seq, hash)` of a chain head; a `prune`
//! checkpoint anchors the first event left after retention removed the
//! ones before it.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cadf::{indexed_from_body, Indexed};
use crate::key::{key_id, signature_valid};

/// The `prev_hash` of the very first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hash of an event that follows `prev_hash`.
pub fn link_hash(prev_hash: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}

/// Why a checkpoint was written.
pub const KIND_CHECKPOINT: &str = "checkpoint";
pub const KIND_PRUNE: &str = "prune";

/// A signed statement that the chain had `hash` at `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub kind: String,
    pub hash: String,
    /// Unix microseconds when it was signed.
    pub at: i64,
    pub key_id: String,
    pub signature: String,
}

impl Checkpoint {
    pub fn sign(key: &crate::AuditKey, kind: &str, seq: i64, hash: &str, at: i64) -> Checkpoint {
        let message = signed_message(kind, seq, hash, at);
        Checkpoint {
            seq,
            kind: kind.to_string(),
            hash: hash.to_string(),
            at,
            key_id: key.key_id(),
            signature: key.sign(&message),
        }
    }

    fn signature_ok(&self, key: &VerifyingKey) -> bool {
        signature_valid(
            key,
            &signed_message(&self.kind, self.seq, &self.hash, self.at),
            &self.signature,
        )
    }
}

/// The bytes a checkpoint's signature covers.
fn signed_message(kind: &str, seq: i64, hash: &str, at: i64) -> Vec<u8> {
    format!("himmel-audit-checkpoint/1\n{kind}\n{seq}\n{hash}\n{at}").into_bytes()
}

/// One event as stored: its chain fields, the hashed body, and (from the
/// live store) the indexed columns, which must agree with the body.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub prev_hash: String,
    pub hash: String,
    pub body: String,
    pub columns: Option<Indexed>,
}

/// What verification found wrong, naming the first broken place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// The event (seq, id) at which the chain breaks, when it is an event.
    pub event: Option<(i64, String)>,
    /// The checkpoint involved, if any.
    pub checkpoint_seq: Option<i64>,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The stored hash is not SHA-256(prev_hash || body): the body or the
    /// hash was changed.
    HashMismatch { stored: String, computed: String },
    /// prev_hash does not name the previous event's hash (an event was
    /// removed, inserted or rewritten before this one).
    BrokenLink { expected: String, found: String },
    /// Sequence numbers skip (events are missing).
    SeqGap { expected: i64 },
    /// The chain does not start at the genesis and no signed prune record
    /// explains the events missing before it.
    Unanchored,
    /// The body is not a readable CADF event.
    MalformedBody,
    /// An indexed column was changed without the body.
    ColumnMismatch { column: &'static str },
    /// A checkpoint's signature does not verify.
    BadSignature,
    /// A checkpoint was signed by a key other than the trusted one.
    UnknownKey { key_id: String },
    /// A checkpoint vouches for a different hash at its seq.
    CheckpointMismatch { signed: String, actual: String },
    /// A checkpoint names a seq past the last event: events were removed
    /// from the end.
    CheckpointBeyondHead { head_seq: i64 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::HashMismatch { stored, computed } => {
                write!(f, "hash mismatch (stored {stored}, computed {computed}): the event was altered")
            }
            Problem::BrokenLink { expected, found } => write!(
                f,
                "broken link: prev_hash is {found} but the previous event's hash is {expected}"
            ),
            Problem::SeqGap { expected } => write!(f, "events missing: expected seq {expected}"),
            Problem::Unanchored => write!(
                f,
                "events before this one are missing and no signed prune record accounts for them"
            ),
            Problem::MalformedBody => write!(f, "body is not a valid CADF event"),
            Problem::ColumnMismatch { column } => {
                write!(f, "column {column} disagrees with the hashed event body")
            }
            Problem::BadSignature => write!(f, "bad checkpoint signature"),
            Problem::UnknownKey { key_id } => {
                write!(f, "checkpoint signed by key {key_id}, which is not the trusted audit key")
            }
            Problem::CheckpointMismatch { signed, actual } => {
                write!(f, "checkpoint vouches for hash {signed} but the chain has {actual}")
            }
            Problem::CheckpointBeyondHead { head_seq } => write!(
                f,
                "checkpoint is past the last event (seq {head_seq}): events were removed from the end"
            ),
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((seq, id)) = &self.event {
            write!(f, "event seq {seq} (id {id}): ")?;
        }
        if let Some(cp) = self.checkpoint_seq {
            write!(f, "checkpoint at seq {cp}: ")?;
        }
        write!(f, "{}", self.problem)
    }
}

impl std::error::Error for VerifyError {}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub events: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub head_hash: String,
    pub checkpoints: usize,
    pub last_checkpoint_seq: Option<i64>,
    /// Events after the last checkpoint: protected by the chain only until
    /// the next checkpoint signs them.
    pub unsigned_tail: u64,
    pub key_id: String,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) => {
                write!(f, "audit chain OK: {} events (seq {a}..{b})", self.events)?
            }
            _ => write!(f, "audit chain OK: no events")?,
        }
        write!(
            f,
            ", head {}, {} signed checkpoints (key {})",
            self.head_hash, self.checkpoints, self.key_id
        )?;
        if let Some(cp) = self.last_checkpoint_seq {
            write!(f, ", last at seq {cp}")?;
        }
        if self.unsigned_tail > 0 {
            write!(f, ", {} events after it not yet signed", self.unsigned_tail)?;
        }
        Ok(())
    }
}

/// Checks events fed in seq order against each other and the checkpoints.
pub struct Verifier {
    key: VerifyingKey,
    key_id: String,
    checkpoints: BTreeMap<i64, Checkpoint>,
    /// (seq, hash) the next event must follow; None before the first.
    head: Option<(i64, String)>,
    first_seq: Option<i64>,
    events: u64,
}

impl Verifier {
    pub fn new(key: VerifyingKey, checkpoints: impl IntoIterator<Item = Checkpoint>) -> Verifier {
        Verifier {
            key_id: key_id(&key),
            key,
            checkpoints: checkpoints.into_iter().map(|c| (c.seq, c)).collect(),
            head: None,
            first_seq: None,
            events: 0,
        }
    }

    fn check_signature(&self, cp: &Checkpoint) -> Result<(), Problem> {
        if cp.key_id != self.key_id {
            return Err(Problem::UnknownKey {
                key_id: cp.key_id.clone(),
            });
        }
        if !cp.signature_ok(&self.key) {
            return Err(Problem::BadSignature);
        }
        Ok(())
    }

    /// Checks the checkpoints below `seq` (kept from before a prune) and
    /// returns the (seq, hash) the chain must continue from.
    fn start(&self, first_seq: i64) -> Result<(i64, String), (Option<i64>, Problem)> {
        for cp in self.checkpoints.range(..first_seq).map(|(_, c)| c) {
            self.check_signature(cp).map_err(|p| (Some(cp.seq), p))?;
        }
        if first_seq == 1 {
            return Ok((0, GENESIS.to_string()));
        }
        match self.checkpoints.get(&(first_seq - 1)) {
            Some(anchor) if anchor.kind == KIND_PRUNE => Ok((anchor.seq, anchor.hash.clone())),
            _ => Err((None, Problem::Unanchored)),
        }
    }

    /// Checks the next event.
    pub fn event(&mut self, ev: &StoredEvent) -> Result<(), VerifyError> {
        self.events(std::slice::from_ref(ev))
    }

    /// Checks the next events, in order. What each event says about itself
    /// (its hash, its body, its columns) is checked on all cores; the links
    /// between events and the checkpoints are then walked in order, so the
    /// error names the first broken event either way.
    pub fn events(&mut self, events: &[StoredEvent]) -> Result<(), VerifyError> {
        let intrinsic = check_all_intrinsic(events);
        for (ev, problem) in events.iter().zip(intrinsic) {
            self.link(ev, problem)?;
        }
        Ok(())
    }

    fn link(&mut self, ev: &StoredEvent, intrinsic: Option<Problem>) -> Result<(), VerifyError> {
        let fail = |checkpoint_seq, problem| VerifyError {
            event: Some((ev.seq, ev.id.clone())),
            checkpoint_seq,
            problem,
        };
        let (prev_seq, prev_hash) = match self.head.take() {
            Some(h) => h,
            None => {
                self.first_seq = Some(ev.seq);
                self.start(ev.seq).map_err(|(cp, p)| fail(cp, p))?
            }
        };
        if ev.seq != prev_seq + 1 {
            return Err(fail(
                None,
                Problem::SeqGap {
                    expected: prev_seq + 1,
                },
            ));
        }
        if ev.prev_hash != prev_hash {
            return Err(fail(
                None,
                Problem::BrokenLink {
                    expected: prev_hash,
                    found: ev.prev_hash.clone(),
                },
            ));
        }
        if let Some(problem) = intrinsic {
            return Err(fail(None, problem));
        }
        if let Some(cp) = self.checkpoints.get(&ev.seq) {
            self.check_signature(cp)
                .map_err(|p| fail(Some(cp.seq), p))?;
            if cp.hash != ev.hash {
                return Err(fail(
                    Some(cp.seq),
                    Problem::CheckpointMismatch {
                        signed: cp.hash.clone(),
                        actual: ev.hash.clone(),
                    },
                ));
            }
        }
        self.events += 1;
        self.head = Some((ev.seq, ev.hash.clone()));
        Ok(())
    }

    /// Finishes after the last event: checkpoints past it mean the end of
    /// the chain was cut off.
    pub fn finish(self) -> Result<Summary, VerifyError> {
        let (head_seq, head_hash) = match &self.head {
            Some(h) => h.clone(),
            None => {
                // No events: the chain is whatever the last prune left.
                let anchor = self
                    .checkpoints
                    .values()
                    .rev()
                    .find(|c| c.kind == KIND_PRUNE);
                let start = anchor.map_or((0, GENESIS.to_string()), |a| (a.seq, a.hash.clone()));
                for cp in self.checkpoints.range(..=start.0).map(|(_, c)| c) {
                    self.check_signature(cp).map_err(|problem| VerifyError {
                        event: None,
                        checkpoint_seq: Some(cp.seq),
                        problem,
                    })?;
                }
                start
            }
        };
        if let Some((&seq, _)) = self.checkpoints.range(head_seq + 1..).next() {
            return Err(VerifyError {
                event: None,
                checkpoint_seq: Some(seq),
                problem: Problem::CheckpointBeyondHead { head_seq },
            });
        }
        let last_checkpoint_seq = self.checkpoints.keys().next_back().copied();
        Ok(Summary {
            events: self.events,
            first_seq: self.first_seq,
            last_seq: self.head.as_ref().map(|h| h.0),
            head_hash,
            checkpoints: self.checkpoints.len(),
            last_checkpoint_seq,
            unsigned_tail: (head_seq - last_checkpoint_seq.unwrap_or(0)).max(0) as u64,
            key_id: self.key_id,
        })
    }
}

/// What is wrong with each event on its own, computed in parallel.
fn check_all_intrinsic(events: &[StoredEvent]) -> Vec<Option<Problem>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || events.len() < 256 {
        return events.iter().map(check_intrinsic).collect();
    }
    let chunk = events.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = events
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(check_intrinsic).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The stored hash must be the hash of the stored body, and the indexed
/// columns must say what the body says.
fn check_intrinsic(ev: &StoredEvent) -> Option<Problem> {
    let computed = link_hash(&ev.prev_hash, &ev.body);
    if computed != ev.hash {
        return Some(Problem::HashMismatch {
            stored: ev.hash.clone(),
            computed,
        });
    }
    let Some(parsed) = indexed_from_body(&ev.body) else {
        return Some(Problem::MalformedBody);
    };
    if parsed.id != ev.id {
        return Some(Problem::ColumnMismatch { column: "id" });
    }
    let column = first_difference(ev.columns.as_ref()?, &parsed)?;
    Some(Problem::ColumnMismatch { column })
}

fn first_difference(a: &Indexed, b: &Indexed) -> Option<&'static str> {
    if a.id != b.id {
        Some("id")
    } else if a.at_us != b.at_us {
        Some("at")
    } else if a.project_id != b.project_id {
        Some("project_id")
    } else if a.domain_id != b.domain_id {
        Some("domain_id")
    } else if a.initiator_id != b.initiator_id {
        Some("initiator_id")
    } else if a.action != b.action {
        Some("action")
    } else if a.outcome != b.outcome {
        Some("outcome")
    } else {
        None
    }
}
