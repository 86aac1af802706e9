//! S3 object storage: the S3 API (on the `s3s` crate) over an engine that
//! keeps metadata in the state store and data in chunk-encrypted files, or
//! for small objects sealed into the metadata row ([`inline`]).
//!
//! Authentication uses Keystone EC2 credentials ([`auth`]); buckets belong
//! to projects ([`policy`]); every object is encrypted under a data key of
//! its own, wrapped by the project key or by the customer's SSE-C key
//! ([`sse`], [`engine`]); every request is recorded in the audit trail
//! ([`audit`]).

pub mod audit;
pub mod auth;
pub mod bucket_policy;
pub mod catalog;
mod commit;
pub mod cors;
pub mod engine;
mod inline;
mod list;
pub mod lock;
mod meta;
pub mod policy;
mod s3;
pub mod sse;
pub mod sse_kms;
pub mod store;
pub mod store_ext;

use std::path::Path;
use std::sync::Arc;

use himmel_db::Db;
use himmel_http::AuditSink;
use himmel_identity::Identity;
use himmel_kms::Keyring;
use s3s::service::S3ServiceBuilder;

pub use engine::Engine;

/// The largest object a single PUT may upload (S3's limit).
pub const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The object store. Cheap to clone.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    commits: commit::Committer,
    keyring: Keyring,
    engine: Engine,
    keys: auth::Keys,
    region: String,
}

impl ObjectStore {
    /// Opens the store over `<data_dir>/objects` and removes data files no
    /// metadata refers to (left by a crash between write and commit).
    pub async fn open(
        db: Db,
        identity: Identity,
        keyring: Keyring,
        data_dir: &Path,
        region: &str,
    ) -> anyhow::Result<ObjectStore> {
        let engine = Engine::open(data_dir)?;
        let referenced = store::referenced_files(&db).await?;
        let removed = engine.remove_orphans(&referenced)?;
        if removed > 0 {
            tracing::info!(removed, "removed unreferenced object files");
        }
        Ok(ObjectStore {
            inner: Arc::new(Inner {
                commits: commit::Committer::start(db.clone()),
                db,
                keyring,
                engine,
                keys: auth::Keys::new(identity),
                region: region.to_string(),
            }),
        })
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn commits(&self) -> &commit::Committer {
        &self.inner.commits
    }

    pub(crate) fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn region(&self) -> &str {
        &self.inner.region
    }

    /// The S3 API as an axum router: signature checks, access checks and
    /// one audit record per request.
    pub fn router(&self, audit: Arc<dyn AuditSink>) -> axum::Router {
        let mut builder = S3ServiceBuilder::new(self.clone());
        builder.set_auth(self.inner.keys.clone());
        builder.set_access(policy::Gate {
            keys: self.inner.keys.clone(),
        });
        let service = builder.build();
        // CORS inside the audit layer: preflights are recorded too
        let with_cors = audit::router(service).layer(axum::middleware::from_fn_with_state(
            self.clone(),
            cors::layer,
        ));
        audit::recorded(with_cors, audit)
    }
}
