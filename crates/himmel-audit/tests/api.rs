//! The audit API through the real pipeline: who sees which events, filters,
//! pages, and errors in Keystone's format.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, Utc};
use common::{project_ctx, record, start, Env};
use himmel_audit::AuditLog;
use himmel_core::{Error, RequestContext, Scope};
use himmel_http::{Authenticator, Pipeline};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Tokens are the names of these callers.
struct Tokens;

fn with_scope(user: &str, scope: Scope, roles: &[&str]) -> RequestContext {
    let mut ctx = (*project_ctx(user, "p1")).clone();
    ctx.scope = scope;
    ctx.roles = roles.iter().map(|r| r.to_string()).collect();
    ctx
}

#[async_trait::async_trait]
impl Authenticator for Tokens {
    async fn authenticate(&self, token: &str, _: &str) -> Result<RequestContext, Error> {
        let project = |id: &str| Scope::Project {
            id: id.into(),
            name: id.into(),
            domain_id: "default".into(),
            domain_name: "Default".into(),
        };
        Ok(match token {
            "system-reader" => with_scope("auditor", Scope::System, &["reader"]),
            "p1-reader" => with_scope("r1", project("p1"), &["reader"]),
            "p2-member" => with_scope("r2", project("p2"), &["member", "reader"]),
            "p2-admin" => with_scope("boss", project("p2"), &["admin", "member", "reader"]),
            "domain-reader" => with_scope(
                "dr",
                Scope::Domain {
                    id: "default".into(),
                    name: "Default".into(),
                },
                &["reader"],
            ),
            _ => {
                return Err(Error::Unauthorized(
                    "The request you have made requires authentication.".into(),
                ))
            }
        })
    }
}

struct Api {
    app: axum::Router,
    log: AuditLog,
}

/// p1: 6 events by u1 (the first 3 a day old), p2: 4 events by u2.
async fn api(env: &Env) -> Api {
    let log = start(env).await;
    let yesterday = Utc::now() - Duration::days(1);
    for i in 0..6 {
        let at = if i < 3 { yesterday } else { Utc::now() };
        log.record(record(i, Some(project_ctx("u1", "p1")), at), true)
            .await
            .unwrap();
    }
    for i in 0..4 {
        log.record(record(i, Some(project_ctx("u2", "p2")), Utc::now()), true)
            .await
            .unwrap();
    }
    let pipeline = Pipeline::new(Arc::new(Tokens), Arc::new(log.clone()));
    Api {
        app: himmel_audit::routes(&pipeline, log.clone()),
        log,
    }
}

impl Api {
    async fn get(&self, token: Option<&str>, uri: &str) -> (StatusCode, Value) {
        let mut req = Request::get(uri).header("host", "cloud.example");
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn ids(&self, token: &str, uri: &str) -> Vec<Value> {
        let (status, body) = self.get(Some(token), uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"].as_array().unwrap().clone()
    }
}

fn projects(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["initiator"]["project_id"]
                .as_str()
                .unwrap_or("-")
                .to_string()
        })
        .collect()
}

async fn readers_see_their_scope(env: Env) {
    let api = api(&env).await;
    let all = api
        .ids("system-reader", "/v3/audit/events?initiator=u1")
        .await
        .len()
        + api
            .ids("system-reader", "/v3/audit/events?initiator=u2")
            .await
            .len();
    assert_eq!(all, 10);
    let p1 = api.ids("p1-reader", "/v3/audit/events").await;
    assert_eq!(p1.len(), 6);
    // Reads are queued without waiting for disk; once flushed, the reader
    // finds its own listing in its project's trail.
    api.log.flush().await.unwrap();
    let p1 = api.ids("p1-reader", "/v3/audit/events").await;
    assert_eq!(p1.len(), 7);
    assert_eq!(p1[0]["name"], "audit:list_events");
    assert!(
        projects(&p1).iter().all(|p| p == "p1"),
        "{:?}",
        projects(&p1)
    );
    // Asking for another project's events gives nothing, not p2's trail.
    assert!(api
        .ids("p1-reader", "/v3/audit/events?project_id=p2")
        .await
        .is_empty());
    let p2 = api.ids("p2-member", "/v3/audit/events?initiator=u2").await;
    assert_eq!(p2.len(), 4);
    // The cloud admin sees everything, whatever the token's project.
    assert_eq!(
        api.ids("p2-admin", "/v3/audit/events?initiator=u1")
            .await
            .len(),
        6
    );
    let (status, body) = api.get(Some("domain-reader"), "/v3/audit/events").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], 403);
    let (status, body) = api.get(None, "/v3/audit/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], 401);
    // Each listing went into the trail itself, denied ones included.
    api.log.flush().await.unwrap();
    let listings = api
        .ids(
            "system-reader",
            "/v3/audit/events?action=read%2Flist&limit=1000",
        )
        .await;
    assert!(listings
        .iter()
        .any(|e| e["outcome"] == "failure" && e["reason"]["reasonCode"] == "401"));
    assert!(listings.iter().all(|e| e["name"] == "audit:list_events"));
}

async fn filters_apply(env: Env) {
    let api = api(&env).await;
    let failures = api
        .ids(
            "system-reader",
            "/v3/audit/events?outcome=failure&initiator=u1",
        )
        .await;
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().all(|e| e["outcome"] == "failure"));
    let creates = api
        .ids("system-reader", "/v3/audit/events?action=create")
        .await;
    assert_eq!(creates.len(), 2 + 2);
    let since = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let recent = api
        .ids(
            "system-reader",
            &format!("/v3/audit/events?initiator=u1&since={}", urlencode(&since)),
        )
        .await;
    assert_eq!(recent.len(), 3);
    let until = (Utc::now() - Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let old = api
        .ids("system-reader", &format!("/v3/audit/events?until={until}"))
        .await;
    assert_eq!(old.len(), 3);
    for bad in [
        "since=yesterday",
        "limit=0",
        "limit=x",
        "sort_dir=up",
        "marker=nope",
    ] {
        let (status, body) = api
            .get(Some("system-reader"), &format!("/v3/audit/events?{bad}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], 400, "{bad}: {body}");
    }
}

async fn pages_follow_next_links(env: Env) {
    let api = api(&env).await;
    let mut uri = "/v3/audit/events?initiator=u1&limit=4&sort_dir=asc".to_string();
    let mut seen = Vec::new();
    loop {
        let (status, body) = api.get(Some("system-reader"), &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["request_id"].clone()),
        );
        match body["links"]["next"].as_str() {
            Some(next) => {
                uri = next
                    .strip_prefix("http://cloud.example")
                    .unwrap()
                    .to_string()
            }
            None => break,
        }
    }
    let expected: Vec<Value> = (0..6).map(|i| Value::String(format!("req-{i}"))).collect();
    assert_eq!(seen, expected, "every event once, oldest first");
    let newest_first = api
        .ids("system-reader", "/v3/audit/events?initiator=u1")
        .await;
    assert_eq!(newest_first[0]["request_id"], "req-5");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

on_both_engines!(
    readers_see_their_scope,
    filters_apply,
    pages_follow_next_links
);
