//! The key hierarchy as services use it: project key-encryption keys (KEKs)
//! under the root key, data keys under the project KEKs.
//!
//! Unwrapped KEKs live in memory only, for a bounded time (`cache_ttl`,
//! default 60 s); after that the root key provider is asked again. With an
//! external key holder that is what makes a revocation bite: once the cached
//! key expires, the project's data no longer opens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use himmel_db::Db;
use himmel_http::{AuditRecord, AuditSink};

use crate::root::RootKeyProvider;
use crate::store::{self, KekRow};
use crate::{envelope, unwrap_key, wrap_key, Key, KmsError};

pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// A data key sealed under a project KEK: `"HMDK" || version (u32 BE) ||
/// wrapped key`. Stored beside the data it encrypts.
const DATA_KEY_MAGIC: &[u8; 4] = b"HMDK";
pub const WRAPPED_DATA_KEY_LEN: usize = 4 + 4 + crate::keys::WRAPPED_LEN;

#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    root: Arc<dyn RootKeyProvider>,
    cache_ttl: Duration,
    /// (project, version) -> unwrapped KEK and when it was unwrapped.
    cache: Mutex<HashMap<(String, u32), (Key, Instant)>>,
    audit: Option<Arc<dyn AuditSink>>,
}

/// What a root rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RootRotation {
    pub new_root: String,
    pub rewrapped: usize,
    /// Projects whose keys the key holder refuses to unwrap (revoked): they
    /// stay under the old root key version until they are re-wrapped by a
    /// later rotation.
    pub skipped_revoked: Vec<String>,
}

fn kek_context(project_id: &str, version: u32) -> Vec<u8> {
    format!("kek/{project_id}/{version}").into_bytes()
}

fn data_key_context(project_id: &str, version: u32, identity: &[u8]) -> Vec<u8> {
    let mut c = format!("dk/{project_id}/{version}/").into_bytes();
    c.extend_from_slice(identity);
    c
}

impl Keyring {
    pub fn new(
        db: Db,
        root: Arc<dyn RootKeyProvider>,
        cache_ttl: Duration,
        audit: Option<Arc<dyn AuditSink>>,
    ) -> Keyring {
        Keyring {
            inner: Arc::new(Inner {
                db,
                root,
                cache_ttl,
                cache: Mutex::new(HashMap::new()),
                audit,
            }),
        }
    }

    pub fn root(&self) -> &dyn RootKeyProvider {
        self.inner.root.as_ref()
    }

    /// A fresh data key for the item `identity` of `project_id`, and the
    /// same key wrapped under the project's current KEK, to store beside
    /// the data.
    pub async fn new_data_key(
        &self,
        project_id: &str,
        identity: &[u8],
    ) -> Result<(Key, Vec<u8>), KmsError> {
        let (version, kek) = self.primary_kek(project_id).await?;
        let key = Key::generate();
        let mut wrapped = DATA_KEY_MAGIC.to_vec();
        wrapped.extend_from_slice(&version.to_be_bytes());
        wrapped.extend_from_slice(&wrap_key(
            &kek,
            &key,
            &data_key_context(project_id, version, identity),
        ));
        Ok((key, wrapped))
    }

    /// Opens a data key made by [`Keyring::new_data_key`] for the same
    /// project and item.
    pub async fn open_data_key(
        &self,
        project_id: &str,
        identity: &[u8],
        wrapped: &[u8],
    ) -> Result<Key, KmsError> {
        if wrapped.len() != WRAPPED_DATA_KEY_LEN || &wrapped[..4] != DATA_KEY_MAGIC {
            return Err(KmsError::Corrupted("not a wrapped data key".into()));
        }
        let version = u32::from_be_bytes(wrapped[4..8].try_into().expect("4 bytes"));
        let kek = self.kek(project_id, version).await?;
        Ok(unwrap_key(
            &kek,
            &wrapped[8..],
            &data_key_context(project_id, version, identity),
        )?)
    }

    /// Encrypts a small item (a secret, a piece of metadata) whole: a
    /// wrapped data key followed by the envelope.
    pub async fn seal(
        &self,
        project_id: &str,
        identity: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let (key, mut out) = self.new_data_key(project_id, identity).await?;
        out.extend_from_slice(&envelope::seal(&key, identity, 1, plain));
        Ok(out)
    }

    /// Opens what [`Keyring::seal`] made for the same project and item.
    pub async fn open(
        &self,
        project_id: &str,
        identity: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        if sealed.len() < WRAPPED_DATA_KEY_LEN {
            return Err(KmsError::Corrupted("sealed item is truncated".into()));
        }
        let (wrapped, body) = sealed.split_at(WRAPPED_DATA_KEY_LEN);
        let key = self.open_data_key(project_id, identity, wrapped).await?;
        Ok(envelope::open(&key, identity, body)?)
    }

    /// Starts a new KEK version for the project. New data keys are wrapped
    /// under it; data under older versions still opens.
    pub async fn rotate_project_key(&self, project_id: &str) -> Result<u32, KmsError> {
        loop {
            let next = store::last_version(&self.inner.db, project_id).await? + 1;
            if let Some(kek) = self.create_kek(project_id, next, true).await? {
                self.remember(project_id, next, kek);
                self.audit(
                    "key-manager:rotate_project_key",
                    "PUT",
                    project_id,
                    next,
                    200,
                )
                .await;
                return Ok(next);
            }
        }
    }

    /// Crypto-shreds a project: every KEK version is destroyed, so every
    /// data key under them, and so all of the project's data, is
    /// unrecoverable.
    pub async fn destroy_project_keys(&self, project_id: &str) -> Result<u64, KmsError> {
        let destroyed = store::destroy(&self.inner.db, project_id).await?;
        self.inner
            .cache
            .lock()
            .expect("key cache lock")
            .retain(|(p, _), _| p != project_id);
        if destroyed > 0 {
            self.audit_durable("key-manager:destroy_project_keys", "DELETE", project_id, 0)
                .await;
        }
        Ok(destroyed)
    }

    /// Destroys the keys of projects that no longer exist. Run at start and
    /// periodically, so that deleting a project shreds its data.
    pub async fn shred_deleted_projects(&self) -> Result<Vec<String>, KmsError> {
        let gone = store::orphaned_projects(&self.inner.db).await?;
        for project in &gone {
            self.destroy_project_keys(project).await?;
        }
        Ok(gone)
    }

    /// Makes a new root key current and re-wraps every project KEK under it,
    /// while the region keeps serving (old wrappings open until replaced).
    pub async fn rotate_root(&self) -> Result<RootRotation, KmsError> {
        let new_root = self.inner.root.rotate().await?;
        self.audit_root("key-manager:rotate_root_key", "PUT").await;
        let mut rewrapped = 0;
        let mut skipped_revoked = Vec::new();
        for row in store::all_live(&self.inner.db).await? {
            if self.inner.root.is_current(&row.wrapped.root_ref) {
                continue;
            }
            let context = kek_context(&row.project_id, row.version);
            let kek = match self
                .inner
                .root
                .unwrap(&row.project_id, &context, &row.wrapped)
                .await
            {
                Ok(kek) => kek,
                Err(KmsError::Revoked(project)) => {
                    if !skipped_revoked.contains(&project) {
                        skipped_revoked.push(project);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let fresh = self
                .inner
                .root
                .wrap(&row.project_id, &context, &kek)
                .await?;
            if store::rewrap(
                &self.inner.db,
                &row.project_id,
                row.version,
                &row.wrapped,
                &fresh,
            )
            .await?
            {
                rewrapped += 1;
            }
        }
        Ok(RootRotation {
            new_root,
            rewrapped,
            skipped_revoked,
        })
    }

    /// Checks at start that the root key opens the stored project keys: one
    /// key per root key version is unwrapped. A root key that was lost or
    /// replaced (a deleted key file, a token without its key) is refused
    /// here, clearly, instead of every read failing later. Revoked projects
    /// (key holder) do not count against it.
    pub async fn verify_root(&self) -> Result<usize, KmsError> {
        let mut verified: Vec<String> = Vec::new();
        for row in store::all_live(&self.inner.db).await? {
            if verified.contains(&row.wrapped.root_ref) {
                continue;
            }
            match self.kek_from_row(&row).await {
                Ok(_) => verified.push(row.wrapped.root_ref.clone()),
                // another project under the same root key may tell
                Err(KmsError::Revoked(_)) => {}
                Err(e) => {
                    return Err(KmsError::RootUnavailable(format!(
                        "{} does not open the project keys wrapped by {}: {e} \
                         (was the root key lost or replaced?)",
                        self.inner.root.describe(),
                        row.wrapped.root_ref
                    )))
                }
            }
        }
        Ok(verified.len())
    }

    /// Drops cached unwrapped keys (all, or one project's).
    pub fn forget(&self, project_id: Option<&str>) {
        let mut cache = self.inner.cache.lock().expect("key cache lock");
        match project_id {
            Some(p) => cache.retain(|(cp, _), _| cp != p),
            None => cache.clear(),
        }
    }

    async fn primary_kek(&self, project_id: &str) -> Result<(u32, Key), KmsError> {
        loop {
            if let Some(row) = store::primary(&self.inner.db, project_id).await? {
                let kek = self.kek_from_row(&row).await?;
                return Ok((row.version, kek));
            }
            let next = store::last_version(&self.inner.db, project_id).await? + 1;
            if let Some(kek) = self.create_kek(project_id, next, false).await? {
                self.remember(project_id, next, kek.clone());
                return Ok((next, kek));
            }
        }
    }

    /// Makes KEK `version`, wraps it with the root key and stores it as the
    /// project's primary (`rotation`: replacing the current one); `None` when
    /// another writer was first.
    async fn create_kek(
        &self,
        project_id: &str,
        version: u32,
        rotation: bool,
    ) -> Result<Option<Key>, KmsError> {
        let kek = Key::generate();
        let wrapped = self
            .inner
            .root
            .wrap(project_id, &kek_context(project_id, version), &kek)
            .await?;
        let row = KekRow {
            project_id: project_id.to_owned(),
            version,
            state: store::PRIMARY.into(),
            wrapped,
        };
        if !store::insert_primary(&self.inner.db, &row, rotation).await? {
            return Ok(None);
        }
        self.audit(
            "key-manager:create_project_key",
            "POST",
            project_id,
            version,
            201,
        )
        .await;
        Ok(Some(kek))
    }

    async fn kek(&self, project_id: &str, version: u32) -> Result<Key, KmsError> {
        if let Some(k) = self.cached(project_id, version) {
            return Ok(k);
        }
        match store::get(&self.inner.db, project_id, version).await? {
            Some(row) => self.kek_from_row(&row).await,
            None => Err(KmsError::Corrupted(format!(
                "the data names key version {version} of its project, which never existed"
            ))),
        }
    }

    async fn kek_from_row(&self, row: &KekRow) -> Result<Key, KmsError> {
        if row.state == store::DESTROYED {
            return Err(KmsError::Destroyed(row.project_id.clone()));
        }
        if let Some(k) = self.cached(&row.project_id, row.version) {
            return Ok(k);
        }
        let context = kek_context(&row.project_id, row.version);
        let unwrapped = self
            .inner
            .root
            .unwrap(&row.project_id, &context, &row.wrapped)
            .await;
        let status = match &unwrapped {
            Ok(_) => 200,
            Err(KmsError::Revoked(_)) => 403,
            Err(_) => 503,
        };
        self.audit(
            "key-manager:unwrap_project_key",
            "GET",
            &row.project_id,
            row.version,
            status,
        )
        .await;
        let kek = unwrapped?;
        self.remember(&row.project_id, row.version, kek.clone());
        Ok(kek)
    }

    fn cached(&self, project_id: &str, version: u32) -> Option<Key> {
        let mut cache = self.inner.cache.lock().expect("key cache lock");
        let key = (project_id.to_owned(), version);
        match cache.get(&key) {
            Some((k, at)) if at.elapsed() < self.inner.cache_ttl => Some(k.clone()),
            Some(_) => {
                cache.remove(&key);
                None
            }
            None => None,
        }
    }

    fn remember(&self, project_id: &str, version: u32, kek: Key) {
        if self.inner.cache_ttl.is_zero() {
            return;
        }
        self.inner
            .cache
            .lock()
            .expect("key cache lock")
            .insert((project_id.to_owned(), version), (kek, Instant::now()));
    }

    async fn audit(
        &self,
        action: &'static str,
        method: &str,
        project: &str,
        version: u32,
        status: u16,
    ) {
        self.record(
            action,
            method,
            format!("{project}/{version}"),
            status,
            false,
        )
        .await;
    }

    async fn audit_durable(&self, action: &'static str, method: &str, project: &str, status: u16) {
        let status = if status == 0 { 204 } else { status };
        self.record(action, method, project.to_owned(), status, true)
            .await;
    }

    async fn audit_root(&self, action: &'static str, method: &str) {
        let target = self.inner.root.describe();
        self.record(action, method, target, 200, true).await;
    }

    /// Key events go into the same audit trail as API requests; they carry
    /// the key's name, never key material.
    async fn record(
        &self,
        action: &'static str,
        method: &str,
        target: String,
        status: u16,
        durable: bool,
    ) {
        let Some(sink) = &self.inner.audit else {
            return;
        };
        let record = AuditRecord {
            id: himmel_core::ids::new_id(),
            at: himmel_core::time::now(),
            request_id: himmel_core::ids::new_request_id(),
            service: "key-manager",
            action,
            method: method.to_owned(),
            path: String::new(),
            status,
            initiator: None,
            source_addr: "region".into(),
            target_type: "key-manager/key".into(),
            target_id: Some(target),
            elapsed_us: 0,
        };
        if let Err(e) = sink.record(record, durable).await {
            tracing::error!(error = %e, "recording a key event in the audit trail");
        }
    }
}
