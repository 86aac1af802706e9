//! Which projects the key holder refuses to wrap or unwrap for. Stored as
//! an append-only list of decisions (`revoke <project>` / `unrevoke
//! <project>`, the last one for a project wins), so that two operators
//! revoking at once cannot lose each other's decision. A running server
//! reads it on every request: a revocation bites at the next request.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::api::valid_project_id;
use super::KeyHolderError;

/// The projects revoked now. A damaged file is an error: the server then
/// refuses everything rather than guess.
pub fn revoked(path: &Path) -> Result<HashSet<String>, KeyHolderError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(KeyHolderError::io(path)(e)),
    };
    let mut revoked = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let bad = || {
            KeyHolderError::Invalid(format!(
                "{} line {}: not `revoke <project>` or `unrevoke <project>`",
                path.display(),
                n + 1
            ))
        };
        let (decision, project) = line.split_once(' ').ok_or_else(bad)?;
        if !valid_project_id(project) {
            return Err(bad());
        }
        match decision {
            "revoke" => revoked.insert(project.to_owned()),
            "unrevoke" => revoked.remove(project),
            _ => return Err(bad()),
        };
    }
    Ok(revoked)
}

pub fn is_revoked(path: &Path, project_id: &str) -> Result<bool, KeyHolderError> {
    Ok(revoked(path)?.contains(project_id))
}

/// Records a decision durably (fsync of the file, and of the directory
/// when the file is new).
pub fn record(path: &Path, project_id: &str, revoke: bool) -> Result<(), KeyHolderError> {
    if !valid_project_id(project_id) {
        return Err(KeyHolderError::Invalid(format!(
            "{project_id:?} is not a project id"
        )));
    }
    let created = !path.exists();
    let line = format!(
        "{} {project_id}\n",
        if revoke { "revoke" } else { "unrevoke" }
    );
    let io = KeyHolderError::io(path);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(KeyHolderError::io(path))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(io)?;
    if created {
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(KeyHolderError::io(dir))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_decision_for_a_project_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations");
        assert!(!is_revoked(&path, "p1").unwrap());
        record(&path, "p1", true).unwrap();
        record(&path, "p2", true).unwrap();
        assert!(is_revoked(&path, "p1").unwrap());
        record(&path, "p1", false).unwrap();
        assert!(!is_revoked(&path, "p1").unwrap());
        assert!(is_revoked(&path, "p2").unwrap());
        assert!(record(&path, "p 3\nrevoke x", true).is_err());
        assert!(record(&path, "", true).is_err());
    }

    #[test]
    fn a_damaged_list_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations");
        for text in ["revoke\n", "forget p1\n", "revoke p/1\n"] {
            std::fs::write(&path, text).unwrap();
            assert!(revoked(&path).is_err(), "{text:?}");
        }
    }
}
