//! `/v1/secrets/{id}/metadata`: user metadata of a secret (PUT replaces
//! all, POST adds one key, one key by GET/PUT/DELETE).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use himmel_core::Error;
use himmel_http::{ApiResult, Ctx, Json, Pipeline};
use serde_json::{json, Map, Value};

use super::secrets::secret_ref;
use super::{service_url, wire, Routes};
use crate::policy::*;
use crate::secrets::{now_micros, secret_store, KeyManager};

pub fn routes(p: &Pipeline) -> Routes {
    vec![
        (
            "/v1/secrets/{secret_id}/metadata",
            p.on(&SERVICE, &SECRET_META_GET, MethodFilter::GET, list)
                .merge(p.on(&SERVICE, &SECRET_META_PUT, MethodFilter::PUT, replace))
                .merge(p.on(&SERVICE, &SECRET_META_POST, MethodFilter::POST, add)),
        ),
        (
            "/v1/secrets/{secret_id}/metadata/{key}",
            p.on(&SERVICE, &SECRET_META_GET, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &SECRET_META_PUT, MethodFilter::PUT, update))
                .merge(p.on(&SERVICE, &SECRET_META_DELETE, MethodFilter::DELETE, remove)),
        ),
    ]
}

const MAX_LEN: usize = 255;

fn invalid_metadata() -> Error {
    Error::BadRequest("Invalid Metadata. Keys and Values must be Strings.".into())
}

/// Keys are URL-safe and stored lower-case, as in Barbican.
fn check_key(key: &str) -> Result<String, Error> {
    let url_safe = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !url_safe || key.is_empty() || key.len() > MAX_LEN {
        return Err(Error::BadRequest(
            "Invalid Key. Key must be URL safe.".into(),
        ));
    }
    Ok(key.to_ascii_lowercase())
}

fn check_value(value: &Value) -> Result<String, Error> {
    match value {
        Value::String(s) if s.chars().count() <= MAX_LEN => Ok(s.clone()),
        Value::String(_) => Err(Error::BadRequest(format!(
            "Invalid Metadata. Values are at most {MAX_LEN} characters."
        ))),
        _ => Err(invalid_metadata()),
    }
}

fn metadatum(body: &Value) -> Result<(String, String), Error> {
    let obj = wire::object(body, "SecretMetadatum")?;
    if let Some(extra) = obj.keys().find(|k| *k != "key" && *k != "value") {
        return Err(wire::invalid(
            "SecretMetadatum",
            &format!("Additional properties are not allowed ('{extra}' was unexpected)"),
            extra,
        ));
    }
    let key = match obj.get("key") {
        Some(Value::String(k)) => check_key(k)?,
        _ => {
            return Err(wire::invalid(
                "SecretMetadatum",
                "'key' is a required property",
                "key",
            ))
        }
    };
    let value = match obj.get("value") {
        Some(v) => check_value(v)?,
        None => {
            return Err(wire::invalid(
                "SecretMetadatum",
                "'value' is a required property",
                "value",
            ))
        }
    };
    Ok((key, value))
}

fn not_found(key: &str) -> Error {
    Error::NotFound(format!("Secret metadata key '{key}' not found."))
}

async fn list(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (secret, _) = km.secret_for(&SECRET_META_GET, &ctx, &id).await?;
    let items: Map<String, Value> = secret_store::metadata(km.db(), &secret.id)
        .await?
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(Json(json!({ "metadata": items })))
}

async fn replace(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let (secret, _) = km.secret_for(&SECRET_META_PUT, &ctx, &id).await?;
    let obj = wire::object(&body, "SecretMetadata")?;
    let Some(Value::Object(given)) = obj.get("metadata") else {
        return Err(wire::invalid(
            "SecretMetadata",
            "'metadata' is a required property of type 'object'",
            "metadata",
        )
        .into());
    };
    let mut items = Vec::with_capacity(given.len());
    for (k, v) in given {
        items.push((check_key(k)?, check_value(v)?));
    }
    items.sort();
    items.dedup_by(|a, b| a.0 == b.0);
    secret_store::replace_metadata(km.db(), &secret.id, &items, now_micros()).await?;
    let url = format!(
        "{}/metadata",
        secret_ref(&service_url(&headers), &secret.id)
    );
    Ok(wire::created(
        json!({ "metadata_ref": url }),
        None,
        &secret.id,
    ))
}

async fn add(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let (secret, _) = km.secret_for(&SECRET_META_POST, &ctx, &id).await?;
    let (key, value) = metadatum(&body)?;
    if !secret_store::add_metadatum(km.db(), &secret.id, &key, &value, now_micros()).await? {
        return Err(Error::Conflict(format!(
            "Conflict. Key '{key}' is already in the secret's metadata."
        ))
        .into());
    }
    let url = format!(
        "{}/metadata/{key}",
        secret_ref(&service_url(&headers), &secret.id)
    );
    Ok(wire::created(
        json!({"key": key, "value": value}),
        Some(&url),
        &secret.id,
    ))
}

async fn show(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (secret, _) = km.secret_for(&SECRET_META_GET, &ctx, &id).await?;
    let key = key.to_ascii_lowercase();
    let items = secret_store::metadata(km.db(), &secret.id).await?;
    let (k, v) = items
        .into_iter()
        .find(|(k, _)| *k == key)
        .ok_or_else(|| not_found(&key))?;
    Ok(Json(json!({"key": k, "value": v})))
}

async fn update(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let (secret, _) = km.secret_for(&SECRET_META_PUT, &ctx, &id).await?;
    let (body_key, value) = metadatum(&body)?;
    if body_key != key.to_ascii_lowercase() {
        return Err(Error::BadRequest(
            "Key in request data does not match key in the request url.".into(),
        )
        .into());
    }
    if !secret_store::update_metadatum(km.db(), &secret.id, &body_key, &value, now_micros()).await?
    {
        return Err(not_found(&body_key).into());
    }
    Ok((
        StatusCode::OK,
        axum::Json(json!({"key": body_key, "value": value})),
    )
        .into_response())
}

async fn remove(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (secret, _) = km.secret_for(&SECRET_META_DELETE, &ctx, &id).await?;
    let key = key.to_ascii_lowercase();
    if !secret_store::delete_metadatum(km.db(), &secret.id, &key).await? {
        return Err(not_found(&key).into());
    }
    Ok(StatusCode::NO_CONTENT)
}
