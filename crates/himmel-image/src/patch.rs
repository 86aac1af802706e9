//! Setting and removing image attributes, shared by create (`POST`) and
//! the JSON-patch update (`application/openstack-images-v2.1-json-patch`):
//! core attributes are typed and checked, read-only and reserved ones are
//! refused with 403 as in Glance, everything else is a free-form property
//! with a string value.

use himmel_core::Error;
use serde_json::Value;

use crate::model::{self, Image, Status, Visibility};

/// The media types Glance accepts for a patch.
pub const PATCH_MEDIA_TYPES: &[&str] = &[
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
];

fn forbidden_attribute(key: &str) -> Option<Error> {
    if model::READ_ONLY.contains(&key) {
        Some(Error::Forbidden(format!("Attribute '{key}' is read-only.")))
    } else if model::RESERVED.contains(&key) || key.starts_with("os_glance") {
        Some(Error::Forbidden(format!("Attribute '{key}' is reserved.")))
    } else {
        None
    }
}

fn bad(key: &str, want: &str) -> Error {
    Error::BadRequest(format!("Invalid value for '{key}': {want} expected."))
}

fn opt_string(key: &str, v: &Value, max: usize) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= max => Ok(Some(s.clone())),
        Value::String(_) => Err(Error::BadRequest(format!(
            "Invalid value for '{key}': longer than {max} characters."
        ))),
        _ => Err(bad(key, "a string")),
    }
}

fn count(key: &str, v: &Value) -> Result<u64, Error> {
    v.as_u64()
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| bad(key, "a non-negative integer"))
}

fn boolean(key: &str, v: &Value) -> Result<bool, Error> {
    v.as_bool().ok_or_else(|| bad(key, "a boolean"))
}

/// Checks one tag: 1..=255 characters.
pub fn check_tag(tag: &str) -> Result<(), Error> {
    if tag.is_empty() || tag.chars().count() > 255 {
        return Err(Error::BadRequest(format!(
            "Invalid tag '{tag}': tags are 1 to 255 characters long."
        )));
    }
    Ok(())
}

/// Sets attribute or property `key` of `image` to `value`.
pub fn set(image: &mut Image, key: &str, value: &Value) -> Result<(), Error> {
    if let Some(e) = forbidden_attribute(key) {
        return Err(e);
    }
    match key {
        "name" => image.name = opt_string(key, value, 255)?,
        "visibility" => {
            let v = value.as_str().ok_or_else(|| bad(key, "a string"))?;
            image.visibility = Visibility::parse(v)?;
        }
        "protected" => image.protected = boolean(key, value)?,
        "os_hidden" => image.os_hidden = boolean(key, value)?,
        "disk_format" | "container_format" => {
            let v = opt_string(key, value, 255)?;
            if let Some(f) = &v {
                if key == "disk_format" {
                    model::check_disk_format(f)?;
                } else {
                    model::check_container_format(f)?;
                }
            }
            let current = if key == "disk_format" {
                &mut image.disk_format
            } else {
                &mut image.container_format
            };
            if *current != v && image.status != Status::Queued {
                return Err(Error::Forbidden(format!(
                    "Attribute {key} can be only replaced for a queued image."
                )));
            }
            *current = v;
        }
        "min_disk" => image.min_disk = count(key, value)?,
        "min_ram" => image.min_ram = count(key, value)?,
        "owner" => {
            image.owner = opt_string(key, value, 255)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad(key, "a project id"))?
        }
        "tags" => {
            let list = value.as_array().ok_or_else(|| bad(key, "a list of tags"))?;
            let mut tags = std::collections::BTreeSet::new();
            for t in list {
                let t = t.as_str().ok_or_else(|| bad(key, "a list of strings"))?;
                check_tag(t)?;
                tags.insert(t.to_string());
            }
            image.tags = tags;
        }
        _ => {
            let v = model::check_property(key, value)?;
            image.properties.insert(key.to_string(), v);
        }
    }
    Ok(())
}

/// Removes property `key`; core attributes cannot be removed.
pub fn remove(image: &mut Image, key: &str) -> Result<(), Error> {
    if let Some(e) = forbidden_attribute(key) {
        return Err(e);
    }
    if model::SETTABLE.contains(&key) {
        return Err(Error::Forbidden(format!(
            "Attribute '{key}' cannot be removed."
        )));
    }
    image
        .properties
        .remove(key)
        .map(|_| ())
        .ok_or_else(|| Error::Conflict(format!("Property {key} does not exist.")))
}

fn is_core(key: &str) -> bool {
    model::SETTABLE.contains(&key)
}

/// The operation name and path of one patch object: the standard form
/// `{"op": "replace", "path": "/name"}` (v2.1 media type) or the older
/// draft form `{"replace": "/name"}` that clients still send with the v2.0
/// media type.
fn operation(obj: &serde_json::Map<String, Value>) -> Result<(&str, &str), Error> {
    if let Some(name) = obj.get("op") {
        let name = name
            .as_str()
            .ok_or_else(|| Error::BadRequest("'op' must be a string.".into()))?;
        let path = obj
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadRequest("Operation objects must contain 'path'.".into()))?;
        return Ok((name, path));
    }
    let mut named = ["add", "replace", "remove"]
        .into_iter()
        .filter_map(|name| obj.get(name).map(|path| (name, path)));
    match (named.next(), named.next()) {
        (Some((name, path)), None) => {
            let path = path.as_str().ok_or_else(|| {
                Error::BadRequest(format!("The path of operation '{name}' must be a string."))
            })?;
            Ok((name, path))
        }
        (Some(_), Some(_)) => Err(Error::BadRequest(
            "An operation object names exactly one of add, replace or remove.".into(),
        )),
        (None, _) => Err(Error::BadRequest(
            "Operation objects must contain 'op' and 'path'.".into(),
        )),
    }
}

/// Applies a JSON-patch document (a list of add/replace/remove operations
/// on top-level paths) to `image`.
pub fn apply(image: &mut Image, doc: &Value) -> Result<(), Error> {
    let ops = doc.as_array().ok_or_else(|| {
        Error::BadRequest("Request body must be a JSON array of operation objects.".into())
    })?;
    for op in ops {
        let obj = op
            .as_object()
            .ok_or_else(|| Error::BadRequest("Operations must be JSON objects.".into()))?;
        let (name, path) = operation(obj)?;
        let key = parse_path(path)?;
        match name {
            "add" | "replace" => {
                let value = obj.get("value").ok_or_else(|| {
                    Error::BadRequest(format!("Operation '{name}' must contain 'value'."))
                })?;
                if name == "replace"
                    && !is_core(&key)
                    && forbidden_attribute(&key).is_none()
                    && !image.properties.contains_key(&key)
                {
                    return Err(Error::Conflict(format!("Property {key} does not exist.")));
                }
                set(image, &key, value)?;
            }
            "remove" => remove(image, &key)?,
            other => {
                return Err(Error::BadRequest(format!(
                    "Operation '{other}' is not supported: use add, replace or remove."
                )))
            }
        }
    }
    Ok(())
}

/// `/name` -> `name` (JSON pointer escapes decoded); only top-level paths.
fn parse_path(path: &str) -> Result<String, Error> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Error::BadRequest(format!(
            "Invalid JSON pointer '{path}': it must start with '/'."
        )));
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(Error::BadRequest(format!(
            "Invalid path '{path}': only top-level attributes can be changed."
        )));
    }
    if rest.replace("~0", "").replace("~1", "").contains('~') {
        return Err(Error::BadRequest(format!(
            "Invalid JSON pointer '{path}': bad escape."
        )));
    }
    Ok(rest.replace("~1", "/").replace("~0", "~"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> Image {
        Image::new("i".into(), "p".into())
    }

    #[test]
    fn draft_form_names_the_operation_as_its_key() {
        let mut i = image();
        apply(
            &mut i,
            &json!([
                {"replace": "/name", "value": "debian"},
                {"add": "/os_distro", "value": "debian"},
            ]),
        )
        .unwrap();
        assert_eq!(i.name.as_deref(), Some("debian"));
        apply(&mut i, &json!([{"remove": "/os_distro"}])).unwrap();
        assert!(!i.properties.contains_key("os_distro"));
        for bad in [
            json!([{"add": "/a", "replace": "/a", "value": "x"}]),
            json!([{"replace": 3, "value": "x"}]),
            json!([{"value": "x"}]),
        ] {
            assert!(matches!(apply(&mut i, &bad), Err(Error::BadRequest(_))));
        }
    }

    #[test]
    fn patches_set_core_attributes_and_properties() {
        let mut i = image();
        apply(
            &mut i,
            &json!([
                {"op": "replace", "path": "/name", "value": "debian"},
                {"op": "add", "path": "/os_distro", "value": "debian"},
                {"op": "add", "path": "/min_ram", "value": 512},
                {"op": "add", "path": "/a~1b", "value": "x"},
            ]),
        )
        .unwrap();
        assert_eq!(i.name.as_deref(), Some("debian"));
        assert_eq!(i.properties["os_distro"], "debian");
        assert_eq!(i.properties["a/b"], "x");
        assert_eq!(i.min_ram, 512);
        apply(&mut i, &json!([{"op": "remove", "path": "/os_distro"}])).unwrap();
        assert!(!i.properties.contains_key("os_distro"));
    }

    #[test]
    fn patches_refuse_read_only_missing_and_malformed_changes() {
        let mut i = image();
        let status = |r: Result<(), Error>| r.unwrap_err().status().as_u16();
        assert_eq!(
            status(apply(
                &mut i,
                &json!([{"op": "replace", "path": "/status", "value": "active"}])
            )),
            403
        );
        assert_eq!(
            status(apply(
                &mut i,
                &json!([{"op": "add", "path": "/os_glance_import_task", "value": "x"}])
            )),
            403
        );
        assert_eq!(
            status(apply(
                &mut i,
                &json!([{"op": "replace", "path": "/nope", "value": "x"}])
            )),
            409
        );
        assert_eq!(
            status(apply(&mut i, &json!([{"op": "remove", "path": "/nope"}]))),
            409
        );
        assert_eq!(
            status(apply(&mut i, &json!([{"op": "move", "path": "/name"}]))),
            400
        );
        assert_eq!(status(apply(&mut i, &json!({"op": "add"}))), 400);
        assert_eq!(
            status(apply(
                &mut i,
                &json!([{"op": "add", "path": "/min_ram", "value": -1}])
            )),
            400
        );
        assert_eq!(
            status(apply(
                &mut i,
                &json!([{"op": "add", "path": "/a/b", "value": "x"}])
            )),
            400
        );
        i.status = Status::Active;
        i.disk_format = Some("raw".into());
        assert_eq!(
            status(apply(
                &mut i,
                &json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
            )),
            403
        );
    }
}
