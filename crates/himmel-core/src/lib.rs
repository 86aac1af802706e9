//! Types every himmel service shares: the request context, the error type,
//! typed identifiers and time helpers.

pub mod context;
pub mod error;
pub mod ids;
pub mod time;

pub use context::{RequestContext, Scope};
pub use error::{Error, Result};
