//! Keys and encryption for every storage service in himmel (DESIGN.md
//! §Keys and encryption): the key hierarchy (root key -> project KEKs ->
//! data keys), key wrapping, and the chunked envelope format that objects,
//! images, volumes and secrets are stored in.

pub mod envelope;
mod error;
pub mod keyholder;
pub mod keyring;
pub mod keys;
pub mod root;
mod store;

pub use envelope::{Decryptor, Encryptor, EnvelopeError, Header};
pub use error::KmsError;
pub use keyring::Keyring;
pub use keys::{unwrap_key, wrap_key, Key};
