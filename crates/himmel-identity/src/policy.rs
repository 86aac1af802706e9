//! Keystone's secure-RBAC default policy as data: one operation per API
//! call, each with the rule that guards it. `Role("admin")` is the cloud
//! administrator (Keystone's `admin_required`); the domain `manager`
//! persona manages users, groups, projects and grants inside its own domain.
//! The golden test renders this table to `policy-matrix.txt`.

use himmel_http::policy::Check::{self, *};
use himmel_http::{Operation, Service};

pub static SERVICE: Service = Service {
    name: "identity",
    format: himmel_http::ErrorFormat::Keystone,
};

const ADMIN: Check = Role("admin");
const SYSTEM_READER: Check = System("reader");
const DOMAIN_READER: Check = Domain("reader");
const DOMAIN_MANAGER: Check = Domain("manager");

macro_rules! operations {
    ($($id:ident = $name:literal, $target:literal, [$($check:expr),* $(,)?];)*) => {
        $(pub static $id: Operation = Operation::new($name, $target, &[$($check),*]);)*
        /// Every identity operation, in the order of the matrix.
        pub static TABLE: &[&Operation] = &[$(&$id),*];
    };
}

operations! {
    VERSIONS = "identity:get_versions", "identity/version", [Public];
    // Requests for paths that do not exist are answered (404) and audited too.
    UNKNOWN_PATH = "identity:unknown_path", "identity/unknown", [Public];
    CREATE_TOKEN = "identity:create_token", "identity/token", [Public];
    VALIDATE_TOKEN = "identity:validate_token", "identity/token", [ADMIN, SYSTEM_READER, Role("service"), Owner];
    CHECK_TOKEN = "identity:check_token", "identity/token", [ADMIN, SYSTEM_READER, Role("service"), Owner];
    REVOKE_TOKEN = "identity:revoke_token", "identity/token", [ADMIN, Owner];
    GET_AUTH_CATALOG = "identity:get_auth_catalog", "identity/catalog", [Authenticated];
    GET_AUTH_PROJECTS = "identity:get_auth_projects", "identity/project", [Authenticated];
    GET_AUTH_DOMAINS = "identity:get_auth_domains", "identity/domain", [Authenticated];
    GET_AUTH_SYSTEM = "identity:get_auth_system", "identity/system", [Authenticated];

    LIST_DOMAINS = "identity:list_domains", "identity/domain", [ADMIN, SYSTEM_READER];
    GET_DOMAIN = "identity:get_domain", "identity/domain", [ADMIN, SYSTEM_READER, DOMAIN_READER, ProjectInDomain("reader")];
    CREATE_DOMAIN = "identity:create_domain", "identity/domain", [ADMIN];
    UPDATE_DOMAIN = "identity:update_domain", "identity/domain", [ADMIN];
    DELETE_DOMAIN = "identity:delete_domain", "identity/domain", [ADMIN];

    LIST_PROJECTS = "identity:list_projects", "identity/project", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    GET_PROJECT = "identity:get_project", "identity/project", [ADMIN, SYSTEM_READER, DOMAIN_READER, Project("reader")];
    LIST_USER_PROJECTS = "identity:list_user_projects", "identity/project", [ADMIN, SYSTEM_READER, DOMAIN_READER, Owner];
    CREATE_PROJECT = "identity:create_project", "identity/project", [ADMIN, DOMAIN_MANAGER];
    UPDATE_PROJECT = "identity:update_project", "identity/project", [ADMIN, DOMAIN_MANAGER];
    DELETE_PROJECT = "identity:delete_project", "identity/project", [ADMIN, DOMAIN_MANAGER];
    LIST_PROJECT_TAGS = "identity:list_project_tags", "identity/project/tag", [ADMIN, SYSTEM_READER, DOMAIN_READER, Project("reader")];
    GET_PROJECT_TAG = "identity:get_project_tag", "identity/project/tag", [ADMIN, SYSTEM_READER, DOMAIN_READER, Project("reader")];
    UPDATE_PROJECT_TAGS = "identity:update_project_tags", "identity/project/tag", [ADMIN, DOMAIN_MANAGER, Project("manager")];
    CREATE_PROJECT_TAG = "identity:create_project_tag", "identity/project/tag", [ADMIN, DOMAIN_MANAGER, Project("manager")];
    DELETE_PROJECT_TAGS = "identity:delete_project_tags", "identity/project/tag", [ADMIN, DOMAIN_MANAGER, Project("manager")];
    DELETE_PROJECT_TAG = "identity:delete_project_tag", "identity/project/tag", [ADMIN, DOMAIN_MANAGER, Project("manager")];

    LIST_USERS = "identity:list_users", "identity/user", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    GET_USER = "identity:get_user", "identity/user", [ADMIN, SYSTEM_READER, DOMAIN_READER, Owner];
    CREATE_USER = "identity:create_user", "identity/user", [ADMIN, DOMAIN_MANAGER];
    UPDATE_USER = "identity:update_user", "identity/user", [ADMIN, DOMAIN_MANAGER];
    DELETE_USER = "identity:delete_user", "identity/user", [ADMIN, DOMAIN_MANAGER];
    // Public as in Keystone: the original password proves who asks, and a
    // user whose password expired cannot get a token to change it.
    CHANGE_PASSWORD = "identity:change_password", "identity/user/password", [Public];

    LIST_GROUPS = "identity:list_groups", "identity/group", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    GET_GROUP = "identity:get_group", "identity/group", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    CREATE_GROUP = "identity:create_group", "identity/group", [ADMIN, DOMAIN_MANAGER];
    UPDATE_GROUP = "identity:update_group", "identity/group", [ADMIN, DOMAIN_MANAGER];
    DELETE_GROUP = "identity:delete_group", "identity/group", [ADMIN, DOMAIN_MANAGER];
    LIST_USERS_IN_GROUP = "identity:list_users_in_group", "identity/group/member", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    CHECK_USER_IN_GROUP = "identity:check_user_in_group", "identity/group/member", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    ADD_USER_TO_GROUP = "identity:add_user_to_group", "identity/group/member", [ADMIN, DOMAIN_MANAGER];
    REMOVE_USER_FROM_GROUP = "identity:remove_user_from_group", "identity/group/member", [ADMIN, DOMAIN_MANAGER];
    LIST_GROUPS_FOR_USER = "identity:list_groups_for_user", "identity/group", [ADMIN, SYSTEM_READER, DOMAIN_READER, Owner];

    LIST_ROLES = "identity:list_roles", "identity/role", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    GET_ROLE = "identity:get_role", "identity/role", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    CREATE_ROLE = "identity:create_role", "identity/role", [ADMIN];
    UPDATE_ROLE = "identity:update_role", "identity/role", [ADMIN];
    DELETE_ROLE = "identity:delete_role", "identity/role", [ADMIN];
    LIST_IMPLIED_ROLES = "identity:list_implied_roles", "identity/role/implied", [ADMIN, SYSTEM_READER];
    GET_IMPLIED_ROLE = "identity:get_implied_role", "identity/role/implied", [ADMIN, SYSTEM_READER];
    CREATE_IMPLIED_ROLE = "identity:create_implied_role", "identity/role/implied", [ADMIN];
    DELETE_IMPLIED_ROLE = "identity:delete_implied_role", "identity/role/implied", [ADMIN];
    LIST_ROLE_INFERENCE_RULES = "identity:list_role_inference_rules", "identity/role/implied", [ADMIN, SYSTEM_READER];

    LIST_GRANTS = "identity:list_grants", "identity/role_assignment", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    CHECK_GRANT = "identity:check_grant", "identity/role_assignment", [ADMIN, SYSTEM_READER, DOMAIN_READER];
    CREATE_GRANT = "identity:create_grant", "identity/role_assignment", [ADMIN, DOMAIN_MANAGER];
    REVOKE_GRANT = "identity:revoke_grant", "identity/role_assignment", [ADMIN, DOMAIN_MANAGER];
    LIST_SYSTEM_GRANTS = "identity:list_system_grants", "identity/role_assignment", [ADMIN, SYSTEM_READER];
    CHECK_SYSTEM_GRANT = "identity:check_system_grant", "identity/role_assignment", [ADMIN, SYSTEM_READER];
    CREATE_SYSTEM_GRANT = "identity:create_system_grant", "identity/role_assignment", [ADMIN];
    REVOKE_SYSTEM_GRANT = "identity:revoke_system_grant", "identity/role_assignment", [ADMIN];
    LIST_ROLE_ASSIGNMENTS = "identity:list_role_assignments", "identity/role_assignment", [ADMIN, SYSTEM_READER, DOMAIN_READER];

    LIST_REGIONS = "identity:list_regions", "identity/region", [Authenticated];
    GET_REGION = "identity:get_region", "identity/region", [Authenticated];
    CREATE_REGION = "identity:create_region", "identity/region", [ADMIN];
    UPDATE_REGION = "identity:update_region", "identity/region", [ADMIN];
    DELETE_REGION = "identity:delete_region", "identity/region", [ADMIN];
    LIST_SERVICES = "identity:list_services", "identity/service", [ADMIN, SYSTEM_READER];
    GET_SERVICE = "identity:get_service", "identity/service", [ADMIN, SYSTEM_READER];
    CREATE_SERVICE = "identity:create_service", "identity/service", [ADMIN];
    UPDATE_SERVICE = "identity:update_service", "identity/service", [ADMIN];
    DELETE_SERVICE = "identity:delete_service", "identity/service", [ADMIN];
    LIST_ENDPOINTS = "identity:list_endpoints", "identity/endpoint", [ADMIN, SYSTEM_READER];
    GET_ENDPOINT = "identity:get_endpoint", "identity/endpoint", [ADMIN, SYSTEM_READER];
    CREATE_ENDPOINT = "identity:create_endpoint", "identity/endpoint", [ADMIN];
    UPDATE_ENDPOINT = "identity:update_endpoint", "identity/endpoint", [ADMIN];
    DELETE_ENDPOINT = "identity:delete_endpoint", "identity/endpoint", [ADMIN];

    LIST_CREDENTIALS = "identity:list_credentials", "identity/credential", [ADMIN, SYSTEM_READER, Authenticated];
    GET_CREDENTIAL = "identity:get_credential", "identity/credential", [ADMIN, SYSTEM_READER, Owner];
    CREATE_CREDENTIAL = "identity:create_credential", "identity/credential", [ADMIN, Owner];
    UPDATE_CREDENTIAL = "identity:update_credential", "identity/credential", [ADMIN, Owner];
    DELETE_CREDENTIAL = "identity:delete_credential", "identity/credential", [ADMIN, Owner];
    EC2_LIST_CREDENTIALS = "identity:ec2_list_credentials", "identity/credential/ec2", [ADMIN, SYSTEM_READER, Owner];
    EC2_GET_CREDENTIAL = "identity:ec2_get_credential", "identity/credential/ec2", [ADMIN, SYSTEM_READER, Owner];
    EC2_CREATE_CREDENTIAL = "identity:ec2_create_credential", "identity/credential/ec2", [ADMIN, Owner];
    EC2_DELETE_CREDENTIAL = "identity:ec2_delete_credential", "identity/credential/ec2", [ADMIN, Owner];

    LIST_APPLICATION_CREDENTIALS = "identity:list_application_credentials", "identity/application_credential", [ADMIN, SYSTEM_READER, Owner];
    GET_APPLICATION_CREDENTIAL = "identity:get_application_credential", "identity/application_credential", [ADMIN, SYSTEM_READER, Owner];
    CREATE_APPLICATION_CREDENTIAL = "identity:create_application_credential", "identity/application_credential", [Owner];
    DELETE_APPLICATION_CREDENTIAL = "identity:delete_application_credential", "identity/application_credential", [ADMIN, Owner];
    LIST_ACCESS_RULES = "identity:list_access_rules", "identity/access_rule", [ADMIN, SYSTEM_READER, Owner];
    GET_ACCESS_RULE = "identity:get_access_rule", "identity/access_rule", [ADMIN, SYSTEM_READER, Owner];
    DELETE_ACCESS_RULE = "identity:delete_access_rule", "identity/access_rule", [ADMIN, Owner];
}

/// The table as (name, rule) pairs, for the golden matrix.
pub fn table() -> impl Iterator<Item = (&'static str, himmel_http::policy::Rule)> {
    TABLE.iter().map(|op| (op.name, op.rule))
}
