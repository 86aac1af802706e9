//! `GET /v3/audit/events`: the trail over the API, filtered and paged.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_db::Row;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline, Target};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::policy::{LIST_EVENTS, SERVICE};
use crate::AuditLog;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// The audit API, guarded by the pipeline.
pub fn routes(pipeline: &Pipeline, log: AuditLog) -> Router {
    Router::new()
        .route(
            "/v3/audit/events",
            pipeline.on(&SERVICE, &LIST_EVENTS, MethodFilter::GET, list_events),
        )
        .with_state(log)
}

#[derive(Deserialize, Default)]
struct ListQuery {
    since: Option<String>,
    until: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    initiator: Option<String>,
    project_id: Option<String>,
    limit: Option<String>,
    marker: Option<String>,
    sort_dir: Option<String>,
}

/// A WHERE clause built from the filters, with its `$n` parameters.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    texts: Vec<(usize, String)>,
    ints: Vec<(usize, i64)>,
}

impl Filter {
    fn next(&self) -> usize {
        self.texts.len() + self.ints.len() + 1
    }
    fn text(&mut self, column: &str, op: &str, v: String) {
        let n = self.next();
        self.clauses.push(format!("{column} {op} ${n}"));
        self.texts.push((n, v));
    }
    fn int(&mut self, column: &str, op: &str, v: i64) {
        let n = self.next();
        self.clauses.push(format!("{column} {op} ${n}"));
        self.ints.push((n, v));
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

fn timestamp(name: &str, v: &str) -> Result<i64, Error> {
    himmel_core::time::parse_timestamp(v)
        .map(|t| t.timestamp_micros())
        .ok_or_else(|| bad(format!("Invalid {name}: expected an ISO 8601 timestamp.")))
}

async fn list_events(
    State(log): State<AuditLog>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    // Without an unconditional grant the caller is a project reader, who
    // sees its own project's events only.
    let own_project = if authz.unconditional() {
        None
    } else {
        let project = ctx.project_id().map(str::to_owned);
        authz.check(&Target {
            project_id: project.clone(),
            ..Default::default()
        })?;
        project
    };
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("Invalid limit: expected a positive integer."))?
            .min(MAX_LIMIT),
    };
    let descending = match q.sort_dir.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(bad("Invalid sort_dir: expected asc or desc.").into()),
    };

    let mut f = Filter::default();
    if let Some(p) = own_project {
        f.text("project_id", "=", p);
    }
    if let Some(p) = q.project_id.clone() {
        f.text("project_id", "=", p);
    }
    if let Some(s) = &q.since {
        f.int("at", ">=", timestamp("since", s)?);
    }
    if let Some(s) = &q.until {
        f.int("at", "<=", timestamp("until", s)?);
    }
    if let Some(a) = q.action.clone() {
        f.text("action", "=", a);
    }
    if let Some(o) = q.outcome.clone() {
        f.text("outcome", "=", o);
    }
    if let Some(i) = q.initiator.clone() {
        f.text("initiator_id", "=", i);
    }
    if let Some(marker) = &q.marker {
        let row = sqlx::query("SELECT seq FROM audit_events WHERE id = $1")
            .bind(marker)
            .fetch_optional(log.db().pool())
            .await
            .map_err(Error::internal)?
            .ok_or_else(|| bad(format!("Marker {marker} could not be found.")))?;
        let seq: i64 = row.try_get("seq").map_err(Error::internal)?;
        f.int("seq", if descending { "<" } else { ">" }, seq);
    }
    let limit_param = f.next();
    let sql = format!(
        "SELECT id, body FROM audit_events{}{} ORDER BY seq {} LIMIT ${limit_param}",
        if f.clauses.is_empty() { "" } else { " WHERE " },
        f.clauses.join(" AND "),
        if descending { "DESC" } else { "ASC" },
    );
    let mut query = sqlx::query(&sql);
    // Bind in placeholder order.
    let mut params: Vec<(usize, Result<String, i64>)> = f
        .texts
        .into_iter()
        .map(|(n, v)| (n, Ok(v)))
        .chain(f.ints.into_iter().map(|(n, v)| (n, Err(v))))
        .collect();
    params.sort_by_key(|(n, _)| *n);
    for (_, p) in params {
        query = match p {
            Ok(text) => query.bind(text),
            Err(int) => query.bind(int),
        };
    }
    // One more than asked tells whether a next page exists.
    let rows = query
        .bind(limit + 1)
        .fetch_all(log.db().pool())
        .await
        .map_err(Error::internal)?;
    let has_more = rows.len() as i64 > limit;
    let mut events = Vec::with_capacity(rows.len());
    let mut last_id = None;
    for row in rows.iter().take(limit as usize) {
        let body: String = row.try_get("body").map_err(Error::internal)?;
        events.push(serde_json::from_str::<Value>(&body).map_err(Error::internal)?);
        last_id = Some(row.try_get::<String, _>("id").map_err(Error::internal)?);
    }
    let self_url = format!("{}/v3/audit/events", base_url(&headers));
    let next = match (has_more, last_id) {
        (true, Some(id)) => Some(format!("{self_url}?{}", next_query(&q, limit, &id))),
        _ => None,
    };
    Ok(Json(json!({
        "events": events,
        "links": {"self": self_url, "next": next, "previous": Value::Null},
    })))
}

/// The query string of the next page: the same filters, the new marker.
fn next_query(q: &ListQuery, limit: i64, marker: &str) -> String {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    let fields = [
        ("since", &q.since),
        ("until", &q.until),
        ("action", &q.action),
        ("outcome", &q.outcome),
        ("initiator", &q.initiator),
        ("project_id", &q.project_id),
        ("sort_dir", &q.sort_dir),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            pairs.append_pair(name, v);
        }
    }
    pairs.append_pair("limit", &limit.to_string());
    pairs.append_pair("marker", marker);
    pairs.finish()
}

/// The base URL clients used to reach us, for links.
fn base_url(headers: &HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    format!(
        "{}://{}",
        header("x-forwarded-proto").unwrap_or("http"),
        header("host").unwrap_or("localhost")
    )
}
