//! Payload content types and encodings, as Barbican defines them: plain
//! text (UTF-8) and binary (`application/octet-stream`,
//! `application/pkcs8`), binary sent base64-encoded inside JSON.

use base64::Engine;

/// The content types a payload may be stored and retrieved as.
pub const SUPPORTED: &[&str] = &[
    "text/plain",
    "text/plain;charset=utf-8",
    "text/plain; charset=utf-8",
    "application/octet-stream",
    "application/pkcs8",
];

pub const TEXT: &str = "text/plain";
pub const OCTET_STREAM: &str = "application/octet-stream";
const PKCS8: &str = "application/pkcs8";

/// Barbican's `max_allowed_secret_in_bytes` default.
pub const MAX_SECRET_BYTES: usize = 10_000;
/// Barbican's `max_allowed_request_size_in_bytes` default.
pub const MAX_REQUEST_BYTES: usize = 25_000;

/// The internal form of a content type (`text/plain`,
/// `application/octet-stream` or `application/pkcs8`), or `None` when it
/// is not supported. A `charset` parameter must name UTF-8.
pub fn normalize(content_type: &str) -> Option<&'static str> {
    let mut parts = content_type.split(';').map(str::trim);
    let mime = parts.next()?.to_ascii_lowercase();
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset")
            || !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return None;
        }
    }
    match mime.as_str() {
        "text/plain" => Some(TEXT),
        "application/octet-stream" => Some(OCTET_STREAM),
        "application/pkcs8" => Some(PKCS8),
        _ => None,
    }
}

pub fn is_binary(normalized: &str) -> bool {
    normalized != TEXT
}

/// The encodings a JSON payload of this (normalized) type may be sent in:
/// binary needs base64, text takes none.
pub fn encoding_allowed(normalized: &str, encoding: Option<&str>) -> bool {
    if is_binary(normalized) {
        encoding == Some("base64")
    } else {
        encoding.is_none()
    }
}

/// What Barbican says the allowed encodings are, for error messages.
pub fn supported_encodings(normalized: &str) -> &'static str {
    if is_binary(normalized) {
        "['base64', 'binary']"
    } else {
        "None"
    }
}

/// Decodes base64 the way clients send it (standard alphabet, padded;
/// line breaks tolerated).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
}

/// How a stored payload is answered for an `Accept` header: the content
/// type to send, or `None` when it cannot be given in that form.
pub fn answer_type(accept: Option<&str>, stored: &str, payload: &[u8]) -> Option<&'static str> {
    let wanted = match accept.map(str::trim) {
        None | Some("") | Some("*/*") => normalize(stored)?,
        Some(a) => normalize(a)?,
    };
    if wanted == TEXT && std::str::from_utf8(payload).is_err() {
        return None;
    }
    Some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_normalize_like_barbican() {
        assert_eq!(normalize("text/plain"), Some(TEXT));
        assert_eq!(normalize("text/plain; charset=utf-8"), Some(TEXT));
        assert_eq!(normalize("TEXT/PLAIN;charset=UTF-8"), Some(TEXT));
        assert_eq!(normalize("application/octet-stream"), Some(OCTET_STREAM));
        assert_eq!(normalize("text/plain; charset=latin-1"), None);
        assert_eq!(normalize("text/plain; charset"), None);
        assert_eq!(normalize("application/json"), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn binary_needs_base64_and_text_takes_no_encoding() {
        assert!(encoding_allowed(OCTET_STREAM, Some("base64")));
        assert!(!encoding_allowed(OCTET_STREAM, None));
        assert!(encoding_allowed(TEXT, None));
        assert!(!encoding_allowed(TEXT, Some("base64")));
    }

    #[test]
    fn base64_is_checked() {
        assert_eq!(decode_base64("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode_base64("aG\nk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode_base64("not base64!"), None);
        assert_eq!(decode_base64("aGk"), None);
    }

    #[test]
    fn binary_payloads_are_not_served_as_text() {
        assert_eq!(answer_type(None, TEXT, b"hi"), Some(TEXT));
        assert_eq!(
            answer_type(Some("*/*"), OCTET_STREAM, b"\xff"),
            Some(OCTET_STREAM)
        );
        assert_eq!(
            answer_type(Some("application/octet-stream"), TEXT, b"hi"),
            Some(OCTET_STREAM)
        );
        assert_eq!(
            answer_type(Some("text/plain"), OCTET_STREAM, b"\xff\xfe"),
            None
        );
        assert_eq!(answer_type(Some("image/png"), TEXT, b"hi"), None);
    }
}
