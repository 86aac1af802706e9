//! Root key providers: what wraps the project key-encryption keys.
//!
//! A provider seals a project KEK for storage and opens it again. Which root
//! key sealed a KEK is recorded beside it as a `root_ref` (provider and key
//! version), so that a root rotation can re-wrap every KEK while the region
//! keeps serving: KEKs under the old root open until they are re-wrapped.

pub mod file;
pub mod keyholder;
pub mod pkcs11;

use async_trait::async_trait;

use crate::{Key, KmsError};

/// A KEK sealed by a root key provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKek {
    /// Which root key sealed it, e.g. `file:3`.
    pub root_ref: String,
    pub blob: Vec<u8>,
}

#[async_trait]
pub trait RootKeyProvider: Send + Sync + 'static {
    /// Short description for logs and `himmel doctor` (never key material).
    fn describe(&self) -> String;

    /// Seals `kek` under the current root key. `context` names whose key it
    /// is (project and version) and is bound to the result.
    async fn wrap(
        &self,
        project_id: &str,
        context: &[u8],
        kek: &Key,
    ) -> Result<WrappedKek, KmsError>;

    /// Opens a KEK sealed by [`RootKeyProvider::wrap`] with the same context.
    async fn unwrap(
        &self,
        project_id: &str,
        context: &[u8],
        wrapped: &WrappedKek,
    ) -> Result<Key, KmsError>;

    /// Makes a new root key the one that wraps from now on; older root keys
    /// stay usable for unwrapping until every KEK has been re-wrapped.
    async fn rotate(&self) -> Result<String, KmsError>;

    /// Whether `root_ref` names the current root key.
    fn is_current(&self, root_ref: &str) -> bool;
}
