//! Keystone v3: domains, projects, users, groups, roles, assignments,
//! tokens, catalog, credentials and policy.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod fernet;
pub mod password;
pub mod policy;
pub mod store;
pub mod token;
mod token_cache;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use himmel_core::Error;
use himmel_db::Db;

pub use api::routes;

/// Keystone's `[security_compliance]` options.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct SecurityCompliance {
    /// Failed password logins before the account locks; 0 disables lockout.
    pub lockout_failure_attempts: u32,
    /// Seconds an account stays locked; 0 means until an admin unlocks it.
    pub lockout_duration: u64,
    /// Days a password is valid; 0 means forever.
    pub password_expires_days: u32,
    /// Passwords must match this regular expression, when set.
    pub password_regex: Option<String>,
    pub password_regex_description: Option<String>,
    /// How many previous passwords a new one must differ from.
    pub unique_last_password_count: u32,
    /// Days a password must be kept before the user may change it again.
    pub minimum_password_age: u32,
    /// New users (and passwords set by an admin) must be changed on first use.
    pub change_password_upon_first_use: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Token lifetime in seconds.
    pub token_expiration: i64,
    pub fernet_dir: PathBuf,
    pub max_active_keys: usize,
    /// A separate Fernet key repository that encrypts credential blobs at
    /// rest (Keystone's `[credential] key_repository`).
    pub credential_key_dir: PathBuf,
    pub security: SecurityCompliance,
    /// The region this server runs.
    pub region: String,
}

/// The identity service. Cheap to clone; handlers get it as axum state.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: Config,
    keys: RwLock<Arc<fernet::Keys>>,
    credential_keys: fernet::Keys,
    revocations: store::revocation::RevocationCache,
    token_cache: token_cache::TokenCache,
    verified_passwords: password::VerifiedCache,
}

impl Identity {
    /// Opens the identity service over `db`, setting up the Fernet key
    /// repository if it is empty.
    pub async fn open(db: Db, config: Config) -> anyhow::Result<Identity> {
        let repo = fernet::KeyRepository::new(&config.fernet_dir, config.max_active_keys);
        repo.setup()?;
        let keys = repo.load()?;
        let credential_repo = fernet::KeyRepository::new(&config.credential_key_dir, 3);
        credential_repo.setup()?;
        let credential_keys = credential_repo.load()?;
        let revocations = store::revocation::RevocationCache::load(&db).await?;
        Ok(Identity {
            inner: Arc::new(Inner {
                db,
                config,
                keys: RwLock::new(Arc::new(keys)),
                credential_keys,
                revocations,
                token_cache: Default::default(),
                verified_passwords: Default::default(),
            }),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn keys(&self) -> Arc<fernet::Keys> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the key repository (after `himmel admin fernet-rotate`).
    pub fn reload_keys(&self) -> anyhow::Result<()> {
        let c = &self.inner.config;
        let keys = fernet::KeyRepository::new(&c.fernet_dir, c.max_active_keys).load()?;
        *self.inner.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// The keys that encrypt credential blobs.
    pub(crate) fn credential_keys(&self) -> &fernet::Keys {
        &self.inner.credential_keys
    }

    pub fn revocations(&self) -> &store::revocation::RevocationCache {
        &self.inner.revocations
    }

    pub(crate) fn verified_passwords(&self) -> &password::VerifiedCache {
        &self.inner.verified_passwords
    }

    pub(crate) fn token_cache(&self) -> &token_cache::TokenCache {
        &self.inner.token_cache
    }
}

/// Maps a database failure to an internal error (logged, never shown).
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::Internal(format!("database: {e}"))
}
