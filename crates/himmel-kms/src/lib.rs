//! Keys and encryption for every storage service in himmel (DESIGN.md
//! §Keys and encryption): data keys, key wrapping, and the chunked
//! envelope format that objects, images, volumes and secrets are stored in.

pub mod envelope;
pub mod keys;

pub use envelope::{Decryptor, Encryptor, EnvelopeError, Header};
pub use keys::{unwrap_key, wrap_key, Key};
