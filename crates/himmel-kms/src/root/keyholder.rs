//! Root key provider backed by an external key holder (`himmel keyholder
//! serve`, see `crate::keyholder`): project KEKs are wrapped and unwrapped
//! by the key holder over mutually authenticated TLS, so the region never
//! holds the root key. The key holder can revoke a project; the keyring's
//! bounded cache makes that bite within `cache_ttl`.

use std::path::Path;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use super::{RootKeyProvider, WrappedKek};
use crate::keyholder::api::{self, ErrorBody, RotateResponse, UnwrapRequest, UnwrapResponse};
use crate::keyholder::api::{WrapRequest, WrapResponse};
use crate::{Key, KmsError};

const PREFIX: &str = "keyholder:";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

pub struct KeyHolderClient {
    base: String,
    http: reqwest::Client,
    /// The root key the key holder last said it wraps with (learned from
    /// wrap and rotate answers); `None` until the first of those.
    current: RwLock<Option<String>>,
}

impl KeyHolderClient {
    /// A client for the key holder at `url` (`https://host:port`), trusting
    /// only the CA in `ca_pem_path` and presenting the client certificate
    /// and key the key holder issued to this region.
    pub fn new(
        url: &str,
        ca_pem_path: &Path,
        cert_pem_path: &Path,
        key_pem_path: &Path,
    ) -> Result<KeyHolderClient, KmsError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| KmsError::RootUnavailable(format!("key holder URL {url:?}: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(KmsError::RootUnavailable(format!(
                "key holder URL {url:?}: only https is allowed"
            )));
        }
        let read = |path: &Path| {
            std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|e| KmsError::RootUnavailable(format!("reading {}: {e}", path.display())))
        };
        let ca = reqwest::Certificate::from_pem(&read(ca_pem_path)?)
            .map_err(|e| KmsError::RootUnavailable(format!("{}: {e}", ca_pem_path.display())))?;
        let mut identity_pem = read(cert_pem_path)?;
        identity_pem.extend_from_slice(b"\n");
        identity_pem.extend_from_slice(&read(key_pem_path)?);
        let identity = reqwest::Identity::from_pem(&identity_pem).map_err(|e| {
            KmsError::RootUnavailable(format!(
                "{} and {}: not a certificate and its key ({e})",
                cert_pem_path.display(),
                key_pem_path.display()
            ))
        })?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| KmsError::RootUnavailable(format!("key holder client: {e}")))?;
        Ok(KeyHolderClient {
            base: url.trim_end_matches('/').to_owned(),
            http,
            current: RwLock::new(None),
        })
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        project_id: &str,
        body: &B,
    ) -> Result<T, KmsError> {
        let unavailable = |what: String| KmsError::RootUnavailable(format!("key holder: {what}"));
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        let status = response.status();
        // The body may carry a key: read it into memory that is wiped.
        let bytes = Zeroizing::new(
            response
                .bytes()
                .await
                .map_err(|e| unavailable(error_chain(&e)))?
                .to_vec(),
        );
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| unavailable(format!("unexpected answer to {path}: {e}")));
        }
        let error: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
            error: String::new(),
            message: String::from_utf8_lossy(&bytes).into_owned(),
        });
        Err(match (status.as_u16(), error.error.as_str()) {
            (403, api::ERR_REVOKED) => KmsError::Revoked(project_id.to_owned()),
            (_, api::ERR_CORRUPTED) => {
                KmsError::Corrupted(format!("key holder: {}", error.message))
            }
            _ => unavailable(format!("{status}: {} {}", error.error, error.message)),
        })
    }

    fn learn_current(&self, root_ref: &str) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(root_ref.to_owned());
    }
}

/// reqwest's top-level message ("error sending request") hides the cause
/// (refused connection, TLS alert); the operator needs the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait]
impl RootKeyProvider for KeyHolderClient {
    fn describe(&self) -> String {
        format!("key holder {}", self.base)
    }

    async fn wrap(
        &self,
        project_id: &str,
        context: &[u8],
        kek: &Key,
    ) -> Result<WrappedKek, KmsError> {
        let request = WrapRequest {
            project_id: project_id.to_owned(),
            context: B64.encode(context),
            key: B64.encode(kek.as_bytes()),
        };
        let answer: WrapResponse = self.call(api::WRAP_PATH, project_id, &request).await?;
        let blob = B64
            .decode(&answer.wrapped)
            .map_err(|_| KmsError::RootUnavailable("key holder: wrapped is not base64".into()))?;
        self.learn_current(&answer.root_ref);
        Ok(WrappedKek {
            root_ref: format!("{PREFIX}{}", answer.root_ref),
            blob,
        })
    }

    async fn unwrap(
        &self,
        project_id: &str,
        context: &[u8],
        wrapped: &WrappedKek,
    ) -> Result<Key, KmsError> {
        let root_ref = wrapped.root_ref.strip_prefix(PREFIX).ok_or_else(|| {
            KmsError::RootUnavailable(format!(
                "a key wrapped by {} cannot be opened by the key holder",
                wrapped.root_ref
            ))
        })?;
        let request = UnwrapRequest {
            project_id: project_id.to_owned(),
            context: B64.encode(context),
            root_ref: root_ref.to_owned(),
            wrapped: B64.encode(&wrapped.blob),
        };
        let answer: UnwrapResponse = self.call(api::UNWRAP_PATH, project_id, &request).await?;
        let raw = Zeroizing::new(
            B64.decode(&answer.key)
                .map_err(|_| KmsError::RootUnavailable("key holder: key is not base64".into()))?,
        );
        Key::from_slice(&raw)
            .ok_or_else(|| KmsError::RootUnavailable("key holder: key is not 32 bytes".into()))
    }

    async fn rotate(&self) -> Result<String, KmsError> {
        let answer: RotateResponse = self.call(api::ROTATE_PATH, "-", &()).await?;
        self.learn_current(&answer.root_ref);
        Ok(format!("{PREFIX}{}", answer.root_ref))
    }

    fn is_current(&self, root_ref: &str) -> bool {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        match (root_ref.strip_prefix(PREFIX), current.as_deref()) {
            (Some(r), Some(c)) => r == c,
            _ => false,
        }
    }
}
