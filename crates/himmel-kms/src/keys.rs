//! AES-256 keys and wrapping one key under another.
//!
//! A wrapped key is `nonce (12) || ciphertext (32) || tag (16)`, sealed with
//! AES-256-GCM under the wrapping key; the `context` (whose key this is:
//! project, key version, item) is bound as associated data, so a wrapped
//! key moved to another context does not unwrap.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::EnvelopeError;

pub const KEY_LEN: usize = 32;
pub const WRAPPED_LEN: usize = 12 + KEY_LEN + 16;

/// An AES-256 key. Wiped from memory when dropped; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    pub fn generate() -> Key {
        Key(rand::random())
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Key> {
        Some(Key(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

fn wrap_aad(context: &[u8]) -> Vec<u8> {
    let mut aad = b"himmel-wrap-v1".to_vec();
    aad.extend_from_slice(context);
    aad
}

/// Seals `key` under `kek`, bound to `context`.
pub fn wrap_key(kek: &Key, key: &Key, context: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = rand::random();
    let aad = wrap_aad(context);
    let sealed = kek
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: key.as_bytes(),
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of 32 bytes cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// Opens a key sealed by [`wrap_key`] with the same `kek` and `context`.
pub fn unwrap_key(kek: &Key, wrapped: &[u8], context: &[u8]) -> Result<Key, EnvelopeError> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(EnvelopeError::Corrupted(
            "a wrapped key has the wrong length".into(),
        ));
    }
    let aad = wrap_aad(context);
    let mut plain = kek
        .cipher()
        .decrypt(
            Nonce::from_slice(&wrapped[..12]),
            Payload {
                msg: &wrapped[12..],
                aad: &aad,
            },
        )
        .map_err(|_| {
            EnvelopeError::Corrupted("a wrapped key does not open with this key and context".into())
        })?;
    let key = Key::from_slice(&plain);
    plain.zeroize();
    key.ok_or_else(|| EnvelopeError::Corrupted("a wrapped key has the wrong length".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_open_only_with_their_kek_and_context() {
        let kek = Key::generate();
        let dk = Key::generate();
        let wrapped = wrap_key(&kek, &dk, b"project-1/v1");
        assert_eq!(
            unwrap_key(&kek, &wrapped, b"project-1/v1")
                .unwrap()
                .as_bytes(),
            dk.as_bytes()
        );
        assert!(unwrap_key(&kek, &wrapped, b"project-2/v1").is_err());
        assert!(unwrap_key(&Key::generate(), &wrapped, b"project-1/v1").is_err());
        let mut flipped = wrapped.clone();
        flipped[20] ^= 1;
        assert!(unwrap_key(&kek, &flipped, b"project-1/v1").is_err());
        assert!(unwrap_key(&kek, &wrapped[..30], b"project-1/v1").is_err());
        assert_eq!(format!("{dk:?}"), "Key(…)");
    }
}
