//! Request and response helpers shared by the resource modules.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use himmel_core::{Error, RequestContext, Scope};
use himmel_http::{AuditTargetId, Target};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The object under `key` of a request body (`{"flavor": {...}}`), read as
/// `T`. Unknown attributes and wrong types are 400s worded like Nova's
/// schema errors.
pub fn body<T: DeserializeOwned>(mut v: Value, key: &str) -> Result<T, Error> {
    let inner = match v.get_mut(key) {
        Some(inner @ Value::Object(_)) => inner.take(),
        _ => {
            return Err(Error::BadRequest(format!(
            "Invalid input for field/attribute {key}. Value: {}. '{key}' is a required property",
            short(&v)
        )))
        }
    };
    serde_json::from_value(inner).map_err(|e| schema_error(&e.to_string()))
}

pub fn schema_error(serde_msg: &str) -> Error {
    if let Some(rest) = serde_msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return Error::BadRequest(format!(
            "Additional properties are not allowed ('{name}' was unexpected)"
        ));
    }
    Error::BadRequest(format!("Invalid input for field/attribute: {serde_msg}"))
}

/// A client value quoted briefly in an error message.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// `{key: value}` with `status`, naming the resource for the audit trail.
pub fn with_status(status: StatusCode, key: &str, id: &str, value: Value) -> Response {
    let mut body = Map::new();
    body.insert(key.to_string(), value);
    (
        status,
        Extension(AuditTargetId(id.to_string())),
        axum::Json(Value::Object(body)),
    )
        .into_response()
}

/// `200 OK` with `{key: value}`.
pub fn one(key: &str, value: Value) -> Response {
    let mut body = Map::new();
    body.insert(key.to_string(), value);
    axum::Json(Value::Object(body)).into_response()
}

pub fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// The base URL clients used to reach us, for links.
pub fn base_url(headers: &HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    format!(
        "{}://{}",
        header("x-forwarded-proto").unwrap_or("http"),
        header("host").unwrap_or("localhost")
    )
}

/// `{base}/compute/v2.1`, for links.
pub fn api_url(headers: &HeaderMap) -> String {
    format!("{}{}/v2.1", base_url(headers), crate::PATH_PREFIX)
}

/// Nova's `links` of a resource: self (versioned) and bookmark.
pub fn links(headers: &HeaderMap, collection: &str, id: &str) -> Value {
    let base = base_url(headers);
    serde_json::json!([
        {"rel": "self", "href": format!("{base}{}/v2.1/{collection}/{id}", crate::PATH_PREFIX)},
        {"rel": "bookmark", "href": format!("{base}{}/{collection}/{id}", crate::PATH_PREFIX)},
    ])
}

pub fn target(project_id: &str) -> Target {
    Target {
        project_id: Some(project_id.to_string()),
        ..Default::default()
    }
}

/// True for the cloud administrator (admin role on a scoped token).
pub fn is_admin(ctx: &RequestContext) -> bool {
    ctx.has_role("admin") && ctx.scope != Scope::Unscoped
}

/// The caller of a proxy onto the network service (security groups,
/// floating IPs, tenant networks). Nova's rule applies to the caller's own
/// project (as Nova's `context.can(..., target={'project_id':
/// context.project_id})`); which objects the caller then reaches is the
/// network service's visibility.
pub fn proxy_caller<'a>(
    ctx: &'a RequestContext,
    authz: &himmel_http::Authz,
) -> himmel_http::ApiResult<himmel_network::instance_ports::GroupCaller<'a>> {
    let project_id = ctx.project_id().unwrap_or_default();
    authz.check(&target(project_id))?;
    Ok(himmel_network::instance_ports::GroupCaller {
        project_id,
        admin: is_admin(ctx),
    })
}

/// Query string pairs, percent-decoded.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// One query parameter (the last one given).
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A non-negative integer query parameter, or a 400.
pub fn int_param(pairs: &[(String, String)], name: &str) -> Result<Option<u64>, Error> {
    match param(pairs, name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            Error::BadRequest(format!(
                "Invalid input for query parameters {name}. Value: {v}. '{v}' does not match '^[0-9]*$'"
            ))
        }),
    }
}

/// Boolean values Nova accepts in query strings and bodies.
pub fn parse_bool(name: &str, v: &str) -> Result<bool, Error> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(Error::BadRequest(format!(
            "Invalid input for field/attribute {name}. Value: {v}. '{v}' is not a boolean"
        ))),
    }
}

pub fn now() -> String {
    himmel_core::time::iso_seconds(himmel_core::time::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let p = query_pairs(Some("name=a%20b&x=1%2&flag&u=%C3%A4"));
        assert_eq!(param(&p, "name"), Some("a b"));
        assert_eq!(param(&p, "x"), Some("1%2"));
        assert_eq!(param(&p, "flag"), Some(""));
        assert_eq!(param(&p, "u"), Some("ä"));
    }
}
