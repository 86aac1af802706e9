//! Cross-origin resource sharing for buckets: the rules a bucket keeps
//! (PutBucketCors), how a browser's request is matched against them, and
//! the layer in front of the S3 service that answers preflight `OPTIONS`
//! requests and adds `Access-Control-*` headers to actual ones.
//!
//! Matching follows S3: the first rule whose origin and method (and, for
//! a preflight, every requested header) match decides; an origin or header
//! pattern may hold one `*` wildcard; header names match case-insensitively.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::audit::Slot;
use crate::store_ext::cors as cors_store;
use crate::ObjectStore;

/// The methods a CORS rule may allow.
pub const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];

/// The most rules a bucket's configuration may hold.
pub const MAX_RULES: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

/// A pattern with at most one `*` that stands for any run of characters.
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (pattern, value) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_string(), value.to_string())
    };
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

impl Rule {
    fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|p| wildcard_match(p, origin, false))
    }

    fn allows_method(&self, method: &str) -> bool {
        self.allowed_methods.iter().any(|m| m == method)
    }

    fn allows_header(&self, header: &str) -> bool {
        self.allowed_headers
            .iter()
            .any(|p| wildcard_match(p, header, true))
    }

    /// Whether the rule admits `origin` using `method` with the request
    /// headers `headers`.
    pub fn admits(&self, origin: &str, method: &str, headers: &[&str]) -> bool {
        self.allows_origin(origin)
            && self.allows_method(method)
            && headers.iter().all(|h| self.allows_header(h))
    }

    /// Whether any origin may use the rule (the answer then names `*`).
    fn any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

/// Checks a configuration as S3 does before storing it.
pub fn validate(rules: &[Rule]) -> Result<(), String> {
    if rules.is_empty() {
        return Err("The CORS configuration needs at least one CORSRule.".into());
    }
    if rules.len() > MAX_RULES {
        return Err(format!(
            "The CORS configuration may hold at most {MAX_RULES} rules."
        ));
    }
    for rule in rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err("Each CORSRule needs an AllowedOrigin and an AllowedMethod.".into());
        }
        if let Some(m) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            ));
        }
        for pattern in rule.allowed_origins.iter().chain(&rule.allowed_headers) {
            if pattern.matches('*').count() > 1 {
                return Err(format!(
                    "AllowedOrigin and AllowedHeader may contain at most one wildcard: \"{pattern}\""
                ));
            }
        }
    }
    Ok(())
}

/// The bucket a path-style request names: its first path segment.
fn bucket_of(path: &str) -> Option<&str> {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .filter(|b| !b.is_empty())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (
        status,
        [(http::header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// The `Access-Control-*` headers a matching rule grants `origin`.
fn grant(headers: &mut HeaderMap, rule: &Rule, origin: &str) {
    if rule.any_origin() {
        set(headers, "access-control-allow-origin", "*");
    } else {
        set(headers, "access-control-allow-origin", origin);
        set(headers, "access-control-allow-credentials", "true");
    }
    set(
        headers,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        set(
            headers,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        set(headers, "access-control-max-age", &age.to_string());
    }
    set(
        headers,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
}

/// The bucket's rules, or None when it has none (or does not exist).
async fn rules_of(store: &ObjectStore, bucket: &str) -> Result<Option<Vec<Rule>>, Response> {
    cors_store::rules_by_bucket_name(store.db(), bucket)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading a bucket's CORS rules");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            )
        })
}

async fn preflight(store: &ObjectStore, headers: &HeaderMap, bucket: Option<&str>) -> Response {
    let Some(origin) = header(headers, "origin") else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let Some(method) = header(headers, "access-control-request-method") else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid Access-Control-Request-Method: null",
        );
    };
    let requested: Vec<String> = header(headers, "access-control-request-headers")
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let requested_refs: Vec<&str> = requested.iter().map(String::as_str).collect();
    let rules = match bucket {
        Some(b) => match rules_of(store, b).await {
            Ok(r) => r,
            Err(response) => return response,
        },
        None => None,
    };
    let Some(rules) = rules else {
        return error(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: CORS is not enabled for this bucket.",
        );
    };
    let Some(rule) = rules
        .iter()
        .find(|r| r.admits(origin, method, &requested_refs))
    else {
        return error(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the \
             evalution of Origin, request method / Access-Control-Request-Method or \
             Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        );
    };
    let mut response = StatusCode::OK.into_response();
    grant(response.headers_mut(), rule, origin);
    if !requested.is_empty() {
        set(
            response.headers_mut(),
            "access-control-allow-headers",
            &requested.join(", "),
        );
    }
    response
}

/// Answers preflight requests and adds the granted `Access-Control-*`
/// headers to requests from an origin a rule of the bucket admits.
pub async fn layer(State(store): State<ObjectStore>, req: Request, next: Next) -> Response {
    let bucket = bucket_of(req.uri().path()).map(str::to_string);
    if req.method() == Method::OPTIONS {
        // S3 names a preflight's audit event PreflightRequest
        if let Some(slot) = req.extensions().get::<Slot>() {
            slot.with(|notes| {
                notes.operation = Some("PreflightRequest".into());
                notes.target = bucket.clone();
            });
        }
        return preflight(&store, req.headers(), bucket.as_deref()).await;
    }
    let origin = header(req.headers(), "origin").map(str::to_string);
    let method = req.method().as_str().to_string();
    let mut response = next.run(req).await;
    let (Some(origin), Some(bucket)) = (origin, bucket) else {
        return response;
    };
    if let Ok(Some(rules)) = rules_of(&store, &bucket).await {
        if let Some(rule) = rules.iter().find(|r| r.admits(&origin, &method, &[])) {
            grant(response.headers_mut(), rule, &origin);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> Rule {
        Rule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn origins_methods_and_headers_match_with_one_wildcard() {
        let r = rule(
            &["https://*.example.org"],
            &["GET", "PUT"],
            &["x-amz-*", "Content-Type"],
        );
        assert!(r.admits("https://app.example.org", "GET", &[]));
        assert!(r.admits(
            "https://app.example.org",
            "PUT",
            &["content-type", "x-amz-meta-a"]
        ));
        assert!(!r.admits("http://app.example.org", "GET", &[]));
        assert!(!r.admits("https://example.org", "GET", &[]));
        assert!(!r.admits("https://app.example.org", "DELETE", &[]));
        assert!(!r.admits("https://app.example.org", "PUT", &["authorization"]));
        assert!(rule(&["*"], &["GET"], &[]).admits("null", "GET", &[]));
    }

    #[test]
    fn configurations_are_checked() {
        assert!(validate(&[rule(&["*"], &["GET"], &[])]).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&[rule(&["*"], &["PATCH"], &[])])
            .unwrap_err()
            .contains("Unsupported method is PATCH"));
        assert!(validate(&[rule(&[], &["GET"], &[])]).is_err());
        assert!(validate(&[rule(&["https://*.*.org"], &["GET"], &[])]).is_err());
        assert!(validate(&vec![rule(&["*"], &["GET"], &[]); MAX_RULES + 1]).is_err());
    }

    #[test]
    fn the_bucket_is_the_first_path_segment() {
        assert_eq!(bucket_of("/b/k/ey"), Some("b"));
        assert_eq!(bucket_of("/b"), Some("b"));
        assert_eq!(bucket_of("/"), None);
    }
}
