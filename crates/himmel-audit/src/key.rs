//! The region's Ed25519 audit signing key, kept in a file readable by the
//! owner only (PKCS#8 PEM).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// File name of the key inside the data dir.
pub const KEY_FILE_NAME: &str = "audit-signing-key.pem";

/// The signing key; the public half is what verifiers need.
#[derive(Clone)]
pub struct AuditKey {
    signing: SigningKey,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// Loads the key at `path`, or creates it (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> anyhow::Result<AuditKey> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                check_private_mode(path)?;
                let signing = SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("audit key {}: {e}", path.display()))?;
                Ok(AuditKey { signing })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(e).with_context(|| format!("reading audit key {}", path.display())),
        }
    }

    /// Loads the key at `path`; fails when there is none (verification
    /// must never invent a key).
    pub fn load(path: &Path) -> anyhow::Result<AuditKey> {
        if !path.exists() {
            bail!("no audit key at {}", path.display());
        }
        Self::load_or_create(path)
    }

    fn create(path: &Path) -> anyhow::Result<AuditKey> {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let pem = signing
            .to_pkcs8_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("encoding audit key: {e}"))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts
            .open(path)
            .with_context(|| format!("creating audit key {}", path.display()))?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        Ok(AuditKey { signing })
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// Short id naming the key in checkpoints.
    pub fn key_id(&self) -> String {
        key_id(&self.verifying_key())
    }

    /// The public key as hex (32 bytes), as carried in exports.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.verifying_key().as_bytes())
    }

    /// The public key as SubjectPublicKeyInfo PEM, for other tools.
    pub fn public_key_pem(&self) -> anyhow::Result<String> {
        self.verifying_key()
            .to_public_key_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("encoding public key: {e}"))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.signing.sign(message).to_bytes())
    }
}

/// Key id: the first 16 hex digits of SHA-256 over the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Parses a hex public key as found in an export.
pub fn parse_public_key_hex(s: &str) -> anyhow::Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("public key is not 32 hex-encoded bytes")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("invalid public key: {e}"))
}

/// True when `signature_hex` is `key`'s signature over `message`.
pub fn signature_valid(key: &VerifyingKey, message: &[u8], signature_hex: &str) -> bool {
    let Some(bytes) = hex::decode(signature_hex)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    key.verify(message, &Signature::from_bytes(&bytes)).is_ok()
}

#[cfg(unix)]
fn check_private_mode(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "audit key {} is accessible by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_is_private_and_reloads_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let a = AuditKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = AuditKey::load_or_create(&path).unwrap();
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        assert_eq!(a.key_id(), b.key_id());
        let sig = a.sign(b"m");
        assert!(signature_valid(&b.verifying_key(), b"m", &sig));
        assert!(!signature_valid(&b.verifying_key(), b"n", &sig));
        assert!(a.public_key_pem().unwrap().contains("PUBLIC KEY"));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_key_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        AuditKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AuditKey::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
