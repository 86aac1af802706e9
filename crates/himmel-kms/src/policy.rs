//! Who may do what with the Key Manager API, as data.
//!
//! Two tables, both rendered by the golden test to `policy-matrix.txt`:
//! * [`TABLE`]: the pipeline's rule per operation. Collection operations
//!   (create, list) act on the caller's own project; operations on one
//!   secret, container or order let any token through to the handler,
//!   which decides on the loaded resource with the second table.
//! * [`ENTITY_TABLE`]: per operation on an existing resource, the grants
//!   that allow it, looking at the resource's project, creator and ACL.
//!
//! The rules follow Barbican's secure-RBAC defaults (member creates, reads
//! and deletes its project's secrets; project-access false restricts a
//! secret to its creator and the users on its ACL), with one deliberate
//! extension: a project `reader` may list its project's secrets, containers
//! and orders and read their metadata. Payloads stay out of a reader's
//! reach, as in Barbican, where `secret:decrypt` needs `member` or the ACL.

use himmel_core::{RequestContext, Scope};
use himmel_http::policy::Check::{self, *};
use himmel_http::policy::Rule;
use himmel_http::{ErrorFormat, Operation, Service};

pub static SERVICE: Service = Service {
    name: "key-manager",
    format: ErrorFormat::Barbican,
};

macro_rules! operations {
    ($($id:ident = $name:literal, $target:literal, [$($check:expr),* $(,)?];)*) => {
        $(pub static $id: Operation = Operation::new($name, $target, &[$($check),*]);)*
        /// Every Key Manager operation, in the order of the matrix.
        pub static TABLE: &[&Operation] = &[$(&$id),*];
    };
}

/// Operations on one existing resource: the handler decides with
/// [`ENTITY_TABLE`] once it has loaded the resource.
const ON_RESOURCE: Check = Authenticated;

operations! {
    VERSIONS = "key-manager:get_versions", "key-manager/version", [Public];
    UNKNOWN_PATH = "key-manager:unknown_path", "key-manager/unknown", [Public];
    METHOD_NOT_ALLOWED = "key-manager:method_not_allowed", "key-manager/unknown", [Public];

    SECRETS_POST = "secrets:post", "key-manager/secret", [Project("member")];
    SECRETS_GET = "secrets:get", "key-manager/secret", [Project("reader")];
    SECRET_GET = "secret:get", "key-manager/secret", [ON_RESOURCE];
    SECRET_DECRYPT = "secret:decrypt", "key-manager/secret", [ON_RESOURCE];
    SECRET_PUT = "secret:put", "key-manager/secret", [ON_RESOURCE];
    SECRET_DELETE = "secret:delete", "key-manager/secret", [ON_RESOURCE];
    SECRET_META_GET = "secret_meta:get", "key-manager/secret/metadata", [ON_RESOURCE];
    SECRET_META_POST = "secret_meta:post", "key-manager/secret/metadata", [ON_RESOURCE];
    SECRET_META_PUT = "secret_meta:put", "key-manager/secret/metadata", [ON_RESOURCE];
    SECRET_META_DELETE = "secret_meta:delete", "key-manager/secret/metadata", [ON_RESOURCE];
    SECRET_ACLS_GET = "secret_acls:get", "key-manager/secret/acl", [ON_RESOURCE];
    SECRET_ACLS_PUT_PATCH = "secret_acls:put_patch", "key-manager/secret/acl", [ON_RESOURCE];
    SECRET_ACLS_DELETE = "secret_acls:delete", "key-manager/secret/acl", [ON_RESOURCE];

    CONTAINERS_POST = "containers:post", "key-manager/container", [Project("member")];
    CONTAINERS_GET = "containers:get", "key-manager/container", [Project("reader")];
    CONTAINER_GET = "container:get", "key-manager/container", [ON_RESOURCE];
    CONTAINER_DELETE = "container:delete", "key-manager/container", [ON_RESOURCE];
    CONTAINER_SECRET_POST = "container_secret:post", "key-manager/container/secret", [ON_RESOURCE];
    CONTAINER_SECRET_DELETE = "container_secret:delete", "key-manager/container/secret", [ON_RESOURCE];
    CONTAINER_ACLS_GET = "container_acls:get", "key-manager/container/acl", [ON_RESOURCE];
    CONTAINER_ACLS_PUT_PATCH = "container_acls:put_patch", "key-manager/container/acl", [ON_RESOURCE];
    CONTAINER_ACLS_DELETE = "container_acls:delete", "key-manager/container/acl", [ON_RESOURCE];

    ORDERS_POST = "orders:post", "key-manager/order", [Project("member")];
    ORDERS_GET = "orders:get", "key-manager/order", [Project("reader")];
    ORDER_GET = "order:get", "key-manager/order", [ON_RESOURCE];
    ORDER_DELETE = "order:delete", "key-manager/order", [ON_RESOURCE];
}

pub fn table() -> impl Iterator<Item = (&'static str, Rule)> {
    TABLE.iter().map(|op| (op.name, op.rule))
}

/// One way to be allowed an operation on an existing resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `admin` on a token of any scope: the cloud administrator
    /// (Barbican's bare `role:admin`).
    CloudAdmin,
    /// The role on a token scoped to the resource's project.
    ProjectRole(&'static str),
    /// The role on the resource's project, and the caller created it.
    ProjectRoleCreator(&'static str),
    /// The role on the resource's project, and the resource is not private
    /// (its read ACL keeps project-access).
    ProjectRoleNotPrivate(&'static str),
    /// The caller is a user on the resource's read ACL (any project).
    AclRead,
}

/// What the grants look at: the resource and its read ACL.
#[derive(Debug, Clone)]
pub struct Resource<'a> {
    pub project_id: &'a str,
    pub creator_id: &'a str,
    pub project_access: bool,
    pub read_users: &'a [String],
}

impl Grant {
    fn allows(&self, ctx: &RequestContext, r: &Resource) -> bool {
        let on_project = |role: &str| {
            ctx.has_role(role)
                && matches!(&ctx.scope, Scope::Project { id, .. } if id == r.project_id)
        };
        match *self {
            Grant::CloudAdmin => ctx.has_role("admin") && ctx.scope != Scope::Unscoped,
            Grant::ProjectRole(role) => on_project(role),
            Grant::ProjectRoleCreator(role) => on_project(role) && ctx.user_id == r.creator_id,
            Grant::ProjectRoleNotPrivate(role) => on_project(role) && r.project_access,
            Grant::AclRead => ctx.scope != Scope::Unscoped && r.read_users.contains(&ctx.user_id),
        }
    }
}

/// True when any of `grants` allows `ctx` on `r`.
pub fn allows(grants: &[Grant], ctx: &RequestContext, r: &Resource) -> bool {
    grants.iter().any(|g| g.allows(ctx, r))
}

use Grant::*;

/// Reading a resource's metadata: Barbican's `secret:get`, extended to
/// project readers.
const READ_METADATA: &[Grant] = &[
    CloudAdmin,
    ProjectRole("admin"),
    ProjectRoleCreator("member"),
    ProjectRoleNotPrivate("reader"),
    AclRead,
];
/// Barbican's `secret_meta:get` and `container:get`, extended to readers.
const READ_PROJECT_METADATA: &[Grant] = &[
    ProjectRole("admin"),
    ProjectRoleCreator("member"),
    ProjectRoleNotPrivate("reader"),
    AclRead,
];
/// Barbican's `secret:decrypt`.
const DECRYPT: &[Grant] = &[
    ProjectRole("admin"),
    ProjectRoleCreator("member"),
    ProjectRoleNotPrivate("member"),
    AclRead,
];
/// Changing a resource: Barbican's `secret:put`, `secret_meta:*`,
/// `secret_acls:*`, `container:delete`, `container_secret:*`.
const CHANGE: &[Grant] = &[
    ProjectRole("admin"),
    ProjectRoleCreator("member"),
    ProjectRoleNotPrivate("member"),
];
/// Barbican's `secret:delete`: changing, or the cloud administrator.
const DELETE: &[Grant] = &[
    CloudAdmin,
    ProjectRole("admin"),
    ProjectRoleCreator("member"),
    ProjectRoleNotPrivate("member"),
];
/// Orders have no ACL: the project's readers read, members delete.
const ORDER_READ: &[Grant] = &[ProjectRole("reader")];
const ORDER_CHANGE: &[Grant] = &[ProjectRole("member")];

/// Per operation on an existing resource, the grants that allow it.
pub static ENTITY_TABLE: &[(&Operation, &[Grant])] = &[
    (&SECRET_GET, READ_METADATA),
    (&SECRET_DECRYPT, DECRYPT),
    (&SECRET_PUT, CHANGE),
    (&SECRET_DELETE, DELETE),
    (&SECRET_META_GET, READ_PROJECT_METADATA),
    (&SECRET_META_POST, CHANGE),
    (&SECRET_META_PUT, CHANGE),
    (&SECRET_META_DELETE, CHANGE),
    (&SECRET_ACLS_GET, CHANGE),
    (&SECRET_ACLS_PUT_PATCH, CHANGE),
    (&SECRET_ACLS_DELETE, CHANGE),
    (&CONTAINER_GET, READ_PROJECT_METADATA),
    (&CONTAINER_DELETE, CHANGE),
    (&CONTAINER_SECRET_POST, CHANGE),
    (&CONTAINER_SECRET_DELETE, CHANGE),
    (&CONTAINER_ACLS_GET, CHANGE),
    (&CONTAINER_ACLS_PUT_PATCH, CHANGE),
    (&CONTAINER_ACLS_DELETE, CHANGE),
    (&ORDER_GET, ORDER_READ),
    (&ORDER_DELETE, ORDER_CHANGE),
];

/// The grants of `op`; an operation missing from the table allows nobody.
pub fn grants(op: &Operation) -> &'static [Grant] {
    ENTITY_TABLE
        .iter()
        .find(|(o, _)| std::ptr::eq(*o, op))
        .map(|(_, g)| *g)
        .unwrap_or(&[])
}

/// Columns of the resource matrix: how the caller relates to the resource.
pub const RESOURCE_CASES: &[&str] = &[
    "project",
    "project:private",
    "project:private:creator",
    "project:private:acl",
    "other-project",
    "other-project:acl",
    "system",
];

fn resource_cell(persona: &str, case: &str) -> (RequestContext, bool, bool) {
    let scope = if case == "system" {
        "system"
    } else if case.starts_with("other-project") {
        "project:other"
    } else {
        "project:own"
    };
    let creator = case.ends_with(":creator");
    let (ctx, _) = himmel_http::policy::matrix_cell(persona, scope, creator);
    let private = case.contains(":private");
    let on_acl = case.ends_with(":acl");
    (ctx, private, on_acl)
}

/// Renders the resource table: operation × persona × relation.
pub fn render_resource_matrix() -> String {
    let mut out = format!("# operation | persona | {}\n", RESOURCE_CASES.join(" | "));
    for (op, grants) in ENTITY_TABLE {
        for persona in himmel_http::policy::PERSONAS {
            out.push_str(&format!("{} | {persona}", op.name));
            for case in RESOURCE_CASES {
                let (ctx, private, on_acl) = resource_cell(persona, case);
                let users = if on_acl {
                    vec![ctx.user_id.clone()]
                } else {
                    vec![]
                };
                let r = Resource {
                    project_id: "p1",
                    creator_id: "target-user",
                    project_access: !private,
                    read_users: &users,
                };
                out.push_str(if allows(grants, &ctx, &r) {
                    " | allow"
                } else {
                    " | deny"
                });
            }
            out.push('\n');
        }
    }
    out
}
