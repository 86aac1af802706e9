//! `GET /v2/images`: Glance's filters, sorting and marker paging, with the
//! `first`/`next` links clients follow.

use std::cmp::Ordering;
use std::collections::HashMap;

use himmel_core::{Error, RequestContext};
use serde_json::{json, Value};

use crate::access;
use crate::model::{Image, Visibility};

/// Glance's `limit_param_default` and `api_limit_max`.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;

const SORT_KEYS: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
    "visibility",
    "owner",
    "min_disk",
    "min_ram",
];

pub struct Query {
    pairs: Vec<(String, String)>,
    limit: usize,
    marker: Option<String>,
    sort: Vec<(String, bool)>,
    visibility: Option<String>,
    member_status: String,
    hidden: bool,
    tags: Vec<String>,
    filters: Vec<(String, String)>,
}

fn parse_bool(key: &str, v: &str) -> Result<bool, Error> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::BadRequest(format!(
            "Invalid value '{v}' for '{key}': a boolean expected."
        ))),
    }
}

fn sort_dir(v: &str) -> Result<bool, Error> {
    match v {
        "asc" => Ok(true),
        "desc" => Ok(false),
        _ => Err(Error::BadRequest(format!("Invalid sort direction: {v}"))),
    }
}

fn sort_key(k: &str) -> Result<String, Error> {
    if SORT_KEYS.contains(&k) {
        Ok(k.to_string())
    } else {
        Err(Error::BadRequest(format!("Invalid sort key: {k}.")))
    }
}

impl Query {
    pub fn parse(raw: &str) -> Result<Query, Error> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut q = Query {
            pairs: pairs.clone(),
            limit: DEFAULT_LIMIT,
            marker: None,
            sort: vec![],
            visibility: None,
            member_status: "accepted".into(),
            hidden: false,
            tags: vec![],
            filters: vec![],
        };
        let mut sort_keys = vec![];
        let mut sort_dirs = vec![];
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => {
                    q.limit =
                        v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                            Error::BadRequest("limit param must be an integer".into())
                        })? as usize;
                    q.limit = q.limit.min(MAX_LIMIT);
                }
                "marker" => q.marker = Some(v),
                "sort_key" => sort_keys.push(sort_key(&v)?),
                "sort_dir" => sort_dirs.push(sort_dir(&v)?),
                "sort" => {
                    for part in v.split(',').filter(|s| !s.is_empty()) {
                        let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
                        q.sort.push((sort_key(key.trim())?, sort_dir(dir.trim())?));
                    }
                }
                "visibility" => {
                    if v != "all" {
                        Visibility::parse(&v)?;
                    }
                    q.visibility = Some(v);
                }
                "member_status" => {
                    if !["pending", "accepted", "rejected", "all"].contains(&v.as_str()) {
                        return Err(Error::BadRequest(format!("Invalid status value: {v}")));
                    }
                    q.member_status = v;
                }
                "os_hidden" => q.hidden = parse_bool(&k, &v)?,
                "tag" => q.tags.push(v),
                "size_min" | "size_max" | "min_disk" | "min_ram" => {
                    v.parse::<u64>().map_err(|_| {
                        Error::BadRequest(format!("Invalid value '{v}' for '{k}'."))
                    })?;
                    q.filters.push((k, v));
                }
                "protected" => {
                    parse_bool(&k, &v)?;
                    q.filters.push((k, v));
                }
                _ => q.filters.push((k, v)),
            }
        }
        if !q.sort.is_empty() && (!sort_keys.is_empty() || !sort_dirs.is_empty()) {
            return Err(Error::BadRequest(
                "The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'.".into(),
            ));
        }
        if q.sort.is_empty() {
            if sort_dirs.len() > 1 && sort_dirs.len() != sort_keys.len() {
                return Err(Error::BadRequest(
                    "The number of sort_dir values must be 1 or match sort_key.".into(),
                ));
            }
            let default_dir = sort_dirs.first().copied().unwrap_or(false);
            if sort_keys.is_empty() {
                sort_keys.push("created_at".into());
            }
            for (i, key) in sort_keys.into_iter().enumerate() {
                let dir = sort_dirs.get(i).copied().unwrap_or(default_dir);
                q.sort.push((key, dir));
            }
        }
        Ok(q)
    }

    /// The query without `marker`, for `first`, and with a new marker, for
    /// `next`.
    fn link(&self, marker: Option<&str>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            if k != "marker" {
                s.append_pair(k, v);
            }
        }
        if let Some(m) = marker {
            s.append_pair("marker", m);
        }
        let q = s.finish();
        if q.is_empty() {
            "/v2/images".into()
        } else {
            format!("/v2/images?{q}")
        }
    }
}

/// Does a filter value match? `in:a,b` lists alternatives (Glance's `in`
/// operator); `size_min`/`size_max` are bounds.
fn matches(image: &Image, key: &str, want: &str) -> bool {
    let num = |v: &Value| v.as_u64();
    match key {
        "size_min" => {
            num(&image.attribute("size")).is_some_and(|s| want.parse::<u64>().is_ok_and(|w| s >= w))
        }
        "size_max" => {
            num(&image.attribute("size")).is_some_and(|s| want.parse::<u64>().is_ok_and(|w| s <= w))
        }
        "protected" => {
            want.eq_ignore_ascii_case("true") == image.protected
                || (want == "1" && image.protected)
                || (want == "0" && !image.protected)
        }
        _ => {
            let have = match image.attribute(key) {
                Value::String(s) => s,
                Value::Null => return false,
                other => other.to_string(),
            };
            match want.strip_prefix("in:") {
                Some(list) => list.split(',').any(|w| w == have),
                None => have == want,
            }
        }
    }
}

/// Glance's listing rules for who sees what in a list without a
/// `visibility` filter: own images, public images, and images shared with
/// the caller's project in the requested membership status; community
/// images only when asked for (or owned).
fn listed(
    ctx: &RequestContext,
    all: bool,
    image: &Image,
    memberships: &HashMap<String, String>,
    q: &Query,
) -> bool {
    let own = access::is_owner(ctx, image);
    let membership_ok = memberships
        .get(&image.id)
        .is_some_and(|s| q.member_status == "all" || *s == q.member_status);
    let shared_in = image.visibility == Visibility::Shared && membership_ok;
    match q.visibility.as_deref() {
        Some("all") => {
            all || own
                || matches!(image.visibility, Visibility::Public | Visibility::Community)
                || shared_in
        }
        Some(v) if v != image.visibility.as_str() => false,
        Some("community") | Some("public") => true,
        Some("shared") => all || own || shared_in,
        Some(_) => all || own,
        None => all || own || image.visibility == Visibility::Public || shared_in,
    }
}

fn compare(a: &Image, b: &Image, sort: &[(String, bool)]) -> Ordering {
    for (key, asc) in sort {
        let (va, vb) = (a.attribute(key), b.attribute(key));
        let ord = match (&va, &vb) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            _ => va.as_str().cmp(&vb.as_str()),
        };
        let ord = if *asc { ord } else { ord.reverse() };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    // A stable order for paging: the id breaks ties.
    let last_asc = sort.last().is_some_and(|(_, asc)| *asc);
    let ord = a.id.cmp(&b.id);
    if last_asc {
        ord
    } else {
        ord.reverse()
    }
}

/// The caller's candidates the query lists, sorted, not yet paged.
pub fn filtered(
    ctx: &RequestContext,
    all: bool,
    candidates: Vec<Image>,
    memberships: &HashMap<String, String>,
    q: &Query,
) -> Vec<Image> {
    let mut images: Vec<Image> = candidates
        .into_iter()
        .filter(|i| listed(ctx, all, i, memberships, q))
        .filter(|i| i.os_hidden == q.hidden)
        .filter(|i| q.tags.iter().all(|t| i.tags.contains(t)))
        .filter(|i| q.filters.iter().all(|(k, v)| matches(i, k, v)))
        .collect();
    images.sort_by(|a, b| compare(a, b, &q.sort));
    images
}

/// Filters, sorts and pages the caller's candidates; returns the body.
pub fn select(
    ctx: &RequestContext,
    all: bool,
    candidates: Vec<Image>,
    memberships: &HashMap<String, String>,
    q: &Query,
) -> Result<Value, Error> {
    let images = filtered(ctx, all, candidates, memberships, q);
    let start = match &q.marker {
        Some(m) => {
            images.iter().position(|i| &i.id == m).ok_or_else(|| {
                Error::BadRequest(format!("Invalid marker. Image {m} could not be found."))
            })? + 1
        }
        None => 0,
    };
    let end = (start + q.limit).min(images.len());
    let page = &images[start.min(end)..end];
    let mut body = json!({
        "images": page.iter().map(Image::to_json).collect::<Vec<_>>(),
        "first": q.link(None),
        "schema": "/v2/schemas/images",
    });
    if end < images.len() && q.limit > 0 {
        if let Some(last) = page.last() {
            body["next"] = Value::String(q.link(Some(&last.id)));
        }
    }
    Ok(body)
}
