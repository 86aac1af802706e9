use std::fmt;

/// What went wrong while driving the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command ran and failed (or could not be started).
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    /// The desired state cannot be built (an id that is not a UUID, an unknown network, ...).
    #[error("invalid desired state: {0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid(msg: impl fmt::Display) -> Self {
        Error::Invalid(msg.to_string())
    }

    pub(crate) fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}
