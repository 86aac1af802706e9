//! Neutron's secure-RBAC defaults as data: one operation per API call with
//! the rule that guards it. Project members create and change resources of
//! their own project, readers read them, the cloud administrator does
//! everything. What a rule cannot say is in the handlers, shared with
//! [`crate::api::access`]: shared and external networks are readable by
//! every project, and a resource the caller may not read is a 404, not a 403.
//! The golden test renders this table to `policy-matrix.txt`.

use himmel_http::policy::Check::{self, *};
use himmel_http::policy::Rule;
use himmel_http::{Operation, Service};

pub static SERVICE: Service = Service {
    name: "network",
    format: himmel_http::ErrorFormat::Neutron,
};

/// The cloud administrator, on a token of any scope.
const ADMIN: Check = Role("admin");
const SYSTEM_READER: Check = System("reader");
const MEMBER: Check = Project("member");
const READER: Check = Project("reader");

macro_rules! operations {
    ($($id:ident = $name:literal, $target:literal, [$($check:expr),* $(,)?];)*) => {
        $(pub static $id: Operation = Operation::new($name, $target, &[$($check),*]);)*
        /// Every network operation, in the order of the matrix.
        pub static TABLE: &[&Operation] = &[$(&$id),*];
    };
}

operations! {
    VERSIONS = "network:get_versions", "network/version", [Public];
    UNKNOWN_PATH = "network:unknown_path", "network/unknown", [Public];
    LIST_EXTENSIONS = "network:get_extensions", "network/extension", [Authenticated];
    LIST_AVAILABILITY_ZONES = "network:get_availability_zone", "network/availability_zone", [Authenticated];

    CREATE_NETWORK = "network:create_network", "network/network", [ADMIN, MEMBER];
    GET_NETWORK = "network:get_network", "network/network", [ADMIN, SYSTEM_READER, READER];
    UPDATE_NETWORK = "network:update_network", "network/network", [ADMIN, MEMBER];
    DELETE_NETWORK = "network:delete_network", "network/network", [ADMIN, MEMBER];
    // Creating shared or external networks, or choosing provider attributes.
    CREATE_NETWORK_PRIVILEGED = "network:create_network:shared", "network/network", [ADMIN];

    CREATE_SUBNET = "network:create_subnet", "network/subnet", [ADMIN, MEMBER];
    GET_SUBNET = "network:get_subnet", "network/subnet", [ADMIN, SYSTEM_READER, READER];
    UPDATE_SUBNET = "network:update_subnet", "network/subnet", [ADMIN, MEMBER];
    DELETE_SUBNET = "network:delete_subnet", "network/subnet", [ADMIN, MEMBER];

    CREATE_PORT = "network:create_port", "network/port", [ADMIN, MEMBER];
    GET_PORT = "network:get_port", "network/port", [ADMIN, SYSTEM_READER, READER];
    UPDATE_PORT = "network:update_port", "network/port", [ADMIN, MEMBER];
    DELETE_PORT = "network:delete_port", "network/port", [ADMIN, MEMBER];
    // binding:host_id, network-owned device owners, MACs on shared networks.
    PORT_PRIVILEGED = "network:create_port:binding:host_id", "network/port", [ADMIN];

    CREATE_ROUTER = "network:create_router", "network/router", [ADMIN, MEMBER];
    GET_ROUTER = "network:get_router", "network/router", [ADMIN, SYSTEM_READER, READER];
    UPDATE_ROUTER = "network:update_router", "network/router", [ADMIN, MEMBER];
    DELETE_ROUTER = "network:delete_router", "network/router", [ADMIN, MEMBER];
    ADD_ROUTER_INTERFACE = "network:add_router_interface", "network/router", [ADMIN, MEMBER];
    REMOVE_ROUTER_INTERFACE = "network:remove_router_interface", "network/router", [ADMIN, MEMBER];
    // enable_snat and external_fixed_ips of a gateway.
    ROUTER_GATEWAY_PRIVILEGED = "network:create_router:external_gateway_info:enable_snat", "network/router", [ADMIN];

    CREATE_FLOATINGIP = "network:create_floatingip", "network/floatingip", [ADMIN, MEMBER];
    GET_FLOATINGIP = "network:get_floatingip", "network/floatingip", [ADMIN, SYSTEM_READER, READER];
    UPDATE_FLOATINGIP = "network:update_floatingip", "network/floatingip", [ADMIN, MEMBER];
    DELETE_FLOATINGIP = "network:delete_floatingip", "network/floatingip", [ADMIN, MEMBER];
    // Choosing the floating address.
    FLOATINGIP_ADDRESS_PRIVILEGED = "network:create_floatingip:floating_ip_address", "network/floatingip", [ADMIN];

    CREATE_SECURITY_GROUP = "network:create_security_group", "network/security_group", [ADMIN, MEMBER];
    GET_SECURITY_GROUP = "network:get_security_group", "network/security_group", [ADMIN, SYSTEM_READER, READER];
    UPDATE_SECURITY_GROUP = "network:update_security_group", "network/security_group", [ADMIN, MEMBER];
    DELETE_SECURITY_GROUP = "network:delete_security_group", "network/security_group", [ADMIN, MEMBER];

    CREATE_SECURITY_GROUP_RULE = "network:create_security_group_rule", "network/security_group_rule", [ADMIN, MEMBER];
    GET_SECURITY_GROUP_RULE = "network:get_security_group_rule", "network/security_group_rule", [ADMIN, SYSTEM_READER, READER];
    DELETE_SECURITY_GROUP_RULE = "network:delete_security_group_rule", "network/security_group_rule", [ADMIN, MEMBER];

    CREATE_DEFAULT_SG_RULE = "network:create_default_security_group_rule", "network/default_security_group_rule", [ADMIN];
    GET_DEFAULT_SG_RULE = "network:get_default_security_group_rule", "network/default_security_group_rule", [ADMIN, Role("reader")];
    DELETE_DEFAULT_SG_RULE = "network:delete_default_security_group_rule", "network/default_security_group_rule", [ADMIN];

    LIST_QUOTAS = "network:get_quota:all", "network/quota", [ADMIN, SYSTEM_READER];
    GET_QUOTA = "network:get_quota", "network/quota", [ADMIN, SYSTEM_READER, READER];
    GET_QUOTA_DEFAULT = "network:get_quota_default", "network/quota", [Authenticated];
    UPDATE_QUOTA = "network:update_quota", "network/quota", [ADMIN];
    DELETE_QUOTA = "network:delete_quota", "network/quota", [ADMIN];

    GET_IP_AVAILABILITY = "network:get_network_ip_availability", "network/network_ip_availability", [ADMIN, SYSTEM_READER];
}

pub fn table() -> impl Iterator<Item = (&'static str, Rule)> {
    TABLE.iter().map(|op| (op.name, op.rule))
}
