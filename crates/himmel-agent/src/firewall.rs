//! Security groups and anti-spoofing as nftables rules on the network bridges.
//!
//! Why two tables: this kernel (like many) has no connection tracking in the `bridge` family
//! (`nf_conntrack_bridge`), so `ct state` cannot be used in a bridge chain. With
//! `br_netfilter` (`net.bridge.bridge-nf-call-iptables=1`), bridged IP packets do pass the
//! `inet` hooks, where conntrack runs, but there the input device is the bridge, not the port,
//! and nftables cannot match the bridge port (no `physdev`). So:
//! * `inet <prefix>_conntrack` puts each network's packets in its own conntrack zone (so equal
//!   addresses in two projects never share a flow) and copies "established or related" into one
//!   bit of the packet mark ([`ESTABLISHED_MARK`]);
//! * `bridge <prefix>_security_groups` filters per port on the bridge forward hook, where the
//!   ports are known, and trusts the mark bit for replies.
//!
//! Per port with port security: frames from the port must carry its MAC and one of its IPs
//! (or an allowed address pair), then pass its egress rules; frames to the port pass its
//! ingress rules; established/related flows, ARP, DHCP and IPv6 neighbour discovery pass;
//! everything else is dropped. Ports without port security are not filtered at all.
//! Both tables are replaced in one atomic `nft -f` transaction.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Direction, EtherType, MacAddr, Port, PortSecurity, Rule};

/// The packet-mark bit meaning "this packet belongs to an established or related flow".
pub const ESTABLISHED_MARK: u32 = 0x0010_0000;

/// A network bridge and its conntrack zone.
pub struct BridgeZone {
    pub bridge: String,
    pub zone: u16,
}

/// A plugged port with port security, and its host interface.
pub struct FilteredPort<'a> {
    pub dev: String,
    pub chain_id: String,
    pub port: &'a Port,
    pub security: &'a PortSecurity,
}

/// The whole nft script for the root namespace.
pub fn ruleset(
    ct_table: &str,
    sg_table: &str,
    bridges: &[BridgeZone],
    ports: &[FilteredPort],
) -> String {
    let mut s = String::new();
    // Declaring then deleting makes the replacement work whether or not the table exists.
    for (family, table) in [("inet", ct_table), ("bridge", sg_table)] {
        let _ = writeln!(s, "table {family} {table}\ndelete table {family} {table}");
    }
    if bridges.is_empty() {
        // Nothing wanted: no tables at all.
        return s;
    }
    let _ = writeln!(s, "table inet {ct_table} {{");
    let _ = writeln!(
        s,
        "  chain zone {{\n    type filter hook prerouting priority -300; policy accept;"
    );
    for b in bridges {
        let _ = writeln!(s, "    iifname \"{}\" ct zone set {}", b.bridge, b.zone);
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain state {{\n    type filter hook prerouting priority -150; policy accept;"
    );
    let set = bridges
        .iter()
        .map(|b| format!("\"{}\"", b.bridge))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "    iifname {{ {set} }} meta mark set meta mark and {:#010x}",
        !ESTABLISHED_MARK
    );
    let _ = writeln!(
        s,
        "    iifname {{ {set} }} ct state established,related meta mark set meta mark or {ESTABLISHED_MARK:#010x}"
    );
    let _ = writeln!(s, "  }}\n}}");

    let _ = writeln!(s, "table bridge {sg_table} {{");
    let _ = writeln!(
        s,
        "  chain forward {{\n    type filter hook forward priority 0; policy accept;"
    );
    for p in ports {
        let _ = writeln!(s, "    iifname \"{}\" jump from_{}", p.dev, p.chain_id);
        let _ = writeln!(s, "    oifname \"{}\" jump to_{}", p.dev, p.chain_id);
    }
    let _ = writeln!(s, "  }}");
    for p in ports {
        port_chains(&mut s, p);
    }
    let _ = writeln!(s, "}}");
    s
}

fn established() -> String {
    format!("meta mark and {ESTABLISHED_MARK:#010x} == {ESTABLISHED_MARK:#010x}")
}

/// (MAC, address range) pairs a port may send from.
fn sources(port: &Port, security: &PortSecurity) -> Vec<(MacAddr, IpNet)> {
    let mut out: Vec<(MacAddr, IpNet)> = port
        .ips
        .iter()
        .map(|ip| (port.mac, IpNet::from(*ip)))
        .collect();
    out.extend(
        security
            .allowed_address_pairs
            .iter()
            .map(|p| (p.mac.unwrap_or(port.mac), p.ip)),
    );
    out
}

fn port_chains(s: &mut String, p: &FilteredPort) {
    let id = &p.chain_id;
    let sources = sources(p.port, p.security);
    let mut macs: Vec<MacAddr> = sources.iter().map(|(m, _)| *m).collect();
    macs.push(p.port.mac);
    macs.sort();
    macs.dedup();

    // From the port: anti-spoofing first, then egress rules.
    let _ = writeln!(s, "  chain from_{id} {{");
    for (mac, net) in sources.iter().filter(|(_, n)| n.addr().is_ipv4()) {
        let _ = writeln!(
            s,
            "    ether type arp ether saddr {mac} arp saddr ether {mac} arp saddr ip {net} return"
        );
    }
    let _ = writeln!(s, "    ether type arp drop");
    // DHCP discovery before the port has an address; a port never acts as a DHCP server.
    let _ = writeln!(
        s,
        "    ether saddr {} ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return",
        p.port.mac
    );
    let _ = writeln!(s, "    ether type ip udp sport 67 udp dport 68 drop");
    let _ = writeln!(s, "    ether type ip6 icmpv6 type nd-router-advert drop");
    for (mac, net) in &sources {
        let family = if net.addr().is_ipv4() { "ip" } else { "ip6" };
        let _ = writeln!(
            s,
            "    ether saddr {mac} {family} saddr {net} goto egress_{id}"
        );
    }
    for mac in &macs {
        let _ = writeln!(
            s,
            "    ether saddr {mac} ip6 saddr {} goto egress_{id}",
            mac.ipv6_link_local()
        );
        let _ = writeln!(
            s,
            "    ether saddr {mac} ip6 saddr :: icmpv6 type nd-neighbor-solicit return"
        );
    }
    let _ = writeln!(s, "    drop\n  }}");

    let _ = writeln!(s, "  chain egress_{id} {{");
    let _ = writeln!(s, "    {} return", established());
    let _ = writeln!(s, "    ether type ip udp sport 68 udp dport 67 return");
    let _ = writeln!(
        s,
        "    ether type ip6 icmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} return"
    );
    for rule in p
        .security
        .rules
        .iter()
        .filter(|r| r.direction == Direction::Egress)
    {
        if let Some(m) = rule_match(rule) {
            let _ = writeln!(s, "    {m} return");
        }
    }
    let _ = writeln!(s, "    drop\n  }}");

    // To the port: ingress rules.
    let _ = writeln!(s, "  chain to_{id} {{");
    let _ = writeln!(s, "    {} accept", established());
    let _ = writeln!(s, "    ether type arp accept");
    let _ = writeln!(s, "    ether type ip udp sport 67 udp dport 68 accept");
    let _ = writeln!(
        s,
        "    ether type ip6 icmpv6 type {{ nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert }} accept"
    );
    for rule in p
        .security
        .rules
        .iter()
        .filter(|r| r.direction == Direction::Ingress)
    {
        if let Some(m) = rule_match(rule) {
            let _ = writeln!(s, "    {m} accept");
        }
    }
    let _ = writeln!(s, "    drop\n  }}");
}

/// IPv4 rules with protocol "icmp" mean ICMP; on IPv6 Neutron lets "icmp" mean ICMPv6.
fn protocol_for(rule: &Rule) -> Option<u8> {
    match (rule.ethertype, rule.protocol) {
        (EtherType::IPv6, Some(1)) => Some(58),
        (_, p) => p,
    }
}

fn has_ports(protocol: u8) -> Option<&'static str> {
    match protocol {
        6 => Some("tcp"),
        17 => Some("udp"),
        33 => Some("dccp"),
        132 => Some("sctp"),
        _ => None,
    }
}

/// The nft match of one rule, or `None` when it can match nothing (no remote of its family).
pub fn rule_match(rule: &Rule) -> Option<String> {
    let v4 = rule.ethertype == EtherType::IPv4;
    let (family, ethertype) = if v4 { ("ip", "ip") } else { ("ip6", "ip6") };
    let remotes: Vec<&IpNet> = rule
        .remote
        .iter()
        .filter(|n| n.addr().is_ipv4() == v4)
        .collect();
    if remotes.is_empty() {
        return None;
    }
    let mut m = format!("ether type {ethertype}");
    if !remotes.iter().any(|n| n.prefix_len() == 0) {
        let side = match rule.direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        let set = remotes
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(m, " {family} {side} {{ {set} }}");
    }
    if let Some(proto) = protocol_for(rule) {
        let field = if v4 { "ip protocol" } else { "ip6 nexthdr" };
        let _ = write!(m, " {field} {proto}");
        if let Some(name) = has_ports(proto) {
            if let Some(min) = rule.port_range_min {
                let max = rule.port_range_max.unwrap_or(min);
                if min == max {
                    let _ = write!(m, " {name} dport {min}");
                } else {
                    let _ = write!(m, " {name} dport {min}-{max}");
                }
            }
        } else if proto == 1 || proto == 58 {
            let icmp = if proto == 1 { "icmp" } else { "icmpv6" };
            if let Some(t) = rule.port_range_min {
                let _ = write!(m, " {icmp} type {t}");
                if let Some(c) = rule.port_range_max {
                    let _ = write!(m, " {icmp} code {c}");
                }
            }
        }
    }
    Some(m)
}

/// One tracked flow, as seen in its original direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// tcp/udp/sctp/dccp destination port, or ICMP type.
    pub dport_or_type: Option<u16>,
    /// ICMP code.
    pub code: Option<u16>,
}

/// Whether the port's rules (in `direction`, seen from the port) still allow `flow`.
/// Flows the filter always lets through (DHCP) are allowed.
pub fn allows(security: &PortSecurity, direction: Direction, flow: &Flow) -> bool {
    if flow.protocol == 17 && matches!(flow.dport_or_type, Some(67) | Some(68)) {
        return true;
    }
    let remote = match direction {
        Direction::Ingress => flow.src,
        Direction::Egress => flow.dst,
    };
    security
        .rules
        .iter()
        .filter(|r| r.direction == direction)
        .any(|rule| {
            if (rule.ethertype == EtherType::IPv4) != remote.is_ipv4() {
                return false;
            }
            if !rule.remote.iter().any(|n| n.contains(&remote)) {
                return false;
            }
            let Some(proto) = protocol_for(rule) else {
                return true;
            };
            if proto != flow.protocol {
                return false;
            }
            if has_ports(proto).is_some() {
                match (rule.port_range_min, flow.dport_or_type) {
                    (None, _) => true,
                    (Some(min), Some(port)) => {
                        (min..=rule.port_range_max.unwrap_or(min)).contains(&port)
                    }
                    (Some(_), None) => false,
                }
            } else if proto == 1 || proto == 58 {
                let type_ok =
                    rule.port_range_min.is_none() || rule.port_range_min == flow.dport_or_type;
                let code_ok = rule.port_range_max.is_none() || rule.port_range_max == flow.code;
                type_ok && code_ok
            } else {
                true
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        direction: Direction,
        protocol: Option<u8>,
        ports: Option<(u16, u16)>,
        remote: &[&str],
    ) -> Rule {
        Rule {
            direction,
            ethertype: EtherType::IPv4,
            protocol,
            port_range_min: ports.map(|p| p.0),
            port_range_max: ports.map(|p| p.1),
            remote: remote.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn tcp_port_from_a_cidr() {
        let r = rule(
            Direction::Ingress,
            Some(6),
            Some((8080, 8080)),
            &["192.0.2.0/24"],
        );
        assert_eq!(
            rule_match(&r).unwrap(),
            "ether type ip ip saddr { 192.0.2.0/24 } ip protocol 6 tcp dport 8080"
        );
    }

    #[test]
    fn any_remote_and_any_protocol() {
        let r = rule(Direction::Egress, None, None, &["0.0.0.0/0"]);
        assert_eq!(rule_match(&r).unwrap(), "ether type ip");
    }

    #[test]
    fn an_empty_remote_group_matches_nothing() {
        let r = rule(Direction::Ingress, None, None, &[]);
        assert_eq!(rule_match(&r), None);
        let v6_only = rule(Direction::Ingress, None, None, &["2001:db8::/64"]);
        assert_eq!(
            rule_match(&v6_only),
            None,
            "an IPv4 rule with only IPv6 remotes"
        );
    }

    #[test]
    fn flows_are_judged_by_the_current_rules() {
        let sec = PortSecurity {
            rules: vec![rule(
                Direction::Ingress,
                Some(6),
                Some((8080, 8080)),
                &["10.0.0.0/24"],
            )],
            allowed_address_pairs: vec![],
        };
        let flow = |src: &str, port| Flow {
            protocol: 6,
            src: src.parse().unwrap(),
            dst: "10.0.0.9".parse().unwrap(),
            dport_or_type: Some(port),
            code: None,
        };
        assert!(allows(&sec, Direction::Ingress, &flow("10.0.0.5", 8080)));
        assert!(!allows(&sec, Direction::Ingress, &flow("10.0.0.5", 8081)));
        assert!(!allows(&sec, Direction::Ingress, &flow("10.0.1.5", 8080)));
        assert!(!allows(&sec, Direction::Egress, &flow("10.0.0.5", 8080)));
    }
}
