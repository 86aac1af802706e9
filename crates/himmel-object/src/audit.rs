//! One audit record per S3 request (service `object-store`, action
//! `s3:<Operation>`, initiator = the access key's user on its project).
//!
//! Management events (everything on buckets, listings, multipart
//! bookkeeping) are always recorded. Data events — GetObject, HeadObject,
//! PutObject, CopyObject, UploadPart, DeleteObject(s) — are recorded only
//! for buckets that switched them on: the bucket tag
//! `himmel:audit-data-events` = `true` (set with PutBucketTagging).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::error_handling::HandleError;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use himmel_http::{AuditRecord, AuditSink};
use http::StatusCode;
use s3s::service::S3Service;

use crate::auth::Caller;

/// The bucket tag that switches data events on.
pub const DATA_EVENTS_TAG: &str = "himmel:audit-data-events";

const DATA_EVENTS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "PutObject",
    "CopyObject",
    "UploadPart",
    "UploadPartCopy",
    "DeleteObject",
    "DeleteObjects",
];

/// What the request's handling learned, for its audit record. Shared
/// through the request extensions.
#[derive(Default, Debug)]
pub struct Notes {
    pub operation: Option<String>,
    pub caller: Option<Caller>,
    pub target: Option<String>,
    /// The bucket acted on records data events.
    pub data_events: bool,
}

#[derive(Clone, Default, Debug)]
pub struct Slot(pub Arc<Mutex<Notes>>);

impl Slot {
    pub fn with<R>(&self, f: impl FnOnce(&mut Notes) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// `s3:<Operation>` as the `&'static str` audit records carry; the set of
/// operation names is fixed, so each is allocated once.
fn action_name(op: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(op) {
        return n;
    }
    let leaked: &'static str = Box::leak(format!("s3:{op}").into_boxed_str());
    names.insert(op.to_string(), leaked);
    leaked
}

/// The S3 service as an axum router (its transport errors answered 500).
pub fn router(service: S3Service) -> axum::Router {
    let service = HandleError::new(service, |e: s3s::HttpError| async move {
        tracing::error!(error = ?e, "S3 request failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    });
    axum::Router::new().fallback_service(service)
}

/// Writes one audit record for every request `router` answers.
pub fn recorded(router: axum::Router, audit: Arc<dyn AuditSink>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(audit, record))
}

async fn record(State(audit): State<Arc<dyn AuditSink>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let slot = Slot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let source_addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let request_id = himmel_core::ids::new_request_id();
    let mut response = next.run(req).await;
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amz-request-id", v);
    }
    let notes = std::mem::take(&mut *slot.0.lock().unwrap_or_else(|e| e.into_inner()));
    let operation = notes.operation.as_deref().unwrap_or("Unauthenticated");
    if DATA_EVENTS.contains(&operation) && !notes.data_events {
        return response;
    }
    let initiator = notes.caller.map(|c| {
        let mut ctx = (*c.context).clone();
        ctx.request_id = request_id.clone();
        ctx.source_addr = source_addr.clone();
        Arc::new(ctx)
    });
    let record = AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        at: chrono::Utc::now(),
        request_id,
        service: "object-store",
        action: action_name(operation),
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        initiator,
        source_addr,
        target_type: "object-store/s3".to_string(),
        target_id: notes.target,
        elapsed_us: started.elapsed().as_micros() as u64,
    };
    let durable = !matches!(method, http::Method::GET | http::Method::HEAD);
    if let Err(e) = audit.record(record, durable).await {
        tracing::error!(error = %e, "audit record could not be written");
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn action_names_are_interned() {
        let a = super::action_name("GetObject");
        assert_eq!(a, "s3:GetObject");
        assert!(std::ptr::eq(a, super::action_name("GetObject")));
    }
}
