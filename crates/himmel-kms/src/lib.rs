//! Keys and encryption for every storage service in himmel (DESIGN.md
//! §Keys and encryption): the key hierarchy (root key -> project KEKs ->
//! data keys), key wrapping, and the chunked envelope format that objects,
//! images, volumes and secrets are stored in; and the Key Manager
//! (Barbican v1) API over secrets sealed in that hierarchy.

pub mod api;
pub mod envelope;
mod error;
pub mod keyholder;
pub mod keyring;
pub mod keys;
pub mod policy;
pub mod root;
pub mod secrets;
mod store;

pub use envelope::{Decryptor, Encryptor, EnvelopeError, Header};
pub use error::KmsError;
pub use keyring::Keyring;
pub use keys::{unwrap_key, wrap_key, Key};
pub use secrets::KeyManager;
