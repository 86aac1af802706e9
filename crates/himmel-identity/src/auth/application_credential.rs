//! The `application_credential` method.

use himmel_core::Error;
use serde_json::Value;

use super::MethodResult;
use crate::Identity;

pub async fn authenticate(_id: &Identity, _section: &Value) -> Result<MethodResult, Error> {
    Err(Error::Unauthorized(
        "Application credential authentication is not enabled yet.".into(),
    ))
}
