//! The key holder's own audit log: one JSON object a line, appended and
//! fsynced before the request it records is answered. It names operations,
//! projects, clients and outcomes, never key material.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::KeyHolderError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    /// wrap, unwrap, rotate, revoke, unrevoke.
    pub operation: String,
    pub project: String,
    /// The subject of the client certificate (or the local operator).
    pub client: String,
    /// `ok`, `revoked`, or why the request failed.
    pub outcome: String,
}

impl LogEntry {
    pub fn now(operation: &str, project: &str, client: &str, outcome: &str) -> LogEntry {
        LogEntry {
            time: himmel_core::time::iso_micro(himmel_core::time::now()),
            operation: operation.to_owned(),
            project: project.to_owned(),
            client: client.to_owned(),
            outcome: outcome.to_owned(),
        }
    }
}

pub struct AuditLog {
    path: PathBuf,
    /// One writer at a time within the process; across processes each
    /// entry is a single `O_APPEND` write.
    writer: Mutex<()>,
}

impl AuditLog {
    pub fn new(path: &Path) -> AuditLog {
        AuditLog {
            path: path.to_owned(),
            writer: Mutex::new(()),
        }
    }

    /// Appends `entry` and returns once it is on disk.
    pub fn append(&self, entry: &LogEntry) -> Result<(), KeyHolderError> {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| KeyHolderError::Invalid(format!("encoding a log entry: {e}")))?;
        line.push(b'\n');
        let _one_writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let io = KeyHolderError::io(&self.path);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(KeyHolderError::io(&self.path))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(io)
    }

    /// Every entry, oldest first.
    pub fn read(&self) -> Result<Vec<LogEntry>, KeyHolderError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyHolderError::io(&self.path)(e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| {
                serde_json::from_str(l).map_err(|e| {
                    KeyHolderError::Invalid(format!(
                        "{} line {}: not a log entry ({e})",
                        self.path.display(),
                        n + 1
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn entries_read_back_in_order_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::new(&path);
        assert!(log.read().unwrap().is_empty());
        let a = LogEntry::now("unwrap", "p1", "CN=region", "ok");
        let b = LogEntry::now("revoke", "p1", "local operator", "ok");
        log.append(&a).unwrap();
        log.append(&b).unwrap();
        assert_eq!(log.read().unwrap(), vec![a, b]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        std::fs::write(&path, "{\"time\": 1}\n").unwrap();
        let err = log.read().unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
