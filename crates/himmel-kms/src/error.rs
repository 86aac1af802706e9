use himmel_core::Error;

use crate::EnvelopeError;

/// What can go wrong between a service and its data's keys.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// Stored ciphertext or a wrapped key failed its integrity check.
    #[error("{0}")]
    Corrupted(String),
    /// The key this data was encrypted under has been destroyed.
    #[error("the key of project {0} that this data was encrypted with has been destroyed")]
    Destroyed(String),
    /// The key holder refuses to unwrap this project's keys.
    #[error("the key holder has revoked access to the keys of project {0}")]
    Revoked(String),
    /// The root key provider cannot be reached or cannot do the operation.
    #[error("the root key provider is unavailable: {0}")]
    RootUnavailable(String),
    #[error("key store: {0}")]
    Store(String),
}

impl From<EnvelopeError> for KmsError {
    fn from(e: EnvelopeError) -> Self {
        KmsError::Corrupted(e.to_string())
    }
}

impl From<sqlx::Error> for KmsError {
    fn from(e: sqlx::Error) -> Self {
        KmsError::Store(e.to_string())
    }
}

impl From<KmsError> for Error {
    fn from(e: KmsError) -> Self {
        match e {
            KmsError::Corrupted(m) => Error::Corrupted(m),
            KmsError::Destroyed(_) => Error::NotFound(e.to_string()),
            KmsError::Revoked(_) => Error::Forbidden(e.to_string()),
            KmsError::RootUnavailable(_) => Error::Unavailable(e.to_string()),
            KmsError::Store(m) => Error::Internal(m),
        }
    }
}
