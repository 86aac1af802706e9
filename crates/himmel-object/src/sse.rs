//! Server-side encryption choices, all of which end in the same envelope:
//!
//! * SSE-S3 (the default, reported as `AES256`): the segment's data key is
//!   wrapped under the project's key-encryption key.
//! * SSE-C: the data key is wrapped under the customer's key, which is used
//!   for the request and forgotten; only a salted hash of it is kept, to
//!   tell a wrong key (403) from a damaged object.
//! * SSE-KMS (`aws:kms`): the data key is wrapped under a key made from a
//!   key-manager secret the caller may read ([`crate::sse_kms`]); without a
//!   key id, under the project key, like SSE-S3.

use base64::Engine as _;
use himmel_kms::{unwrap_key, wrap_key, Key};
use hmac::{Hmac, Mac};
use s3s::{s3_error, S3Result};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::engine::{KeyKind, SegmentKey};
use crate::ObjectStore;

pub const SSE_S3: &str = "AES256";
pub const SSE_C: &str = "SSE-C";
pub const SSE_KMS: &str = "aws:kms";

/// A key that does not live in the project's key hierarchy and wraps the
/// data keys of an object: a customer-provided key from the SSE-C headers,
/// or (SSE-KMS) the key-encryption key made from a key-manager secret.
pub struct CustomerKey {
    pub key: Key,
    /// Base64 MD5 of the key, as echoed back to the client (SSE-C only).
    pub key_md5: String,
    /// SSE-KMS: the id of the key-manager secret the key comes from.
    pub kms_key_id: Option<String>,
}

/// Reads the three SSE-C headers; None when the request has none.
pub fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    match (algorithm, key, key_md5) {
        (None, None, None) => Ok(None),
        (Some(alg), Some(key), Some(md5)) => {
            if alg != "AES256" {
                return Err(s3_error!(
                    InvalidArgument,
                    "The customer-provided encryption algorithm must be AES256."
                ));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(key)
                .ok()
                .filter(|k| k.len() == 32)
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The secret key was invalid for the specified algorithm."
                    )
                })?;
            let digest = {
                use s3s::crypto::{Checksum as _, Md5};
                let mut h = Md5::new();
                h.update(&raw);
                base64::engine::general_purpose::STANDARD.encode(h.finalize())
            };
            if digest != md5 {
                return Err(s3_error!(
                    InvalidArgument,
                    "The calculated MD5 hash of the key did not match the hash that was provided."
                ));
            }
            Ok(Some(CustomerKey {
                key: Key::from_slice(&raw).expect("32 bytes"),
                key_md5: md5.to_string(),
                kms_key_id: None,
            }))
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide \
             the algorithm, the key and the key's MD5."
        )),
    }
}

/// `salt:hmac-sha256(salt, key)`, hex.
pub fn key_hash(key: &Key) -> String {
    let salt: [u8; 16] = rand::random();
    format!("{}:{}", hex::encode(salt), hex::encode(mac(&salt, key)))
}

fn mac(salt: &[u8], key: &Key) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(salt).expect("any key length");
    m.update(key.as_bytes());
    m.finalize().into_bytes().to_vec()
}

pub fn key_matches(stored: &str, key: &Key) -> bool {
    let Some((salt, hash)) = stored.split_once(':') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (hex::decode(salt), hex::decode(hash)) else {
        return false;
    };
    mac(&salt, key).ct_eq(&hash).into()
}

/// Checks that the request's SSE-C key is the one an object was written
/// with (S3: 400 without a key, 403 with a wrong one).
pub fn check_customer_key<'a>(
    sse: &str,
    stored_hash: &str,
    given: Option<&'a CustomerKey>,
) -> S3Result<Option<&'a CustomerKey>> {
    match (sse == SSE_C, given) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(s3_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object."
        )),
        (true, None) => Err(s3_error!(
            InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters \
             must be provided to retrieve the object."
        )),
        (true, Some(k)) if key_matches(stored_hash, &k.key) => Ok(Some(k)),
        (true, Some(_)) => Err(s3_error!(
            AccessDenied,
            "The provided customer key does not match the object's key."
        )),
    }
}

/// What a wrapped data key is bound to: its segment (or inline object),
/// and for SSE-KMS the secret, so a wrapped key cannot be opened as another
/// secret's.
fn customer_context(file_id: &str, key: &CustomerKey) -> Vec<u8> {
    match &key.kms_key_id {
        None => format!("s3-sse-c/{file_id}").into_bytes(),
        Some(id) => format!("s3-sse-kms/{id}/{file_id}").into_bytes(),
    }
}

impl ObjectStore {
    /// A fresh data key for segment `file_id` (or an inline object's
    /// identity) and its wrapped form.
    pub(crate) async fn segment_key(
        &self,
        project_id: &str,
        file_id: &str,
        customer: Option<&CustomerKey>,
    ) -> S3Result<SegmentKey> {
        match customer {
            Some(c) => {
                let key = Key::generate();
                let wrapped = wrap_key(&c.key, &key, &customer_context(file_id, c));
                Ok(SegmentKey {
                    key,
                    kind: KeyKind::Customer,
                    wrapped,
                })
            }
            None => {
                let (key, wrapped) = self
                    .keyring()
                    .new_data_key(project_id, file_id.as_bytes())
                    .await
                    .map_err(kms_error)?;
                Ok(SegmentKey {
                    key,
                    kind: KeyKind::Project,
                    wrapped,
                })
            }
        }
    }

    /// Opens the data key stored with segment `file_id`.
    pub(crate) async fn open_segment_key(
        &self,
        project_id: &str,
        file_id: &str,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Key> {
        let (kind, wrapped) = self.engine().read_key(file_id).await.map_err(|e| {
            tracing::error!(file = %file_id, error = %e, "reading an object segment");
            s3_error!(InternalError)
        })?;
        self.open_data_key(project_id, file_id, kind, &wrapped, customer)
            .await
    }

    /// Opens a data key stored as `wrapped` for `identity` (a segment's
    /// file id, or the identity of an inline object).
    pub(crate) async fn open_data_key(
        &self,
        project_id: &str,
        identity: &str,
        kind: KeyKind,
        wrapped: &[u8],
        customer: Option<&CustomerKey>,
    ) -> S3Result<Key> {
        match (kind, customer) {
            (KeyKind::Project, _) => self
                .keyring()
                .open_data_key(project_id, identity.as_bytes(), wrapped)
                .await
                .map_err(kms_error),
            (KeyKind::Customer, Some(c)) => {
                unwrap_key(&c.key, wrapped, &customer_context(identity, c)).map_err(|_| {
                    s3_error!(
                        AccessDenied,
                        "The provided customer key does not open this object."
                    )
                })
            }
            (KeyKind::Customer, None) => Err(s3_error!(
                InvalidRequest,
                "The object was stored using a form of Server Side Encryption. The correct \
                 parameters must be provided to retrieve the object."
            )),
        }
    }
}

pub(crate) fn kms_error(e: himmel_kms::KmsError) -> s3s::S3Error {
    tracing::error!(error = %e, "key hierarchy");
    match e {
        // Stored data (or its wrapped key) failed its integrity check:
        // damaged or moved, not a key hierarchy that is away for a while.
        himmel_kms::KmsError::Corrupted(_) => s3_error!(InternalError),
        _ => s3_error!(ServiceUnavailable, "The project's keys are not available."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_keys_are_checked_and_only_a_salted_hash_is_kept() {
        let raw = [5u8; 32];
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let md5 = {
            use s3s::crypto::{Checksum as _, Md5};
            let mut h = Md5::new();
            h.update(&raw);
            base64::engine::general_purpose::STANDARD.encode(h.finalize())
        };
        let k = customer_key(Some("AES256"), Some(&b64), Some(&md5))
            .unwrap()
            .unwrap();
        assert!(customer_key(Some("AES256"), Some(&b64), Some("AAAA")).is_err());
        assert!(customer_key(Some("AES128"), Some(&b64), Some(&md5)).is_err());
        assert!(customer_key(Some("AES256"), Some("c2hvcnQ="), Some(&md5)).is_err());
        assert!(customer_key(Some("AES256"), None, None).is_err());
        let h1 = key_hash(&k.key);
        let h2 = key_hash(&k.key);
        assert_ne!(h1, h2, "salted");
        assert!(!h1.contains(&hex::encode(raw)));
        assert!(key_matches(&h1, &k.key));
        assert!(!key_matches(&h1, &Key::from_bytes([6u8; 32])));
        assert!(check_customer_key(SSE_C, &h1, None).is_err());
        assert!(check_customer_key(SSE_C, &h1, Some(&k)).is_ok());
        assert!(check_customer_key(SSE_S3, "", Some(&k)).is_err());
    }
}
