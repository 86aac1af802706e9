//! Compute microversions: `OpenStack-API-Version: compute 2.X` (or the older
//! `X-OpenStack-Nova-API-Version: 2.X`) in, the version used out. Absent
//! means the minimum, `latest` the maximum; anything outside is a 406, as
//! in Nova.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Minor versions of 2.x this API offers.
pub const MIN: u32 = 1;
pub const MAX: u32 = 1;

/// The microversion of a request (the minor number of 2.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion(pub u32);

impl<S: Send + Sync> FromRequestParts<S> for Microversion {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Microversion>()
            .copied()
            .unwrap_or(Microversion(MIN)))
    }
}

/// The version asked for, if any: `Err` names a malformed or unsupported one.
fn requested(headers: &HeaderMap) -> Result<Option<Microversion>, String> {
    let new_style = headers
        .get_all("openstack-api-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|v| {
            let mut it = v.split_whitespace();
            match (it.next(), it.next()) {
                (Some(service), Some(version)) if service.eq_ignore_ascii_case("compute") => {
                    Some(version.to_string())
                }
                _ => None,
            }
        });
    let old_style = headers
        .get("x-openstack-nova-api-version")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    let Some(text) = new_style.or(old_style) else {
        return Ok(None);
    };
    if text.eq_ignore_ascii_case("latest") {
        return Ok(Some(Microversion(MAX)));
    }
    let invalid = || format!("Invalid format for API version: {text}. Expected 'X.Y'.");
    let (major, minor) = text.split_once('.').ok_or_else(invalid)?;
    let major: u32 = major.parse().map_err(|_| invalid())?;
    let minor: u32 = minor.parse().map_err(|_| invalid())?;
    if major != 2 || !(MIN..=MAX).contains(&minor) {
        return Err(format!(
            "Version {text} is not supported by the API. Minimum is 2.{MIN} and maximum is 2.{MAX}."
        ));
    }
    Ok(Some(Microversion(minor)))
}

/// Middleware: reads the version into the request, writes it on the response.
pub async fn negotiate(mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // The legacy v2 API knows no microversions: it ignores the headers and
    // answers none.
    let legacy = path == "/v2" || path.starts_with("/v2/");
    let version = match requested(req.headers()) {
        _ if legacy => Microversion(MIN),
        Ok(v) => v.unwrap_or(Microversion(MIN)),
        Err(message) => {
            let status = if message.starts_with("Invalid format") {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::NOT_ACCEPTABLE
            };
            let key = if status == StatusCode::BAD_REQUEST {
                "badRequest"
            } else {
                "computeFault"
            };
            let body = json!({ key: {"code": status.as_u16(), "message": message} });
            return (status, axum::Json(body)).into_response();
        }
    };
    req.extensions_mut().insert(version);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if !legacy {
        if let Ok(v) = HeaderValue::from_str(&format!("compute 2.{}", version.0)) {
            h.insert("openstack-api-version", v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("2.{}", version.0)) {
            h.insert("x-openstack-nova-api-version", v);
        }
        h.insert(
            "vary",
            HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
        );
    }
    // Nova names the request id a second time; clients (Tempest's instance actions) read it.
    if let Some(id) = h.get("x-openstack-request-id").cloned() {
        h.insert("x-compute-request-id", id);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn versions_are_read_from_either_header() {
        assert_eq!(requested(&headers(&[])), Ok(None));
        assert_eq!(
            requested(&headers(&[("openstack-api-version", "compute 2.1")])),
            Ok(Some(Microversion(1)))
        );
        assert_eq!(
            requested(&headers(&[("x-openstack-nova-api-version", "latest")])),
            Ok(Some(Microversion(MAX)))
        );
        assert!(requested(&headers(&[("openstack-api-version", "compute 2.999")])).is_err());
        assert!(requested(&headers(&[("openstack-api-version", "compute two")])).is_err());
        // Another service's version is not ours.
        assert_eq!(
            requested(&headers(&[("openstack-api-version", "volume 3.9")])),
            Ok(None)
        );
    }
}
