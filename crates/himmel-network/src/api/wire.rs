//! Request and response helpers shared by the resource modules.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use himmel_core::Error;
use himmel_http::AuditTargetId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::model::Meta;

/// The object under `key` of a request body (`{"network": {...}}`), read
/// as `T`. Unknown attributes and wrong types are Neutron's 400s.
pub fn body<T: DeserializeOwned>(mut v: Value, key: &str) -> Result<T, Error> {
    let inner = match v.get_mut(key) {
        Some(inner @ Value::Object(_)) => inner.take(),
        _ => {
            return Err(Error::BadRequest(format!(
                "Resource body required: expected an object under '{key}'."
            )))
        }
    };
    item(inner)
}

/// One resource's attributes read as `T`.
pub fn item<T: DeserializeOwned>(inner: Value) -> Result<T, Error> {
    serde_json::from_value(inner).map_err(|e| input_error(&e.to_string()))
}

/// The resources a create request asks for: one object under the singular
/// key (`{"network": {...}}`), or Neutron's bulk form, a list of objects
/// under the plural key (`{"networks": [{...}, ...]}`), created all or none.
pub struct CreateRequest {
    pub items: Vec<Value>,
    pub bulk: bool,
}

pub fn create_request(mut v: Value, singular: &str, plural: &str) -> Result<CreateRequest, Error> {
    if let Some(inner @ Value::Object(_)) = v.get_mut(singular) {
        return Ok(CreateRequest {
            items: vec![inner.take()],
            bulk: false,
        });
    }
    match v.get_mut(plural).map(Value::take) {
        Some(Value::Array(items)) if items.is_empty() => Err(Error::BadRequest(format!(
            "Resources required: the list under '{plural}' is empty."
        ))),
        Some(Value::Array(items)) => {
            if items.iter().any(|i| !i.is_object()) {
                return Err(Error::BadRequest(format!(
                    "Invalid input for operation: every item under '{plural}' must be an object."
                )));
            }
            Ok(CreateRequest { items, bulk: true })
        }
        _ => Err(Error::BadRequest(format!(
            "Resource body required: expected an object under '{singular}' or a list under '{plural}'."
        ))),
    }
}

fn input_error(serde_msg: &str) -> Error {
    if let Some(rest) = serde_msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return Error::BadRequest(format!("Unrecognized attribute(s) '{name}'"));
    }
    Error::BadRequest(format!("Invalid input for operation: {serde_msg}."))
}

/// For attributes where "absent" and "null" differ (`gateway_ip`,
/// `port_id`): absent is `None`, null is `Some(None)`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `If-Match: revision_number=N`: the change applies only to revision N.
pub fn check_if_match(headers: &HeaderMap, meta: &Meta) -> Result<(), Error> {
    for value in headers.get_all("if-match") {
        let text = value
            .to_str()
            .map_err(|_| Error::BadRequest("Invalid If-Match header.".into()))?;
        for part in text.split(',').map(str::trim) {
            if let Some(n) = part.strip_prefix("revision_number=") {
                let n: i64 = n.parse().map_err(|_| {
                    Error::BadRequest(format!("Invalid revision number in If-Match: {n}"))
                })?;
                if n != meta.revision_number {
                    return Err(Error::PreconditionFailed(format!(
                        "Constrained to {n}, but current revision is {}",
                        meta.revision_number
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A resource as JSON with `tenant_id` beside `project_id`, as Neutron shows.
pub fn to_object<R: serde::Serialize>(r: &R) -> Result<Map<String, Value>, Error> {
    let Value::Object(mut m) = serde_json::to_value(r).map_err(Error::internal)? else {
        return Err(Error::internal("resource is not an object"));
    };
    if let Some(p) = m.get("project_id").cloned() {
        m.insert("tenant_id".into(), p);
    }
    Ok(m)
}

/// `201 Created` with `{key: value}`, naming the new resource for the audit trail.
pub fn created(key: &str, id: &str, value: Value) -> Response {
    let mut body = Map::new();
    body.insert(key.to_string(), value);
    (
        StatusCode::CREATED,
        Extension(AuditTargetId(id.to_string())),
        axum::Json(Value::Object(body)),
    )
        .into_response()
}

/// `201 Created` with what a [`CreateRequest`] made: `{singular: value}`
/// for one, `{plural: [values]}` for a bulk create. `made` holds (id, value)
/// in request order.
pub fn created_all(
    request_was_bulk: bool,
    singular: &str,
    plural: &str,
    mut made: Vec<(String, Value)>,
) -> Response {
    if !request_was_bulk && made.len() == 1 {
        let (id, value) = made.remove(0);
        return created(singular, &id, value);
    }
    let ids: Vec<String> = made.iter().map(|(id, _)| id.clone()).collect();
    let values: Vec<Value> = made.into_iter().map(|(_, v)| v).collect();
    let mut body = Map::new();
    body.insert(plural.to_string(), Value::Array(values));
    (
        StatusCode::CREATED,
        Extension(AuditTargetId(ids.join(","))),
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

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Names must fit Neutron's 255 characters; descriptions too.
pub fn check_len(field: &str, v: &str) -> Result<(), Error> {
    if v.chars().count() > 255 {
        return Err(Error::BadRequest(format!(
            "Invalid input for {field}. Reason: '{v}' exceeds maximum length of 255."
        )));
    }
    Ok(())
}

/// Tags: at most 60 characters each, no commas or slashes (they separate
/// filter values and path segments).
pub fn check_tag(tag: &str) -> Result<(), Error> {
    if tag.is_empty() || tag.chars().count() > 60 || tag.contains(',') || tag.contains('/') {
        return Err(Error::BadRequest(format!(
            "Invalid input for operation: '{tag}' is not a valid tag."
        )));
    }
    Ok(())
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
