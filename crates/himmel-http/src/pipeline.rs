//! The request pipeline: exactly one function, [`guard`], wraps every
//! handler of every service. It authenticates the token, builds the request
//! context, checks the operation's policy rule, runs the handler, renders
//! errors in the service's format, writes the audit record and the request
//! id header, and records latency. Handlers do none of that themselves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use chrono::{DateTime, Utc};
use himmel_core::{Error, RequestContext};

use crate::error::{render, PendingError};
use crate::policy::{decide, Decision, Rule, Target};
use crate::{ApiError, ErrorFormat};

/// Turns a token into a request context.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, token: &str, source_addr: &str) -> Result<RequestContext, Error>;
}

/// Receives one record per request. `durable` asks the sink to return only
/// once the record is on disk (used for requests that change state).
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    async fn record(&self, record: AuditRecord, durable: bool) -> Result<(), Error>;
}

/// What the pipeline knows about one finished request, for the audit trail.
/// It never holds a request or response body, so no password, token or
/// secret can reach the trail.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: String,
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub service: &'static str,
    pub action: &'static str,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub initiator: Option<Arc<RequestContext>>,
    pub source_addr: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub elapsed_us: u64,
}

impl AuditRecord {
    /// CADF outcome of the request.
    pub fn outcome(&self) -> &'static str {
        if self.status < 400 {
            "success"
        } else {
            "failure"
        }
    }
}

/// A service as the pipeline sees it.
#[derive(Debug)]
pub struct Service {
    /// Short name used in CADF type URIs (`identity`, `network`, …).
    pub name: &'static str,
    pub format: ErrorFormat,
}

/// One API operation and the policy rule that guards it.
#[derive(Debug)]
pub struct Operation {
    pub name: &'static str,
    pub rule: Rule,
    /// The CADF resource type acted on, e.g. `identity/user`.
    pub target_type: &'static str,
}

impl Operation {
    pub const fn new(name: &'static str, target_type: &'static str, rule: Rule) -> Self {
        Operation {
            name,
            rule,
            target_type,
        }
    }

    fn is_public(&self) -> bool {
        self.rule.contains(&crate::Check::Public)
    }
}

/// Handlers may put this in their response to name the resource they acted
/// on when the path does not (a create returns the new id this way).
#[derive(Debug, Clone)]
pub struct AuditTargetId(pub String);

/// The pipeline's shared parts.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    authenticator: Arc<dyn Authenticator>,
    audit: Arc<dyn AuditSink>,
}

impl Pipeline {
    pub fn new(authenticator: Arc<dyn Authenticator>, audit: Arc<dyn AuditSink>) -> Self {
        Pipeline {
            inner: Arc::new(Inner {
                authenticator,
                audit,
            }),
        }
    }

    /// A route for `method` guarded by `op`; merge several for one path.
    pub fn on<H, T, S>(
        &self,
        service: &'static Service,
        op: &'static Operation,
        method: MethodFilter,
        handler: H,
    ) -> MethodRouter<S>
    where
        H: axum::handler::Handler<T, S>,
        T: 'static,
        S: Clone + Send + Sync + 'static,
    {
        let guard_state = GuardState {
            pipeline: self.clone(),
            service,
            op,
        };
        on(method, handler).layer(from_fn_with_state(guard_state, guard))
    }
}

#[derive(Clone)]
struct GuardState {
    pipeline: Pipeline,
    service: &'static Service,
    op: &'static Operation,
}

/// The authenticated caller, for handlers.
#[derive(Clone)]
pub struct Ctx(pub Arc<RequestContext>);

impl std::ops::Deref for Ctx {
    type Target = RequestContext;
    fn deref(&self) -> &RequestContext {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| ApiError(unauthenticated()))
    }
}

/// The caller on routes where a token is optional.
pub struct MaybeCtx(pub Option<Arc<RequestContext>>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCtx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(MaybeCtx(parts.extensions.get::<Ctx>().map(|c| c.0.clone())))
    }
}

/// A policy decision that waits for the target. Handlers of operations
/// whose rule depends on the resource call [`Authz::check`] once they have
/// loaded it; if a handler forgets, the pipeline refuses the request.
#[derive(Clone)]
pub struct Authz {
    rule: Rule,
    op: &'static str,
    ctx: Option<Arc<RequestContext>>,
    /// 0: not needed, 1: pending, 2: checked.
    state: Arc<AtomicU8>,
}

impl Authz {
    pub fn check(&self, target: &Target) -> Result<(), ApiError> {
        self.state.store(2, Ordering::Release);
        match decide(self.rule, self.ctx.as_deref(), Some(target)) {
            Decision::Allow => Ok(()),
            _ => Err(ApiError(forbidden(self.op))),
        }
    }

    /// True when the rule allows the caller on `target` (for filtering lists).
    pub fn allows(&self, target: &Target) -> bool {
        self.state.store(2, Ordering::Release);
        decide(self.rule, self.ctx.as_deref(), Some(target)) == Decision::Allow
    }

    /// True when the rule already allowed the request without a target.
    pub fn unconditional(&self) -> bool {
        self.state.load(Ordering::Acquire) == 0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authz {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Authz>()
            .cloned()
            .ok_or_else(|| ApiError(Error::Internal("route has no policy guard".into())))
    }
}

pub fn unauthenticated() -> Error {
    Error::Unauthorized("The request you have made requires authentication.".into())
}

pub fn forbidden(op: &str) -> Error {
    Error::Forbidden(format!(
        "You are not authorized to perform the requested action: {op}."
    ))
}

async fn guard(State(g): State<GuardState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = himmel_core::ids::new_request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let source_addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let path_target = last_path_param(&mut req).await;

    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let auth = match token {
        Some(t) => Some(
            g.pipeline
                .inner
                .authenticator
                .authenticate(&t, &source_addr)
                .await,
        ),
        None => None,
    };
    let (ctx, auth_error) = match auth {
        Some(Ok(mut ctx)) => {
            ctx.request_id = request_id.clone();
            ctx.source_addr = source_addr.clone();
            (Some(Arc::new(ctx)), None)
        }
        Some(Err(e)) => (None, Some(e)),
        None => (None, Some(unauthenticated())),
    };

    let authz_state = Arc::new(AtomicU8::new(0));
    let mut response = if ctx.is_none() && !g.op.is_public() {
        render(
            g.service.format,
            &auth_error.unwrap_or_else(unauthenticated),
        )
    } else {
        match decide(g.op.rule, ctx.as_deref(), None) {
            Decision::Deny => render(g.service.format, &forbidden(g.op.name)),
            decision => {
                if decision == Decision::NeedsTarget {
                    authz_state.store(1, Ordering::Release);
                }
                req.extensions_mut().insert(Authz {
                    rule: g.op.rule,
                    op: g.op.name,
                    ctx: ctx.clone(),
                    state: authz_state.clone(),
                });
                if let Some(ctx) = &ctx {
                    req.extensions_mut().insert(Ctx(ctx.clone()));
                }
                let resp = next.run(req).await;
                finish(g.service.format, g.op.name, resp, &authz_state)
            }
        }
    };

    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-openstack-request-id", v);
    }
    let target_id = response
        .extensions()
        .get::<AuditTargetId>()
        .map(|t| t.0.clone())
        .or(path_target);
    let record = AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        at: Utc::now(),
        request_id,
        service: g.service.name,
        action: g.op.name,
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        initiator: ctx,
        source_addr,
        target_type: g.op.target_type.to_string(),
        target_id,
        elapsed_us: started.elapsed().as_micros() as u64,
    };
    let durable = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if let Err(e) = g.pipeline.inner.audit.record(record, durable).await {
        tracing::error!(error = %e, "audit record could not be written");
    }
    tracing::debug!(
        op = g.op.name,
        status = response.status().as_u16(),
        us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// Renders pending errors and plain-text rejections in the service's format,
/// and fails closed when a target-dependent rule was never checked.
fn finish(format: ErrorFormat, op: &str, resp: Response, authz: &AtomicU8) -> Response {
    if let Some(PendingError(e)) = resp.extensions().get::<PendingError>() {
        if let Error::Internal(detail) = e {
            tracing::error!(op, detail = %detail, "internal error");
        }
        let mut out = render(format, e);
        copy_extensions(&resp, &mut out);
        return out;
    }
    if authz.load(Ordering::Acquire) == 1 && resp.status().is_success() {
        tracing::error!(op, "handler did not check its target-dependent policy rule");
        return render(format, &forbidden(op));
    }
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let err = match status.as_u16() {
            400 => Error::BadRequest("The request could not be understood.".into()),
            404 => Error::NotFound("The resource could not be found.".into()),
            405 => {
                Error::MethodNotAllowed("The method is not allowed for the requested URL.".into())
            }
            413 => Error::PayloadTooLarge("Request is too large.".into()),
            415 => Error::UnsupportedMediaType("Unsupported media type.".into()),
            s if s >= 500 => Error::Internal(format!("status {s}")),
            _ => Error::BadRequest(status.canonical_reason().unwrap_or("Bad request").into()),
        };
        return render(format, &err);
    }
    resp
}

fn copy_extensions(from: &Response, to: &mut Response) {
    if let Some(t) = from.extensions().get::<AuditTargetId>() {
        to.extensions_mut().insert(t.clone());
    }
}

async fn last_path_param(req: &mut Request) -> Option<String> {
    let (mut parts, body) = std::mem::take(req).into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok();
    *req = Request::from_parts(parts, body);
    params.and_then(|p| p.iter().last().map(|(_, v)| v.to_string()))
}

/// Fallback for paths no route matches, in `format`.
pub fn not_found(format: ErrorFormat) -> Response {
    render(
        format,
        &Error::NotFound("The resource could not be found.".into()),
    )
}
