//! The desired state of the dataplane: what the reconciler wants, in concrete terms (ids,
//! addresses, rules already expanded to CIDRs). Nothing here refers to the database.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything the host should have. [`crate::Dataplane::ensure`] makes it so.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DesiredDataplane {
    pub networks: Vec<Network>,
    pub ports: Vec<Port>,
    pub routers: Vec<Router>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub segment: Segment,
    pub mtu: u32,
    pub subnets: Vec<Subnet>,
    /// The network's DHCP server port (Neutron's `network:dhcp` port): its MAC and one address
    /// in each subnet with DHCP enabled. `None`: no DHCP namespace for this network.
    pub dhcp: Option<DhcpPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum Segment {
    /// A tenant network: a VXLAN segment with this VNI.
    Vxlan { vni: u32 },
    /// A provider network (the external network): its bridge enslaves the interface the
    /// operator named, when there is one. That interface is never created or deleted here.
    Flat { interface: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub cidr: IpNet,
    pub gateway: Option<IpAddr>,
    pub dhcp: bool,
    pub dns_nameservers: Vec<IpAddr>,
    pub host_routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpPort {
    pub port_id: String,
    pub mac: MacAddr,
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub destination: IpNet,
    pub nexthop: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    pub mac: MacAddr,
    pub ips: Vec<IpAddr>,
    /// The DNS name DHCP hands out and DNS answers for (default `host-<ip with dashes>`).
    pub dns_name: Option<String>,
    /// Security groups and anti-spoofing; `None` when port security is off (no filtering).
    pub security: Option<PortSecurity>,
    /// Where the port is plugged; `None`: not plugged on this host.
    pub plug: Option<Plug>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortSecurity {
    pub rules: Vec<Rule>,
    pub allowed_address_pairs: Vec<AddressPair>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip: IpNet,
    /// The MAC this address may come from; the port's own when `None`.
    pub mac: Option<MacAddr>,
}

/// One security group rule, its remote already expanded (remote group -> member addresses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub direction: Direction,
    pub ethertype: EtherType,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 ipv6-icmp, ...); `None`: any.
    pub protocol: Option<u8>,
    /// tcp/udp/sctp: destination port range; icmp: type.
    pub port_range_min: Option<u16>,
    /// tcp/udp/sctp: destination port range; icmp: code.
    pub port_range_max: Option<u16>,
    /// The other end's addresses (`0.0.0.0/0` for anyone). Empty: the rule matches nothing
    /// (a remote group without members).
    pub remote: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EtherType {
    IPv4,
    IPv6,
}

/// Where a port is plugged: a veth whose inside end is `ifname` in namespace `netns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plug {
    pub netns: String,
    pub ifname: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Router {
    pub id: String,
    /// An administratively down router keeps its namespace and interfaces (so its ports are
    /// in place) but neither forwards nor answers: forwarding is off and its input is dropped.
    #[serde(default = "up")]
    pub admin_state_up: bool,
    pub interfaces: Vec<RouterInterface>,
    pub gateway: Option<RouterGateway>,
    pub floating_ips: Vec<FloatingIp>,
    pub routes: Vec<Route>,
}

/// A router interface: the router's port on a tenant network, holding the subnet's gateway IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterInterface {
    pub port_id: String,
    pub network_id: String,
    pub mac: MacAddr,
    /// Address with the subnet's prefix length (e.g. `10.0.0.1/24`).
    pub address: IpNet,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterGateway {
    pub port_id: String,
    /// The external (flat) network.
    pub network_id: String,
    pub mac: MacAddr,
    /// Address with the external subnet's prefix length.
    pub address: IpNet,
    /// The external subnet's gateway: the router's default route.
    pub nexthop: Option<IpAddr>,
    /// Source NAT for traffic from the tenant networks leaving through the gateway.
    pub snat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIp {
    pub external: IpAddr,
    pub internal: IpAddr,
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A stable, locally administered unicast MAC derived from a seed (for objects that have
    /// no MAC of their own in the model).
    pub fn derived(seed: &str) -> MacAddr {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(seed.as_bytes());
        MacAddr([0xfa, 0x16, 0x3e, h[0], h[1], h[2]])
    }

    /// The IPv6 link-local address a host derives from this MAC (modified EUI-64).
    pub fn ipv6_link_local(&self) -> std::net::Ipv6Addr {
        let m = self.0;
        std::net::Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
            u16::from_be_bytes([m[2], 0xff]),
            u16::from_be_bytes([0xfe, m[3]]),
            u16::from_be_bytes([m[4], m[5]]),
        )
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("MAC address {s:?} is not valid"));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() || out[0] & 1 == 1 {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde's default for state flags that older desired states did not carry.
fn up() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_refuses_multicast() {
        let m: MacAddr = "fa:16:3e:01:02:0a".parse().unwrap();
        assert_eq!(m.to_string(), "fa:16:3e:01:02:0a");
        assert!("01:00:5e:00:00:01".parse::<MacAddr>().is_err());
        assert!("fa:16:3e:01:02".parse::<MacAddr>().is_err());
        assert!("fa:16:3e:01:02:0a:0b".parse::<MacAddr>().is_err());
    }

    #[test]
    fn link_local_is_modified_eui64() {
        let m: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(m.ipv6_link_local().to_string(), "fe80::5054:ff:fe12:3456");
    }
}
