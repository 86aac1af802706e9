//! Errors on the wire. A handler returns [`ApiError`]; the pipeline renders
//! it in the format of the service the route belongs to, so a Keystone
//! route answers with Keystone's body and a Neutron route with Neutron's.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use himmel_core::Error;
use serde_json::json;

pub type ApiResult<T> = Result<T, ApiError>;

/// Wire formats of the error bodies of the OpenStack services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"error": {"code": 404, "title": "Not Found", "message": "…"}}`
    Keystone,
    /// `{"NeutronError": {"type": "…", "message": "…", "detail": ""}}`
    Neutron,
    /// `{"itemNotFound": {"code": 404, "message": "…"}}`
    Nova,
    /// `{"code": 404, "title": "Not Found", "description": "…"}` (Barbican)
    Barbican,
    /// `{"message": "…", "code": "404 Not Found", "title": "Not Found"}`
    /// (Glance: webob's JSON error body).
    Glance,
    /// Plain `{"message": "…"}`-style bodies (health, metrics).
    Plain,
}

/// A handler's error. Carries the error until the pipeline renders it.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The error travels to the pipeline inside the response's extensions.
#[derive(Debug, Clone)]
pub(crate) struct PendingError(pub Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.0.status().into_response();
        resp.extensions_mut().insert(PendingError(self.0));
        resp
    }
}

/// Renders `err` as `format`'s body.
pub fn render(format: ErrorFormat, err: &Error) -> Response {
    let status = err.status();
    let message = err.public_message();
    let body = match format {
        ErrorFormat::Keystone => json!({"error": {
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }}),
        ErrorFormat::Neutron => json!({"NeutronError": {
            "type": neutron_type(err),
            "message": message,
            "detail": "",
        }}),
        ErrorFormat::Nova => {
            let mut m = serde_json::Map::new();
            m.insert(
                nova_key(status).into(),
                json!({"code": status.as_u16(), "message": message}),
            );
            serde_json::Value::Object(m)
        }
        ErrorFormat::Barbican => json!({
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "description": message,
        }),
        ErrorFormat::Glance => {
            let title = status.canonical_reason().unwrap_or("Error");
            json!({
                "message": message,
                "code": format!("{} {title}", status.as_u16()),
                "title": title,
            })
        }
        ErrorFormat::Plain => json!({"message": message}),
    };
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn neutron_type(err: &Error) -> &'static str {
    match err {
        Error::NotFound(_) => "NotFound",
        Error::Conflict(_) => "Conflict",
        Error::Forbidden(_) => "PolicyNotAuthorized",
        Error::BadRequest(_) => "BadRequest",
        Error::Unauthorized(_) => "NotAuthenticated",
        Error::PreconditionFailed(_) => "PreconditionFailed",
        _ => "HTTPError",
    }
}

fn nova_key(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "unsupportedMediaType",
        501 => "notImplemented",
        _ => "computeFault",
    }
}
