//! Password hashing (Argon2id, PHC strings) and the password rules.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use himmel_core::Error;

pub fn hash(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Keystone limits passwords to 4096 bytes before hashing.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// Passwords verified recently, so a user who logs in again and again (the
/// CLI does, per command) is not made to wait for Argon2 each time.
///
/// Only successes are kept, so guessing still pays the full Argon2 price
/// and still counts towards lockout. Entries are HMACs under a key that
/// exists only in this process's memory and cover the stored hash, so a
/// password change invalidates them; nothing reaches the disk.
pub struct VerifiedCache {
    key: [u8; 32],
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
}

const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(300);
const VERIFIED_MAX: usize = 10_000;

impl Default for VerifiedCache {
    fn default() -> Self {
        VerifiedCache {
            key: rand::random(),
            entries: Default::default(),
        }
    }
}

impl VerifiedCache {
    fn fingerprint(&self, user_id: &str, phc: &str, password: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        for part in [user_id, phc, password] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// Verifies `password` against `phc`, from the cache when it can.
    pub async fn verify(&self, user_id: &str, phc: &str, password: &str) -> Result<bool, Error> {
        let fp = self.fingerprint(user_id, phc, password);
        {
            let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if map.get(&fp).is_some_and(|at| at.elapsed() < VERIFIED_TTL) {
                return Ok(true);
            }
        }
        let (pw, hash) = (password.to_owned(), phc.to_owned());
        let ok = tokio::task::spawn_blocking(move || verify(&pw, &hash))
            .await
            .map_err(Error::internal)?;
        if ok {
            let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= VERIFIED_MAX {
                map.retain(|_, at| at.elapsed() < VERIFIED_TTL);
                if map.len() >= VERIFIED_MAX {
                    map.clear();
                }
            }
            map.insert(fp, std::time::Instant::now());
        }
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_verified_cache_never_admits_a_wrong_password() {
        let cache = super::VerifiedCache::default();
        let h = super::hash("pw-one").unwrap();
        assert!(!cache.verify("u", &h, "pw-two").await.unwrap());
        assert!(cache.verify("u", &h, "pw-one").await.unwrap());
        assert!(
            cache.verify("u", &h, "pw-one").await.unwrap(),
            "cached success"
        );
        assert!(
            !cache.verify("u", &h, "pw-two").await.unwrap(),
            "still refused after a cached success"
        );
        let changed = super::hash("pw-two").unwrap();
        assert!(
            !cache.verify("u", &changed, "pw-one").await.unwrap(),
            "a new hash invalidates"
        );
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let h = super::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong horse", &h));
        assert!(!super::verify("correct horse", "not a hash"));
    }
}
