//! Grants (`/v3/{projects,domains}/…/{users,groups}/…/roles/…`, their
//! OS-INHERIT and system forms) and `GET /v3/role_assignments`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use axum::extract::{MatchedPath, Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::routing::MethodFilter;
use axum::Router;
use himmel_core::Error;
use himmel_http::{ApiError, ApiResult, Authz, Ctx, Json, Pipeline, Target};
use serde_json::{json, Value};

use crate::policy::*;
use crate::store::grants::{self, ActorType, Filter, Grant, TargetType, SYSTEM_ALL};
use crate::store::projects::Project;
use crate::store::revocation::RevocationEvent;
use crate::store::roles::{self, Role};
use crate::store::{domains, projects, users};
use crate::Identity;

/// What a grant URL names; `role_id` is absent in the list forms.
struct GrantPath {
    actor_type: ActorType,
    actor_id: String,
    target_type: TargetType,
    target_id: String,
    role_id: Option<String>,
    inherited: bool,
}

impl GrantPath {
    /// Reads the route's parameters; the route itself says which form it is.
    fn parse(matched: &MatchedPath, params: Vec<(String, String)>) -> Result<GrantPath, Error> {
        let mut actor = None;
        let mut target = (TargetType::System, SYSTEM_ALL.to_string());
        let mut role_id = None;
        for (name, value) in params {
            match name.as_str() {
                "user_id" => actor = Some((ActorType::User, value)),
                "group_id" => actor = Some((ActorType::Group, value)),
                "project_id" => target = (TargetType::Project, value),
                "domain_id" => target = (TargetType::Domain, value),
                "role_id" => role_id = Some(value),
                _ => {}
            }
        }
        let (actor_type, actor_id) =
            actor.ok_or_else(|| Error::Internal("grant route without an actor".into()))?;
        Ok(GrantPath {
            actor_type,
            actor_id,
            target_type: target.0,
            target_id: target.1,
            role_id,
            inherited: matched.as_str().starts_with("/v3/OS-INHERIT/"),
        })
    }

    fn grant(&self, role_id: &str) -> Grant {
        Grant {
            actor_type: self.actor_type,
            actor_id: self.actor_id.clone(),
            target_type: self.target_type,
            target_id: self.target_id.clone(),
            role_id: role_id.to_string(),
            inherited: self.inherited,
        }
    }
}

/// Loads the actor and target (404 when missing) and checks the caller may
/// act on both: a domain-scoped caller only inside its own domain.
async fn authorize(id: &Identity, authz: &Authz, gp: &GrantPath) -> ApiResult<Option<String>> {
    let db = id.db();
    let actor_domain = match gp.actor_type {
        ActorType::User => users::get(db, &gp.actor_id)
            .await?
            .map(|u| u.domain_id)
            .ok_or_else(|| Error::not_found("user", &gp.actor_id))?,
        ActorType::Group => grants::group_domain(db, &gp.actor_id)
            .await?
            .ok_or_else(|| Error::not_found("group", &gp.actor_id))?,
    };
    let target_domain = match gp.target_type {
        TargetType::Project => Some(
            projects::get(db, &gp.target_id)
                .await?
                .map(|p| p.domain_id)
                .ok_or_else(|| Error::not_found("project", &gp.target_id))?,
        ),
        TargetType::Domain => Some(
            domains::get(db, &gp.target_id)
                .await?
                .map(|d| d.id)
                .ok_or_else(|| Error::not_found("domain", &gp.target_id))?,
        ),
        TargetType::System => None,
    };
    authz.check(&Target {
        domain_id: target_domain.clone(),
        ..Default::default()
    })?;
    authz.check(&Target {
        domain_id: Some(actor_domain),
        ..Default::default()
    })?;
    Ok(target_domain)
}

fn role_id(gp: &GrantPath) -> ApiResult<&str> {
    gp.role_id
        .as_deref()
        .ok_or_else(|| ApiError(Error::Internal("grant route without a role".into())))
}

/// Global roles a domain manager may hand out and take back (Keystone's
/// default list).
const DOMAIN_MANAGED_ROLES: &[&str] = &["manager", "member", "reader"];

/// Roles that reach beyond a domain: `admin` rules the cloud, `service`
/// validates anyone's tokens.
const PRIVILEGED_ROLES: &[&str] = &["admin", "service"];

/// A caller who is not the cloud admin (a domain manager) may grant and
/// revoke the domain-managed global roles and its domain's own roles,
/// never one that confers a privileged role.
async fn check_role_allowed(id: &Identity, ctx: &Ctx, role: &Role, action: &str) -> ApiResult<()> {
    if ctx.has_role("admin") {
        return Ok(());
    }
    let listed = role.domain_id.is_some() || DOMAIN_MANAGED_ROLES.contains(&role.name.as_str());
    if !listed || roles::confers_any(id.db(), role, PRIVILEGED_ROLES).await? {
        return Err(ApiError(Error::Forbidden(format!(
            "You are not authorized to perform the requested action: {action}."
        ))));
    }
    Ok(())
}

/// A domain-specific role may only be granted inside its own domain.
fn check_role_domain(role: &Role, gp: &GrantPath, target_domain: Option<&str>) -> ApiResult<()> {
    let Some(role_domain) = role.domain_id.as_deref() else {
        return Ok(());
    };
    match (gp.target_type, target_domain) {
        (TargetType::System, _) => Err(ApiError(Error::BadRequest(
            "Domain-specific roles cannot be granted on the system.".into(),
        ))),
        (_, Some(d)) if d == role_domain => Ok(()),
        (TargetType::Project, _) => Err(ApiError(Error::Forbidden(format!(
            "Project {} must be in the same domain as the role {} being assigned.",
            gp.target_id, role.id
        )))),
        _ => Err(ApiError(Error::Forbidden(format!(
            "Domain {} must be the domain of the role {} being assigned.",
            gp.target_id, role.id
        )))),
    }
}

fn assignment_not_found(g: &Grant) -> Error {
    Error::NotFound(format!(
        "Could not find role assignment with role: {}, user or group: {}, project, domain, or system: {}.",
        g.role_id, g.actor_id, g.target_id
    ))
}

async fn put_grant(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    matched: MatchedPath,
    Path(params): Path<Vec<(String, String)>>,
) -> ApiResult<StatusCode> {
    let gp = GrantPath::parse(&matched, params)?;
    let target_domain = authorize(&id, &authz, &gp).await?;
    let role = roles::require(id.db(), role_id(&gp)?).await?;
    check_role_allowed(&id, &ctx, &role, "identity:create_grant").await?;
    check_role_domain(&role, &gp, target_domain.as_deref())?;
    grants::create(id.db(), &gp.grant(&role.id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn check_grant(
    State(id): State<Identity>,
    authz: Authz,
    matched: MatchedPath,
    Path(params): Path<Vec<(String, String)>>,
) -> ApiResult<StatusCode> {
    let gp = GrantPath::parse(&matched, params)?;
    authorize(&id, &authz, &gp).await?;
    let role = roles::require(id.db(), role_id(&gp)?).await?;
    let g = gp.grant(&role.id);
    if grants::exists(id.db(), &g).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(assignment_not_found(&g)))
    }
}

async fn delete_grant(
    State(id): State<Identity>,
    ctx: Ctx,
    authz: Authz,
    matched: MatchedPath,
    Path(params): Path<Vec<(String, String)>>,
) -> ApiResult<StatusCode> {
    let gp = GrantPath::parse(&matched, params)?;
    authorize(&id, &authz, &gp).await?;
    let role = roles::require(id.db(), role_id(&gp)?).await?;
    check_role_allowed(&id, &ctx, &role, "identity:revoke_grant").await?;
    let g = gp.grant(&role.id);
    // The holders are read before the grant goes, so a group's members
    // lose their tokens too.
    let holders = grants::holders(id.db(), &g).await?;
    if !grants::delete(id.db(), &g).await? {
        return Err(ApiError(assignment_not_found(&g)));
    }
    revoke_tokens(&id, &g, &holders).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the tokens a removed grant may have contributed roles to.
pub(crate) async fn revoke_tokens(
    id: &Identity,
    g: &Grant,
    holders: &[String],
) -> Result<(), Error> {
    for user in holders {
        let mut event = RevocationEvent {
            user_id: Some(user.clone()),
            ..Default::default()
        };
        match (g.target_type, g.inherited) {
            (TargetType::Project, false) => event.project_id = Some(g.target_id.clone()),
            (TargetType::Domain, false) => event.domain_id = Some(g.target_id.clone()),
            // Inherited and system grants reach tokens of many scopes:
            // every token of the user goes.
            _ => {}
        }
        id.revocations().revoke(id.db(), event).await?;
    }
    Ok(())
}

async fn list_grants(
    State(id): State<Identity>,
    authz: Authz,
    matched: MatchedPath,
    uri: Uri,
    Path(params): Path<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let gp = GrantPath::parse(&matched, params)?;
    authorize(&id, &authz, &gp).await?;
    let found = grants::list(
        id.db(),
        &Filter {
            actor: Some((gp.actor_type, &gp.actor_id)),
            target: Some((gp.target_type, &gp.target_id)),
            role_id: None,
            inherited: Some(gp.inherited),
        },
    )
    .await?;
    let mut out = Vec::new();
    for g in &found {
        if let Some(role) = roles::get(id.db(), &g.role_id).await? {
            out.push(role.to_json());
        }
    }
    Ok(Json(json!({
        "roles": out,
        "links": {"self": uri.path(), "previous": null, "next": null},
    })))
}

// ---- GET /v3/role_assignments ----

/// Keystone treats a bare `?effective` as true.
fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name)
        .is_some_and(|v| !matches!(v.as_str(), "0" | "false" | "False"))
}

/// One line of the listing, before formatting.
#[derive(Clone)]
struct Entry {
    actor_type: ActorType,
    actor_id: String,
    target_type: TargetType,
    target_id: String,
    role_id: String,
    inherited: bool,
    /// The grant this line comes from.
    assignment: String,
    membership: Option<String>,
    prior_role: Option<String>,
}

impl Entry {
    fn direct(g: &Grant) -> Entry {
        Entry {
            actor_type: g.actor_type,
            actor_id: g.actor_id.clone(),
            target_type: g.target_type,
            target_id: g.target_id.clone(),
            role_id: g.role_id.clone(),
            inherited: g.inherited,
            assignment: g.path(),
            membership: None,
            prior_role: None,
        }
    }
}

struct Tree {
    by_id: HashMap<String, Project>,
    children: HashMap<String, Vec<String>>,
}

impl Tree {
    fn new(all: Vec<Project>) -> Tree {
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        for p in &all {
            if let Some(parent) = &p.parent_id {
                children
                    .entry(parent.clone())
                    .or_default()
                    .push(p.id.clone());
            }
        }
        Tree {
            by_id: all.into_iter().map(|p| (p.id.clone(), p)).collect(),
            children,
        }
    }

    /// Projects below `id`, not including it.
    fn descendants(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(p) = stack.pop() {
            for c in self.children.get(&p).into_iter().flatten() {
                if seen.insert(c.clone()) {
                    out.push(c.clone());
                    stack.push(c.clone());
                }
            }
        }
        out
    }

    fn in_domain(&self, domain_id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .by_id
            .values()
            .filter(|p| p.domain_id == domain_id && !p.is_domain)
            .map(|p| p.id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// Replaces group grants by their members, inherited grants by the
/// projects they reach, and adds implied roles (dropping domain-specific
/// roles, which only stand for what they imply).
async fn effective(
    id: &Identity,
    found: Vec<Grant>,
    only_user: Option<&str>,
    tree: &Tree,
    roles_by_id: &HashMap<String, Role>,
) -> Result<Vec<Entry>, Error> {
    let graph = roles::implications(id.db()).await?;
    let mut out = Vec::new();
    for g in &found {
        let mut users: Vec<(String, Option<String>)> = match g.actor_type {
            ActorType::User => vec![(g.actor_id.clone(), None)],
            ActorType::Group => grants::group_members(id.db(), &g.actor_id)
                .await?
                .into_iter()
                .map(|u| {
                    let link = format!("/v3/groups/{}/users/{u}", g.actor_id);
                    (u, Some(link))
                })
                .collect(),
        };
        if let Some(u) = only_user {
            users.retain(|(x, _)| x == u);
        }
        let targets: Vec<(TargetType, String)> = match (g.inherited, g.target_type) {
            (false, t) => vec![(t, g.target_id.clone())],
            (true, TargetType::Domain) => tree
                .in_domain(&g.target_id)
                .into_iter()
                .map(|p| (TargetType::Project, p))
                .collect(),
            (true, _) => tree
                .descendants(&g.target_id)
                .into_iter()
                .map(|p| (TargetType::Project, p))
                .collect(),
        };
        let mut held = vec![(g.role_id.clone(), None)];
        for implied in roles::reachable(&graph, &g.role_id) {
            let link = format!("/v3/roles/{}/implies/{implied}", g.role_id);
            held.push((implied, Some(link)));
        }
        held.retain(|(r, _)| roles_by_id.get(r).is_some_and(|r| r.domain_id.is_none()));
        for (user, membership) in &users {
            for (target_type, target_id) in &targets {
                for (role, prior) in &held {
                    out.push(Entry {
                        actor_type: ActorType::User,
                        actor_id: user.clone(),
                        target_type: *target_type,
                        target_id: target_id.clone(),
                        role_id: role.clone(),
                        inherited: g.inherited,
                        assignment: g.path(),
                        membership: membership.clone(),
                        prior_role: prior.clone(),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn format_entry(
    e: &Entry,
    names: Option<&grants::Names>,
    tree: &Tree,
    roles_by_id: &HashMap<String, Role>,
) -> Value {
    let domain_ref = |id: &str| match names {
        Some(n) => json!({"id": id, "name": n.domains.get(id).cloned().unwrap_or_default()}),
        None => json!({"id": id}),
    };
    let mut scope = match e.target_type {
        TargetType::System => json!({"system": {"all": true}}),
        TargetType::Domain => json!({"domain": domain_ref(&e.target_id)}),
        TargetType::Project => {
            let mut p = json!({"id": e.target_id});
            if let (Some(_), Some(project)) = (names, tree.by_id.get(&e.target_id)) {
                p["name"] = project.name.clone().into();
                p["domain"] = domain_ref(&project.domain_id);
            }
            json!({"project": p})
        }
    };
    if e.inherited {
        scope["OS-INHERIT:inherited_to"] = "projects".into();
    }
    let mut actor = json!({"id": e.actor_id});
    if let Some(n) = names {
        let table = match e.actor_type {
            ActorType::User => &n.users,
            ActorType::Group => &n.groups,
        };
        if let Some((name, domain)) = table.get(&e.actor_id) {
            actor["name"] = name.clone().into();
            actor["domain"] = domain_ref(domain);
        }
    }
    let mut role = json!({"id": e.role_id});
    if let (Some(_), Some(r)) = (names, roles_by_id.get(&e.role_id)) {
        role["name"] = r.name.clone().into();
        if let Some(d) = &r.domain_id {
            role["domain"] = domain_ref(d);
        }
    }
    let mut links = json!({"assignment": e.assignment});
    if let Some(m) = &e.membership {
        links["membership"] = m.clone().into();
    }
    if let Some(p) = &e.prior_role {
        links["prior_role"] = p.clone().into();
    }
    let mut v = json!({"scope": scope, "role": role, "links": links});
    v[e.actor_type.as_str()] = actor;
    v
}

fn bad(msg: &str) -> ApiError {
    ApiError(Error::BadRequest(msg.into()))
}

async fn list_role_assignments(
    State(id): State<Identity>,
    authz: Authz,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let user_id = get("user.id");
    let group_id = get("group.id");
    let role_filter = get("role.id");
    let project_id = get("scope.project.id");
    let domain_id = get("scope.domain.id");
    let system = get("scope.system");
    let want_effective = flag(&q, "effective");
    let include_names = flag(&q, "include_names");
    let include_subtree = flag(&q, "include_subtree");
    let inherited = q
        .get("scope.OS-INHERIT:inherited_to")
        .map(|v| v == "projects");
    if domain_id.is_some() && project_id.is_some() {
        return Err(bad("Specify a domain or project, not both"));
    }
    if system.is_some() && domain_id.is_some() {
        return Err(bad("Specify system or domain, not both"));
    }
    if system.is_some() && project_id.is_some() {
        return Err(bad("Specify system or project, not both"));
    }
    if user_id.is_some() && group_id.is_some() {
        return Err(bad("Specify a user or group, not both"));
    }
    if want_effective && group_id.is_some() {
        return Err(bad(
            "Combining effective and group filter will always result in an empty list.",
        ));
    }
    if want_effective && inherited == Some(true) && domain_id.is_some() {
        return Err(bad(
            "Combining effective, domain and inherited filters will always result in an empty list.",
        ));
    }
    if include_subtree && project_id.is_none() {
        return Err(bad(
            "scope.project.id must be specified if include_subtree is also specified",
        ));
    }
    if system.is_some_and(|s| s != SYSTEM_ALL) {
        return Err(bad("scope.system must be 'all'"));
    }

    let db = id.db();
    let tree = Tree::new(grants::all_projects(db).await?);
    let roles_by_id: HashMap<String, Role> = roles::all(db)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    if let Some(p) = project_id.filter(|p| include_subtree && !tree.by_id.contains_key(*p)) {
        return Err(ApiError(Error::not_found("project", p)));
    }
    let projects_in_scope: Option<BTreeSet<String>> = project_id.map(|p| {
        let mut set = BTreeSet::from([p.to_string()]);
        if include_subtree {
            set.extend(tree.descendants(p));
        }
        set
    });

    let mut found = grants::list(
        db,
        &Filter {
            inherited,
            ..Default::default()
        },
    )
    .await?;
    let entries: Vec<Entry> = if want_effective {
        if let Some(u) = user_id {
            let groups = grants::groups_of_user(db, u).await?;
            found.retain(|g| match g.actor_type {
                ActorType::User => g.actor_id == u,
                ActorType::Group => groups.contains(&g.actor_id),
            });
        }
        effective(&id, found, user_id, &tree, &roles_by_id).await?
    } else {
        found.retain(|g| {
            user_id.is_none_or(|u| g.actor_type == ActorType::User && g.actor_id == u)
                && group_id.is_none_or(|gr| g.actor_type == ActorType::Group && g.actor_id == gr)
        });
        found.iter().map(Entry::direct).collect()
    };

    let names = if include_names {
        Some(grants::names(db).await?)
    } else {
        None
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for e in &entries {
        let in_scope = role_filter.is_none_or(|r| e.role_id == r)
            && projects_in_scope.as_ref().is_none_or(|set| {
                e.target_type == TargetType::Project && set.contains(&e.target_id)
            })
            && domain_id.is_none_or(|d| e.target_type == TargetType::Domain && e.target_id == d)
            && system.is_none_or(|_| e.target_type == TargetType::System);
        if !in_scope {
            continue;
        }
        // A domain-scoped reader sees assignments within its domain only.
        let domain_of_target = match e.target_type {
            TargetType::Domain => Some(e.target_id.clone()),
            TargetType::Project => tree.by_id.get(&e.target_id).map(|p| p.domain_id.clone()),
            TargetType::System => None,
        };
        if !authz.allows(&Target {
            domain_id: domain_of_target,
            ..Default::default()
        }) {
            continue;
        }
        let v = format_entry(e, names.as_ref(), &tree, &roles_by_id);
        if seen.insert(v.to_string()) {
            out.push(v);
        }
    }
    sort_entries(&mut out);
    Ok(Json(json!({
        "role_assignments": out,
        "links": {"self": "/v3/role_assignments", "previous": null, "next": null},
    })))
}

/// A stable order: by actor, then scope, then role.
fn sort_entries(out: &mut [Value]) {
    let key = |v: &Value| {
        let actor = v
            .get("user")
            .or(v.get("group"))
            .and_then(|a| a.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        (actor, v["scope"].to_string(), v["role"]["id"].to_string())
    };
    let mut keyed: BTreeMap<(String, String, String), Vec<Value>> = BTreeMap::new();
    for v in out.iter() {
        keyed.entry(key(v)).or_default().push(v.clone());
    }
    for (slot, v) in out.iter_mut().zip(keyed.into_values().flatten()) {
        *slot = v;
    }
}

pub fn routes(p: &Pipeline) -> Router<Identity> {
    use MethodFilter as M;
    let check = M::GET.or(M::HEAD);
    let mut r = Router::new();
    for target in ["projects/{project_id}", "domains/{domain_id}"] {
        for actor in ["users/{user_id}", "groups/{group_id}"] {
            for (prefix, suffix) in [("/v3", ""), ("/v3/OS-INHERIT", "/inherited_to_projects")] {
                let base = format!("{prefix}/{target}/{actor}/roles");
                r = r
                    .route(
                        &format!("{base}{suffix}"),
                        p.on(&SERVICE, &LIST_GRANTS, check, list_grants),
                    )
                    .route(
                        &format!("{base}/{{role_id}}{suffix}"),
                        p.on(&SERVICE, &CREATE_GRANT, M::PUT, put_grant)
                            .merge(p.on(&SERVICE, &CHECK_GRANT, check, check_grant))
                            .merge(p.on(&SERVICE, &REVOKE_GRANT, M::DELETE, delete_grant)),
                    );
            }
        }
    }
    for actor in ["users/{user_id}", "groups/{group_id}"] {
        let base = format!("/v3/system/{actor}/roles");
        r = r
            .route(
                &base,
                p.on(&SERVICE, &LIST_SYSTEM_GRANTS, check, list_grants),
            )
            .route(
                &format!("{base}/{{role_id}}"),
                p.on(&SERVICE, &CREATE_SYSTEM_GRANT, M::PUT, put_grant)
                    .merge(p.on(&SERVICE, &CHECK_SYSTEM_GRANT, check, check_grant))
                    .merge(p.on(&SERVICE, &REVOKE_SYSTEM_GRANT, M::DELETE, delete_grant)),
            );
    }
    r.route(
        "/v3/role_assignments",
        p.on(
            &SERVICE,
            &LIST_ROLE_ASSIGNMENTS,
            check,
            list_role_assignments,
        ),
    )
}
