//! The networking model: what the API stores and the dataplane reconciler
//! reads. Field names are Neutron's wire names, so a stored resource is
//! also (most of) its API representation; [`crate::store`] reads and writes
//! them, [`crate::api`] adds the computed fields and hides admin-only ones.

use serde::{Deserialize, Serialize};

/// Port status before the dataplane has wired the port.
pub const STATUS_DOWN: &str = "DOWN";
/// Port status once the dataplane is in place.
pub const STATUS_ACTIVE: &str = "ACTIVE";

/// `device_owner` of the port a router has on a tenant subnet.
pub const OWNER_ROUTER_INTERFACE: &str = "network:router_interface";
/// `device_owner` of the port a router has on the external network.
pub const OWNER_ROUTER_GATEWAY: &str = "network:router_gateway";
/// `device_owner` of the port dnsmasq serves DHCP from.
pub const OWNER_DHCP: &str = "network:dhcp";

/// The one availability zone of a region.
pub const AVAILABILITY_ZONE: &str = "nova";

/// Fields every stored resource has.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub id: String,
    pub project_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub revision_number: i64,
    /// RFC 3339, seconds.
    pub created_at: String,
    pub updated_at: String,
}

/// What the store needs to know about a resource type.
pub trait Resource: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync {
    /// Singular wire name, also the `kind` column (`network`, `subnet`, …).
    const KIND: &'static str;
    fn meta(&self) -> &Meta;
    fn meta_mut(&mut self) -> &mut Meta;
    /// The owning network of a subnet or port, the group of a rule.
    fn parent_id(&self) -> Option<&str> {
        None
    }
    /// Shared and external networks (and their subnets) are readable by all.
    fn visible_to_all(&self) -> bool {
        false
    }
    /// A key that must be unique among resources of this kind.
    fn unique_key(&self) -> Option<String> {
        None
    }
}

macro_rules! meta_impl {
    () => {
        fn meta(&self) -> &Meta {
            &self.meta
        }
        fn meta_mut(&mut self) -> &mut Meta {
            &mut self.meta
        }
    };
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Network {
    #[serde(flatten)]
    pub meta: Meta,
    pub name: String,
    pub admin_state_up: bool,
    pub status: String,
    pub shared: bool,
    #[serde(rename = "router:external")]
    pub external: bool,
    pub mtu: i64,
    pub port_security_enabled: bool,
    pub availability_zone_hints: Vec<String>,
    /// `vxlan` for tenant networks, `flat` for external ones.
    #[serde(rename = "provider:network_type")]
    pub network_type: String,
    #[serde(rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    /// The VNI of a `vxlan` network.
    #[serde(rename = "provider:segmentation_id")]
    pub segmentation_id: Option<i64>,
}

impl Resource for Network {
    const KIND: &'static str = "network";
    meta_impl!();
    fn visible_to_all(&self) -> bool {
        self.shared || self.external
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllocationPool {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subnet {
    #[serde(flatten)]
    pub meta: Meta,
    pub name: String,
    pub network_id: String,
    pub ip_version: i64,
    /// Normalised (`10.0.0.0/24`).
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub allocation_pools: Vec<AllocationPool>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    /// Copied from the network (shared or external), so that whoever may
    /// read the network may read its subnets. Not on the wire.
    #[serde(default)]
    pub network_visible_to_all: bool,
}

impl Resource for Subnet {
    const KIND: &'static str = "subnet";
    meta_impl!();
    fn parent_id(&self) -> Option<&str> {
        Some(&self.network_id)
    }
    fn visible_to_all(&self) -> bool {
        self.network_visible_to_all
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AddressPair {
    /// An address or a CIDR.
    pub ip_address: String,
    pub mac_address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Port {
    #[serde(flatten)]
    pub meta: Meta,
    pub name: String,
    pub network_id: String,
    pub admin_state_up: bool,
    /// [`STATUS_DOWN`] until the dataplane sets it [`STATUS_ACTIVE`].
    pub status: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    pub device_id: String,
    pub device_owner: String,
    #[serde(rename = "binding:host_id")]
    pub host_id: String,
    pub security_groups: Vec<String>,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub port_security_enabled: bool,
}

impl Resource for Port {
    const KIND: &'static str = "port";
    meta_impl!();
    fn parent_id(&self) -> Option<&str> {
        Some(&self.network_id)
    }
    fn unique_key(&self) -> Option<String> {
        Some(format!("{}/{}", self.network_id, self.mac_address))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExternalGateway {
    pub network_id: String,
    pub enable_snat: bool,
    pub external_fixed_ips: Vec<FixedIp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Router {
    #[serde(flatten)]
    pub meta: Meta,
    pub name: String,
    pub admin_state_up: bool,
    pub status: String,
    pub external_gateway_info: Option<ExternalGateway>,
    /// Static routes; every nexthop is on one of the router's subnets.
    pub routes: Vec<HostRoute>,
    pub availability_zone_hints: Vec<String>,
}

impl Resource for Router {
    const KIND: &'static str = "router";
    meta_impl!();
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FloatingIp {
    #[serde(flatten)]
    pub meta: Meta,
    pub floating_network_id: String,
    pub floating_ip_address: String,
    /// The external subnet the address came from.
    pub floating_subnet_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    /// The router that translates, while associated.
    pub router_id: Option<String>,
    pub status: String,
}

impl FloatingIp {
    /// Status of an address that translates to nothing.
    pub fn disassociate(&mut self) {
        self.port_id = None;
        self.fixed_ip_address = None;
        self.router_id = None;
        self.status = STATUS_DOWN.into();
    }
}

impl Resource for FloatingIp {
    const KIND: &'static str = "floatingip";
    meta_impl!();
    fn parent_id(&self) -> Option<&str> {
        Some(&self.floating_network_id)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroup {
    #[serde(flatten)]
    pub meta: Meta,
    pub name: String,
    pub stateful: bool,
    /// The project's default group (one per project).
    pub is_default: bool,
}

impl Resource for SecurityGroup {
    const KIND: &'static str = "security_group";
    meta_impl!();
    fn unique_key(&self) -> Option<String> {
        self.is_default
            .then(|| format!("default/{}", self.meta.project_id))
    }
}

/// The match part of a security group rule, shared with the default rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct RuleMatch {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// A protocol name or number as the client gave it; `None` is any.
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroupRule {
    #[serde(flatten)]
    pub meta: Meta,
    pub security_group_id: String,
    #[serde(flatten)]
    pub rule: RuleMatch,
}

impl Resource for SecurityGroupRule {
    const KIND: &'static str = "security_group_rule";
    meta_impl!();
    fn parent_id(&self) -> Option<&str> {
        Some(&self.security_group_id)
    }
    fn unique_key(&self) -> Option<String> {
        Some(rule_key(&self.security_group_id, &self.rule))
    }
}

/// A template for the rules of new security groups. A `remote_group_id`
/// of [`PARENT_GROUP`] means the new group itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DefaultSecurityGroupRule {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub rule: RuleMatch,
    pub used_in_default_sg: bool,
    pub used_in_non_default_sg: bool,
}

/// `remote_group_id` of a default rule that points at the group it is in.
pub const PARENT_GROUP: &str = "PARENT";

impl Resource for DefaultSecurityGroupRule {
    const KIND: &'static str = "default_security_group_rule";
    meta_impl!();
    fn unique_key(&self) -> Option<String> {
        Some(rule_key("", &self.rule))
    }
}

/// Two rules with equal keys match the same packets: a duplicate.
fn rule_key(group: &str, r: &RuleMatch) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    format!(
        "{group}|{}|{}|{}|{}|{}|{}|{}",
        r.direction,
        r.ethertype,
        opt(&r.protocol).to_ascii_lowercase(),
        num(r.port_range_min),
        num(r.port_range_max),
        // The network, not the prefix as written: 10.0.0.1/24 is 10.0.0.0/24.
        r.remote_ip_prefix
            .as_deref()
            .map(|p| crate::addr::parse_prefix("", p)
                .map(|n| n.to_string())
                .unwrap_or_else(|_| p.to_string()))
            .unwrap_or_default(),
        opt(&r.remote_group_id)
    )
}
