//! `/v1/orders`: orders of type `key`. The region generates the AES key at
//! once, so an order is ACTIVE with its `secret_ref` when created.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use himmel_core::Error;
use himmel_http::{ApiResult, AuditTargetId, Authz, Ctx, Json, Pipeline};
use serde_json::{json, Value};

use super::secrets::{page_links, paging, parse_new_secret, query_pairs, secret_ref};
use super::{own_project, service_url, wire, Routes};
use crate::policy::*;
use crate::secrets::model::Order;
use crate::secrets::{
    content, order_store, KeyManager, ORDER_ALGORITHM, ORDER_BIT_LENGTHS, ORDER_MODES,
};

pub fn routes(p: &Pipeline) -> Routes {
    vec![
        (
            "/v1/orders",
            p.on(&SERVICE, &ORDERS_GET, MethodFilter::GET, list)
                .merge(p.on(&SERVICE, &ORDERS_POST, MethodFilter::POST, create)),
        ),
        (
            "/v1/orders/{order_id}",
            p.on(&SERVICE, &ORDER_GET, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &ORDER_DELETE, MethodFilter::DELETE, delete)),
        ),
    ]
}

const SCHEMA: &str = "Order";

fn order_json(base: &str, o: &Order) -> Value {
    json!({
        "order_ref": format!("{base}/v1/orders/{}", o.id),
        "type": o.order_type,
        "meta": o.meta,
        "status": o.status,
        "secret_ref": o.secret_id.as_deref().map(|s| secret_ref(base, s)),
        "creator_id": o.creator_id,
        "created": wire::timestamp(o.created_at),
        "updated": wire::timestamp(o.updated_at),
        "sub_status": "Unknown",
        "sub_status_message": "Unknown",
    })
}

/// Checks what only a key order needs: an AES algorithm, a key size AES
/// has, a known mode, a binary content type.
fn check_key_meta(meta: &serde_json::Map<String, Value>) -> Result<(), Error> {
    let algorithm = match meta.get("algorithm") {
        Some(Value::String(a)) if !a.is_empty() => a,
        _ => {
            return Err(wire::invalid(
                SCHEMA,
                "'algorithm' is required field for key type order",
                "meta",
            ))
        }
    };
    let Some(bits) = meta.get("bit_length").and_then(Value::as_i64) else {
        return Err(wire::invalid(
            SCHEMA,
            "'bit_length' is required field for key type order",
            "meta",
        ));
    };
    if !algorithm.eq_ignore_ascii_case(ORDER_ALGORITHM) {
        return Err(wire::invalid(
            SCHEMA,
            &format!(
                "Unsupported algorithm '{algorithm}': key orders generate '{ORDER_ALGORITHM}' keys"
            ),
            "algorithm",
        ));
    }
    if !ORDER_BIT_LENGTHS.contains(&bits) {
        return Err(wire::invalid(
            SCHEMA,
            &format!("Unsupported bit_length {bits} for '{ORDER_ALGORITHM}': one of {ORDER_BIT_LENGTHS:?}"),
            "bit_length",
        ));
    }
    if let Some(Value::String(mode)) = meta.get("mode") {
        if !ORDER_MODES.iter().any(|m| m.eq_ignore_ascii_case(mode)) {
            return Err(wire::invalid(
                SCHEMA,
                &format!("Unsupported mode '{mode}': one of {ORDER_MODES:?}"),
                "mode",
            ));
        }
    }
    if let Some(Value::String(ct)) = meta.get("payload_content_type") {
        if content::normalize(ct) != Some(content::OCTET_STREAM) {
            return Err(wire::invalid(
                SCHEMA,
                "a key order's payload_content_type is application/octet-stream",
                "payload_content_type",
            ));
        }
    }
    Ok(())
}

async fn create(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let project = own_project(&ctx, &authz)?;
    let obj = wire::object(&body, SCHEMA)?;
    match obj.get("type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("key") => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("asymmetric") => {
            return Err(Error::BadRequest(
                "Feature not implemented for 'asymmetric' order type: only 'key' orders are supported."
                    .into(),
            )
            .into())
        }
        Some(v) => {
            return Err(wire::invalid(SCHEMA, &format!("{} is not one of ['key', 'asymmetric']", wire::shown(v)), "type").into())
        }
        None => return Err(wire::invalid(SCHEMA, "'type' is a required property", "type").into()),
    }
    let Some(meta_value) = obj.get("meta") else {
        return Err(wire::invalid(SCHEMA, "'meta' is a required property", "meta").into());
    };
    let meta = wire::object(meta_value, SCHEMA)?;
    let new = parse_new_secret(meta_value, SCHEMA, true)?;
    check_key_meta(meta)?;
    let order = km
        .create_key_order(&project, &ctx.user_id, meta_value.clone(), new)
        .await?;
    let url = format!("{}/v1/orders/{}", service_url(&headers), order.id);
    let mut resp = (StatusCode::ACCEPTED, axum::Json(json!({"order_ref": url}))).into_response();
    resp.extensions_mut().insert(AuditTargetId(order.id));
    Ok(resp)
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
    let (offset, limit) = paging(&params);
    let (orders, total) = order_store::list(km.db(), &project, offset, limit).await?;
    let base = service_url(&headers);
    let mut body = json!({
        "orders": orders.iter().map(|o| order_json(&base, o)).collect::<Vec<_>>(),
    });
    page_links(
        &mut body,
        &format!("{base}/v1/orders"),
        &params,
        offset,
        limit,
        total,
        orders.len(),
    );
    Ok(Json(body))
}

async fn show(
    State(km): State<KeyManager>,
    headers: HeaderMap,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let order = km.order_for(&ORDER_GET, &ctx, &id).await?;
    Ok(Json(order_json(&service_url(&headers), &order)))
}

async fn delete(
    State(km): State<KeyManager>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let order = km.order_for(&ORDER_DELETE, &ctx, &id).await?;
    km.delete_order(&order).await?;
    Ok(StatusCode::NO_CONTENT)
}
