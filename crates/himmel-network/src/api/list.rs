//! What every Neutron list accepts: filters on any attribute (repeat a key
//! for "any of"), tag filters, `fields`, `sort_key`/`sort_dir`, and
//! `limit`/`marker` pagination with `<collection>_links`.

use std::cmp::Ordering;

use himmel_core::Error;
use serde_json::{json, Map, Value};

/// Query keys that are not attribute filters.
const CONTROL_KEYS: &[&str] = &[
    "fields",
    "sort_key",
    "sort_dir",
    "limit",
    "marker",
    "page_reverse",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
];

/// The query string as repeated key/value pairs.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pairs: Vec<(String, String)>,
}

impl ListQuery {
    pub fn parse(raw: Option<&str>) -> ListQuery {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        ListQuery { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Comma-separated values of all occurrences of `key`.
    fn split(&self, key: &str) -> Vec<&str> {
        self.all(key)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The attribute filters: key and the values any of which must match.
    fn filters(&self) -> Vec<(&str, Vec<&str>)> {
        let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
        for (k, v) in &self.pairs {
            if CONTROL_KEYS.contains(&k.as_str()) {
                continue;
            }
            match out.iter_mut().find(|(key, _)| key == k) {
                Some((_, vals)) => vals.push(v),
                None => out.push((k, vec![v])),
            }
        }
        out
    }

    /// The query without `marker` (to build page links).
    fn without_marker(&self) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .filter(|(k, _)| k != "marker")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// True when an attribute value matches one filter value.
fn matches(value: &Value, want: &str) -> bool {
    match value {
        Value::String(s) => s == want,
        Value::Bool(b) => match want.to_ascii_lowercase().as_str() {
            "true" | "1" => *b,
            "false" | "0" => !*b,
            _ => false,
        },
        Value::Number(n) => n.to_string() == want,
        Value::Null => want.is_empty() || want.eq_ignore_ascii_case("none"),
        // A list matches when an element does; `key=value` matches an
        // object element (ports' `fixed_ips=ip_address=10.0.0.3`).
        Value::Array(items) => items.iter().any(|item| match item {
            Value::Object(o) => want
                .split_once('=')
                .and_then(|(k, v)| o.get(k).map(|x| matches(x, v)))
                .unwrap_or(false),
            other => matches(other, want),
        }),
        Value::Object(_) => false,
    }
}

fn tags_of(item: &Value) -> Vec<&str> {
    item.get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn keep(item: &Value, q: &ListQuery) -> bool {
    for (key, wanted) in q.filters() {
        // Filters on attributes a resource does not have are ignored, as
        // Neutron does without the filter-validation extension.
        if let Some(value) = item.get(key) {
            if !wanted.iter().any(|w| matches(value, w)) {
                return false;
            }
        }
    }
    let tags = tags_of(item);
    let all = q.split("tags");
    let any = q.split("tags-any");
    let not_all = q.split("not-tags");
    let not_any = q.split("not-tags-any");
    (all.iter().all(|t| tags.contains(t)))
        && (any.is_empty() || any.iter().any(|t| tags.contains(t)))
        && (not_all.is_empty() || !not_all.iter().all(|t| tags.contains(t)))
        && (not_any.is_empty() || !not_any.iter().any(|t| tags.contains(t)))
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

/// Applies the query to `items` (already rendered, already limited to what
/// the caller may see) and builds the list body.
pub fn respond(
    collection: &str,
    items: Vec<Value>,
    q: &ListQuery,
    self_url: &str,
) -> Result<Value, Error> {
    let mut items: Vec<Value> = items.into_iter().filter(|i| keep(i, q)).collect();

    let keys = q.all("sort_key");
    let dirs = q.all("sort_dir");
    if dirs.len() > keys.len().max(1) {
        return Err(bad(
            "The number of sort_keys and sort_dirs must be the same.",
        ));
    }
    let mut order: Vec<(&str, bool)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let descending = match dirs.get(i).copied().unwrap_or("asc") {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(bad(format!(
                    "Invalid input for sort_dir. Reason: '{other}' is not a valid sort direction (asc, desc)."
                )))
            }
        };
        order.push((key, descending));
    }
    if !order.is_empty() {
        order.push(("id", order.last().is_some_and(|(_, d)| *d)));
        items.sort_by(|a, b| {
            order
                .iter()
                .map(|(k, desc)| {
                    let o = compare(
                        a.get(*k).unwrap_or(&Value::Null),
                        b.get(*k).unwrap_or(&Value::Null),
                    );
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
    }

    if let Some(marker) = q.get("marker") {
        let at = items
            .iter()
            .position(|i| i.get("id").and_then(Value::as_str) == Some(marker))
            .ok_or_else(|| bad(format!("Marker {marker} could not be found.")))?;
        items.drain(..=at);
    }
    let limit = match q.get("limit") {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            // Neutron reads 0 and negative limits as "no limit".
            Ok(_) => None,
            Err(_) => {
                return Err(bad(format!(
                    "Invalid input for limit. Reason: '{s}' is not an integer."
                )))
            }
        },
    };
    let mut links = Vec::new();
    if let Some(limit) = limit {
        if items.len() > limit {
            items.truncate(limit);
        }
        if items.len() == limit {
            if let Some(last) = items
                .last()
                .and_then(|i| i.get("id"))
                .and_then(Value::as_str)
            {
                let mut s = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in q.without_marker() {
                    s.append_pair(k, v);
                }
                s.append_pair("marker", last);
                links.push(json!({"rel": "next", "href": format!("{self_url}?{}", s.finish())}));
            }
        }
    }

    let fields = q.split("fields");
    if !fields.is_empty() {
        items = items
            .into_iter()
            .map(|item| {
                let mut out = Map::new();
                for f in &fields {
                    if let Some(v) = item.get(*f) {
                        out.insert(f.to_string(), v.clone());
                    }
                }
                Value::Object(out)
            })
            .collect();
    }

    let mut body = Map::new();
    body.insert(collection.to_string(), Value::Array(items));
    if !links.is_empty() {
        body.insert(format!("{collection}_links"), Value::Array(links));
    }
    Ok(Value::Object(body))
}

/// `fields` on a single resource (`GET /networks/{id}?fields=name`).
pub fn project_fields(item: Value, q: &ListQuery) -> Value {
    let fields = q.split("fields");
    if fields.is_empty() {
        return item;
    }
    let mut out = Map::new();
    for f in fields {
        if let Some(v) = item.get(f) {
            out.insert(f.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> ListQuery {
        ListQuery::parse(Some(s))
    }

    fn items() -> Vec<Value> {
        vec![
            json!({"id": "a", "name": "net-b", "shared": false, "mtu": 1450, "tags": ["red"],
                   "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.3"}]}),
            json!({"id": "b", "name": "net-a", "shared": true, "mtu": 1500, "tags": ["red", "blue"],
                   "fixed_ips": []}),
            json!({"id": "c", "name": "net-c", "shared": false, "mtu": 1450, "tags": [], "fixed_ips": []}),
        ]
    }

    fn ids(v: &Value) -> Vec<&str> {
        v["things"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn filters_match_any_of_repeated_values_and_typed_attributes() {
        let r = respond("things", items(), &q("shared=True"), "u").unwrap();
        assert_eq!(ids(&r), ["b"]);
        let r = respond("things", items(), &q("name=net-b&name=net-c"), "u").unwrap();
        assert_eq!(ids(&r), ["a", "c"]);
        let r = respond("things", items(), &q("mtu=1450"), "u").unwrap();
        assert_eq!(ids(&r), ["a", "c"]);
        let r = respond(
            "things",
            items(),
            &q("fixed_ips=ip_address%3D10.0.0.3"),
            "u",
        )
        .unwrap();
        assert_eq!(ids(&r), ["a"]);
    }

    #[test]
    fn tag_filters() {
        assert_eq!(
            ids(&respond("things", items(), &q("tags=red,blue"), "u").unwrap()),
            ["b"]
        );
        assert_eq!(
            ids(&respond("things", items(), &q("tags-any=red"), "u").unwrap()),
            ["a", "b"]
        );
        assert_eq!(
            ids(&respond("things", items(), &q("not-tags=red,blue"), "u").unwrap()),
            ["a", "c"]
        );
        assert_eq!(
            ids(&respond("things", items(), &q("not-tags-any=blue"), "u").unwrap()),
            ["a", "c"]
        );
    }

    #[test]
    fn sort_and_paginate_with_links() {
        let r = respond(
            "things",
            items(),
            &q("sort_key=name&sort_dir=asc&limit=2"),
            "http://x/v2.0/things",
        )
        .unwrap();
        assert_eq!(ids(&r), ["b", "a"]);
        let next = r["things_links"][0]["href"].as_str().unwrap();
        assert!(next.starts_with("http://x/v2.0/things?"));
        assert!(next.contains("marker=a"));
        let r = respond(
            "things",
            items(),
            &q("sort_key=name&sort_dir=asc&limit=2&marker=a"),
            "u",
        )
        .unwrap();
        assert_eq!(ids(&r), ["c"]);
        assert!(r.get("things_links").is_none());
        assert!(respond(
            "things",
            items(),
            &q("sort_dir=sideways&sort_key=name"),
            "u"
        )
        .is_err());
        assert!(respond("things", items(), &q("limit=many"), "u").is_err());
    }

    #[test]
    fn fields_keep_only_what_was_asked() {
        let r = respond("things", items(), &q("fields=id&fields=name"), "u").unwrap();
        assert_eq!(r["things"][0], json!({"id": "a", "name": "net-b"}));
    }
}
