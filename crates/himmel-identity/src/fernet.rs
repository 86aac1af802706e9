//! Fernet tokens in Keystone's format.
//!
//! Key repository: a directory of files named by integers, each holding one
//! url-safe base64 Fernet key. `0` is the staged key (ready to become
//! primary, already accepted so every server knows it before it is used),
//! the highest number is the primary (encrypts), the rest are secondary
//! (decrypt only). Rotation promotes the staged key, stages a new one and
//! drops the oldest secondaries beyond `max_active_keys`.
//!
//! Payload: a MessagePack array, as Keystone's token formatters write it:
//! `[version, user_id, methods, scope…, expires_at, audit_ids, …]` where ids
//! that are UUID hex travel as `[true, 16 bytes]` and others as
//! `[false, "text"]`, methods are a bitmask, `expires_at` is a float of Unix
//! seconds and audit ids are the decoded 16 bytes of each id. The Fernet
//! token is sent with its `=` padding stripped.
//!
//! One addition: the issue time in microseconds as a trailing element.
//! Fernet's own timestamp has whole seconds, which makes a revocation and a
//! token issued in the same second ambiguous; with the precise time a token
//! issued just after a password change is valid and one issued just before
//! is not.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rmpv::Value;

/// Method bitmask, in Keystone's default `[auth] methods` order.
const METHODS: &[&str] = &[
    "external",
    "password",
    "token",
    "oauth1",
    "mapped",
    "application_credential",
    "totp",
];

pub fn methods_to_int(methods: &[String]) -> u64 {
    methods
        .iter()
        .filter_map(|m| METHODS.iter().position(|k| k == m))
        .fold(0, |acc, i| acc | (1 << i))
}

pub fn int_to_methods(bits: u64) -> Vec<String> {
    METHODS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, m)| m.to_string())
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub enum PayloadScope {
    Unscoped,
    Domain(String),
    Project(String),
    System,
    ApplicationCredential {
        project_id: String,
        app_cred_id: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub user_id: String,
    pub methods: Vec<String>,
    pub scope: PayloadScope,
    /// Unix seconds.
    pub expires_at: f64,
    pub audit_ids: Vec<String>,
    /// Unix microseconds.
    pub issued_at_us: i64,
}

fn id_value(id: &str) -> Value {
    match uuid::Uuid::try_parse(id) {
        Ok(u) if id.len() == 32 => {
            Value::Array(vec![true.into(), Value::Binary(u.as_bytes().to_vec())])
        }
        _ => Value::Array(vec![false.into(), Value::String(id.into())]),
    }
}

fn id_from(v: &Value) -> Option<String> {
    let arr = v.as_array()?;
    let is_uuid = arr.first()?.as_bool()?;
    let body = arr.get(1)?;
    if is_uuid {
        let bytes = body.as_slice()?;
        Some(uuid::Uuid::from_slice(bytes).ok()?.simple().to_string())
    } else {
        match body {
            Value::String(s) => s.as_str().map(str::to_owned),
            Value::Binary(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    }
}

fn audit_ids_value(ids: &[String]) -> Value {
    Value::Array(
        ids.iter()
            .map(|a| {
                Value::Binary(
                    URL_SAFE_NO_PAD
                        .decode(a)
                        .unwrap_or_else(|_| a.as_bytes().to_vec()),
                )
            })
            .collect(),
    )
}

fn audit_ids_from(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|a| a.as_slice().map(|b| URL_SAFE_NO_PAD.encode(b)))
        .collect()
}

impl Payload {
    pub fn encode(&self) -> Vec<u8> {
        let user = id_value(&self.user_id);
        let methods = Value::from(methods_to_int(&self.methods));
        let exp = Value::F64(self.expires_at);
        let audit = audit_ids_value(&self.audit_ids);
        let mut arr = match &self.scope {
            PayloadScope::Unscoped => vec![0.into(), user, methods, exp, audit],
            PayloadScope::Domain(d) => vec![1.into(), user, methods, id_value(d), exp, audit],
            PayloadScope::Project(p) => vec![2.into(), user, methods, id_value(p), exp, audit],
            PayloadScope::System => vec![8.into(), user, methods, Value::from("all"), exp, audit],
            PayloadScope::ApplicationCredential {
                project_id,
                app_cred_id,
            } => vec![
                9.into(),
                user,
                methods,
                id_value(project_id),
                exp,
                audit,
                id_value(app_cred_id),
            ],
        };
        arr.push(Value::from(self.issued_at_us));
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &Value::Array(arr))
            .expect("writing to a Vec cannot fail");
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Payload> {
        let v = rmpv::decode::read_value(&mut &bytes[..]).ok()?;
        let arr = v.as_array()?;
        let version = arr.first()?.as_u64()?;
        let user_id = id_from(arr.get(1)?)?;
        let methods = int_to_methods(arr.get(2)?.as_u64()?);
        let (scope, rest, trailer) = match version {
            0 => (PayloadScope::Unscoped, 3, 5),
            1 => (PayloadScope::Domain(id_from(arr.get(3)?)?), 4, 6),
            2 => (PayloadScope::Project(id_from(arr.get(3)?)?), 4, 6),
            8 => (PayloadScope::System, 4, 6),
            9 => (
                PayloadScope::ApplicationCredential {
                    project_id: id_from(arr.get(3)?)?,
                    app_cred_id: id_from(arr.get(6)?)?,
                },
                4,
                7,
            ),
            _ => return None,
        };
        let expires_at = arr.get(rest)?.as_f64()?;
        let audit_ids = audit_ids_from(arr.get(rest + 1)?)?;
        let issued_at_us = arr.get(trailer).and_then(Value::as_i64).unwrap_or(0);
        Some(Payload {
            user_id,
            methods,
            scope,
            expires_at,
            audit_ids,
            issued_at_us,
        })
    }
}

/// The key repository on disk and the keys loaded from it.
pub struct KeyRepository {
    dir: PathBuf,
    max_active_keys: usize,
}

/// Keys in use: primary first (it encrypts), then the others.
pub struct Keys {
    multi: fernet::MultiFernet,
}

impl KeyRepository {
    pub fn new(dir: impl Into<PathBuf>, max_active_keys: usize) -> Self {
        KeyRepository {
            dir: dir.into(),
            max_active_keys: max_active_keys.max(3),
        }
    }

    /// Creates the repository with a staged and a primary key if it is empty.
    pub fn setup(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir).context("creating the fernet key repository")?;
        set_mode(&self.dir, 0o700)?;
        if self.key_numbers()?.is_empty() {
            write_key(&self.dir.join("0"))?;
            self.rotate()?;
        }
        Ok(())
    }

    fn key_numbers(&self) -> anyhow::Result<Vec<u64>> {
        let mut nums: Vec<u64> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        nums.sort_unstable();
        Ok(nums)
    }

    /// Promotes the staged key to primary, stages a new key, and removes
    /// the oldest secondary keys beyond `max_active_keys`.
    pub fn rotate(&self) -> anyhow::Result<()> {
        let nums = self.key_numbers()?;
        if !nums.contains(&0) {
            write_key(&self.dir.join("0"))?;
        }
        let next = nums.iter().max().copied().unwrap_or(0) + 1;
        fs::rename(self.dir.join("0"), self.dir.join(next.to_string()))?;
        write_key(&self.dir.join("0"))?;
        let mut nums = self.key_numbers()?;
        // Keep the staged key (0), the primary (max) and the newest secondaries.
        nums.retain(|n| *n != 0);
        while nums.len() + 1 > self.max_active_keys {
            let oldest = nums.remove(0);
            fs::remove_file(self.dir.join(oldest.to_string()))?;
        }
        sync_dir(&self.dir)?;
        Ok(())
    }

    pub fn load(&self) -> anyhow::Result<Keys> {
        let mut nums = self.key_numbers()?;
        anyhow::ensure!(!nums.is_empty(), "the fernet key repository is empty");
        // Primary (highest) first, then the rest, staged key last.
        nums.sort_unstable_by(|a, b| b.cmp(a));
        let keys = nums
            .iter()
            .map(|n| {
                let text = fs::read_to_string(self.dir.join(n.to_string()))?;
                fernet::Fernet::new(text.trim())
                    .with_context(|| format!("fernet key {n} is not a valid key"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Keys {
            multi: fernet::MultiFernet::new(keys),
        })
    }
}

impl Keys {
    /// Encrypts arbitrary bytes with the primary key (credential blobs,
    /// auth receipts); the result is a padded Fernet token.
    pub fn encrypt(&self, plain: &[u8]) -> String {
        self.multi.encrypt(plain)
    }

    /// Decrypts what [`Keys::encrypt`] produced, with any active key.
    pub fn decrypt(&self, token: &str) -> Option<Vec<u8>> {
        self.multi.decrypt(token).ok()
    }

    pub fn seal(&self, payload: &Payload) -> String {
        self.multi
            .encrypt(&payload.encode())
            .trim_end_matches('=')
            .to_string()
    }

    /// Opens a token. Tokens without the precise issue time get Fernet's.
    pub fn open(&self, token: &str) -> Option<Payload> {
        if token.len() > 1024
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let padded = format!("{token}{}", "=".repeat((4 - token.len() % 4) % 4));
        let plain = self.multi.decrypt(&padded).ok()?;
        let raw = URL_SAFE.decode(&padded).ok()?;
        let issued = i64::from_be_bytes(raw.get(1..9)?.try_into().ok()?);
        let mut payload = Payload::decode(&plain)?;
        if payload.issued_at_us == 0 {
            payload.issued_at_us = issued * 1_000_000;
        }
        Some(payload)
    }
}

fn write_key(path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(fernet::Fernet::generate_key().as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(scope: PayloadScope) -> Payload {
        Payload {
            user_id: "0123456789abcdef0123456789abcdef".into(),
            methods: vec!["password".into(), "totp".into()],
            scope,
            expires_at: 1_900_000_000.5,
            audit_ids: vec!["AAECAwQFBgcICQoLDA0ODw".into()],
            issued_at_us: 1_899_996_400_123_456,
        }
    }

    #[test]
    fn payloads_round_trip_for_every_scope() {
        for scope in [
            PayloadScope::Unscoped,
            PayloadScope::Domain("default".into()),
            PayloadScope::Project("fedcba9876543210fedcba9876543210".into()),
            PayloadScope::System,
            PayloadScope::ApplicationCredential {
                project_id: "fedcba9876543210fedcba9876543210".into(),
                app_cred_id: "00112233445566778899aabbccddeeff".into(),
            },
        ] {
            let p = payload(scope);
            assert_eq!(Payload::decode(&p.encode()), Some(p));
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_their_key_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let repo = KeyRepository::new(dir.path().join("fernet"), 3);
        repo.setup().unwrap();
        let token = repo.load().unwrap().seal(&payload(PayloadScope::System));
        assert!(!token.contains('='));
        repo.rotate().unwrap();
        assert!(
            repo.load().unwrap().open(&token).is_some(),
            "secondary key still decrypts"
        );
        repo.rotate().unwrap();
        repo.rotate().unwrap();
        assert!(
            repo.load().unwrap().open(&token).is_none(),
            "dropped key no longer decrypts"
        );
    }

    #[test]
    fn garbage_tokens_are_refused_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let repo = KeyRepository::new(dir.path(), 3);
        repo.setup().unwrap();
        let keys = repo.load().unwrap();
        for t in ["", "x", "gAAAAA", "not a token!", &"A".repeat(5000)] {
            assert!(keys.open(t).is_none());
        }
    }
}
