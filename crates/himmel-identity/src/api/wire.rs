//! Request bodies and list queries as Keystone validates them: 400 with the
//! field's name for a wrong type, a missing field or an oversized value.
//! Shared by the domain, project, user and group routes.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use himmel_core::Error;
use himmel_http::AuditTargetId;
use serde_json::{json, Map, Value};

pub type Obj = Map<String, Value>;

pub fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("Invalid input for field '{field}': {why}."))
}

/// A value for an error message, cut short so a huge value stays out.
fn shown(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn not_of_type(field: &str, v: &Value, ty: &str) -> Error {
    invalid(field, format!("{} is not of type '{ty}'", shown(v)))
}

/// The `{"<kind>": {…}}` wrapper every create and update body has.
pub fn resource<'a>(body: &'a Value, kind: &str) -> Result<&'a Obj, Error> {
    match body.get(kind) {
        Some(Value::Object(o)) => Ok(o),
        Some(v) => Err(not_of_type(kind, v, "object")),
        None => Err(invalid(kind, format!("'{kind}' is a required property"))),
    }
}

pub fn required(o: &Obj, field: &str) -> Result<(), Error> {
    if o.contains_key(field) {
        Ok(())
    } else {
        Err(invalid(field, format!("'{field}' is a required property")))
    }
}

/// An optional string (null not allowed).
pub fn string<'a>(o: &'a Obj, field: &str) -> Result<Option<&'a str>, Error> {
    match o.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(not_of_type(field, v, "string")),
    }
}

/// An optional string that may be null: `Some(None)` means null.
pub fn nullable_string<'a>(o: &'a Obj, field: &str) -> Result<Option<Option<&'a str>>, Error> {
    match o.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s))),
        Some(v) => Err(not_of_type(field, v, "string")),
    }
}

/// A name: a string of 1..=`max` characters with at least one that is
/// not white space.
pub fn name(o: &Obj, field: &str, max: usize) -> Result<Option<String>, Error> {
    let Some(s) = string(o, field)? else {
        return Ok(None);
    };
    check_name(field, s, max)?;
    Ok(Some(s.to_string()))
}

pub fn check_name(field: &str, s: &str, max: usize) -> Result<(), Error> {
    if s.is_empty() {
        return Err(invalid(field, "'' is too short"));
    }
    if s.chars().count() > max {
        return Err(invalid(
            field,
            format!("the value is longer than {max} characters"),
        ));
    }
    if s.trim().is_empty() {
        return Err(invalid(field, format!("'{s}' does not match '[\\S]+'")));
    }
    Ok(())
}

pub fn boolean(o: &Obj, field: &str) -> Result<Option<bool>, Error> {
    match o.get(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(not_of_type(field, v, "boolean")),
    }
}

/// An id reference (`domain_id`, `parent_id`, …): 1..=64 characters of
/// letters, digits and dashes. `Some(None)` means an explicit null.
pub fn id_ref(o: &Obj, field: &str, nullable: bool) -> Result<Option<Option<String>>, Error> {
    let v = match o.get(field) {
        None => return Ok(None),
        Some(Value::Null) if nullable => return Ok(Some(None)),
        Some(v) => v,
    };
    let s = v.as_str().ok_or_else(|| not_of_type(field, v, "string"))?;
    check_id(field, s)?;
    Ok(Some(Some(s.to_string())))
}

pub fn check_id(field: &str, s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("'{}' is not a valid id", shown(&Value::from(s))),
        ))
    }
}

/// Attributes the schema does not know, kept as Keystone keeps them.
/// `reserved` are read-only attributes a client may not set.
pub fn extra(o: &Obj, known: &[&str], reserved: &[&str]) -> Result<Obj, Error> {
    let mut out = Obj::new();
    for (k, v) in o {
        if reserved.contains(&k.as_str()) {
            return Err(invalid(k, "the attribute is read-only"));
        }
        if !known.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// Merges an update's unknown attributes into the stored ones; a null
/// removes the attribute.
pub fn merge_extra(stored: &Value, update: Obj) -> Value {
    let mut out = stored.as_object().cloned().unwrap_or_default();
    for (k, v) in update {
        if v.is_null() {
            out.remove(&k);
        } else {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

/// `{"<plural>": [...], "links": {...}}`.
pub fn list(plural: &str, path: &str, items: Vec<Value>) -> Value {
    json!({plural: items, "links": {"self": path, "previous": null, "next": null}})
}

/// 201 with `{"<kind>": …}`, naming the new resource for the audit trail.
pub fn created(kind: &str, id: &str, v: Value) -> Response {
    let mut resp = (StatusCode::CREATED, axum::Json(json!({kind: v}))).into_response();
    resp.extensions_mut().insert(AuditTargetId(id.to_string()));
    resp
}

/// List query parameters with Keystone's filter semantics.
pub struct Filters(pub HashMap<String, String>);

impl Filters {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Keystone reads `0`, `false`, `no`, `off`, `n` and `f` as false.
    pub fn boolean(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off" | "n" | "f"
            )
        })
    }

    /// Exact and inexact (`__contains`, `__icontains`, `__startswith`,
    /// `__istartswith`, `__endswith`, `__iendswith`) filters on `attr`.
    pub fn text(&self, attr: &str, value: &str) -> bool {
        let lower = value.to_lowercase();
        self.0.iter().all(|(k, want)| {
            let Some(op) = k.strip_prefix(attr) else {
                return true;
            };
            let wl = want.to_lowercase();
            match op {
                "" => value == want,
                "__contains" => value.contains(want.as_str()),
                "__icontains" => lower.contains(&wl),
                "__startswith" => value.starts_with(want.as_str()),
                "__istartswith" => lower.starts_with(&wl),
                "__endswith" => value.ends_with(want.as_str()),
                "__iendswith" => lower.ends_with(&wl),
                _ => true,
            }
        })
    }
}

/// An update body may repeat the resource's id, but not change it.
pub fn same_id(o: &Obj, kind: &str, id: &str) -> Result<(), Error> {
    match o.get("id").filter(|v| v.as_str() != Some(id)) {
        Some(v) => Err(invalid("id", format!("{v}: cannot change a {kind}'s id"))),
        None => Ok(()),
    }
}
