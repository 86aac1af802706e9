//! Wire forms shared by the resources: timestamps, refs, Barbican's
//! validation errors, and field readers for JSON bodies.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use himmel_core::Error;
use himmel_http::AuditTargetId;
use serde_json::{json, Map, Value};

/// Barbican's timestamps: ISO 8601 without a zone (UTC).
pub fn timestamp(micros: i64) -> String {
    himmel_core::time::from_unix_micros(micros)
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// A client's JSON value for an error message, cut short: errors name
/// what was wrong without echoing whole request bodies.
pub fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 64 {
        text
    } else {
        format!("{}…", text.chars().take(64).collect::<String>())
    }
}

/// A request body that does not match the schema, in Barbican's words.
pub fn invalid(schema: &str, reason: &str, property: &str) -> Error {
    Error::BadRequest(format!(
        "Provided object does not match schema '{schema}': {reason}. Invalid property: '{property}'"
    ))
}

pub fn too_large() -> Error {
    Error::PayloadTooLarge("Provided information too large to process".into())
}

/// The resource id at the end of a `*_ref` URL (or a bare id).
pub fn id_from_ref(r: &str) -> &str {
    r.trim_end_matches('/').rsplit('/').next().unwrap_or(r)
}

/// A JSON body's object, or Barbican's schema error.
pub fn object<'a>(body: &'a Value, schema: &str) -> Result<&'a Map<String, Value>, Error> {
    body.as_object().ok_or_else(|| {
        invalid(
            schema,
            &format!("{} is not of type 'object'", shown(body)),
            "",
        )
    })
}

/// An optional string field of at most `max` characters.
pub fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    schema: &str,
    max: usize,
    nullable: bool,
) -> Result<Option<String>, Error> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) if nullable => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(
            schema,
            &format!("the value is longer than {max} characters"),
            key,
        )),
        Some(v) => Err(invalid(
            schema,
            &format!("{} is not of type 'string'", shown(v)),
            key,
        )),
    }
}

/// An optional integer field within `min..=max`.
pub fn opt_int(
    obj: &Map<String, Value>,
    key: &str,
    schema: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Some(n) => Err(invalid(
                schema,
                &format!("{n} is not between {min} and {max}"),
                key,
            )),
            None => Err(invalid(
                schema,
                &format!("{} is not of type 'integer'", shown(v)),
                key,
            )),
        },
    }
}

/// A 201 with a JSON body naming the new resource for the audit trail.
pub fn created(body: Value, location: Option<&str>, id: &str) -> Response {
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp.extensions_mut().insert(AuditTargetId(id.to_owned()));
    resp
}

/// An error the shared error type has no variant for (406), in
/// Barbican's body.
pub fn status_error(status: StatusCode, description: &str) -> Response {
    let body = json!({
        "code": status.as_u16(),
        "title": status.canonical_reason().unwrap_or("Error"),
        "description": description,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
