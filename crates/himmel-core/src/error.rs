//! One error type for every service. Each API renders it in its own wire
//! format (Keystone, Neutron, Nova, S3); the variants carry the HTTP meaning.

use http::StatusCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Unavailable(String),
    /// Stored data failed its integrity check (it was altered, truncated or
    /// swapped). Reported as such, never returned as plaintext.
    #[error("stored data failed its integrity check: {0}")]
    Corrupted(String),
    /// A fault on our side. The message goes to the log, never to the client.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Corrupted(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text a client may see. Internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => {
                "An unexpected error prevented the server from fulfilling your request.".into()
            }
            other => other.to_string(),
        }
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        Error::NotFound(format!("Could not find {kind}: {id}."))
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
}
