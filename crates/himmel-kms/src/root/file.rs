//! Root key in a file (mode 0600), generated on first start. The file may
//! live off the data disk (its path is configurable), so that a copy of the
//! data disk alone opens nothing.
//!
//! Format: one root key per line, `<version> <base64 key>`; the last line is
//! the current one. Rotation appends a line (write to a temporary file,
//! fsync, rename), so a crash leaves either the old or the new file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::{RootKeyProvider, WrappedKek};
use crate::{unwrap_key, wrap_key, Key, KmsError};

const PREFIX: &str = "file:";

pub struct KeyFile {
    path: PathBuf,
    /// (version, key), oldest first; the last is current.
    keys: RwLock<Vec<(u32, Key)>>,
}

impl KeyFile {
    /// Opens the key file at `path`, creating it with a fresh root key when
    /// it does not exist.
    pub fn open_or_create(path: &Path) -> Result<KeyFile, KmsError> {
        if !path.exists() {
            write_atomically(path, &[(1, Key::generate())])?;
        }
        let keys = read_keys(path)?;
        Ok(KeyFile {
            path: path.to_owned(),
            keys: RwLock::new(keys),
        })
    }

    fn key(&self, version: u32) -> Result<Key, KmsError> {
        let find = |keys: &[(u32, Key)]| {
            keys.iter()
                .find(|(v, _)| *v == version)
                .map(|(_, k)| k.clone())
        };
        if let Some(k) = find(&self.keys.read().expect("key file lock")) {
            return Ok(k);
        }
        // Another process (`himmel admin keys rotate-root`) may have added it.
        let fresh = read_keys(&self.path)?;
        let found = find(&fresh);
        *self.keys.write().expect("key file lock") = fresh;
        found.ok_or_else(|| {
            KmsError::RootUnavailable(format!("root key version {version} is not in the key file"))
        })
    }

    fn current(&self) -> (u32, Key) {
        let keys = self.keys.read().expect("key file lock");
        keys.last()
            .cloned()
            .expect("a key file holds at least one key")
    }
}

fn parse_ref(root_ref: &str) -> Option<u32> {
    root_ref.strip_prefix(PREFIX)?.parse().ok()
}

#[async_trait]
impl RootKeyProvider for KeyFile {
    fn describe(&self) -> String {
        format!("key file {}", self.path.display())
    }

    async fn wrap(
        &self,
        _project_id: &str,
        context: &[u8],
        kek: &Key,
    ) -> Result<WrappedKek, KmsError> {
        let (version, root) = self.current();
        Ok(WrappedKek {
            root_ref: format!("{PREFIX}{version}"),
            blob: wrap_key(&root, kek, context),
        })
    }

    async fn unwrap(
        &self,
        _project_id: &str,
        context: &[u8],
        wrapped: &WrappedKek,
    ) -> Result<Key, KmsError> {
        let version = parse_ref(&wrapped.root_ref).ok_or_else(|| {
            KmsError::RootUnavailable(format!(
                "a key wrapped by {} cannot be opened with the key file",
                wrapped.root_ref
            ))
        })?;
        Ok(unwrap_key(&self.key(version)?, &wrapped.blob, context)?)
    }

    async fn rotate(&self) -> Result<String, KmsError> {
        let mut keys = read_keys(&self.path)?;
        let next = keys.last().map_or(1, |(v, _)| v + 1);
        keys.push((next, Key::generate()));
        write_atomically(&self.path, &keys)?;
        *self.keys.write().expect("key file lock") = keys;
        Ok(format!("{PREFIX}{next}"))
    }

    fn is_current(&self, root_ref: &str) -> bool {
        parse_ref(root_ref) == Some(self.current().0)
    }
}

fn read_keys(path: &Path) -> Result<Vec<(u32, Key)>, KmsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KmsError::RootUnavailable(format!("reading {}: {e}", path.display())))?;
    let bad = |n: usize| {
        KmsError::RootUnavailable(format!(
            "{} line {}: not `<version> <key>`",
            path.display(),
            n + 1
        ))
    };
    let mut keys = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (version, encoded) = line.trim().split_once(' ').ok_or_else(|| bad(n))?;
        let version: u32 = version.parse().map_err(|_| bad(n))?;
        let mut raw = B64.decode(encoded).map_err(|_| bad(n))?;
        let key = Key::from_slice(&raw).ok_or_else(|| bad(n));
        zeroize::Zeroize::zeroize(&mut raw);
        keys.push((version, key?));
    }
    if keys.is_empty() {
        return Err(KmsError::RootUnavailable(format!(
            "{} holds no key",
            path.display()
        )));
    }
    Ok(keys)
}

fn write_atomically(path: &Path, keys: &[(u32, Key)]) -> Result<(), KmsError> {
    let io =
        |e: std::io::Error| KmsError::RootUnavailable(format!("writing {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut text = zeroize::Zeroizing::new(String::new());
    for (version, key) in keys {
        text.push_str(&format!("{version} {}\n", B64.encode(key.as_bytes())));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn keys_wrapped_before_a_rotation_still_open_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let file = KeyFile::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let kek = Key::generate();
        let old = file.wrap("p", b"ctx", &kek).await.unwrap();
        assert_eq!(old.root_ref, "file:1");
        assert_eq!(file.rotate().await.unwrap(), "file:2");
        assert!(!file.is_current(&old.root_ref));
        let new = file.wrap("p", b"ctx", &kek).await.unwrap();
        assert_eq!(new.root_ref, "file:2");

        // another process (a reopened file) sees both versions
        let reopened = KeyFile::open_or_create(&path).unwrap();
        for w in [&old, &new] {
            let k = reopened.unwrap("p", b"ctx", w).await.unwrap();
            assert_eq!(k.as_bytes(), kek.as_bytes());
        }
        assert!(reopened.unwrap("p", b"other", &new).await.is_err());
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        for text in ["", "1\n", "x abc\n", "1 !!!\n", "1 AAAA\n"] {
            std::fs::write(&path, text).unwrap();
            assert!(KeyFile::open_or_create(&path).is_err(), "{text:?}");
        }
    }
}
