//! The one request pipeline every himmel API goes through, and what it
//! needs: the policy rule language, error rendering in each service's wire
//! format, and the JSON extractor whose rejections become proper errors.
//!
//! ```text
//! authenticate -> authorize -> handler -> audit -> metrics
//! ```

pub mod error;
pub mod json;
pub mod pipeline;
pub mod policy;

pub use error::{ApiError, ApiResult, ErrorFormat};
pub use json::Json;
pub use pipeline::{
    AuditRecord, AuditSink, AuditTargetId, Authenticator, Authz, Ctx, MaybeCtx, Operation,
    Pipeline, Service,
};
pub use policy::{Check, Decision, Target};
