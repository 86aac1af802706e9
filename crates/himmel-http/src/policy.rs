//! The policy rule language. Each service keeps its rules as data: a table
//! from operation name to [`Check`]. The same table drives enforcement and
//! the golden authorization matrix.
//!
//! Roles imply one another (admin > manager > member > reader); the token's
//! role list is already expanded, so a rule names the least role it needs.

use himmel_core::{RequestContext, Scope};

/// What a rule may look at besides the token: the resource acted on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub domain_id: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// No token needed (version discovery, token issue).
    Public,
    /// Any valid token, any scope.
    Authenticated,
    /// The role on a token of any scope. `Role("admin")` is the cloud
    /// administrator, as in Keystone's defaults.
    Role(&'static str),
    /// The role on a system-scoped token.
    System(&'static str),
    /// The role on a domain-scoped token for the target's domain.
    Domain(&'static str),
    /// The role on a project-scoped token for the target's project.
    Project(&'static str),
    /// The role on a project-scoped token for a project in the target's domain.
    ProjectInDomain(&'static str),
    /// The token's user is the target's user.
    Owner,
    /// Nobody (operations that exist on the wire but not here).
    Nobody,
}

/// Outcome of evaluating a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// Depends on the target, which only the handler can load.
    NeedsTarget,
}

/// A rule: allowed when any of its checks passes.
pub type Rule = &'static [Check];

impl Check {
    /// Evaluates this check; `None` target means "not known yet".
    pub fn decide(&self, ctx: Option<&RequestContext>, target: Option<&Target>) -> Decision {
        use Decision::*;
        let Some(ctx) = ctx else {
            return if *self == Check::Public { Allow } else { Deny };
        };
        let bool_d = |b: bool| if b { Allow } else { Deny };
        match *self {
            Check::Public | Check::Authenticated => Allow,
            Check::Nobody => Deny,
            Check::Role(role) => bool_d(ctx.has_role(role) && ctx.scope != Scope::Unscoped),
            Check::System(role) => bool_d(ctx.is_system() && ctx.has_role(role)),
            Check::Domain(role) => match (&ctx.scope, target) {
                (Scope::Domain { id, .. }, Some(t)) if ctx.has_role(role) => {
                    bool_d(t.domain_id.as_deref() == Some(id.as_str()))
                }
                (Scope::Domain { .. }, None) if ctx.has_role(role) => NeedsTarget,
                _ => Deny,
            },
            Check::Project(role) => match (&ctx.scope, target) {
                (Scope::Project { id, .. }, Some(t)) if ctx.has_role(role) => {
                    bool_d(t.project_id.as_deref() == Some(id.as_str()))
                }
                (Scope::Project { .. }, None) if ctx.has_role(role) => NeedsTarget,
                _ => Deny,
            },
            Check::ProjectInDomain(role) => match (&ctx.scope, target) {
                (Scope::Project { domain_id, .. }, Some(t)) if ctx.has_role(role) => {
                    bool_d(t.domain_id.as_deref() == Some(domain_id.as_str()))
                }
                (Scope::Project { .. }, None) if ctx.has_role(role) => NeedsTarget,
                _ => Deny,
            },
            Check::Owner => match target {
                Some(t) => bool_d(t.user_id.as_deref() == Some(ctx.user_id.as_str())),
                None => NeedsTarget,
            },
        }
    }
}

/// Evaluates a whole rule: allow if any check allows; needs-target if
/// none allows yet but one might once the target is known.
pub fn decide(rule: Rule, ctx: Option<&RequestContext>, target: Option<&Target>) -> Decision {
    let mut needs_target = false;
    for check in rule {
        match check.decide(ctx, target) {
            Decision::Allow => return Decision::Allow,
            Decision::NeedsTarget => needs_target = true,
            Decision::Deny => {}
        }
    }
    if needs_target {
        Decision::NeedsTarget
    } else {
        Decision::Deny
    }
}

/// The personas of the golden matrix.
pub const PERSONAS: &[&str] = &["admin", "manager", "member", "reader", "none"];

/// Scopes of the golden matrix: where the token is scoped, relative to the
/// target (the resource acted on).
pub const MATRIX_SCOPES: &[&str] = &[
    "system",
    "domain:own",
    "domain:other",
    "project:own",
    "project:other",
    "project:other-domain",
];

/// Builds the token context and target of one matrix cell. The target lives
/// in domain `d1`, project `p1`, and belongs to user `target-user`; the
/// caller is `caller`, except in the `self` row where it is the target user.
pub fn matrix_cell(persona: &str, scope: &str, is_owner: bool) -> (RequestContext, Target) {
    let roles: Vec<String> = match persona {
        "admin" => vec!["admin", "manager", "member", "reader"],
        "manager" => vec!["manager", "member", "reader"],
        "member" => vec!["member", "reader"],
        "reader" => vec!["reader"],
        _ => vec![],
    }
    .into_iter()
    .map(String::from)
    .collect();
    let project = |id: &str, domain: &str| Scope::Project {
        id: id.into(),
        name: id.into(),
        domain_id: domain.into(),
        domain_name: domain.into(),
    };
    let scope = match scope {
        "system" => Scope::System,
        "domain:own" => Scope::Domain {
            id: "d1".into(),
            name: "d1".into(),
        },
        "domain:other" => Scope::Domain {
            id: "d2".into(),
            name: "d2".into(),
        },
        "project:own" => project("p1", "d1"),
        "project:other" => project("p2", "d1"),
        _ => project("p3", "d2"),
    };
    let ctx = RequestContext {
        request_id: "req-matrix".into(),
        user_id: if is_owner {
            "target-user".into()
        } else {
            "caller".into()
        },
        user_name: "caller".into(),
        user_domain_id: "d1".into(),
        user_domain_name: "d1".into(),
        scope,
        roles,
        methods: vec!["password".into()],
        audit_ids: vec![],
        application_credential_id: None,
        expires_at: String::new(),
        source_addr: "127.0.0.1".into(),
    };
    let target = Target {
        domain_id: Some("d1".into()),
        project_id: Some("p1".into()),
        user_id: Some("target-user".into()),
    };
    (ctx, target)
}

/// Renders the golden matrix for a table of (operation, rule).
pub fn render_matrix<'a>(table: impl IntoIterator<Item = (&'a str, Rule)>) -> String {
    let mut out = String::new();
    out.push_str("# operation | persona | ");
    out.push_str(&MATRIX_SCOPES.join(" | "));
    out.push_str(" | self\n");
    for (op, rule) in table {
        for persona in PERSONAS {
            out.push_str(&format!("{op} | {persona}"));
            for scope in MATRIX_SCOPES {
                let (ctx, target) = matrix_cell(persona, scope, false);
                let d = decide(rule, Some(&ctx), Some(&target));
                out.push_str(if d == Decision::Allow {
                    " | allow"
                } else {
                    " | deny"
                });
            }
            // The caller acting on its own user, with a project token.
            let (ctx, target) = matrix_cell(persona, "project:own", true);
            let d = decide(rule, Some(&ctx), Some(&target));
            out.push_str(if d == Decision::Allow {
                " | allow"
            } else {
                " | deny"
            });
            out.push('\n');
        }
    }
    out
}
