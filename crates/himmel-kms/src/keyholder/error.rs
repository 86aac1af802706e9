use std::path::PathBuf;

use crate::KmsError;

#[derive(Debug, thiserror::Error)]
pub enum KeyHolderError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A damaged file, a bad argument, a directory in the wrong state.
    #[error("{0}")]
    Invalid(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error(transparent)]
    Kms(#[from] KmsError),
}

impl KeyHolderError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> KeyHolderError + '_ {
        move |source| KeyHolderError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
