//! An object's metadata (user metadata and the standard headers it was
//! stored with) and its tags, kept sealed under the project key like the
//! data.

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

fn tags_identity(owner_id: &str) -> Vec<u8> {
    format!("s3-tags/{owner_id}").into_bytes()
}

/// Object tags as stored: empty for none, else `v1:<count>:<sealed tags,
/// base64>`. The count stays readable for `x-amz-tagging-count`, which
/// every reader of the object sees anyway. Tags written before sealing
/// (a JSON list) are still read.
const SEALED_TAGS: &str = "v1:";

pub type Tags = Vec<(String, String)>;

/// How many tags the stored form holds.
pub fn tag_count(stored: &str) -> usize {
    match stored.strip_prefix(SEALED_TAGS) {
        Some(rest) => rest
            .split_once(':')
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(0),
        None => serde_json::from_str::<Tags>(stored)
            .map(|t| t.len())
            .unwrap_or(0),
    }
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

    /// Seals `tags` for the object or upload `owner_id` (its id, as the
    /// metadata is bound to it).
    pub(crate) async fn seal_tags(
        &self,
        project_id: &str,
        owner_id: &str,
        tags: &[(String, String)],
    ) -> S3Result<String> {
        use base64::Engine;
        if tags.is_empty() {
            return Ok(String::new());
        }
        let plain = serde_json::to_vec(tags).expect("tags serialize");
        let sealed = self
            .keyring()
            .seal(project_id, &tags_identity(owner_id), &plain)
            .await
            .map_err(kms_error)?;
        Ok(format!(
            "{SEALED_TAGS}{}:{}",
            tags.len(),
            base64::engine::general_purpose::STANDARD.encode(sealed)
        ))
    }

    pub(crate) async fn open_tags(
        &self,
        project_id: &str,
        owner_id: &str,
        stored: &str,
    ) -> S3Result<Tags> {
        use base64::Engine;
        if stored.is_empty() {
            return Ok(Vec::new());
        }
        let unreadable = |what: &str| {
            tracing::error!(owner = %owner_id, "object tags {what}");
            s3s::s3_error!(InternalError)
        };
        let Some(rest) = stored.strip_prefix(SEALED_TAGS) else {
            return serde_json::from_str(stored).map_err(|_| unreadable("do not parse"));
        };
        let sealed = rest
            .split_once(':')
            .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .ok_or_else(|| unreadable("are malformed"))?;
        let plain = self
            .keyring()
            .open(project_id, &tags_identity(owner_id), &sealed)
            .await
            .map_err(kms_error)?;
        serde_json::from_slice(&plain).map_err(|_| unreadable("do not parse"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tag_counts_read_from_either_form() {
        assert_eq!(super::tag_count(""), 0);
        assert_eq!(super::tag_count("v1:3:AAAA"), 3);
        assert_eq!(super::tag_count(r#"[["a","1"],["b","2"]]"#), 2);
    }
}
