//! SSE-KMS and the choice of encryption for new objects.
//!
//! `x-amz-server-side-encryption: aws:kms` with
//! `x-amz-server-side-encryption-aws-kms-key-id: <id>` names a key-manager
//! (Barbican) secret of type `symmetric`. The id may be the secret's UUID,
//! its href, or an ARN ending in `key/<uuid>`; answers report the UUID.
//! The caller must be allowed to read the secret's payload (the key
//! manager's own rule for `secret:decrypt`, with its ACLs), when writing and
//! again on every read. The object's data keys are wrapped under a key
//! derived from the payload (HMAC-SHA256), bound to the secret and the
//! segment. Deleting the secret (or its expiry, or losing the right to read
//! it) makes the object unreadable: reads then fail with the error S3 gives
//! for an unusable KMS key (`KMS.NotFoundException`, 400) or `AccessDenied`.
//!
//! Without a key id, `aws:kms` uses the project key (the region's
//! equivalent of S3's managed key) and is reported as `aws:kms`.

use himmel_kms::{Key, KeyManager};
use hmac::{Hmac, Mac};
use s3s::dto::ServerSideEncryption;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};
use sha2::Sha256;

use crate::auth::Caller;
use crate::sse::{self, CustomerKey, SSE_C, SSE_KMS, SSE_S3};
use crate::store::Bucket;
use crate::ObjectStore;

/// Payloads shorter than this cannot be AES keys.
const MIN_KEY_BYTES: usize = 16;

/// A bucket's default encryption.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DefaultEncryption {
    /// `AES256` or `aws:kms`.
    pub algorithm: String,
    pub kms_key_id: Option<String>,
}

/// How a new object is encrypted.
pub struct Encryption {
    /// SSE-C key or SSE-KMS key; None: the project key.
    pub key: Option<CustomerKey>,
    /// `AES256`, `SSE-C` or `aws:kms` (the `sse` column).
    pub sse: String,
    /// SSE-KMS secret id, or "".
    pub kms_key_id: String,
    /// SSE-C: the salted hash of the key, or "".
    pub key_hash: String,
}

/// The secret UUID an S3 key id names.
pub fn secret_id(key_id: &str) -> String {
    key_id.rsplit('/').next().unwrap_or(key_id).to_string()
}

fn kms_error(code: &str, status: http::StatusCode, message: &str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), message.to_string());
    e.set_status_code(status);
    e
}

/// The key-encryption key made from a secret's payload.
fn derive(payload: &[u8]) -> Key {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(payload).expect("any key length");
    m.update(b"himmel s3 sse-kms key-encryption key");
    let out: [u8; 32] = m.finalize().into_bytes().into();
    Key::from_bytes(out)
}

impl ObjectStore {
    /// The SSE-KMS key of secret `key_id`, if `caller` may read it.
    pub(crate) async fn kms_key(
        &self,
        caller: Option<&Caller>,
        key_id: &str,
    ) -> S3Result<CustomerKey> {
        let Some(caller) = caller else {
            return Err(s3_error!(
                AccessDenied,
                "Objects encrypted with SSE-KMS can only be read by signed requests."
            ));
        };
        let id = secret_id(key_id);
        let km = KeyManager::new(self.db().clone(), self.keyring().clone());
        let not_usable = || {
            kms_error(
                "KMS.NotFoundException",
                http::StatusCode::BAD_REQUEST,
                "Invalid keyId: the key does not exist or can no longer be used.",
            )
        };
        let secret = match km
            .secret_for(&himmel_kms::policy::SECRET_DECRYPT, &caller.context, &id)
            .await
        {
            Ok((secret, _)) => secret,
            Err(himmel_core::Error::NotFound(_)) => return Err(not_usable()),
            Err(himmel_core::Error::Forbidden(_)) => {
                return Err(s3_error!(
                    AccessDenied,
                    "You are not allowed to use the KMS key {id}."
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "reading an SSE-KMS key");
                return Err(s3_error!(InternalError));
            }
        };
        if secret.secret_type != "symmetric" {
            return Err(kms_error(
                "KMS.InvalidKeyUsageException",
                http::StatusCode::BAD_REQUEST,
                "The KMS key must be a symmetric secret.",
            ));
        }
        let payload = match km.read_payload(&secret).await {
            Ok(p) => zeroize::Zeroizing::new(p),
            Err(himmel_core::Error::NotFound(_)) => return Err(not_usable()),
            Err(e) => {
                tracing::error!(error = %e, "reading an SSE-KMS key");
                return Err(s3_error!(InternalError));
            }
        };
        if payload.len() < MIN_KEY_BYTES {
            return Err(kms_error(
                "KMS.InvalidKeyUsageException",
                http::StatusCode::BAD_REQUEST,
                "The KMS key's payload is too short to be an AES key.",
            ));
        }
        Ok(CustomerKey {
            key: derive(&payload),
            key_md5: String::new(),
            kms_key_id: Some(id),
        })
    }

    /// The key that opens an object (or upload) stored with `sse`: the
    /// request's SSE-C key (checked against `key_hash`), the SSE-KMS key,
    /// or None for the project key.
    pub(crate) async fn read_key(
        &self,
        caller: Option<&Caller>,
        stored_sse: &str,
        kms_key_id: &str,
        key_hash: &str,
        given: Option<CustomerKey>,
    ) -> S3Result<Option<CustomerKey>> {
        sse::check_customer_key(stored_sse, key_hash, given.as_ref())?;
        if stored_sse == SSE_KMS && !kms_key_id.is_empty() {
            return Ok(Some(self.kms_key(caller, kms_key_id).await?));
        }
        Ok(given)
    }

    /// Decides how a new object in `bucket` is encrypted: as the request
    /// asks, else as the bucket's default encryption says.
    pub(crate) async fn write_encryption(
        &self,
        caller: Option<&Caller>,
        bucket: &Bucket,
        asked: Option<&ServerSideEncryption>,
        kms_key_id: Option<&str>,
        customer: Option<CustomerKey>,
    ) -> S3Result<Encryption> {
        if let Some(c) = customer {
            if asked.is_some() || kms_key_id.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "Server Side Encryption with Customer provided key is incompatible with the \
                     encryption method specified"
                ));
            }
            return Ok(Encryption {
                key_hash: sse::key_hash(&c.key),
                key: Some(c),
                sse: SSE_C.into(),
                kms_key_id: String::new(),
            });
        }
        let default = bucket.config.encryption.as_ref();
        let (algorithm, key_id) = match asked.map(|a| a.as_str()) {
            Some(a) => (a.to_string(), kms_key_id.map(str::to_string)),
            None if kms_key_id.is_some() => {
                return Err(s3_error!(
                    InvalidArgument,
                    "x-amz-server-side-encryption-aws-kms-key-id is only valid with \
                     x-amz-server-side-encryption: aws:kms"
                ))
            }
            None => match default {
                Some(d) => (d.algorithm.clone(), d.kms_key_id.clone()),
                None => (SSE_S3.to_string(), None),
            },
        };
        match algorithm.as_str() {
            SSE_S3 if key_id.is_none() => Ok(Encryption {
                key: None,
                sse: SSE_S3.into(),
                kms_key_id: String::new(),
                key_hash: String::new(),
            }),
            SSE_S3 => Err(s3_error!(
                InvalidArgument,
                "x-amz-server-side-encryption-aws-kms-key-id is only valid with \
                 x-amz-server-side-encryption: aws:kms"
            )),
            SSE_KMS => {
                // A request naming aws:kms without a key takes the bucket's.
                let key_id = key_id.or_else(|| {
                    default
                        .filter(|d| d.algorithm == SSE_KMS)
                        .and_then(|d| d.kms_key_id.clone())
                });
                let key = match &key_id {
                    Some(id) => Some(self.kms_key(caller, id).await?),
                    None => None,
                };
                Ok(Encryption {
                    kms_key_id: key
                        .as_ref()
                        .and_then(|k| k.kms_key_id.clone())
                        .unwrap_or_default(),
                    key,
                    sse: SSE_KMS.into(),
                    key_hash: String::new(),
                })
            }
            other => Err(s3_error!(
                NotImplemented,
                "Server-side encryption {other} is not available in this region."
            )),
        }
    }
}

/// The encryption headers an answer reports for an object stored with
/// `sse` (and `kms_key_id`); `customer` is the request's SSE-C key.
pub struct Reported {
    pub sse: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub customer_algorithm: Option<String>,
    pub customer_key_md5: Option<String>,
}

pub fn reported(sse: &str, kms_key_id: &str, customer: Option<&CustomerKey>) -> Reported {
    match sse {
        SSE_C => Reported {
            sse: None,
            kms_key_id: None,
            customer_algorithm: Some("AES256".into()),
            customer_key_md5: customer.map(|c| c.key_md5.clone()),
        },
        SSE_KMS => Reported {
            sse: Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AWS_KMS,
            )),
            kms_key_id: (!kms_key_id.is_empty()).then(|| kms_key_id.to_string()),
            customer_algorithm: None,
            customer_key_md5: None,
        },
        _ => Reported {
            sse: Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AES256,
            )),
            kms_key_id: None,
            customer_algorithm: None,
            customer_key_md5: None,
        },
    }
}

/// Sets the four encryption fields of an S3 output.
#[macro_export]
macro_rules! report_sse {
    ($out:expr, $sse:expr, $kms_key_id:expr, $customer:expr) => {{
        let r = $crate::sse_kms::reported($sse, $kms_key_id, $customer);
        $out.server_side_encryption = r.sse;
        $out.ssekms_key_id = r.kms_key_id;
        $out.sse_customer_algorithm = r.customer_algorithm;
        $out.sse_customer_key_md5 = r.customer_key_md5;
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_name_secrets_by_uuid_href_or_arn() {
        let id = "0f2a6d8e-4b1c-4a55-9e0e-2f1b3c4d5e6f";
        assert_eq!(secret_id(id), id);
        assert_eq!(
            secret_id(&format!("https://region/key-manager/v1/secrets/{id}")),
            id
        );
        assert_eq!(secret_id(&format!("arn:aws:kms:regionone:p:key/{id}")), id);
    }

    #[test]
    fn derived_keys_differ_per_payload() {
        assert_ne!(derive(&[1; 32]).as_bytes(), derive(&[2; 32]).as_bytes());
        assert_eq!(derive(&[1; 32]).as_bytes(), derive(&[1; 32]).as_bytes());
        assert_ne!(derive(&[1; 32]).as_bytes(), &[1; 32]);
    }
}
