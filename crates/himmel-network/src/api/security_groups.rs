//! `/v2.0/security-groups`, `/v2.0/security-group-rules` and the
//! templates of new groups' rules, `/v2.0/default-security-group-rules`.
//! Every project gets a group named `default` on first use, with the rules
//! the templates mark `used_in_default_sg`.

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::{Error, RequestContext};
use himmel_http::{ApiResult, Authz, Ctx, Json, Pipeline};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::access;
use super::list::{self, ListQuery};
use super::tags;
use super::wire::{self, check_if_match};
use crate::addr;
use crate::model::{
    DefaultSecurityGroupRule, Meta, Port, Resource, RuleMatch, SecurityGroup, SecurityGroupRule,
    PARENT_GROUP,
};
use crate::policy::*;
use crate::store::{self, db_err, quota, Visibility};
use crate::NetworkService;

pub fn routes(p: &Pipeline) -> Router<NetworkService> {
    Router::new()
        .route(
            "/v2.0/security-groups",
            p.on(
                &SERVICE,
                &GET_SECURITY_GROUP,
                MethodFilter::GET,
                list_groups,
            )
            .merge(p.on(
                &SERVICE,
                &CREATE_SECURITY_GROUP,
                MethodFilter::POST,
                create_group,
            )),
        )
        .route(
            "/v2.0/security-groups/{id}",
            p.on(&SERVICE, &GET_SECURITY_GROUP, MethodFilter::GET, show_group)
                .merge(p.on(
                    &SERVICE,
                    &UPDATE_SECURITY_GROUP,
                    MethodFilter::PUT,
                    update_group,
                ))
                .merge(p.on(
                    &SERVICE,
                    &DELETE_SECURITY_GROUP,
                    MethodFilter::DELETE,
                    delete_group,
                )),
        )
        .merge(tags::routes::<SecurityGroup>(
            p,
            "security-groups",
            &GET_SECURITY_GROUP,
            &UPDATE_SECURITY_GROUP,
            "Security group",
        ))
        .route(
            "/v2.0/security-group-rules",
            p.on(
                &SERVICE,
                &GET_SECURITY_GROUP_RULE,
                MethodFilter::GET,
                list_rules,
            )
            .merge(p.on(
                &SERVICE,
                &CREATE_SECURITY_GROUP_RULE,
                MethodFilter::POST,
                create_rule,
            )),
        )
        .route(
            "/v2.0/security-group-rules/{id}",
            p.on(
                &SERVICE,
                &GET_SECURITY_GROUP_RULE,
                MethodFilter::GET,
                show_rule,
            )
            .merge(p.on(
                &SERVICE,
                &DELETE_SECURITY_GROUP_RULE,
                MethodFilter::DELETE,
                delete_rule,
            )),
        )
        .route(
            "/v2.0/default-security-group-rules",
            p.on(
                &SERVICE,
                &GET_DEFAULT_SG_RULE,
                MethodFilter::GET,
                list_default_rules,
            )
            .merge(p.on(
                &SERVICE,
                &CREATE_DEFAULT_SG_RULE,
                MethodFilter::POST,
                create_default_rule,
            )),
        )
        .route(
            "/v2.0/default-security-group-rules/{id}",
            p.on(
                &SERVICE,
                &GET_DEFAULT_SG_RULE,
                MethodFilter::GET,
                show_default_rule,
            )
            .merge(p.on(
                &SERVICE,
                &DELETE_DEFAULT_SG_RULE,
                MethodFilter::DELETE,
                delete_default_rule,
            )),
        )
}

/// Protocols a rule may name, besides numbers 0-255.
const PROTOCOLS: &[&str] = &[
    "ah",
    "dccp",
    "egp",
    "esp",
    "gre",
    "icmp",
    "icmpv6",
    "igmp",
    "ipip",
    "ipv6-encap",
    "ipv6-frag",
    "ipv6-icmp",
    "ipv6-nonxt",
    "ipv6-opts",
    "ipv6-route",
    "ospf",
    "pgm",
    "rsvp",
    "sctp",
    "tcp",
    "udp",
    "udplite",
    "vrrp",
];
/// Protocols with port ranges (by name and number).
const PORT_PROTOCOLS: &[&str] = &[
    "tcp", "udp", "sctp", "udplite", "dccp", "6", "17", "132", "136", "33",
];
const ICMP_PROTOCOLS: &[&str] = &["icmp", "icmpv6", "ipv6-icmp", "1", "58"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    stateful: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateGroup {
    name: Option<String>,
    description: Option<String>,
    stateful: Option<bool>,
}

/// A rule as a client asks for it (also built by the compute API's proxy).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleRequest {
    pub(crate) security_group_id: Option<String>,
    pub(crate) direction: Option<String>,
    pub(crate) ethertype: Option<String>,
    pub(crate) protocol: Option<Value>,
    pub(crate) port_range_min: Option<i64>,
    pub(crate) port_range_max: Option<i64>,
    pub(crate) remote_ip_prefix: Option<String>,
    pub(crate) remote_group_id: Option<String>,
    pub(crate) remote_address_group_id: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) project_id: Option<String>,
    pub(crate) tenant_id: Option<String>,
    pub(crate) used_in_default_sg: Option<bool>,
    pub(crate) used_in_non_default_sg: Option<bool>,
}

fn bad(msg: String) -> Error {
    Error::BadRequest(msg)
}

/// Checks a rule as Neutron does and returns it normalised.
pub(crate) fn validate_rule(req: &RuleRequest) -> Result<RuleMatch, Error> {
    let direction = match req.direction.as_deref() {
        Some(d @ ("ingress" | "egress")) => d.to_string(),
        Some(d) => {
            return Err(bad(format!(
                "Invalid input for direction. Reason: '{d}' is not in ['ingress', 'egress']."
            )))
        }
        None => {
            return Err(bad(
                "Invalid input for direction. Reason: a direction is required.".into(),
            ))
        }
    };
    let ethertype = match req
        .ethertype
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ipv4") => "IPv4".to_string(),
        Some("ipv6") => "IPv6".to_string(),
        Some(_) => {
            return Err(bad(format!(
                "Invalid input for ethertype. Reason: '{}' is not in ['IPv4', 'IPv6'].",
                req.ethertype.clone().unwrap_or_default()
            )))
        }
    };
    let protocol = match &req.protocol {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if s.is_empty() || s.eq_ignore_ascii_case("any") => None,
        Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
        Some(other) => Some(other.to_string()),
    };
    if let Some(p) = &protocol {
        let known = PROTOCOLS.contains(&p.as_str()) || p.parse::<u8>().is_ok();
        if !known {
            return Err(bad(format!(
                "Security group rule protocol {p} not supported. Only protocol values {PROTOCOLS:?} and integer representations [0 to 255] are supported."
            )));
        }
        if ethertype == "IPv4" && matches!(p.as_str(), "icmpv6" | "ipv6-icmp" | "58") {
            return Err(bad(format!(
                "Protocol {p} is not supported with ethertype IPv4."
            )));
        }
    }
    let (min, max) = (req.port_range_min, req.port_range_max);
    if min.is_some() || max.is_some() {
        let p = protocol
            .as_deref()
            .ok_or_else(|| bad("Must also specify protocol if port range is given.".into()))?;
        if PORT_PROTOCOLS.contains(&p) {
            // A maximum without a minimum is an empty range to Neutron (as min > max).
            let lo = min.ok_or_else(|| {
                bad("For TCP/UDP protocols, port_range_min must be <= port_range_max".into())
            })?;
            let hi = max.unwrap_or(lo);
            for v in [lo, hi] {
                if !(1..=65535).contains(&v) {
                    return Err(bad(format!("Invalid value for port {v}.")));
                }
            }
            if lo > hi {
                return Err(bad(
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max".into(),
                ));
            }
        } else if ICMP_PROTOCOLS.contains(&p) {
            if min.is_none() && max.is_some() {
                return Err(bad(format!(
                    "ICMP code (port-range-max) {} is provided but ICMP type (port-range-min) is missing.",
                    max.unwrap_or_default()
                )));
            }
            for (field, v) in [("type", min), ("code", max)] {
                if let Some(v) = v {
                    if !(0..=255).contains(&v) {
                        return Err(bad(format!("Invalid value for ICMP {field} {v}.")));
                    }
                }
            }
        } else {
            return Err(bad(format!(
                "Invalid protocol {p} for port range, only supported for TCP, UDP, UDPLITE, SCTP, DCCP and ICMP."
            )));
        }
    }
    if req.remote_ip_prefix.is_some() && req.remote_group_id.is_some() {
        return Err(bad(
            "Only remote_ip_prefix or remote_group_id may be provided.".into(),
        ));
    }
    if req.remote_address_group_id.is_some() {
        return Err(bad(
            "Invalid input: remote address groups are not supported.".into(),
        ));
    }
    let remote_ip_prefix = match &req.remote_ip_prefix {
        None => None,
        Some(p) => {
            let net = addr::parse_prefix("remote_ip_prefix", p)?;
            let family = if addr::version(&net) == 4 {
                "IPv4"
            } else {
                "IPv6"
            };
            if family != ethertype {
                return Err(bad(format!(
                    "Conflicting value ethertype {ethertype} for CIDR {p}"
                )));
            }
            // Neutron keeps the prefix as given (host bits too) and shows
            // the network in `normalized_cidr`; a bare address is a /32 or /128.
            if p.contains('/') {
                Some(p.clone())
            } else {
                Some(net.to_string())
            }
        }
    };
    let port_range_max = match (protocol.as_deref(), min, max) {
        (Some(p), Some(lo), None) if PORT_PROTOCOLS.contains(&p) => Some(lo),
        _ => max,
    };
    Ok(RuleMatch {
        direction,
        ethertype,
        protocol,
        port_range_min: min,
        port_range_max,
        remote_ip_prefix,
        remote_group_id: req.remote_group_id.clone(),
    })
}

pub fn render_rule(r: &SecurityGroupRule) -> Result<Value, Error> {
    let mut m = wire::to_object(r)?;
    m.remove("tags");
    m.insert("remote_address_group_id".into(), Value::Null);
    let normalized = r
        .rule
        .remote_ip_prefix
        .as_deref()
        .and_then(|p| addr::parse_prefix("remote_ip_prefix", p).ok())
        .map(|n| n.to_string());
    m.insert("normalized_cidr".into(), json!(normalized));
    Ok(Value::Object(m))
}

fn render_group(g: &SecurityGroup, rules: &[SecurityGroupRule]) -> Result<Value, Error> {
    let mut m = wire::to_object(g)?;
    m.remove("is_default");
    m.insert("shared".into(), json!(false));
    let rules = rules
        .iter()
        .map(render_rule)
        .collect::<Result<Vec<_>, _>>()?;
    m.insert("security_group_rules".into(), Value::Array(rules));
    Ok(Value::Object(m))
}

fn render_default_rule(r: &DefaultSecurityGroupRule) -> Result<Value, Error> {
    let mut m = wire::to_object(r)?;
    for k in [
        "project_id",
        "tenant_id",
        "tags",
        "revision_number",
        "created_at",
        "updated_at",
    ] {
        m.remove(k);
    }
    m.insert("remote_address_group_id".into(), Value::Null);
    Ok(Value::Object(m))
}

async fn default_group_id(
    conn: &mut AnyConnection,
    project_id: &str,
) -> Result<Option<String>, Error> {
    sqlx::query_scalar(
        "SELECT id FROM net_resources WHERE kind = 'security_group' AND unique_key = $1",
    )
    .bind(format!("default/{project_id}"))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)
}

/// The project's default group, created (with the template rules marked
/// `used_in_default_sg`) when it does not exist yet. Returns its id.
pub async fn ensure_default(conn: &mut AnyConnection, project_id: &str) -> Result<String, Error> {
    if let Some(id) = default_group_id(conn, project_id).await? {
        return Ok(id);
    }
    // Two first uses at once must not both create one.
    store::lock(conn, "default-security-groups").await?;
    if let Some(id) = default_group_id(conn, project_id).await? {
        return Ok(id);
    }
    let mut group = SecurityGroup {
        meta: Meta {
            project_id: project_id.to_string(),
            description: "Default security group".into(),
            ..Default::default()
        },
        name: "default".into(),
        stateful: true,
        is_default: true,
    };
    store::stamp_new(&mut group.meta);
    store::insert(conn, &group, || {
        "Default security group already exists.".into()
    })
    .await?;
    add_template_rules(conn, &group).await?;
    Ok(group.meta.id)
}

async fn add_template_rules(conn: &mut AnyConnection, group: &SecurityGroup) -> Result<(), Error> {
    let templates: Vec<DefaultSecurityGroupRule> = store::list(conn, &Visibility::All).await?;
    for t in templates {
        let wanted = if group.is_default {
            t.used_in_default_sg
        } else {
            t.used_in_non_default_sg
        };
        if !wanted {
            continue;
        }
        let mut rule = t.rule.clone();
        if rule.remote_group_id.as_deref() == Some(PARENT_GROUP) {
            rule.remote_group_id = Some(group.meta.id.clone());
        }
        let mut r = SecurityGroupRule {
            meta: Meta {
                project_id: group.meta.project_id.clone(),
                ..Default::default()
            },
            security_group_id: group.meta.id.clone(),
            rule,
        };
        store::stamp_new(&mut r.meta);
        store::insert(conn, &r, || "Security group rule already exists.".into()).await?;
    }
    Ok(())
}

/// Stores a new group (not the default one) with the rules the templates
/// give it, after Neutron's checks: lengths, no second `default`, the
/// project's quota. Returns its rules. The network API and the compute
/// API's proxy both create groups here.
pub(crate) async fn insert_group(
    conn: &mut AnyConnection,
    group: &mut SecurityGroup,
) -> Result<Vec<SecurityGroupRule>, Error> {
    wire::check_len("name", &group.name)?;
    wire::check_len("description", &group.meta.description)?;
    let project = group.meta.project_id.clone();
    ensure_default(conn, &project).await?;
    if group.name == "default" {
        return Err(Error::Conflict(
            "Default security group already exists.".into(),
        ));
    }
    quota::check(conn, &project, "security_group", 1).await?;
    store::stamp_new(&mut group.meta);
    store::insert(conn, &*group, || "Security group already exists.".into()).await?;
    add_template_rules(conn, group).await?;
    store::children(conn, &group.meta.id).await
}

/// Changes a group's name, description or statefulness as Neutron allows
/// (the default group keeps its name; no other may take it). The caller
/// stores it.
pub(crate) fn apply_update(
    g: &mut SecurityGroup,
    name: Option<String>,
    description: Option<String>,
    stateful: Option<bool>,
) -> Result<(), Error> {
    if let Some(name) = name {
        wire::check_len("name", &name)?;
        if g.is_default && name != "default" {
            return Err(Error::Conflict(
                "Updating default security group not allowed.".into(),
            ));
        }
        if !g.is_default && name == "default" {
            return Err(Error::Conflict(
                "Default security group already exists.".into(),
            ));
        }
        g.name = name;
    }
    if let Some(d) = description {
        wire::check_len("description", &d)?;
        g.meta.description = d;
    }
    if let Some(v) = stateful {
        g.stateful = v;
    }
    Ok(())
}

/// Deletes a group and every rule in it or admitting its members, unless
/// it is the default one (only the administrator deletes that) or a port
/// uses it.
pub(crate) async fn delete_group_rows(
    conn: &mut AnyConnection,
    g: &SecurityGroup,
    admin: bool,
) -> Result<(), Error> {
    let id = &g.meta.id;
    if g.is_default && !admin {
        return Err(Error::Conflict(
            "Insufficient rights for removing default security group.".into(),
        ));
    }
    let ports: Vec<Port> =
        store::list(conn, &Visibility::Project(g.meta.project_id.clone())).await?;
    if ports.iter().any(|p| p.security_groups.contains(id)) {
        return Err(Error::Conflict(format!("Security Group {id} in use.")));
    }
    // Rules of other groups that admit this group's members go with it.
    sqlx::query(
        "DELETE FROM net_resources WHERE kind = 'security_group_rule' AND (parent_id = $1 OR body LIKE $2)",
    )
    .bind(id)
    .bind(format!("%\"remote_group_id\":\"{id}\"%"))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    store::delete(conn, SecurityGroup::KIND, id).await
}

/// Stores a rule, already validated, in `group`: its remote group must be
/// one the caller sees (`can_see` answers for a project), and the project
/// must have quota left. A rule matching the same packets is a conflict.
/// The network API and the compute API's proxy both add rules here.
pub(crate) async fn insert_rule(
    conn: &mut AnyConnection,
    group: &SecurityGroup,
    rule: RuleMatch,
    description: String,
    can_see: &(dyn Fn(&str) -> bool + Sync),
) -> Result<SecurityGroupRule, Error> {
    wire::check_len("description", &description)?;
    if let Some(remote) = &rule.remote_group_id {
        match store::get::<SecurityGroup>(conn, remote).await? {
            Some(r) if can_see(&r.meta.project_id) => {}
            _ => return Err(access::not_found("Security group", remote)),
        }
    }
    let project = group.meta.project_id.clone();
    quota::check(conn, &project, "security_group_rule", 1).await?;
    let mut r = SecurityGroupRule {
        meta: Meta {
            project_id: project,
            description,
            ..Default::default()
        },
        security_group_id: group.meta.id.clone(),
        rule,
    };
    store::stamp_new(&mut r.meta);
    store::insert(conn, &r, || "Security group rule already exists.".into()).await?;
    Ok(r)
}

async fn list_groups(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let visibility = access::visibility(&ctx, &authz)?;
    // As in Neutron, a project's default group appears on first look.
    if let Some(project) = ctx.project_id() {
        let mut tx = s.db().begin_write().await.map_err(db_err)?;
        ensure_default(&mut tx, project).await?;
        tx.commit().await.map_err(db_err)?;
    }
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let groups: Vec<SecurityGroup> = store::list(&mut conn, &visibility).await?;
    let rules: Vec<SecurityGroupRule> = store::list(&mut conn, &visibility).await?;
    let items = groups
        .iter()
        .map(|g| {
            let mine: Vec<SecurityGroupRule> = rules
                .iter()
                .filter(|r| r.security_group_id == g.meta.id)
                .cloned()
                .collect();
            render_group(g, &mine)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let q = ListQuery::parse(raw.as_deref());
    let self_url = format!("{}{}", wire::base_url(&headers), uri.path());
    Ok(Json(list::respond(
        "security_groups",
        items,
        &q,
        &self_url,
    )?))
}

async fn show_group(
    State(s): State<NetworkService>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let g = access::readable(
        store::get::<SecurityGroup>(&mut conn, &id).await?,
        &authz,
        "Security group",
        &id,
    )?;
    let rules: Vec<SecurityGroupRule> = store::children(&mut conn, &id).await?;
    let v = render_group(&g, &rules)?;
    Ok(wire::one(
        "security_group",
        list::project_fields(v, &ListQuery::parse(raw.as_deref())),
    ))
}

async fn create_group(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: CreateGroup = wire::body(body, "security_group")?;
    let project = access::owner_project(&ctx, &authz, req.project_id, req.tenant_id)?;
    let tags = req.tags.unwrap_or_default();
    for t in &tags {
        wire::check_tag(t)?;
    }
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut group = SecurityGroup {
        meta: Meta {
            project_id: project,
            description: req.description,
            tags,
            ..Default::default()
        },
        name: req.name,
        stateful: req.stateful.unwrap_or(true),
        is_default: false,
    };
    let rules = insert_group(&mut tx, &mut group).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::created(
        "security_group",
        &group.meta.id,
        render_group(&group, &rules)?,
    ))
}

async fn update_group(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: UpdateGroup = wire::body(body, "security_group")?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut g = access::writable(
        store::get::<SecurityGroup>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Security group",
        &id,
    )?;
    check_if_match(&headers, &g.meta)?;
    apply_update(&mut g, req.name, req.description, req.stateful)?;
    store::update(&mut tx, &mut g).await?;
    let rules: Vec<SecurityGroupRule> = store::children(&mut tx, &id).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::one("security_group", render_group(&g, &rules)?))
}

async fn delete_group(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let g = access::writable(
        store::get::<SecurityGroup>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Security group",
        &id,
    )?;
    check_if_match(&headers, &g.meta)?;
    delete_group_rows(&mut tx, &g, access::is_admin(&ctx)).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::no_content())
}

async fn list_rules(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let visibility = access::visibility(&ctx, &authz)?;
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let rules: Vec<SecurityGroupRule> = store::list(&mut conn, &visibility).await?;
    let items = rules
        .iter()
        .map(render_rule)
        .collect::<Result<Vec<_>, _>>()?;
    let q = ListQuery::parse(raw.as_deref());
    let self_url = format!("{}{}", wire::base_url(&headers), uri.path());
    Ok(Json(list::respond(
        "security_group_rules",
        items,
        &q,
        &self_url,
    )?))
}

async fn show_rule(
    State(s): State<NetworkService>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let r = access::readable(
        store::get::<SecurityGroupRule>(&mut conn, &id).await?,
        &authz,
        "Security group rule",
        &id,
    )?;
    let v = render_rule(&r)?;
    Ok(wire::one(
        "security_group_rule",
        list::project_fields(v, &ListQuery::parse(raw.as_deref())),
    ))
}

/// `POST /v2.0/security-group-rules`, one rule or a bulk list in one
/// transaction.
async fn create_rule(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let request = wire::create_request(body, "security_group_rule", "security_group_rules")?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    let mut made = Vec::with_capacity(request.items.len());
    for item in request.items {
        let r = create_one_rule(&mut tx, &ctx, &authz, item).await?;
        made.push((r.meta.id.clone(), render_rule(&r)?));
    }
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::created_all(
        request.bulk,
        "security_group_rule",
        "security_group_rules",
        made,
    ))
}

async fn create_one_rule(
    tx: &mut AnyConnection,
    ctx: &RequestContext,
    authz: &Authz,
    item: Value,
) -> ApiResult<SecurityGroupRule> {
    let req: RuleRequest = wire::item(item)?;
    if req.used_in_default_sg.is_some() || req.used_in_non_default_sg.is_some() {
        return Err(bad(
            "Unrecognized attribute(s) 'used_in_default_sg, used_in_non_default_sg'".into(),
        )
        .into());
    }
    wire::check_len("description", &req.description)?;
    let group_id = req.security_group_id.clone().ok_or_else(|| {
        bad("Invalid input for security_group_id. Reason: it is required.".into())
    })?;
    let rule = validate_rule(&req)?;
    let group = access::writable(
        store::get::<SecurityGroup>(tx, &group_id).await?,
        ctx,
        authz,
        "Security group",
        &group_id,
    )?;
    let can_see = |project: &str| access::can_see_project(ctx, project);
    Ok(insert_rule(tx, &group, rule, req.description, &can_see).await?)
}

async fn delete_rule(
    State(s): State<NetworkService>,
    ctx: Ctx,
    authz: Authz,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    access::writable(
        store::get::<SecurityGroupRule>(&mut tx, &id).await?,
        &ctx,
        &authz,
        "Security group rule",
        &id,
    )?;
    store::delete(&mut tx, SecurityGroupRule::KIND, &id).await?;
    tx.commit().await.map_err(db_err)?;
    s.changed();
    Ok(wire::no_content())
}

async fn list_default_rules(
    State(s): State<NetworkService>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let rules: Vec<DefaultSecurityGroupRule> = store::list(&mut conn, &Visibility::All).await?;
    let items = rules
        .iter()
        .map(render_default_rule)
        .collect::<Result<Vec<_>, _>>()?;
    let q = ListQuery::parse(raw.as_deref());
    let self_url = format!("{}{}", wire::base_url(&headers), uri.path());
    Ok(Json(list::respond(
        "default_security_group_rules",
        items,
        &q,
        &self_url,
    )?))
}

async fn show_default_rule(
    State(s): State<NetworkService>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut conn = s.db().pool().acquire().await.map_err(db_err)?;
    let r = store::get::<DefaultSecurityGroupRule>(&mut conn, &id)
        .await?
        .ok_or_else(|| access::not_found("Default security group rule", &id))?;
    Ok(wire::one(
        "default_security_group_rule",
        render_default_rule(&r)?,
    ))
}

async fn create_default_rule(
    State(s): State<NetworkService>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let req: RuleRequest = wire::body(body, "default_security_group_rule")?;
    if req.security_group_id.is_some() || req.project_id.is_some() || req.tenant_id.is_some() {
        return Err(bad("Unrecognized attribute(s) 'security_group_id, project_id'".into()).into());
    }
    wire::check_len("description", &req.description)?;
    let rule = validate_rule(&req)?;
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    if let Some(remote) = &rule.remote_group_id {
        if remote != PARENT_GROUP
            && store::get::<SecurityGroup>(&mut tx, remote)
                .await?
                .is_none()
        {
            return Err(access::not_found("Security group", remote).into());
        }
    }
    let mut r = DefaultSecurityGroupRule {
        meta: Meta {
            description: req.description,
            ..Default::default()
        },
        rule,
        used_in_default_sg: req.used_in_default_sg.unwrap_or(false),
        used_in_non_default_sg: req.used_in_non_default_sg.unwrap_or(true),
    };
    store::stamp_new(&mut r.meta);
    store::insert(&mut tx, &r, || {
        "Default security group rule already exists.".into()
    })
    .await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::created(
        "default_security_group_rule",
        &r.meta.id,
        render_default_rule(&r)?,
    ))
}

async fn delete_default_rule(
    State(s): State<NetworkService>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.db().begin_write().await.map_err(db_err)?;
    if store::get::<DefaultSecurityGroupRule>(&mut tx, &id)
        .await?
        .is_none()
    {
        return Err(access::not_found("Default security group rule", &id).into());
    }
    store::delete(&mut tx, DefaultSecurityGroupRule::KIND, &id).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(wire::no_content())
}
