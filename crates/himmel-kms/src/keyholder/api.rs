//! The key holder's wire format (JSON over HTTPS). Keys, contexts and
//! wrapped blobs travel as standard base64.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

pub const WRAP_PATH: &str = "/v1/wrap";
pub const UNWRAP_PATH: &str = "/v1/unwrap";
pub const ROTATE_PATH: &str = "/v1/rotate";

#[derive(Debug, Serialize, Deserialize)]
pub struct WrapRequest {
    pub project_id: String,
    pub context: String,
    pub key: String,
}

impl Drop for WrapRequest {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WrapResponse {
    pub root_ref: String,
    pub wrapped: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UnwrapRequest {
    pub project_id: String,
    pub context: String,
    pub root_ref: String,
    pub wrapped: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UnwrapResponse {
    pub key: String,
}

impl Drop for UnwrapResponse {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RotateResponse {
    pub root_ref: String,
}

/// Every refusal: `error` is one of the codes below, `message` explains.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub message: String,
}

pub const ERR_REVOKED: &str = "revoked";
pub const ERR_BAD_REQUEST: &str = "bad_request";
/// The wrapped key does not open under the named root key and context.
pub const ERR_CORRUPTED: &str = "corrupted";
pub const ERR_UNAVAILABLE: &str = "unavailable";

/// Whether a project id is one the key holder accepts: what a region's
/// project ids look like, and nothing that could break a line of its files.
pub fn valid_project_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}
