//! Bucket policies: JSON documents in S3's policy language, a useful
//! subset of it.
//!
//! ```json
//! {"Version": "2012-10-17",
//!  "Statement": [{"Sid": "...", "Effect": "Allow" | "Deny",
//!                 "Principal": "*" | {"AWS": "*" | "<who>" | ["<who>", ...]},
//!                 "Action": "s3:GetObject" | ["s3:Get*", ...],
//!                 "Resource": "arn:aws:s3:::bucket/prefix/*" | [...],
//!                 "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]},
//!                               "NotIpAddress": {"aws:SourceIp": "..."},
//!                               "Bool": {"aws:SecureTransport": "true"}}}]}
//! ```
//!
//! Principals (`<who>`): `*` is everyone, anonymous callers included; a
//! project id or `arn:aws:iam::<project id>:root` is every user acting on
//! that project; `arn:aws:iam::<project id>:user/<user id>` is one user
//! acting on that project. Actions and resources may use the `*` and `?`
//! wildcards; resources must name the policy's own bucket.
//!
//! Evaluation: an explicit Deny that matches wins; otherwise a matching
//! Allow grants the request; otherwise the project rules of
//! [`crate::policy`] decide. The owner project's members may always read,
//! change and delete the policy itself, so a policy cannot lock them out.

use std::net::IpAddr;

use serde_json::Value;

/// A parsed policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    /// None: everyone.
    principals: Option<Vec<String>>,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
enum Condition {
    SourceIp {
        negate: bool,
        nets: Vec<(IpAddr, u8)>,
    },
    SecureTransport(bool),
}

/// What a request is, as a policy sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `s3:GetObject`, ...
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    /// The caller's project and user; None when anonymous.
    pub caller: Option<(&'a str, &'a str)>,
    pub source_ip: Option<IpAddr>,
    pub secure_transport: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Deny,
    Allow,
    /// No statement applies.
    Silent,
}

fn list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "expected strings".to_string())
            })
            .collect(),
        _ => Err("expected a string or a list of strings".into()),
    }
}

fn parse_net(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid IP address {s}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("invalid prefix length in {s}"))?,
        None => max,
    };
    Ok((ip, bits))
}

fn in_net(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
            None => return false,
        },
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (a >> shift) == (b >> shift)
}

/// `*` and `?` wildcards; `fold` compares ASCII case-insensitively.
fn glob(pattern: &str, text: &str, fold: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn parse_conditions(v: &Value) -> Result<Vec<Condition>, String> {
    let ops = v.as_object().ok_or("Condition must be an object")?;
    let mut out = Vec::new();
    for (op, keys) in ops {
        let keys = keys
            .as_object()
            .ok_or("a condition must map keys to values")?;
        for (key, values) in keys {
            let values = list(values)?;
            match (op.as_str(), key.to_ascii_lowercase().as_str()) {
                ("IpAddress" | "NotIpAddress", "aws:sourceip") => out.push(Condition::SourceIp {
                    negate: op == "NotIpAddress",
                    nets: values
                        .iter()
                        .map(|v| parse_net(v))
                        .collect::<Result<_, _>>()?,
                }),
                ("Bool", "aws:securetransport") => {
                    let [v] = values.as_slice() else {
                        return Err("aws:SecureTransport takes one value".into());
                    };
                    out.push(Condition::SecureTransport(match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err("aws:SecureTransport must be true or false".into()),
                    }))
                }
                _ => return Err(format!("unsupported condition {op} on {key}")),
            }
        }
    }
    Ok(out)
}

fn parse_statement(v: &Value, bucket: &str) -> Result<Statement, String> {
    let o = v.as_object().ok_or("a Statement must be an object")?;
    for k in o.keys() {
        if ![
            "Sid",
            "Effect",
            "Principal",
            "Action",
            "Resource",
            "Condition",
        ]
        .contains(&k.as_str())
        {
            return Err(format!("unsupported statement element {k}"));
        }
    }
    let allow = match o.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => return Err("Effect must be Allow or Deny".into()),
    };
    let principals = match o.get("Principal") {
        Some(Value::String(s)) if s == "*" => None,
        Some(Value::Object(m)) if m.len() == 1 && m.contains_key("AWS") => {
            let who = list(&m["AWS"])?;
            if who.iter().any(|w| w == "*") {
                None
            } else {
                Some(who)
            }
        }
        _ => return Err("Principal must be \"*\" or {\"AWS\": ...}".into()),
    };
    let actions = list(o.get("Action").ok_or("a statement needs an Action")?)?;
    for a in &actions {
        if a != "*" && !a.to_ascii_lowercase().starts_with("s3:") {
            return Err(format!("invalid action {a}"));
        }
    }
    let resources = list(o.get("Resource").ok_or("a statement needs a Resource")?)?;
    for r in &resources {
        let rest = r
            .strip_prefix("arn:aws:s3:::")
            .ok_or_else(|| format!("Policy has invalid resource {r}"))?;
        let named = rest.split('/').next().unwrap_or_default();
        if !glob(named, bucket, false) {
            return Err(format!("Policy has invalid resource {r}"));
        }
    }
    let conditions = match o.get("Condition") {
        Some(c) => parse_conditions(c)?,
        None => vec![],
    };
    Ok(Statement {
        allow,
        principals,
        actions,
        resources,
        conditions,
    })
}

/// Parses and checks a policy document for `bucket`; the error says what
/// is wrong (S3's MalformedPolicy).
pub fn parse(doc: &str, bucket: &str) -> Result<Policy, String> {
    let v: Value = serde_json::from_str(doc).map_err(|e| format!("not JSON: {e}"))?;
    let o = v.as_object().ok_or("the policy must be a JSON object")?;
    match o.get("Version").and_then(Value::as_str) {
        Some("2012-10-17" | "2008-10-17") => {}
        _ => return Err("Version must be 2012-10-17 or 2008-10-17".into()),
    }
    let statements = match o.get("Statement") {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().collect::<Vec<_>>(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => return Err("the policy needs a Statement".into()),
    };
    Ok(Policy {
        statements: statements
            .into_iter()
            .map(|s| parse_statement(s, bucket))
            .collect::<Result<_, _>>()?,
    })
}

fn principal_matches(who: &str, caller: Option<(&str, &str)>) -> bool {
    let Some((project, user)) = caller else {
        return false;
    };
    if who == project {
        return true;
    }
    let Some(rest) = who.strip_prefix("arn:aws:iam::") else {
        return false;
    };
    match rest.split_once(':') {
        Some((p, "root")) => p == project,
        Some((p, u)) => p == project && u.strip_prefix("user/") == Some(user),
        None => false,
    }
}

impl Statement {
    fn applies(&self, r: &Request) -> bool {
        let principal = match &self.principals {
            None => true,
            Some(who) => who.iter().any(|w| principal_matches(w, r.caller)),
        };
        principal
            && self.actions.iter().any(|a| glob(a, r.action, true))
            && self.resources.iter().any(|p| glob(p, r.resource, false))
            && self.conditions.iter().all(|c| match c {
                Condition::SourceIp { negate, nets } => {
                    let inside = r
                        .source_ip
                        .is_some_and(|ip| nets.iter().any(|n| in_net(ip, *n)));
                    inside != *negate
                }
                Condition::SecureTransport(want) => r.secure_transport == *want,
            })
    }
}

impl Policy {
    pub fn evaluate(&self, r: &Request) -> Decision {
        let mut decision = Decision::Silent;
        for s in self.statements.iter().filter(|s| s.applies(r)) {
            if !s.allow {
                return Decision::Deny;
            }
            decision = Decision::Allow;
        }
        decision
    }

    /// S3's "public": some Allow reaches everyone without an address limit.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.allow
                && s.principals.is_none()
                && !s
                    .conditions
                    .iter()
                    .any(|c| matches!(c, Condition::SourceIp { negate: false, .. }))
        })
    }
}

/// The policy action of an S3 operation (`need` tells a copy's source read
/// from its write).
pub fn action(operation: &str, reads: bool) -> String {
    let name = match operation {
        "HeadObject" => "GetObject",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "ListParts" => "ListMultipartUploadParts",
        "CopyObject" | "UploadPartCopy" if reads => "GetObject",
        "CopyObject"
        | "UploadPartCopy"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload" => "PutObject",
        "DeleteObjects" => "DeleteObject",
        "GetBucketPolicyStatus" => "GetBucketPolicyStatus",
        // S3 names the CORS actions in capitals; deleting is putting
        "GetBucketCors" => "GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        other => other,
    };
    format!("s3:{name}")
}

pub fn resource(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(
        action: &'a str,
        resource: &'a str,
        caller: Option<(&'a str, &'a str)>,
        ip: &str,
    ) -> Request<'a> {
        Request {
            action,
            resource,
            caller,
            source_ip: ip.parse().ok(),
            secure_transport: false,
        }
    }

    #[test]
    fn public_read_explicit_deny_and_conditions() {
        let doc = r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "public", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::b/pub/*"},
            {"Effect": "Deny", "Principal": {"AWS": ["*"]}, "Action": "s3:*",
             "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1"]}}},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::p2:user/u2"}, "Action": "s3:Put*",
             "Resource": "arn:aws:s3:::b/*"}]}"#;
        let p = parse(doc, "b").unwrap();
        assert!(p.is_public());
        let get = |key: &str, ip: &str| p.evaluate(&req("s3:GetObject", key, None, ip));
        assert_eq!(get("arn:aws:s3:::b/pub/x", "10.1.2.3"), Decision::Allow);
        assert_eq!(get("arn:aws:s3:::b/private", "10.1.2.3"), Decision::Silent);
        assert_eq!(get("arn:aws:s3:::b/pub/x", "192.168.0.1"), Decision::Deny);
        assert_eq!(get("arn:aws:s3:::b/pub/x", "::1"), Decision::Allow);
        let put = |caller| p.evaluate(&req("s3:PutObject", "arn:aws:s3:::b/k", caller, "10.0.0.1"));
        assert_eq!(put(Some(("p2", "u2"))), Decision::Allow);
        assert_eq!(put(Some(("p2", "u3"))), Decision::Silent);
        assert_eq!(put(None), Decision::Silent);
    }

    #[test]
    fn projects_as_principals_and_secure_transport() {
        let doc = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
            "Principal": {"AWS": ["p3", "arn:aws:iam::p4:root"]}, "Action": "s3:List*",
            "Resource": "arn:aws:s3:::b", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}}"#;
        let p = parse(doc, "b").unwrap();
        assert!(!p.is_public());
        for project in ["p3", "p4"] {
            let r = req(
                "s3:ListBucket",
                "arn:aws:s3:::b",
                Some((project, "x")),
                "1.1.1.1",
            );
            assert_eq!(p.evaluate(&r), Decision::Allow);
            let secure = Request {
                secure_transport: true,
                ..r
            };
            assert_eq!(p.evaluate(&secure), Decision::Silent);
        }
        let r = req(
            "s3:ListBucket",
            "arn:aws:s3:::b",
            Some(("p5", "x")),
            "1.1.1.1",
        );
        assert_eq!(p.evaluate(&r), Decision::Silent);
    }

    #[test]
    fn malformed_policies_are_refused() {
        let ok_statement = r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*""#;
        for bad in [
            "not json".to_string(),
            r#"{"Statement": []}"#.to_string(),
            format!(r#"{{"Version": "2012-10-17", "Statement": [{{{ok_statement}, "Effect": "Maybe"}}]}}"#),
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other/*"}]}"#.to_string(),
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ec2:Run", "Resource": "arn:aws:s3:::b/*"}]}"#.to_string(),
            format!(r#"{{"Version": "2012-10-17", "Statement": [{{{ok_statement}, "Condition": {{"IpAddress": {{"aws:SourceIp": "10.0.0.0/99"}}}}}}]}}"#),
            format!(r#"{{"Version": "2012-10-17", "Statement": [{{{ok_statement}, "Condition": {{"StringEquals": {{"aws:UserAgent": "x"}}}}}}]}}"#),
            format!(r#"{{"Version": "2012-10-17", "Statement": [{{{ok_statement}, "NotAction": "s3:Get*"}}]}}"#),
        ] {
            assert!(parse(&bad, "b").is_err(), "{bad}");
        }
        assert!(parse(
            &format!(r#"{{"Version": "2012-10-17", "Statement": [{{{ok_statement}}}]}}"#),
            "b"
        )
        .is_ok());
    }

    #[test]
    fn wildcards() {
        assert!(glob("s3:Get*", "s3:GetObject", true));
        assert!(glob("S3:get*", "s3:GetObject", true));
        assert!(!glob("s3:Get*", "s3:PutObject", true));
        assert!(glob(
            "arn:aws:s3:::b/a?c/*",
            "arn:aws:s3:::b/abc/d/e",
            false
        ));
        assert!(!glob("arn:aws:s3:::b/A*", "arn:aws:s3:::b/abc", false));
        assert!(glob("*", "", false));
        assert_eq!(action("HeadObject", true), "s3:GetObject");
        assert_eq!(action("CopyObject", true), "s3:GetObject");
        assert_eq!(action("DeleteBucketCors", false), "s3:PutBucketCORS");
        assert_eq!(action("CopyObject", false), "s3:PutObject");
    }
}
