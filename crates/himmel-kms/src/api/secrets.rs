//! `/v1/secrets`: store (one step with the payload, or two steps with a
//! later PUT), list with filters and paging, metadata, payload, delete.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::wire::{self, invalid, opt_int, opt_string, timestamp, too_large};
use super::{own_project, service_url, Routes};
use crate::policy::*;
use crate::secrets::content::{self, MAX_SECRET_BYTES};
use crate::secrets::model::{NewSecret, Secret, SECRET_TYPES};
use crate::secrets::secret_store::{Cmp, ListFilter};
use crate::secrets::{now_micros, secret_store, KeyManager};

pub fn routes(p: &Pipeline) -> Routes {
    vec![
        (
            "/v1/secrets",
            p.on(&SERVICE, &SECRETS_GET, MethodFilter::GET, list)
                .merge(p.on(&SERVICE, &SECRETS_POST, MethodFilter::POST, create)),
        ),
        (
            "/v1/secrets/{secret_id}",
            p.on(&SERVICE, &SECRET_GET, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &SECRET_PUT, MethodFilter::PUT, put_payload))
                .merge(p.on(&SERVICE, &SECRET_DELETE, MethodFilter::DELETE, delete)),
        ),
        (
            "/v1/secrets/{secret_id}/payload",
            p.on(&SERVICE, &SECRET_DECRYPT, MethodFilter::GET, payload),
        ),
    ]
}

const SCHEMA: &str = "Secret";
const DEFAULT_LIMIT: i64 = 10;
const MAX_LIMIT: i64 = 100;

pub fn secret_ref(base: &str, id: &str) -> String {
    format!("{base}/v1/secrets/{id}")
}

/// A secret's metadata as Barbican shows it.
pub fn secret_json(base: &str, s: &Secret) -> Value {
    let mut v = json!({
        "secret_ref": secret_ref(base, &s.id),
        "name": s.name,
        "secret_type": s.secret_type,
        "status": s.status,
        "algorithm": s.algorithm,
        "bit_length": s.bit_length,
        "mode": s.mode,
        "expiration": s.expiration.map(timestamp),
        "creator_id": s.creator_id,
        "created": timestamp(s.created_at),
        "updated": timestamp(s.updated_at),
    });
    if let Some(ct) = &s.content_type {
        v["content_types"] = json!({"default": ct});
    }
    v
}

/// Reads and checks a new secret (or an order's key meta, `for_order`:
/// then there is no payload and the content type is only checked).
pub fn parse_new_secret(body: &Value, schema: &str, for_order: bool) -> Result<NewSecret, Error> {
    let obj = wire::object(body, schema)?;
    let name = opt_string(obj, "name", schema, 255, true)?.map(|n| n.trim().to_owned());
    let algorithm = opt_string(obj, "algorithm", schema, 255, false)?;
    let mode = opt_string(obj, "mode", schema, 255, false)?;
    let bit_length = opt_int(obj, "bit_length", schema, 1, 32767)?;
    let expiration = parse_expiration(obj, schema)?;
    let secret_type = match opt_string(obj, "secret_type", schema, 80, false)? {
        None => "opaque".to_owned(),
        Some(t) if SECRET_TYPES.contains(&t.as_str()) => t,
        Some(t) => {
            return Err(invalid(
                schema,
                &format!("'{t}' is not one of {SECRET_TYPES:?}"),
                "secret_type",
            ))
        }
    };
    let content_type = opt_string(obj, "payload_content_type", schema, 255, true)?;
    let encoding = match opt_string(obj, "payload_content_encoding", schema, 255, false)? {
        Some(e) if e != "base64" => {
            return Err(invalid(
                schema,
                &format!("'{e}' is not one of ['base64']"),
                "payload_content_encoding",
            ))
        }
        e => e,
    };
    let payload = match obj.get("payload") {
        None => {
            if obj.contains_key("payload_content_type") && !for_order {
                return Err(invalid(
                    schema,
                    "payload must be provided when payload_content_type is specified",
                    "payload",
                ));
            }
            if let Some(ct) = &content_type {
                if content::normalize(ct).is_none() {
                    return Err(unsupported_content_type(schema));
                }
            }
            None
        }
        Some(_) if for_order => {
            return Err(invalid(
                schema,
                "'payload' not allowed for key type order",
                "meta",
            ))
        }
        Some(Value::String(p)) => Some(parse_payload(
            p,
            content_type.as_deref(),
            encoding.as_deref(),
            schema,
        )?),
        // The value is not echoed: it is meant to be secret.
        Some(_) => {
            return Err(invalid(
                schema,
                "the payload is not of type 'string'",
                "payload",
            ))
        }
    };
    Ok(NewSecret {
        name,
        secret_type,
        algorithm,
        bit_length,
        mode,
        expiration,
        payload,
    })
}

fn unsupported_content_type(schema: &str) -> Error {
    invalid(
        schema,
        &format!(
            "payload_content_type is not one of {:?}",
            content::SUPPORTED
        ),
        "payload_content_type",
    )
}

fn parse_expiration(obj: &Map<String, Value>, schema: &str) -> Result<Option<i64>, Error> {
    let Some(raw) = opt_string(obj, "expiration", schema, 255, true)? else {
        return Ok(None);
    };
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let at = himmel_core::time::parse_timestamp(raw.trim())
        .ok_or_else(|| invalid(schema, "Invalid date for 'expiration'", "expiration"))?
        .timestamp_micros();
    if at <= now_micros() {
        return Err(invalid(
            schema,
            "'expiration' is before current time",
            "expiration",
        ));
    }
    Ok(Some(at))
}

/// The plaintext of a JSON payload, with its normalized content type.
fn parse_payload(
    payload: &str,
    content_type: Option<&str>,
    encoding: Option<&str>,
    schema: &str,
) -> Result<(String, Zeroizing<Vec<u8>>), Error> {
    let content_type = content_type.ok_or_else(|| {
        invalid(
            schema,
            "If 'payload' is supplied, 'payload_content_type' must also be supplied.",
            "payload_content_type",
        )
    })?;
    let normalized =
        content::normalize(content_type).ok_or_else(|| unsupported_content_type(schema))?;
    if !content::encoding_allowed(normalized, encoding) {
        return Err(invalid(
            schema,
            &format!(
                "payload_content_encoding is not one of {}",
                content::supported_encodings(normalized)
            ),
            "payload_content_encoding",
        ));
    }
    if payload.len() > MAX_SECRET_BYTES {
        return Err(too_large());
    }
    let payload = payload.trim();
    if payload.is_empty() {
        return Err(invalid(
            schema,
            "If 'payload' specified, must be non empty",
            "payload",
        ));
    }
    let plain = if encoding == Some("base64") {
        content::decode_base64(payload).ok_or_else(|| {
            invalid(
                schema,
                "Invalid payload for payload_content_encoding",
                "payload",
            )
        })?
    } else {
        payload.as_bytes().to_vec()
    };
    Ok((normalized.to_owned(), Zeroizing::new(plain)))
}

async fn create(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let project = own_project(&ctx, &authz)?;
    let new = parse_new_secret(&body, SCHEMA, false)?;
    let secret = km.create_secret(&project, &ctx.user_id, new).await?;
    let url = secret_ref(&service_url(&headers), &secret.id);
    Ok(wire::created(
        json!({"secret_ref": url}),
        Some(&url),
        &secret.id,
    ))
}

/// Barbican's date filter: `[gt:|gte:|lt:|lte:]<ISO 8601>`, comma-separated.
fn date_filter(column: &'static str, raw: &str) -> Result<Vec<(&'static str, Cmp, i64)>, Error> {
    let bad = || Error::BadRequest("URI provided invalid query string parameters.".into());
    let mut out: Vec<(&'static str, Cmp, i64)> = vec![];
    for part in raw.split(',') {
        let (cmp, value) = [
            ("gte:", Cmp::Gte),
            ("gt:", Cmp::Gt),
            ("lte:", Cmp::Lte),
            ("lt:", Cmp::Lt),
        ]
        .iter()
        .find_map(|(p, c)| part.strip_prefix(p).map(|v| (*c, v)))
        .unwrap_or((Cmp::Eq, part));
        let at = himmel_core::time::parse_timestamp(value).ok_or_else(bad)?;
        let clashes = |c: &Cmp| match cmp {
            Cmp::Gt | Cmp::Gte => {
                matches!(c, Cmp::Gt | Cmp::Gte) || (cmp == Cmp::Gte && *c == Cmp::Eq)
            }
            Cmp::Lt | Cmp::Lte => {
                matches!(c, Cmp::Lt | Cmp::Lte) || (cmp == Cmp::Lte && *c == Cmp::Eq)
            }
            Cmp::Eq => matches!(c, Cmp::Eq | Cmp::Gte | Cmp::Lte),
        };
        if out.iter().any(|(_, c, _)| clashes(c)) {
            return Err(bad());
        }
        out.push((column, cmp, at.timestamp_micros()));
    }
    Ok(out)
}

/// Barbican's `sort=key[:asc|desc],…`.
fn sort_keys(raw: &str) -> Result<Vec<(&'static str, bool)>, Error> {
    const KEYS: &[(&str, &str)] = &[
        ("algorithm", "algorithm"),
        ("bit_length", "bit_length"),
        ("created", "created_at"),
        ("expiration", "expiration"),
        ("mode", "mode"),
        ("name", "name"),
        ("secret_type", "secret_type"),
        ("status", "status"),
        ("updated", "updated_at"),
    ];
    let bad = || Error::BadRequest("URI provided invalid query string parameters.".into());
    let mut out: Vec<(&'static str, bool)> = vec![];
    for part in raw.split(',') {
        let (key, dir) = part.split_once(':').unwrap_or((part, "asc"));
        let column = KEYS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| *c)
            .ok_or_else(bad)?;
        let desc = match dir {
            "asc" => false,
            "desc" => true,
            _ => return Err(bad()),
        };
        if out.iter().any(|(c, _)| *c == column) {
            return Err(bad());
        }
        out.push((column, desc));
    }
    Ok(out)
}

/// Barbican's lenient paging values: bad numbers fall back to defaults.
pub fn paging(params: &[(String, String)]) -> (i64, i64) {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let offset = get("offset")
        .and_then(|v| v.parse::<i64>().ok())
        .map(|o| o.max(0))
        .unwrap_or(0);
    let limit = match get("limit").filter(|v| !v.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<i64>()
            .map(|l| l.clamp(1, MAX_LIMIT))
            .unwrap_or(DEFAULT_LIMIT),
    };
    (offset, limit)
}

/// Adds `previous`/`next` links and `total` to a list body.
pub fn page_links(
    body: &mut Value,
    collection_url: &str,
    params: &[(String, String)],
    offset: i64,
    limit: i64,
    total: i64,
    returned: usize,
) {
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(k, _)| k != "limit" && k != "offset") {
        rest.append_pair(k, v);
    }
    let rest = rest.finish();
    let href = |o: i64| {
        let mut h = format!("{collection_url}?limit={limit}&offset={o}");
        if !rest.is_empty() {
            h.push('&');
            h.push_str(&rest);
        }
        h
    };
    if returned > 0 {
        if offset > 0 {
            body["previous"] = json!(href((offset - limit).max(0)));
        }
        if total > offset + limit {
            body["next"] = json!(href(offset + limit));
        }
    }
    body["total"] = json!(total);
}

pub fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

async fn list(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    authz: Authz,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let project = own_project(&ctx, &authz)?;
    let params = query_pairs(&raw);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (offset, limit) = paging(&params);
    let acl_only = get("acl_only").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut filter = ListFilter {
        // With acl_only the project scope is ignored: the secrets whose
        // ACL names the caller, wherever they live.
        project_id: (!acl_only).then(|| project.clone()),
        acl_user: acl_only.then(|| ctx.user_id.clone()),
        name: get("name"),
        algorithm: get("alg"),
        mode: get("mode"),
        // As in Barbican, a bits value that is not a number is ignored.
        bits: get("bits")
            .and_then(|b| b.parse::<i64>().ok())
            .filter(|b| *b > 0),
        secret_type: get("secret_type"),
        offset,
        limit,
        now: now_micros(),
        ..Default::default()
    };
    for (param, column) in [
        ("created", "created_at"),
        ("updated", "updated_at"),
        ("expiration", "expiration"),
    ] {
        if let Some(v) = get(param) {
            filter.dates.extend(date_filter(column, &v)?);
        }
    }
    if let Some(s) = get("sort") {
        filter.sort = sort_keys(&s)?;
    }
    let (secrets, total) = secret_store::list(km.db(), &filter).await?;
    let base = service_url(&headers);
    let mut body = json!({
        "secrets": secrets.iter().map(|s| secret_json(&base, s)).collect::<Vec<_>>(),
    });
    page_links(
        &mut body,
        &format!("{base}/v1/secrets"),
        &params,
        offset,
        limit,
        total,
        secrets.len(),
    );
    Ok(Json(body))
}

/// Barbican answers JSON metadata when the client accepts JSON (or says
/// nothing); any other Accept asks for the payload.
fn wants_metadata(headers: &HeaderMap) -> bool {
    match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(a) => {
            let a = a.trim();
            a.is_empty() || a == "*/*" || a.eq_ignore_ascii_case("application/json")
        }
    }
}

async fn show(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if wants_metadata(&headers) {
        let (secret, _) = km.secret_for(&SECRET_GET, &ctx, &id).await?;
        Ok(Json(secret_json(&service_url(&headers), &secret)).into_response())
    } else {
        decrypt(&km, &headers, &ctx, &id).await
    }
}

async fn payload(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    decrypt(&km, &headers, &ctx, &id).await
}

async fn decrypt(km: &KeyManager, headers: &HeaderMap, ctx: &Ctx, id: &str) -> ApiResult<Response> {
    let (secret, _) = km.secret_for(&SECRET_DECRYPT, ctx, id).await?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let plain = km.read_payload(&secret).await?;
    let stored = secret
        .content_type
        .as_deref()
        .unwrap_or(content::OCTET_STREAM);
    let Some(answer) = content::answer_type(accept, stored, &plain) else {
        return Ok(wire::status_error(
            StatusCode::NOT_ACCEPTABLE,
            &format!(
                "Wrong payload content-type: the secret cannot be given as '{}'",
                accept.unwrap_or_default()
            ),
        ));
    };
    Ok(([(header::CONTENT_TYPE, answer)], plain).into_response())
}

async fn put_payload(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let (secret, _) = km.secret_for(&SECRET_PUT, &ctx, &id).await?;
    let raw_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let content_type = content::normalize(raw_type)
        .filter(|ct| *ct != "application/pkcs8")
        .ok_or_else(|| {
            Error::UnsupportedMediaType(format!(
                "Content-Type of '{raw_type}' is not supported for PUT."
            ))
        })?;
    if body.is_empty() {
        return Err(Error::BadRequest("No data supplied to process.".into()).into());
    }
    if body.len() > MAX_SECRET_BYTES {
        return Err(too_large().into());
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let plain = match encoding {
        Some(e) if e.eq_ignore_ascii_case("base64") => {
            if !content::is_binary(content_type) {
                return Err(invalid(
                    SCHEMA,
                    "payload_content_encoding is not one of None",
                    "payload_content_encoding",
                )
                .into());
            }
            let text = std::str::from_utf8(&body).map_err(|_| bad_base64())?;
            content::decode_base64(text).ok_or_else(bad_base64)?
        }
        _ => {
            if content_type == content::TEXT && std::str::from_utf8(&body).is_err() {
                return Err(Error::BadRequest("A text/plain payload must be UTF-8.".into()).into());
            }
            body.to_vec()
        }
    };
    km.store_payload(&secret, content_type, &plain).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn bad_base64() -> Error {
    invalid(
        SCHEMA,
        "Invalid payload for payload_content_encoding",
        "payload",
    )
}

async fn delete(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let secret = km.any_secret_for(&SECRET_DELETE, &ctx, &id).await?;
    km.delete_secret(&secret).await?;
    Ok(StatusCode::NO_CONTENT)
}
