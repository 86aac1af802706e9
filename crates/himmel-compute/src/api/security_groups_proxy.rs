//! `/os-security-groups` and `/os-security-group-rules`: Nova's deprecated
//! proxy to the network service's security groups. Nothing is stored here:
//! every group and rule is the network service's own (through
//! `himmel_network::instance_ports`), so a rule made here reaches the
//! dataplane as one made through the network API does. What is Nova's is
//! the shape (`ip_protocol`, `from_port`, `to_port`, `ip_range`, `group`;
//! only ingress rules are shown, as Nova's neutron driver lists them), the
//! checks Nova makes before asking the network service, and how it words
//! and maps the network service's refusals (a conflict on create is a 403,
//! on delete a 400).

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use himmel_network::instance_ports::{self, GroupWithRules, NewSecurityGroupRule};
use himmel_network::model::{RuleMatch, SecurityGroupRule};
use serde_json::{json, Value};

use super::wire;
use crate::policy::*;
use crate::ComputeService;

pub fn routes(p: &Pipeline) -> Router<ComputeService> {
    Router::new()
        .route(
            "/os-security-groups",
            p.on(
                &SERVICE,
                &LIST_PROJECT_SECURITY_GROUPS,
                MethodFilter::GET,
                list,
            )
            .merge(p.on(&SERVICE, &CREATE_SECURITY_GROUP, MethodFilter::POST, create)),
        )
        .route(
            "/os-security-groups/{id}",
            p.on(&SERVICE, &GET_SECURITY_GROUP, MethodFilter::GET, show)
                .merge(p.on(&SERVICE, &UPDATE_SECURITY_GROUP, MethodFilter::PUT, update))
                .merge(p.on(
                    &SERVICE,
                    &DELETE_SECURITY_GROUP,
                    MethodFilter::DELETE,
                    delete,
                )),
        )
        .route(
            "/os-security-group-rules",
            p.on(
                &SERVICE,
                &CREATE_SECURITY_GROUP_RULE,
                MethodFilter::POST,
                create_rule,
            ),
        )
        .route(
            "/os-security-group-rules/{id}",
            p.on(
                &SERVICE,
                &DELETE_SECURITY_GROUP_RULE,
                MethodFilter::DELETE,
                delete_rule,
            ),
        )
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

/// Nova takes group and rule ids as UUIDs only.
fn validate_id(id: &str) -> Result<(), Error> {
    match uuid::Uuid::parse_str(id) {
        Ok(_) => Ok(()),
        Err(_) => Err(bad("Security group id should be uuid")),
    }
}

/// `body[key]`, as Nova's `_from_body` reads it.
fn from_body<'a>(body: &'a Value, key: &str) -> Result<&'a Value, Error> {
    match body {
        Value::Null => Err(bad("The request body can't be empty")),
        Value::Object(m) if m.is_empty() => Err(bad("The request body can't be empty")),
        _ => match body.get(key) {
            None | Some(Value::Null) => Err(bad(format!("Missing parameter {key}"))),
            Some(v) => Ok(v),
        },
    }
}

/// A name or description: a string of 1 to 255 characters once trimmed
/// (the value itself is kept untrimmed), worded as Nova words it.
fn property(v: Option<&Value>, field: &str) -> Result<String, Error> {
    let Some(Value::String(s)) = v else {
        return Err(bad(format!(
            "Security group {field} is not a string or unicode"
        )));
    };
    let len = s.trim().chars().count();
    if len < 1 {
        return Err(bad(format!("{field} has {len} characters, less than 1.")));
    }
    if len > 255 {
        return Err(bad(format!("{field} has {len} characters, more than 255.")));
    }
    Ok(s.clone())
}

/// A rule's ports as Nova's neutron driver reports them: a protocol
/// without ports is every port, 1-65535 for TCP and UDP, -1 otherwise.
fn nova_ports(m: &RuleMatch) -> (Option<i64>, Option<i64>) {
    match (&m.protocol, m.port_range_min, m.port_range_max) {
        (Some(p), None, None) if matches!(p.to_ascii_uppercase().as_str(), "TCP" | "UDP") => {
            (Some(1), Some(65535))
        }
        (Some(_), None, None) => (Some(-1), Some(-1)),
        (_, min, max) => (min, max),
    }
}

/// Nova's rule: ports as [`nova_ports`] gives them, and the source as a CIDR (0.0.0.0/0 when the rule names none) or a
/// group. `None` when the rule's remote group is gone, as in Nova.
fn render_rule(r: &SecurityGroupRule, remote: Option<(&str, &str)>) -> Option<Value> {
    let m = &r.rule;
    let (from_port, to_port) = nova_ports(m);
    let (group, ip_range) = match (&m.remote_group_id, remote) {
        (Some(_), Some((name, tenant))) => (json!({"name": name, "tenant_id": tenant}), json!({})),
        (Some(_), None) => return None,
        (None, _) => (
            json!({}),
            json!({"cidr": m.remote_ip_prefix.as_deref().unwrap_or("0.0.0.0/0")}),
        ),
    };
    Some(json!({
        "id": r.meta.id,
        "parent_group_id": r.security_group_id,
        "ip_protocol": m.protocol,
        "from_port": from_port,
        "to_port": to_port,
        "ip_range": ip_range,
        "group": group,
    }))
}

/// Groups in Nova's shape, sorted by project and name as Nova sorts them;
/// the remote groups of their rules are read in one go for their names.
pub(crate) async fn render_groups(
    s: &ComputeService,
    groups: &[GroupWithRules],
) -> Result<Vec<Value>, Error> {
    let mut remote_ids: Vec<String> = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| r.rule.remote_group_id.clone())
        .collect();
    remote_ids.sort_unstable();
    remote_ids.dedup();
    let remotes = instance_ports::security_groups(s.network(), &remote_ids).await?;
    let remote = |id: &str| {
        remotes
            .iter()
            .find(|g| g.meta.id == id)
            .map(|g| (g.name.as_str(), g.meta.project_id.as_str()))
    };
    let mut out: Vec<Value> = groups
        .iter()
        .map(|g| {
            let rules: Vec<Value> = g
                .rules
                .iter()
                // Nova shows the ingress rules only; it makes no other.
                .filter(|r| r.rule.direction == "ingress")
                .filter_map(|r| render_rule(r, r.rule.remote_group_id.as_deref().and_then(&remote)))
                .collect();
            json!({
                "id": g.group.meta.id,
                "name": g.group.name,
                "description": g.group.meta.description,
                "tenant_id": g.group.meta.project_id,
                "rules": rules,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        let key = |v: &Value| (v["tenant_id"].to_string(), v["name"].to_string());
        key(a).cmp(&key(b))
    });
    Ok(out)
}

async fn render_one(s: &ComputeService, g: GroupWithRules) -> Result<Value, Error> {
    let mut all = render_groups(s, &[g]).await?;
    Ok(json!({"security_group": all.pop().unwrap_or(Value::Null)}))
}

async fn list(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    let q = wire::query_pairs(raw.as_deref());
    // Any value of all_tenants counts, for the administrator only.
    let all = wire::param(&q, "all_tenants").is_some();
    let offset = wire::int_param(&q, "offset")?.unwrap_or(0) as usize;
    // Nova's max_limit is 1000, and a limit of 0 means the maximum.
    let limit = match wire::int_param(&q, "limit")? {
        None | Some(0) => 1000,
        Some(n) => n.min(1000) as usize,
    };
    let groups = instance_ports::list_security_groups(s.network(), caller, all).await?;
    let items: Vec<Value> = render_groups(&s, &groups)
        .await?
        .into_iter()
        .skip(offset)
        .take(limit)
        .collect();
    Ok(Json(json!({"security_groups": items})))
}

async fn show(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    validate_id(&id)?;
    let g = instance_ports::get_security_group(s.network(), caller, &id).await?;
    Ok(Json(render_one(&s, g).await?))
}

async fn create(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    let req = from_body(&body, "security_group")?;
    let name = property(req.get("name"), "name")?;
    let description = property(req.get("description"), "description")?;
    if caller.project_id.is_empty() {
        return Err(
            bad("A security group belongs to a project; use a project-scoped token.").into(),
        );
    }
    let g =
        instance_ports::create_security_group(s.network(), caller.project_id, name, description)
            .await
            // The network service's conflicts (quota, a second `default`) are
            // Nova's SecurityGroupLimitExceeded.
            .map_err(|e| match e {
                Error::Conflict(m) => Error::Forbidden(m),
                other => other,
            })?;
    Ok(Json(render_one(&s, g).await?))
}

async fn update(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    validate_id(&id)?;
    instance_ports::get_security_group(s.network(), caller, &id).await?;
    let req = from_body(&body, "security_group")?;
    // Nova sends both; neither may be left out.
    let name = property(req.get("name"), "name")?;
    let description = property(req.get("description"), "description")?;
    let g = instance_ports::update_security_group(
        s.network(),
        caller,
        &id,
        Some(name),
        Some(description),
    )
    .await
    // Renaming the default group (or to `default`) is refused as invalid.
    .map_err(|e| match e {
        Error::Conflict(m) => Error::BadRequest(m),
        other => other,
    })?;
    Ok(Json(render_one(&s, g).await?))
}

async fn delete(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    validate_id(&id)?;
    instance_ports::delete_security_group(s.network(), caller, &id)
        .await
        // A group in use, or the default group: Nova's Invalid, a 400 with
        // the network service's message.
        .map_err(|e| match e {
            Error::Conflict(m) => Error::BadRequest(m),
            other => other,
        })?;
    Ok(wire::accepted())
}

/// A port or ICMP type/code as Nova reads it: an integer or a string of one.
fn port(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The rule Nova would ask the network service for, checked as Nova's
/// `_new_ingress_rule` checks it. `cidr` is set for a CIDR rule (the
/// default 0.0.0.0/0 included), `group_id` for a group rule.
struct NovaRule {
    protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    cidr: Option<String>,
    group_id: Option<String>,
}

fn new_ingress_rule(
    protocol: Option<String>,
    from: &Value,
    to: &Value,
    cidr: Option<String>,
    group_id: Option<String>,
) -> Result<NovaRule, Error> {
    let upper = protocol.as_deref().unwrap_or_default().to_ascii_uppercase();
    let (mut from, mut to) = (from.clone(), to.clone());
    if group_id.is_some() && from.is_null() && to.is_null() {
        // A group rule without ports opens every port of its protocol.
        match upper.as_str() {
            "ICMP" => (from, to) = (json!(-1), json!(-1)),
            "TCP" | "UDP" => (from, to) = (json!(1), json!(65535)),
            _ => {}
        }
    }
    let mut rule = NovaRule {
        protocol: None,
        from_port: None,
        to_port: None,
        cidr: if group_id.is_some() { None } else { cidr },
        group_id,
    };
    let p = match protocol {
        Some(p) if !p.is_empty() && !from.is_null() && !to.is_null() => p,
        // Without a protocol and both ports a CIDR rule says too little;
        // a group rule admits everything from the group.
        _ if rule.cidr.is_some() => {
            return Err(bad("Not enough parameters to build a valid rule."))
        }
        _ => return Ok(rule),
    };
    let (Some(lo), Some(hi)) = (port(&from), port(&to)) else {
        return Err(bad(if upper == "ICMP" {
            "Invalid input received: Type and Code must be integers for ICMP protocol type"
        } else {
            "Invalid input received: To and From ports must be integers"
        }));
    };
    if !matches!(upper.as_str(), "TCP" | "UDP" | "ICMP") {
        return Err(bad(format!("Invalid IP protocol {p}.")));
    }
    let range = |why: String| bad(format!("Invalid port range {lo}:{hi}. {why}"));
    if upper != "ICMP" {
        if lo > hi {
            return Err(range(
                "Former value cannot be greater than the later".into(),
            ));
        }
        if lo < 1 || hi > 65535 {
            return Err(range(format!(
                "Valid {upper} ports should be between 1-65535"
            )));
        }
    } else if !(-1..=255).contains(&lo) || !(-1..=255).contains(&hi) {
        return Err(range("For ICMP, the type:code must be valid".into()));
    }
    rule.protocol = Some(p);
    rule.from_port = Some(lo);
    rule.to_port = Some(hi);
    Ok(rule)
}

/// A CIDR as Nova's `parse_cidr` takes it: none is 0.0.0.0/0; otherwise
/// an address with a prefix length.
fn parse_cidr(v: Option<&Value>) -> Result<String, Error> {
    let s = match v {
        None | Some(Value::Null) => return Ok("0.0.0.0/0".into()),
        Some(Value::String(s)) if s.is_empty() => return Ok("0.0.0.0/0".into()),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let decoded = percent_decode(&s);
    let invalid = || bad(format!("{decoded} is not a valid IP network."));
    let (addr, len) = decoded.split_once('/').ok_or_else(invalid)?;
    let ok = match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len.parse::<u8>().is_ok_and(|l| l <= 32),
        Ok(std::net::IpAddr::V6(_)) => len.parse::<u8>().is_ok_and(|l| l <= 128),
        Err(_) => false,
    };
    if !ok {
        return Err(invalid());
    }
    Ok(decoded)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// An optional string field (`ip_protocol`): a number is its text, as
/// Nova's `str()` makes it.
fn text(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// Nova's duplicate check: an ingress rule of the group with the same
/// source, ports and protocol as Nova shows them. (A shown rule always has
/// a CIDR, 0.0.0.0/0 for a group rule, so a repeated group rule passes
/// here and is the network service's conflict, as in Nova.)
fn rule_exists(group: &GroupWithRules, new: &NovaRule) -> bool {
    group
        .rules
        .iter()
        .filter(|r| r.rule.direction == "ingress")
        .any(|r| {
            let m = &r.rule;
            let cidr = m.remote_ip_prefix.as_deref().unwrap_or("0.0.0.0/0");
            m.remote_group_id == new.group_id
                && new.cidr.as_deref() == Some(cidr)
                && nova_ports(m) == (new.from_port, new.to_port)
                && m.protocol.as_deref().map(str::to_ascii_lowercase)
                    == new.protocol.as_deref().map(str::to_ascii_lowercase)
        })
}

async fn create_rule(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    let req = from_body(&body, "security_group_rule")?;
    let parent_id = match req.get("parent_group_id") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    validate_id(&parent_id)?;
    let parent = instance_ports::get_security_group(s.network(), caller, &parent_id).await?;
    let group_id = match req.get("group_id") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let id = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            validate_id(&id)?;
            instance_ports::get_security_group(s.network(), caller, &id).await?;
            Some(id)
        }
    };
    let cidr = match group_id {
        Some(_) => None,
        None => Some(parse_cidr(req.get("cidr"))?),
    };
    let null = Value::Null;
    let rule = new_ingress_rule(
        text(req.get("ip_protocol")),
        req.get("from_port").unwrap_or(&null),
        req.get("to_port").unwrap_or(&null),
        cidr,
        group_id,
    )?;
    if let Some(c) = &rule.cidr {
        let (net, len) = c.split_once('/').unwrap_or((c, ""));
        if net != "0.0.0.0" && net != "::" && len == "0" {
            return Err(bad(format!("Bad prefix for network in cidr {c}")).into());
        }
    }
    if rule_exists(&parent, &rule) {
        return Err(bad(format!("This rule already exists in group {parent_id}")).into());
    }
    // What Nova's neutron driver sends: ingress, the CIDR's family (IPv4
    // for a group rule), and no port for -1 (any ICMP type or code).
    let ethertype = match &rule.cidr {
        Some(c) if c.contains(':') => "IPv6",
        _ => "IPv4",
    };
    let new = NewSecurityGroupRule {
        direction: "ingress".into(),
        ethertype: ethertype.into(),
        protocol: rule.protocol.clone(),
        port_range_min: rule.from_port.filter(|p| *p != -1),
        port_range_max: rule.to_port.filter(|p| *p != -1),
        remote_ip_prefix: rule.cidr.clone(),
        remote_group_id: rule.group_id.clone(),
    };
    let made = instance_ports::create_security_group_rule(s.network(), caller, &parent_id, new)
        .await
        // A conflict (the same rule, the quota) is Nova's
        // SecurityGroupLimitExceeded.
        .map_err(|e| match e {
            Error::Conflict(m) => Error::Forbidden(m),
            other => other,
        })?;
    let remote = match &made.rule.remote_group_id {
        Some(id) => instance_ports::security_groups(s.network(), std::slice::from_ref(id))
            .await?
            .into_iter()
            .next()
            .map(|g| (g.name, g.meta.project_id)),
        None => None,
    };
    let shown = render_rule(
        &made,
        remote.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
    )
    .ok_or_else(|| Error::NotFound(format!("Security group {parent_id} could not be found.")))?;
    Ok(Json(json!({"security_group_rule": shown})))
}

async fn delete_rule(
    State(s): State<ComputeService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let caller = wire::proxy_caller(&ctx, &authz)?;
    validate_id(&id)?;
    instance_ports::delete_security_group_rule(s.network(), caller, &id).await?;
    Ok(wire::accepted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_any_and_port_checks() {
        let cidr = || Some("0.0.0.0/0".to_string());
        let r =
            new_ingress_rule(Some("icmp".into()), &json!(-1), &json!(-1), cidr(), None).unwrap();
        assert_eq!((r.from_port, r.to_port), (Some(-1), Some(-1)));
        let e = new_ingress_rule(Some("tcp".into()), &json!(22), &json!(21), cidr(), None);
        assert!(matches!(e, Err(Error::BadRequest(m)) if m.contains("Former value")));
        let e = new_ingress_rule(Some("tcp".into()), &json!("x"), &json!(21), cidr(), None);
        assert!(matches!(e, Err(Error::BadRequest(m)) if m.contains("must be integers")));
        let e = new_ingress_rule(Some("gre".into()), &json!(1), &json!(2), cidr(), None);
        assert!(matches!(e, Err(Error::BadRequest(m)) if m == "Invalid IP protocol gre."));
        let e = new_ingress_rule(None, &Value::Null, &Value::Null, cidr(), None);
        assert!(matches!(e, Err(Error::BadRequest(m)) if m.starts_with("Not enough")));
        // A group rule without ports opens the protocol's every port.
        let r = new_ingress_rule(
            Some("tcp".into()),
            &Value::Null,
            &Value::Null,
            None,
            Some("g".into()),
        )
        .unwrap();
        assert_eq!((r.from_port, r.to_port), (Some(1), Some(65535)));
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr(None).unwrap(), "0.0.0.0/0");
        assert_eq!(
            parse_cidr(Some(&json!("10.0.0.1/24"))).unwrap(),
            "10.0.0.1/24"
        );
        assert_eq!(
            parse_cidr(Some(&json!("10.0.0.0%2F8"))).unwrap(),
            "10.0.0.0/8"
        );
        assert!(parse_cidr(Some(&json!("10.0.0.1"))).is_err());
        assert!(parse_cidr(Some(&json!("nonsense/8"))).is_err());
    }
}
