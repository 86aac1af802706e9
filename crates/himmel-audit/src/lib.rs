//! The tamper-evident audit trail (DESIGN §Audit).
//!
//! Every API request becomes a CADF event ([`cadf`]); events are appended to
//! a SHA-256 hash chain by one group-committing writer ([`AuditLog`]);
//! checkpoints over the chain head are signed with the region's Ed25519
//! audit key ([`AuditKey`]); [`verify_store`] and [`verify_export`] recompute
//! the chain and name the first broken link.

pub mod admin;
mod api;
pub mod cadf;
pub mod chain;
pub mod key;
mod log;
pub mod policy;
pub mod retention;
mod store;
pub mod verify;

pub use api::routes;
pub use chain::{Checkpoint, Problem, Summary, VerifyError};
pub use key::{AuditKey, KEY_FILE_NAME};
pub use log::{AuditConfig, AuditLog};
pub use retention::{prune, spawn_retention, PruneReport, DEFAULT_RETENTION};
pub use verify::{export, verify_export, verify_store, ExportSummary, VerifyFailure};
