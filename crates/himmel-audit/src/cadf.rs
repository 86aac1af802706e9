//! Turning a pipeline [`AuditRecord`] into a CADF event (DMTF DSP0262).
//!
//! The record carries no request or response body, and this module adds
//! none: an event says who did what to which resource, from where, and how
//! it ended, never with which secret.

use himmel_core::{RequestContext, Scope};
use himmel_http::AuditRecord;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};
#[cfg(test)]
use serde_json::json;
use serde_json::Value;

pub const EVENT_TYPE_URI: &str = "http://schemas.dmtf.org/cloud/audit/1.0/event";
pub const USER_TYPE_URI: &str = "service/security/account/user";

/// The fields of an event that also live in their own columns, so the
/// store can filter without parsing bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub id: String,
    pub at_us: i64,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub initiator_id: Option<String>,
    pub action: String,
    pub outcome: String,
}

/// An event ready to be chained: its indexed fields and canonical body.
#[derive(Debug, Clone)]
pub struct Event {
    pub indexed: Indexed,
    pub body: String,
}

// The wire shape of an event. Fields are declared in byte order of their
// JSON names at every level, so serializing gives the canonical form
// directly (a test checks it against `canonical_json`).
#[derive(Serialize, Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow, default)]
    attachments: Vec<Attachment<'a>>,
    #[serde(rename = "eventTime", borrow)]
    event_time: Cow<'a, str>,
    #[serde(rename = "eventType", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    initiator: Initiator<'a>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    observer: Resource<'a>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow)]
    reason: Reason<'a>,
    #[serde(rename = "requestPath", borrow)]
    request_path: Cow<'a, str>,
    #[serde(borrow)]
    request_id: Cow<'a, str>,
    #[serde(borrow)]
    target: Resource<'a>,
    #[serde(rename = "typeURI", borrow)]
    type_uri: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct Attachment<'a> {
    #[serde(borrow)]
    content: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(rename = "typeURI", borrow)]
    type_uri: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct Initiator<'a> {
    #[serde(skip_serializing_if = "Option::is_none", borrow, default)]
    application_credential_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow, default)]
    domain_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host: Host<'a>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none", borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow, default)]
    project_domain_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow, default)]
    project_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow, default)]
    scope_domain_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow, default)]
    system_scope: Option<Cow<'a, str>>,
    #[serde(rename = "typeURI", borrow)]
    type_uri: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct Host<'a> {
    #[serde(borrow)]
    address: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct Reason<'a> {
    #[serde(rename = "reasonCode", borrow)]
    reason_code: Cow<'a, str>,
    #[serde(rename = "reasonType", borrow)]
    reason_type: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct Resource<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "typeURI", borrow)]
    type_uri: Cow<'a, str>,
}

/// Builds the CADF event for `rec`, observed by `observer_id` (the region).
pub fn event_from_record(rec: &AuditRecord, observer_id: &str) -> Event {
    let action = cadf_action(rec.action, &rec.method);
    let ctx = rec.initiator.as_deref();
    let (project_id, domain_id) = scope_ids(ctx);
    let b = |s: &str| Cow::Owned(s.to_string());
    let initiator = Initiator {
        application_credential_id: ctx
            .and_then(|c| c.application_credential_id.as_deref())
            .map(b),
        domain_id: ctx.map(|c| b(&c.user_domain_id)),
        host: Host {
            address: b(&rec.source_addr),
        },
        id: b(ctx.map_or("unknown", |c| c.user_id.as_str())),
        name: ctx.map(|c| b(&c.user_name)),
        project_domain_id: project_id.as_ref().and(domain_id.as_deref()).map(b),
        project_id: project_id.as_deref().map(b),
        scope_domain_id: ctx.and_then(|c| c.domain_id()).map(b),
        system_scope: ctx.filter(|c| c.is_system()).map(|_| b("all")),
        type_uri: USER_TYPE_URI.into(),
    };
    let body = Body {
        action: action.into(),
        attachments: vec![
            Attachment {
                content: b(&rec.method),
                name: "method".into(),
                type_uri: "xs:string".into(),
            },
            Attachment {
                content: b(&rec.elapsed_us.to_string()),
                name: "elapsed_us".into(),
                type_uri: "xs:long".into(),
            },
        ],
        event_time: b(&rec.at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()),
        event_type: "activity".into(),
        id: b(&rec.id),
        initiator,
        name: rec.action.into(),
        observer: Resource {
            id: b(observer_id),
            type_uri: b(&format!("service/{}", rec.service)),
        },
        outcome: rec.outcome().into(),
        reason: Reason {
            reason_code: b(&rec.status.to_string()),
            reason_type: "HTTP".into(),
        },
        request_path: b(&rec.path),
        request_id: b(&rec.request_id),
        target: Resource {
            id: b(rec.target_id.as_deref().unwrap_or("unknown")),
            type_uri: b(&rec.target_type),
        },
        type_uri: EVENT_TYPE_URI.into(),
    };
    Event {
        indexed: Indexed {
            id: rec.id.clone(),
            at_us: rec.at.timestamp_micros(),
            project_id,
            domain_id,
            initiator_id: ctx.map(|c| c.user_id.clone()),
            action: action.to_string(),
            outcome: rec.outcome().to_string(),
        },
        // A struct of strings always serializes.
        body: serde_json::to_string(&body).unwrap_or_default(),
    }
}

/// The project and domain an event belongs to: the caller's scope.
fn scope_ids(ctx: Option<&RequestContext>) -> (Option<String>, Option<String>) {
    match ctx.map(|c| &c.scope) {
        Some(Scope::Project { id, domain_id, .. }) => (Some(id.clone()), Some(domain_id.clone())),
        Some(Scope::Domain { id, .. }) => (None, Some(id.clone())),
        _ => (None, None),
    }
}

/// The CADF action for an operation. Names say more than methods (a token
/// issue is a POST but an `authenticate`), so the name decides first.
pub fn cadf_action(operation: &str, method: &str) -> &'static str {
    // "identity:create_user" → "create_user"
    let op = operation
        .rsplit(':')
        .next()
        .unwrap_or(operation)
        .to_ascii_lowercase();
    let has = |w: &str| op.split(['_', '-', '.', '/']).any(|part| part == w);
    if has("authenticate") || has("login") || op == "issue_token" || op == "create_token" {
        "authenticate"
    } else if has("logout") || op == "revoke_token" {
        "authenticate/logout"
    } else if has("list") {
        "read/list"
    } else if has("create") || has("add") || has("upload") {
        "create"
    } else if has("delete") || has("remove") || has("revoke") {
        "delete"
    } else if has("update") || has("set") || has("patch") || has("change") || has("put") {
        "update"
    } else if has("get") || has("show") || has("check") || has("validate") || has("head") {
        "read"
    } else {
        match method {
            "GET" | "HEAD" | "OPTIONS" => "read",
            "POST" => "create",
            "PUT" | "PATCH" => "update",
            "DELETE" => "delete",
            _ => "unknown",
        }
    }
}

/// Compact JSON with object keys sorted at every level, so the bytes that
/// are hashed do not depend on how the value was built.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::with_capacity(1024);
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Reads the indexed fields back out of a stored body (used by verify to
/// catch columns edited behind the chain's back).
pub fn indexed_from_body(body: &str) -> Option<Indexed> {
    let v: Body = serde_json::from_str(body).ok()?;
    let at = chrono::DateTime::parse_from_rfc3339(&v.event_time).ok()?;
    let i = v.initiator;
    let own = |c: Option<Cow<str>>| c.map(Cow::into_owned);
    Some(Indexed {
        id: v.id.into_owned(),
        at_us: at.timestamp_micros(),
        domain_id: own(i.project_domain_id.clone().or(i.scope_domain_id)),
        project_id: own(i.project_id),
        // An anonymous caller has neither a user name nor an id of its own.
        initiator_id: i.name.as_ref().map(|_| i.id.into_owned()),
        action: v.action.into_owned(),
        outcome: v.outcome.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rec(ctx: Option<RequestContext>) -> AuditRecord {
        AuditRecord {
            id: "e1".into(),
            at: chrono::Utc::now(),
            request_id: "req-1".into(),
            service: "identity",
            action: "identity:create_user",
            method: "POST".into(),
            path: "/v3/users".into(),
            status: 201,
            initiator: ctx.map(Arc::new),
            source_addr: "192.0.2.1".into(),
            target_type: "data/security/account/user".into(),
            target_id: Some("u9".into()),
            elapsed_us: 42,
        }
    }

    fn ctx(scope: Scope) -> RequestContext {
        RequestContext {
            request_id: "req-1".into(),
            user_id: "u1".into(),
            user_name: "alice".into(),
            user_domain_id: "default".into(),
            user_domain_name: "Default".into(),
            scope,
            roles: vec!["admin".into()],
            methods: vec!["password".into()],
            audit_ids: vec!["secret-audit-id".into()],
            application_credential_id: None,
            expires_at: String::new(),
            source_addr: "192.0.2.1".into(),
        }
    }

    fn project() -> Scope {
        Scope::Project {
            id: "p1".into(),
            name: "p".into(),
            domain_id: "d1".into(),
            domain_name: "d".into(),
        }
    }

    #[test]
    fn body_is_canonical_cadf() {
        for c in [None, Some(ctx(project())), Some(ctx(Scope::System))] {
            let ev = event_from_record(&rec(c), "region-1");
            let v: Value = serde_json::from_str(&ev.body).unwrap();
            assert_eq!(
                canonical_json(&v),
                ev.body,
                "body must already be canonical"
            );
            assert_eq!(v["typeURI"], EVENT_TYPE_URI);
            assert_eq!(v["eventType"], "activity");
            assert_eq!(v["action"], "create");
            assert_eq!(v["name"], "identity:create_user");
            assert_eq!(v["outcome"], "success");
            assert_eq!(
                v["reason"],
                json!({"reasonType": "HTTP", "reasonCode": "201"})
            );
            assert_eq!(
                v["target"],
                json!({"typeURI": "data/security/account/user", "id": "u9"})
            );
            assert_eq!(
                v["observer"],
                json!({"typeURI": "service/identity", "id": "region-1"})
            );
            assert_eq!(v["initiator"]["typeURI"], USER_TYPE_URI);
            assert_eq!(v["initiator"]["host"]["address"], "192.0.2.1");
            assert_eq!(v["requestPath"], "/v3/users");
            assert_eq!(v["request_id"], "req-1");
        }
    }

    #[test]
    fn initiator_and_indexed_fields_follow_the_scope() {
        let ev = event_from_record(&rec(Some(ctx(project()))), "r");
        let v: Value = serde_json::from_str(&ev.body).unwrap();
        assert_eq!(v["initiator"]["id"], "u1");
        assert_eq!(v["initiator"]["name"], "alice");
        assert_eq!(v["initiator"]["domain_id"], "default");
        assert_eq!(v["initiator"]["project_id"], "p1");
        assert_eq!(ev.indexed.project_id.as_deref(), Some("p1"));
        assert_eq!(ev.indexed.domain_id.as_deref(), Some("d1"));
        assert_eq!(indexed_from_body(&ev.body), Some(ev.indexed.clone()));
        // Token audit ids identify tokens; they stay out of the trail.
        assert!(!ev.body.contains("secret-audit-id"));

        let anon = event_from_record(&rec(None), "r");
        assert_eq!(anon.indexed.initiator_id, None);
        assert_eq!(indexed_from_body(&anon.body), Some(anon.indexed.clone()));

        let domain = Scope::Domain {
            id: "d7".into(),
            name: "d".into(),
        };
        let ev = event_from_record(&rec(Some(ctx(domain))), "r");
        assert_eq!(
            (ev.indexed.project_id.clone(), ev.indexed.domain_id.clone()),
            (None, Some("d7".into()))
        );
        assert_eq!(indexed_from_body(&ev.body), Some(ev.indexed));
    }

    #[test]
    fn actions_come_from_operation_names_then_methods() {
        assert_eq!(cadf_action("identity:create_user", "POST"), "create");
        assert_eq!(cadf_action("identity:list_users", "GET"), "read/list");
        assert_eq!(cadf_action("identity:get_user", "GET"), "read");
        assert_eq!(cadf_action("identity:update_user", "PATCH"), "update");
        assert_eq!(cadf_action("identity:delete_user", "DELETE"), "delete");
        assert_eq!(cadf_action("identity:issue_token", "POST"), "authenticate");
        assert_eq!(
            cadf_action("identity:revoke_token", "DELETE"),
            "authenticate/logout"
        );
        assert_eq!(cadf_action("identity:check_token", "HEAD"), "read");
        assert_eq!(cadf_action("compute:reboot", "POST"), "create");
        assert_eq!(cadf_action("compute:reboot", "PUT"), "update");
    }
}
