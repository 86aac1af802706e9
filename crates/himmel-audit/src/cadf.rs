//! Turning a pipeline [`AuditRecord`] into a CADF event (DMTF DSP0262).
//!
//! The record carries no request or response body, and this module adds
//! none: an event says who did what to which resource, from where, and how
//! it ended, never with which secret.

use himmel_core::{RequestContext, Scope};
use himmel_http::AuditRecord;
use serde_json::{json, Map, Value};

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

/// Builds the CADF event for `rec`, observed by `observer_id` (the region).
pub fn event_from_record(rec: &AuditRecord, observer_id: &str) -> Event {
    let action = cadf_action(rec.action, &rec.method);
    let ctx = rec.initiator.as_deref();
    let (project_id, domain_id) = scope_ids(ctx);
    let mut initiator = Map::new();
    initiator.insert("typeURI".into(), USER_TYPE_URI.into());
    initiator.insert(
        "id".into(),
        ctx.map_or("unknown", |c| c.user_id.as_str()).into(),
    );
    if let Some(c) = ctx {
        initiator.insert("name".into(), c.user_name.clone().into());
        initiator.insert("domain_id".into(), c.user_domain_id.clone().into());
        if let (Some(p), Some(d)) = (&project_id, &domain_id) {
            initiator.insert("project_id".into(), p.clone().into());
            initiator.insert("project_domain_id".into(), d.clone().into());
        }
        if let Some(d) = c.domain_id() {
            initiator.insert("scope_domain_id".into(), d.into());
        }
        if c.is_system() {
            initiator.insert("system_scope".into(), "all".into());
        }
        if let Some(app) = &c.application_credential_id {
            initiator.insert("application_credential_id".into(), app.clone().into());
        }
    }
    initiator.insert("host".into(), json!({"address": rec.source_addr}));

    let body = json!({
        "typeURI": EVENT_TYPE_URI,
        "id": rec.id,
        "eventType": "activity",
        "eventTime": rec.at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
        "action": action,
        "name": rec.action,
        "outcome": rec.outcome(),
        "reason": {"reasonType": "HTTP", "reasonCode": rec.status.to_string()},
        "initiator": Value::Object(initiator),
        "target": {
            "typeURI": rec.target_type,
            "id": rec.target_id.as_deref().unwrap_or("unknown"),
        },
        "observer": {"typeURI": format!("service/{}", rec.service), "id": observer_id},
        "requestPath": rec.path,
        "request_id": rec.request_id,
        "attachments": [
            {"name": "method", "typeURI": "xs:string", "content": rec.method},
            {"name": "elapsed_us", "typeURI": "xs:long", "content": rec.elapsed_us},
        ],
    });
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
        body: canonical_json(&body),
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
    let v: Value = serde_json::from_str(body).ok()?;
    let s = |ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(str::to_owned);
    let at = chrono::DateTime::parse_from_rfc3339(&s("/eventTime")?).ok()?;
    let initiator_id =
        s("/initiator/id").filter(|id| id != "unknown" || s("/initiator/name").is_some());
    let project_id = s("/initiator/project_id");
    let domain_id = s("/initiator/project_domain_id").or_else(|| s("/initiator/scope_domain_id"));
    Some(Indexed {
        id: s("/id")?,
        at_us: at.timestamp_micros(),
        project_id,
        domain_id,
        initiator_id,
        action: s("/action")?,
        outcome: s("/outcome")?,
    })
}
