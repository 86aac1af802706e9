//! The `totp` method and per-user multi-factor rules.
//!
//! A user's TOTP secrets are credentials of type `totp` whose blob is the
//! base32 secret. Passcodes follow RFC 6238 as Keystone uses it: HMAC-SHA1,
//! 30 s steps, 6 digits; we accept the current step and one either side so
//! a client clock a little off still works.

use std::collections::BTreeSet;

use himmel_core::time::{from_unix_micros, iso_micro};
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

/// How long a receipt for a partial authentication stays valid (Keystone's
/// `[receipt] expiration` default).
const RECEIPT_SECONDS: i64 = 300;

/// A partial authentication: the methods that succeeded, for a follow-up
/// request that presents the `Openstack-Auth-Receipt` header plus the
/// missing methods. Sealed with the token keys, as Keystone does by
/// default; its payload never decodes as a token, nor a token as a receipt.
#[derive(Debug)]
pub struct Receipt {
    pub user_id: String,
    pub methods: Vec<String>,
    pub expires_at_us: i64,
}

impl Receipt {
    fn encode(&self) -> Vec<u8> {
        let v = rmpv::Value::Array(vec![
            rmpv::Value::from(self.user_id.as_str()),
            rmpv::Value::from(crate::fernet::methods_to_int(&self.methods)),
            rmpv::Value::from(self.expires_at_us),
        ]);
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &v).expect("writing to a Vec cannot fail");
        out
    }

    fn decode(bytes: &[u8]) -> Option<Receipt> {
        let v = rmpv::decode::read_value(&mut &bytes[..]).ok()?;
        let arr = v.as_array().filter(|a| a.len() == 3)?;
        Some(Receipt {
            user_id: arr[0].as_str()?.to_owned(),
            methods: crate::fernet::int_to_methods(arr[1].as_u64()?),
            expires_at_us: arr[2].as_i64()?,
        })
    }
}

/// Opens a receipt a client presented; any failure is a 401.
pub fn open_receipt(id: &Identity, receipt: &str) -> Result<Receipt, Error> {
    let invalid = || Error::Unauthorized("The auth receipt is not valid or has expired.".into());
    if receipt.len() > 1024 {
        return Err(invalid());
    }
    let padded = format!("{receipt}{}", "=".repeat((4 - receipt.len() % 4) % 4));
    let r = id
        .keys()
        .decrypt(&padded)
        .and_then(|b| Receipt::decode(&b))
        .ok_or_else(invalid)?;
    if r.expires_at_us <= crate::store::now_us() {
        return Err(invalid());
    }
    Ok(r)
}

/// A 401 that tells the client which methods are still missing, with a
/// receipt for the ones that succeeded.
#[derive(Debug)]
pub struct ReceiptRequired {
    pub receipt: String,
    pub body: Value,
    pub user_id: String,
}

async fn receipt_required(
    id: &Identity,
    user: &User,
    methods: &[String],
) -> Result<ReceiptRequired, Error> {
    let now = crate::store::now_us();
    let receipt = Receipt {
        user_id: user.id.clone(),
        methods: methods.to_vec(),
        expires_at_us: now + RECEIPT_SECONDS * 1_000_000,
    };
    let sealed = id.keys().encrypt(&receipt.encode());
    let domain = crate::store::domains::get(id.db(), &user.domain_id)
        .await?
        .ok_or_else(|| {
            Error::Unauthorized("The request you have made requires authentication.".into())
        })?;
    let iso = |us| iso_micro(from_unix_micros(us));
    let body = serde_json::json!({
        "receipt": {
            "methods": methods,
            "user": {
                "id": user.id,
                "name": user.name,
                "domain": {"id": domain.id, "name": domain.name},
            },
            "expires_at": iso(receipt.expires_at_us),
            "issued_at": iso(now),
        },
        "required_auth_methods": mfa_rules(user),
    });
    Ok(ReceiptRequired {
        receipt: sealed.trim_end_matches('=').to_owned(),
        body,
        user_id: user.id.clone(),
    })
}

/// Checks the user's `multi_factor_auth_rules` against the methods used;
/// when they fall short the answer is a receipt for what succeeded.
pub async fn check_mfa_rules(
    id: &Identity,
    user: &User,
    methods: &[String],
) -> Result<Result<(), ReceiptRequired>, Error> {
    if satisfies_mfa_rules(user, methods) {
        Ok(Ok(()))
    } else {
        Ok(Err(receipt_required(id, user, methods).await?))
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
