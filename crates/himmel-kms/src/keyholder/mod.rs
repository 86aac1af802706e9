//! The external key holder (DESIGN.md §Keys and encryption): a separate
//! process, run by the customer or a data trustee on its own machine, that
//! holds the root key of a region's project keys. The region asks it over
//! mutually authenticated TLS to wrap and unwrap project KEKs; the key
//! holder logs every such request in its own append-only log and can revoke
//! a project, after which the region can no longer open that project's data
//! once its key cache expires.
//!
//! Everything the key holder keeps lives in one directory ([`Layout`]).
//! Nothing unwrapped is ever written there or logged.

pub mod api;
mod error;
pub mod init;
pub mod log;
pub mod revocations;
pub mod server;

use std::path::{Path, PathBuf};

pub use error::KeyHolderError;
pub use init::init;
pub use log::{AuditLog, LogEntry};
pub use server::serve;

/// Where the key holder's files are in its directory.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key holder's root key (the key file format of `root::file`).
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root.key")
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Kept so that the operator can issue certificates later; mode 0600.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The files to hand to the region: its client certificate and key and
    /// the CA that the key holder's server certificate chains to.
    pub fn region_dir(&self) -> PathBuf {
        self.dir.join("region")
    }

    pub fn region_cert(&self) -> PathBuf {
        self.region_dir().join("client.pem")
    }

    pub fn region_key(&self) -> PathBuf {
        self.region_dir().join("client.key")
    }

    pub fn region_ca(&self) -> PathBuf {
        self.region_dir().join("ca.pem")
    }

    pub fn revocations(&self) -> PathBuf {
        self.dir.join("revocations")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }
}

/// Who the key holder's own operator is in its log (revoke and unrevoke
/// are run on the key holder's machine, not over the API).
pub const LOCAL_OPERATOR: &str = "local operator";

/// Revokes (`revoked = true`) or restores the region's access to a
/// project's keys. A running key holder applies it to the next request.
pub fn set_revoked(dir: &Path, project_id: &str, revoked: bool) -> Result<(), KeyHolderError> {
    let layout = Layout::new(dir);
    if !layout.root_key().exists() {
        return Err(KeyHolderError::Invalid(format!(
            "{} is not a key holder directory (run `himmel keyholder init` first)",
            dir.display()
        )));
    }
    revocations::record(&layout.revocations(), project_id, revoked)?;
    AuditLog::new(&layout.audit_log()).append(&LogEntry::now(
        if revoked { "revoke" } else { "unrevoke" },
        project_id,
        LOCAL_OPERATOR,
        "ok",
    ))
}
