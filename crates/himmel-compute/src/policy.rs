//! Nova's secure-RBAC defaults as data: one operation per API call with the
//! rule that guards it. Project members create and act on their project's
//! servers, readers read them, the cloud administrator does everything;
//! flavors are readable by every caller and managed by administrators;
//! keypairs belong to their user; the image proxy leaves every decision
//! to the image service. A server the caller may not read is a 404, not a
//! 403. The golden test renders this table to `policy-matrix.txt`.

use himmel_http::policy::Check::{self, *};
use himmel_http::policy::Rule;
use himmel_http::{Operation, Service};

pub static SERVICE: Service = Service {
    name: "compute",
    format: himmel_http::ErrorFormat::Nova,
};

/// The cloud administrator, on a token of any scope.
const ADMIN: Check = Role("admin");
const MEMBER: Check = Project("member");
const READER: Check = Project("reader");

macro_rules! operations {
    ($($id:ident = $name:literal, $target:literal, [$($check:expr),* $(,)?];)*) => {
        $(pub static $id: Operation = Operation::new($name, $target, &[$($check),*]);)*
        /// Every compute operation, in the order of the matrix.
        pub static TABLE: &[&Operation] = &[$(&$id),*];
    };
}

operations! {
    VERSIONS = "compute:get_versions", "compute/version", [Public];
    UNKNOWN_PATH = "compute:unknown_path", "compute/unknown", [Public];
    LIMITS = "os_compute_api:limits", "compute/limits", [Authenticated];
    LIST_ZONES = "os_compute_api:os-availability-zone:list", "compute/availability_zone", [Authenticated];
    LIST_ZONES_DETAIL = "os_compute_api:os-availability-zone:detail", "compute/availability_zone", [ADMIN];

    LIST_FLAVORS = "os_compute_api:flavors", "compute/flavor", [Authenticated];
    CREATE_FLAVOR = "os_compute_api:os-flavor-manage:create", "compute/flavor", [ADMIN];
    UPDATE_FLAVOR = "os_compute_api:os-flavor-manage:update", "compute/flavor", [ADMIN];
    DELETE_FLAVOR = "os_compute_api:os-flavor-manage:delete", "compute/flavor", [ADMIN];
    GET_EXTRA_SPECS = "os_compute_api:os-flavor-extra-specs:index", "compute/flavor", [Authenticated];
    MANAGE_EXTRA_SPECS = "os_compute_api:os-flavor-extra-specs:update", "compute/flavor", [ADMIN];
    GET_FLAVOR_ACCESS = "os_compute_api:os-flavor-access", "compute/flavor", [ADMIN];
    MANAGE_FLAVOR_ACCESS = "os_compute_api:os-flavor-access:add_tenant_access", "compute/flavor", [ADMIN];

    KEYPAIRS = "os_compute_api:os-keypairs", "compute/keypair", [ADMIN, Owner];

    GET_QUOTA = "os_compute_api:os-quota-sets:show", "compute/quota", [ADMIN, READER];
    GET_QUOTA_DEFAULTS = "os_compute_api:os-quota-sets:defaults", "compute/quota", [Authenticated];
    UPDATE_QUOTA = "os_compute_api:os-quota-sets:update", "compute/quota", [ADMIN];
    DELETE_QUOTA = "os_compute_api:os-quota-sets:delete", "compute/quota", [ADMIN];

    LIST_SERVERS = "os_compute_api:servers:index", "compute/server", [ADMIN, READER];
    LIST_ALL_SERVERS = "os_compute_api:servers:index:get_all_tenants", "compute/server", [ADMIN];
    GET_SERVER = "os_compute_api:servers:show", "compute/server", [ADMIN, READER];
    CREATE_SERVER = "os_compute_api:servers:create", "compute/server", [ADMIN, MEMBER];
    // Choosing the host or zone:host of a new server.
    CREATE_SERVER_FORCED_HOST = "os_compute_api:servers:create:forced_host", "compute/server", [ADMIN];
    UPDATE_SERVER = "os_compute_api:servers:update", "compute/server", [ADMIN, MEMBER];
    DELETE_SERVER = "os_compute_api:servers:delete", "compute/server", [ADMIN, MEMBER];
    SERVER_ACTION = "os_compute_api:servers:action", "compute/server", [ADMIN, MEMBER];
    CONSOLE_OUTPUT = "os_compute_api:os-console-output", "compute/server", [ADMIN, MEMBER];
    LOCK_SERVER = "os_compute_api:os-lock-server:lock", "compute/server", [ADMIN, MEMBER];
    UNLOCK_SERVER = "os_compute_api:os-lock-server:unlock", "compute/server", [ADMIN, MEMBER];
    // Lifting a lock an administrator set.
    UNLOCK_OVERRIDE = "os_compute_api:os-lock-server:unlock:unlock_override", "compute/server", [ADMIN];
    GET_SERVER_PASSWORD = "os_compute_api:os-server-password:show", "compute/server", [ADMIN, READER];
    CLEAR_SERVER_PASSWORD = "os_compute_api:os-server-password:clear", "compute/server", [ADMIN, MEMBER];
    LIST_SERVER_IPS = "os_compute_api:ips:index", "compute/server", [ADMIN, READER];
    GET_SERVER_IPS = "os_compute_api:ips:show", "compute/server", [ADMIN, READER];
    GET_SERVER_METADATA = "os_compute_api:server-metadata:index", "compute/server", [ADMIN, READER];
    SET_SERVER_METADATA = "os_compute_api:server-metadata:update", "compute/server", [ADMIN, MEMBER];
    GET_INSTANCE_ACTIONS = "os_compute_api:os-instance-actions:list", "compute/server", [ADMIN, READER];
    GET_INTERFACES = "os_compute_api:os-attach-interfaces:list", "compute/server", [ADMIN, READER];
    MANAGE_INTERFACES = "os_compute_api:os-attach-interfaces:create", "compute/server", [ADMIN, MEMBER];
    GET_SECURITY_GROUPS = "os_compute_api:os-security-groups:list", "compute/server", [ADMIN, READER];

    // The deprecated proxy to the network service's security groups.
    LIST_PROJECT_SECURITY_GROUPS = "os_compute_api:os-security-groups:get", "compute/security_group", [ADMIN, READER];
    GET_SECURITY_GROUP = "os_compute_api:os-security-groups:show", "compute/security_group", [ADMIN, READER];
    CREATE_SECURITY_GROUP = "os_compute_api:os-security-groups:create", "compute/security_group", [ADMIN, MEMBER];
    UPDATE_SECURITY_GROUP = "os_compute_api:os-security-groups:update", "compute/security_group", [ADMIN, MEMBER];
    DELETE_SECURITY_GROUP = "os_compute_api:os-security-groups:delete", "compute/security_group", [ADMIN, MEMBER];
    CREATE_SECURITY_GROUP_RULE = "os_compute_api:os-security-groups:rule:create", "compute/security_group", [ADMIN, MEMBER];
    DELETE_SECURITY_GROUP_RULE = "os_compute_api:os-security-groups:rule:delete", "compute/security_group", [ADMIN, MEMBER];

    // The deprecated proxy to the network service's floating IPs; the
    // actions that point one at a server (or stop it) are guarded by the
    // server's project, the rest by the caller's.
    LIST_FLOATING_IPS = "os_compute_api:os-floating-ips:list", "compute/floating_ip", [ADMIN, READER];
    GET_FLOATING_IP = "os_compute_api:os-floating-ips:show", "compute/floating_ip", [ADMIN, READER];
    CREATE_FLOATING_IP = "os_compute_api:os-floating-ips:create", "compute/floating_ip", [ADMIN, MEMBER];
    DELETE_FLOATING_IP = "os_compute_api:os-floating-ips:delete", "compute/floating_ip", [ADMIN, MEMBER];
    ADD_FLOATING_IP = "os_compute_api:os-floating-ips:add", "compute/server", [ADMIN, MEMBER];
    REMOVE_FLOATING_IP = "os_compute_api:os-floating-ips:remove", "compute/server", [ADMIN, MEMBER];
    // Any caller lists the pools (the external networks), as in Nova.
    LIST_FLOATING_IP_POOLS = "os_compute_api:os-floating-ip-pools", "compute/floating_ip_pool", [Authenticated];
    // Nova's view of the networks a project can use (read-only since
    // nova-network is gone).
    LIST_TENANT_NETWORKS = "os_compute_api:os-tenant-networks:list", "compute/tenant_network", [ADMIN, READER];
    GET_TENANT_NETWORK = "os_compute_api:os-tenant-networks:show", "compute/tenant_network", [ADMIN, READER];

    LIST_SERVER_GROUPS = "os_compute_api:os-server-groups:index", "compute/server_group", [ADMIN, READER];
    GET_SERVER_GROUP = "os_compute_api:os-server-groups:show", "compute/server_group", [ADMIN, READER];
    CREATE_SERVER_GROUP = "os_compute_api:os-server-groups:create", "compute/server_group", [MEMBER];
    DELETE_SERVER_GROUP = "os_compute_api:os-server-groups:delete", "compute/server_group", [ADMIN, MEMBER];

    // The image proxy (Nova's deprecated /images). Nova guards it with no
    // rule of its own: the image service's rules decide, for the caller,
    // behind it.
    LIST_IMAGES = "compute:image_proxy:list", "compute/image", [Authenticated];
    GET_IMAGE = "compute:image_proxy:show", "compute/image", [Authenticated];
    DELETE_IMAGE = "compute:image_proxy:delete", "compute/image", [Authenticated];
    GET_IMAGE_METADATA = "compute:image_proxy:metadata:show", "compute/image", [Authenticated];
    SET_IMAGE_METADATA = "compute:image_proxy:metadata:update", "compute/image", [Authenticated];

    LIST_HYPERVISORS = "os_compute_api:os-hypervisors:list", "compute/hypervisor", [ADMIN];
    LIST_SERVICES = "os_compute_api:os-services:list", "compute/service", [ADMIN];
}

pub fn table() -> impl Iterator<Item = (&'static str, Rule)> {
    TABLE.iter().map(|op| (op.name, op.rule))
}
