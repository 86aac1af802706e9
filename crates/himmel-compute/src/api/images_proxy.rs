//! `/images` and `/images/{id}/metadata`: Nova's deprecated image proxy.
//! Every call goes to the image service for the caller (through
//! [`crate::images::Images`]), so the proxy sees and changes exactly what
//! the caller could through the image API itself; this module only
//! translates between Nova's shapes and the image service's: statuses and
//! progress as Nova maps them, metadata as the image's free-form
//! properties, Nova's list filters and marker paging.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::{ApiResult, Ctx, Json, Pipeline};
use serde_json::{json, Map, Value};

use super::servers::metadata_from;
use super::wire;
use crate::images::{ImageInfo, Images};
use crate::policy::*;
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/images",
            p.on(&SERVICE, &LIST_IMAGES, MethodFilter::GET, list_brief),
        )
        .route(
            "/images/detail",
            p.on(&SERVICE, &LIST_IMAGES, MethodFilter::GET, list_detail),
        )
        .route(
            "/images/{id}",
            p.on(&SERVICE, &GET_IMAGE, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &DELETE_IMAGE, MethodFilter::DELETE, delete)),
        )
        .route(
            "/images/{id}/metadata",
            p.on(&SERVICE, &GET_IMAGE_METADATA, MethodFilter::GET, list_meta)
                .merge(p.on(
                    &SERVICE,
                    &SET_IMAGE_METADATA,
                    MethodFilter::POST,
                    merge_meta,
                ))
                .merge(p.on(
                    &SERVICE,
                    &SET_IMAGE_METADATA,
                    MethodFilter::PUT,
                    replace_meta,
                )),
        )
        .route(
            "/images/{id}/metadata/{key}",
            p.on(&SERVICE, &GET_IMAGE_METADATA, MethodFilter::GET, show_meta)
                .merge(p.on(&SERVICE, &SET_IMAGE_METADATA, MethodFilter::PUT, put_meta))
                .merge(p.on(
                    &SERVICE,
                    &SET_IMAGE_METADATA,
                    MethodFilter::DELETE,
                    delete_meta,
                )),
        )
}

/// Nova's answer for an image the caller cannot see (whatever the image
/// service said).
fn image_not_found() -> Error {
    Error::NotFound("Image not found.".into())
}

/// The image service, or "not found" for every image when the region has
/// none.
fn images(s: &ComputeService) -> Result<&Arc<dyn Images>, Error> {
    s.images().ok_or_else(image_not_found)
}

/// The image service's NotFound becomes Nova's message; its other answers
/// (403 of its policy, 400 of its checks) pass through.
fn from_image_service(e: Error) -> Error {
    match e {
        Error::NotFound(_) => image_not_found(),
        other => other,
    }
}

async fn fetch(s: &ComputeService, ctx: &RequestContext, id: &str) -> Result<ImageInfo, Error> {
    images(s)?
        .show_image(ctx, id)
        .await
        .map_err(from_image_service)
}

/// Nova's status for a Glance status; statuses Nova does not know
/// (importing, uploading, deactivated) are UNKNOWN, as in Nova.
fn status(glance: &str) -> &'static str {
    match glance {
        "active" => "ACTIVE",
        "queued" | "saving" => "SAVING",
        "deleted" | "pending_delete" => "DELETED",
        "killed" => "ERROR",
        _ => "UNKNOWN",
    }
}

fn progress(glance: &str) -> u64 {
    match glance {
        "queued" => 25,
        "saving" => 50,
        "active" => 100,
        _ => 0,
    }
}

fn timestamp(us: i64) -> String {
    himmel_core::time::from_unix_micros(us)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// self and bookmark on compute, and the image itself on the image
/// service as `alternate`.
fn links(headers: &HeaderMap, id: &str) -> Value {
    let mut links = wire::links(headers, "images", id);
    if let Value::Array(list) = &mut links {
        list.push(json!({
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": format!("{}{}/images/{id}", wire::base_url(headers), himmel_image::PATH_PREFIX),
        }));
    }
    links
}

fn brief(i: &ImageInfo, headers: &HeaderMap) -> Value {
    json!({"id": i.id, "name": i.name, "links": links(headers, &i.id)})
}

fn render(i: &ImageInfo, headers: &HeaderMap) -> Value {
    let mut v = json!({
        "id": i.id,
        "name": i.name,
        "status": status(&i.status),
        "progress": progress(&i.status),
        "minDisk": i.min_disk_gb,
        "minRam": i.min_ram_mb,
        "metadata": i.properties,
        "created": timestamp(i.created_at),
        "updated": timestamp(i.updated_at),
        "OS-EXT-IMG-SIZE:size": i.size,
        "links": links(headers, &i.id),
    });
    // A server's snapshot names its server.
    if let Some(server) = i.properties.get("instance_uuid") {
        v["server"] = json!({"id": server, "links": wire::links(headers, "servers", server)});
    }
    if let Some(auto) = i.properties.get("auto_disk_config") {
        let auto = wire::parse_bool("auto_disk_config", auto).unwrap_or(false);
        v["OS-DCF:diskConfig"] = json!(if auto { "AUTO" } else { "MANUAL" });
    }
    v
}

/// One of Nova's list filters, applied as the image service would apply
/// the filter Nova translates it to.
enum Filter {
    Name(String),
    /// Lower-cased, compared with the image service's status.
    Status(String),
    /// `updated_at >= t` (Unix microseconds).
    ChangesSince(i64),
    /// A property's exact value: `server` (instance_uuid, the last path
    /// segment of a server link), `type` (image_type), `property-*`.
    Property(String, String),
    MinRam(u64),
    MinDisk(u64),
}

impl Filter {
    fn matches(&self, i: &ImageInfo) -> bool {
        match self {
            Filter::Name(n) => i.name.as_deref() == Some(n.as_str()),
            Filter::Status(s) => i.status == *s,
            Filter::ChangesSince(t) => i.updated_at >= *t,
            Filter::Property(k, v) => i.properties.get(k) == Some(v),
            Filter::MinRam(m) => i.min_ram_mb >= *m,
            Filter::MinDisk(m) => i.min_disk_gb >= *m,
        }
    }
}

fn filters(pairs: &[(String, String)]) -> Result<Vec<Filter>, Error> {
    let mut out = vec![];
    for (k, v) in pairs {
        let f = match k.as_str() {
            "name" => Filter::Name(v.clone()),
            "status" => Filter::Status(v.to_lowercase()),
            "changes-since" => {
                let t = himmel_core::time::parse_timestamp(v).ok_or_else(|| {
                    Error::BadRequest(format!("Invalid changes-since value: {v}"))
                })?;
                Filter::ChangesSince(t.timestamp_micros())
            }
            "server" => {
                let id = v.rsplit('/').next().unwrap_or(v);
                Filter::Property("instance_uuid".into(), id.to_string())
            }
            "type" => Filter::Property("image_type".into(), v.clone()),
            "minRam" => Filter::MinRam(wire::int_param(pairs, k)?.unwrap_or(0)),
            "minDisk" => Filter::MinDisk(wire::int_param(pairs, k)?.unwrap_or(0)),
            other => match other.strip_prefix("property-") {
                Some(p) => Filter::Property(p.to_string(), v.clone()),
                None => continue,
            },
        };
        out.push(f);
    }
    Ok(out)
}

/// The caller's images after Nova's filters and paging (newest first, as
/// the image service lists them); the flag says a limit cut the list.
async fn listed(
    s: &ComputeService,
    ctx: &RequestContext,
    pairs: &[(String, String)],
) -> Result<(Vec<ImageInfo>, bool), Error> {
    let filters = filters(pairs)?;
    let limit = match wire::param(pairs, "limit") {
        None => None,
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| Error::BadRequest("limit param must be an integer".into()))?,
        ),
    };
    let mut all = match s.images() {
        Some(images) => images.list_images(ctx).await?,
        None => vec![],
    };
    all.retain(|i| filters.iter().all(|f| f.matches(i)));
    if let Some(marker) = wire::param(pairs, "marker") {
        let pos = all.iter().position(|i| i.id == marker).ok_or_else(|| {
            Error::BadRequest(format!(
                "Invalid marker. Image {marker} could not be found."
            ))
        })?;
        all.drain(..=pos);
    }
    let mut more = false;
    if let Some(limit) = limit {
        if all.len() > limit {
            all.truncate(limit);
            more = true;
        }
    }
    Ok((all, more))
}

/// `{"images": [...]}`, with `images_links` (the same query, the last
/// image as marker) when a limit cut the list.
fn list_body(
    headers: &HeaderMap,
    pairs: &[(String, String)],
    items: Vec<Value>,
    last: Option<&ImageInfo>,
    more: bool,
    path: &str,
) -> Value {
    let mut body = Map::new();
    body.insert("images".into(), Value::Array(items));
    if let (true, Some(last)) = (more, last) {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| k != "marker") {
            q.append_pair(k, v);
        }
        q.append_pair("marker", &last.id);
        let href = format!("{}/{path}?{}", wire::api_url(headers), q.finish());
        body.insert(
            "images_links".into(),
            json!([{"rel": "next", "href": href}]),
        );
    }
    Value::Object(body)
}

async fn list_brief(
    State(s): State<ComputeService>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let pairs = wire::query_pairs(raw.as_deref());
    let (list, more) = listed(&s, &ctx, &pairs).await?;
    let items = list.iter().map(|i| brief(i, &headers)).collect();
    Ok(Json(list_body(
        &headers,
        &pairs,
        items,
        list.last(),
        more,
        "images",
    )))
}

async fn list_detail(
    State(s): State<ComputeService>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let pairs = wire::query_pairs(raw.as_deref());
    let (list, more) = listed(&s, &ctx, &pairs).await?;
    let items = list.iter().map(|i| render(i, &headers)).collect();
    Ok(Json(list_body(
        &headers,
        &pairs,
        items,
        list.last(),
        more,
        "images/detail",
    )))
}

async fn show(
    State(s): State<ComputeService>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let image = fetch(&s, &ctx, &id).await?;
    Ok(wire::one("image", render(&image, &headers)))
}

async fn delete(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    images(&s)?
        .delete_image(&ctx, &id)
        .await
        .map_err(|e| match e {
            Error::Forbidden(_) => {
                Error::Forbidden("You are not allowed to delete the image.".into())
            }
            other => from_image_service(other),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The object under `key` of a metadata body, checked as Nova's schema
/// does (keys of 1 to 255 characters, string values of at most 255), and
/// nothing else beside it.
fn metadata_body(body: &Value, key: &str) -> Result<BTreeMap<String, String>, Error> {
    let Value::Object(top) = body else {
        return Err(Error::BadRequest(format!(
            "Invalid input for field/attribute {key}. '{key}' is a required property"
        )));
    };
    if let Some(extra) = top.keys().find(|k| *k != key) {
        return Err(Error::BadRequest(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    let inner = top.get(key).ok_or_else(|| {
        Error::BadRequest(format!(
            "Invalid input for field/attribute {key}. '{key}' is a required property"
        ))
    })?;
    metadata_from(inner, -1)
}

/// Sets `set` and removes `remove` through the image service; 404 for an
/// image the caller cannot see.
async fn write(
    s: &ComputeService,
    ctx: &RequestContext,
    id: &str,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> Result<ImageInfo, Error> {
    images(s)?
        .update_properties(ctx, id, set, remove)
        .await
        .map_err(from_image_service)
}

async fn list_meta(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let image = fetch(&s, &ctx, &id).await?;
    Ok(Json(json!({"metadata": image.properties})))
}

/// POST: merges the given items into the image's metadata; answers with
/// all of it.
async fn merge_meta(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let given = metadata_body(&body, "metadata")?;
    let image = write(&s, &ctx, &id, &given, &[]).await?;
    Ok(Json(json!({"metadata": image.properties})))
}

/// PUT: the given items become the image's whole metadata; answers with
/// them.
async fn replace_meta(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let given = metadata_body(&body, "metadata")?;
    let current = fetch(&s, &ctx, &id).await?;
    let stale: Vec<String> = current
        .properties
        .keys()
        .filter(|k| !given.contains_key(*k))
        .cloned()
        .collect();
    write(&s, &ctx, &id, &given, &stale).await?;
    Ok(Json(json!({"metadata": given})))
}

async fn show_meta(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let image = fetch(&s, &ctx, &id).await?;
    let v = image
        .properties
        .get(&key)
        .ok_or_else(|| Error::NotFound("The resource could not be found.".into()))?;
    Ok(Json(json!({"meta": {key: v}})))
}

/// PUT of one item: the body names exactly the key of the path.
async fn put_meta(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let item = metadata_body(&body, "meta")?;
    if item.len() > 1 {
        return Err(Error::BadRequest("Request body contains too many items".into()).into());
    }
    if !item.contains_key(&key) {
        return Err(Error::BadRequest("Request body and URI mismatch".into()).into());
    }
    write(&s, &ctx, &id, &item, &[]).await?;
    Ok(Json(json!({"meta": item})))
}

async fn delete_meta(
    State(s): State<ComputeService>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let image = fetch(&s, &ctx, &id).await?;
    if !image.properties.contains_key(&key) {
        return Err(Error::NotFound("Invalid metadata key".into()).into());
    }
    write(&s, &ctx, &id, &BTreeMap::new(), &[key]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_progress_are_novas() {
        let cases = [
            ("active", "ACTIVE", 100),
            ("queued", "SAVING", 25),
            ("saving", "SAVING", 50),
            ("killed", "ERROR", 0),
            ("deactivated", "UNKNOWN", 0),
            ("importing", "UNKNOWN", 0),
        ];
        for (glance, nova, pct) in cases {
            assert_eq!((status(glance), progress(glance)), (nova, pct), "{glance}");
        }
    }

    #[test]
    fn a_server_filter_takes_the_id_from_a_link() {
        let pairs = vec![(
            "server".to_string(),
            "http://h/compute/v2.1/servers/abc".to_string(),
        )];
        let f = filters(&pairs).unwrap();
        let mut i = ImageInfo::default();
        i.properties.insert("instance_uuid".into(), "abc".into());
        assert!(f[0].matches(&i));
    }
}
