//! The `totp` method and per-user multi-factor rules.
//!
//! A user's TOTP secrets are credentials of type `totp` whose blob is the
//! base32 secret. Passcodes follow RFC 6238 as Keystone uses it: HMAC-SHA1,
//! 30 s steps, 6 digits; we accept the current step and one either side so
//! a client clock a little off still works.

use std::collections::BTreeSet;

use himmel_core::Error;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::{find_user, MethodResult};
use crate::store::users::User;
use crate::Identity;

const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;
/// Steps accepted before and after the current one.
const SKEW_STEPS: i64 = 1;

/// The methods this server implements; rules naming others are checked
/// only for the methods we know, as Keystone does, so a rule cannot lock
/// a user out by naming a method that is not enabled.
const LOADED_METHODS: &[&str] = &["password", "token", "application_credential", "totp"];

fn invalid_passcode() -> Error {
    Error::Unauthorized("Invalid username or TOTP passcode".into())
}

/// Decodes RFC 4648 base32 (case-insensitive, padding optional). `None` for
/// anything else or an empty secret.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The RFC 4226 one-time password for `counter`.
fn hotp(key: &[u8], counter: u64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let code = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        code % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// The passcode of the step containing `unix_seconds`.
pub fn passcode_at(key: &[u8], unix_seconds: i64) -> String {
    hotp(key, (unix_seconds.max(0) / STEP_SECONDS) as u64)
}

fn passcode_matches(key: &[u8], passcode: &str, now_s: i64) -> bool {
    (-SKEW_STEPS..=SKEW_STEPS).fold(false, |found, step| {
        let expected = passcode_at(key, now_s + step * STEP_SECONDS);
        found | bool::from(expected.as_bytes().ct_eq(passcode.as_bytes()))
    })
}

pub async fn authenticate(id: &Identity, section: &Value) -> Result<MethodResult, Error> {
    let user_ref = section
        .get("user")
        .filter(|u| u.is_object())
        .ok_or_else(|| Error::BadRequest("Invalid input for field 'user'.".into()))?;
    let passcode = user_ref
        .get("passcode")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest("Invalid input for field 'passcode'.".into()))?;
    let user = find_user(id, user_ref).await?;
    if !user.enabled || passcode.len() != DIGITS as usize {
        return Err(invalid_passcode());
    }
    let now_s = chrono::Utc::now().timestamp();
    let secrets = crate::store::credentials::list(id, Some(&user.id), Some("totp")).await?;
    let ok = secrets
        .iter()
        .filter_map(|c| decode_base32(&c.blob))
        .any(|key| passcode_matches(&key, passcode, now_s));
    if !ok {
        return Err(invalid_passcode());
    }
    Ok(MethodResult {
        user,
        parent_audit_id: None,
        expires_cap_us: None,
        methods: vec!["totp".into()],
        app_cred: None,
    })
}

/// The user's rules: lists of method names, each rule satisfied when every
/// one of its (implemented) methods was used. Malformed rules are ignored,
/// as Keystone ignores them. Empty when the rules are not enforced.
pub fn mfa_rules(user: &User) -> Vec<Vec<String>> {
    if user.options.get("multi_factor_auth_enabled") == Some(&Value::Bool(false)) {
        return vec![];
    }
    let Some(rules) = user
        .options
        .get("multi_factor_auth_rules")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    rules
        .iter()
        .filter_map(|rule| {
            let methods: BTreeSet<String> = rule
                .as_array()?
                .iter()
                .map(|m| m.as_str().map(str::to_owned))
                .collect::<Option<_>>()?;
            (!methods.is_empty()).then(|| methods.into_iter().collect())
        })
        .collect()
}

/// True when the methods used satisfy the user's multi-factor rules.
pub fn satisfies_mfa_rules(user: &User, methods: &[String]) -> bool {
    let rules = mfa_rules(user);
    rules.is_empty()
        || rules.iter().any(|rule| {
            rule.iter()
                .filter(|m| LOADED_METHODS.contains(&m.as_str()))
                .all(|m| methods.contains(m))
        })
}

/// Checks the user's `multi_factor_auth_rules` against the methods used.
pub fn check_mfa_rules(user: &User, methods: &[String]) -> Result<(), Error> {
    if satisfies_mfa_rules(user, methods) {
        Ok(())
    } else {
        Err(Error::Unauthorized(format!(
            "Insufficient auth methods received for {}. Auth Methods Provided [{}].",
            user.id,
            methods.join(",")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA1 seed, last 6 digits.
        let key = b"12345678901234567890";
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(passcode_at(key, t), code, "at {t}");
        }
    }

    #[test]
    fn base32_decodes_what_authenticator_apps_use() {
        assert_eq!(
            decode_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").as_deref(),
            Some(&b"12345678901234567890"[..])
        );
        assert_eq!(decode_base32("mzxw6==="), Some(b"foo".to_vec()));
        for bad in ["", "====", "not base32!", "01189"] {
            assert_eq!(decode_base32(bad), None, "{bad}");
        }
    }

    #[test]
    fn passcodes_match_one_step_either_side_only() {
        let key = b"12345678901234567890";
        let now = 1_700_000_000;
        assert!(passcode_matches(key, &passcode_at(key, now), now));
        assert!(passcode_matches(key, &passcode_at(key, now - 30), now));
        assert!(passcode_matches(key, &passcode_at(key, now + 30), now));
        assert!(!passcode_matches(key, &passcode_at(key, now - 90), now));
        assert!(!passcode_matches(key, "12345", now));
    }
}
