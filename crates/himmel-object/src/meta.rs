//! An object's metadata (user metadata and the standard headers it was
//! stored with), kept sealed under the project key like the data.

use std::collections::HashMap;

use s3s::dto::{Timestamp, TimestampFormat};
use s3s::S3Result;
use serde::{Deserialize, Serialize};

use crate::sse::kms_error;
use crate::ObjectStore;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ObjectMeta {
    pub user: HashMap<String, String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// HTTP date.
    pub expires: Option<String>,
    pub website_redirect_location: Option<String>,
    /// (algorithm header name, base64 value) of a checksum the client sent.
    pub checksum: Option<(String, String)>,
}

pub fn format_expires(t: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

pub fn parse_expires(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

fn identity(object_id: &str) -> Vec<u8> {
    format!("s3-meta/{object_id}").into_bytes()
}

impl ObjectStore {
    pub(crate) async fn seal_meta(
        &self,
        project_id: &str,
        object_id: &str,
        meta: &ObjectMeta,
    ) -> S3Result<Vec<u8>> {
        let plain = serde_json::to_vec(meta).expect("metadata serializes");
        self.keyring()
            .seal(project_id, &identity(object_id), &plain)
            .await
            .map_err(kms_error)
    }

    pub(crate) async fn open_meta(
        &self,
        project_id: &str,
        object_id: &str,
        sealed: &[u8],
    ) -> S3Result<ObjectMeta> {
        if sealed.is_empty() {
            return Ok(ObjectMeta::default());
        }
        let plain = self
            .keyring()
            .open(project_id, &identity(object_id), sealed)
            .await
            .map_err(kms_error)?;
        serde_json::from_slice(&plain).map_err(|e| {
            tracing::error!(object = %object_id, error = %e, "object metadata does not parse");
            s3s::s3_error!(InternalError)
        })
    }
}
