//! Routers: a namespace per router, with a veth into each attached network's bridge (holding
//! the subnet's gateway address), a gateway veth into the external network's bridge, IP
//! forwarding, nftables SNAT for the gateway and DNAT/SNAT for floating IPs, static routes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::cmd::run_with_input;
use crate::error::{Error, Result};
use crate::link;
use crate::model::{Network, Router};
use crate::names::{router_inner, Kind, Names};

fn network<'a>(
    networks: &HashMap<&str, &'a Network>,
    router: &Router,
    id: &str,
) -> Result<&'a Network> {
    networks.get(id).copied().ok_or_else(|| {
        Error::invalid(format!(
            "router {} is attached to unknown network {id}",
            router.id
        ))
    })
}

/// The NAT table of a router namespace.
pub fn nat_rules(table: &str, router: &Router) -> String {
    let mut s = format!("table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n");
    let _ = writeln!(
        s,
        "  chain prerouting {{\n    type nat hook prerouting priority -100; policy accept;"
    );
    let gateway = router.gateway.as_ref();
    let fips: Vec<_> = router
        .floating_ips
        .iter()
        .filter(|f| f.external.is_ipv4() && f.internal.is_ipv4())
        .collect();
    if gateway.is_some() {
        for f in &fips {
            let _ = writeln!(s, "    ip daddr {} dnat to {}", f.external, f.internal);
        }
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;"
    );
    if let Some(gw) = gateway {
        let dev = router_inner(Kind::RouterGateway, &gw.port_id);
        for f in &fips {
            let _ = writeln!(
                s,
                "    oifname \"{dev}\" ip saddr {} snat to {}",
                f.internal, f.external
            );
        }
        if gw.snat {
            if let IpAddr::V4(ext) = gw.address.addr() {
                let _ = writeln!(s, "    oifname \"{dev}\" snat to {ext}");
            }
        }
    }
    let _ = writeln!(s, "  }}");
    if !router.admin_state_up {
        // Down: the router neither forwards nor answers, as if it were not there.
        for hook in ["input", "forward"] {
            let _ = writeln!(
                s,
                "  chain {hook} {{\n    type filter hook {hook} priority 0; policy drop;\n  }}"
            );
        }
    }
    let _ = writeln!(s, "}}");
    s
}

pub fn ensure(names: &Names, router: &Router, networks: &HashMap<&str, &Network>) -> Result<()> {
    let netns = names.router_netns(&router.id);
    link::ensure_netns(&netns)?;
    let forwarding = if router.admin_state_up { "1" } else { "0" };
    link::netns_sysctl(&netns, "net.ipv4.ip_forward", forwarding)?;
    link::netns_sysctl(&netns, "net.ipv6.conf.all.forwarding", forwarding)?;

    let mut wanted_inner = Vec::new();
    for iface in &router.interfaces {
        let net = network(networks, router, &iface.network_id)?;
        let inner = router_inner(Kind::RouterInterface, &iface.port_id);
        link::ensure_veth(
            &names.link(Kind::RouterInterface, &iface.port_id),
            &names.link(Kind::Bridge, &net.id),
            net.mtu,
            &netns,
            &inner,
            iface.mac,
        )?;
        link::sync_addresses(Some(&netns), &inner, &[iface.address])?;
        wanted_inner.push(inner);
    }
    let mut routes: Vec<(IpNet, IpAddr)> = router
        .routes
        .iter()
        .map(|r| (r.destination, r.nexthop))
        .collect();
    if let Some(gw) = &router.gateway {
        let net = network(networks, router, &gw.network_id)?;
        let inner = router_inner(Kind::RouterGateway, &gw.port_id);
        link::ensure_veth(
            &names.link(Kind::RouterGateway, &gw.port_id),
            &names.link(Kind::Bridge, &net.id),
            net.mtu,
            &netns,
            &inner,
            gw.mac,
        )?;
        // Floating IPs live on the gateway as host addresses so the router answers ARP for them.
        let mut addresses = vec![gw.address];
        addresses.extend(router.floating_ips.iter().map(|f| IpNet::from(f.external)));
        link::sync_addresses(Some(&netns), &inner, &addresses)?;
        if let Some(nexthop) = gw.nexthop {
            let default: IpNet = if nexthop.is_ipv4() {
                IpNet::V4(Default::default())
            } else {
                IpNet::V6(Default::default())
            };
            routes.push((default, nexthop));
        }
        wanted_inner.push(inner);
    }
    // Interfaces removed from the router: deleting the inside end removes the pair.
    for l in link::links(Some(&netns))? {
        if l.kind.as_deref() == Some("veth") && !wanted_inner.contains(&l.name) {
            link::delete_link(Some(&netns), &l.name)?;
        }
    }
    link::sync_static_routes(&netns, &routes)?;
    run_with_input(
        "ip",
        &["netns", "exec", &netns, "nft", "-f", "-"],
        Some(&nat_rules(&names.nat_table(), router)),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FloatingIp, RouterGateway};

    #[test]
    fn snat_and_floating_ips() {
        let router = Router {
            id: "3f2a1c9d-0e4b-4c8a-9f1e-2d3c4b5a6f70".into(),
            admin_state_up: true,
            interfaces: vec![],
            gateway: Some(RouterGateway {
                port_id: "aaaaaaaa-0e4b-4c8a-9f1e-2d3c4b5a6f70".into(),
                network_id: "bbbbbbbb-0e4b-4c8a-9f1e-2d3c4b5a6f70".into(),
                mac: "fa:16:3e:00:00:01".parse().unwrap(),
                address: "203.0.113.10/24".parse().unwrap(),
                nexthop: None,
                snat: true,
            }),
            floating_ips: vec![FloatingIp {
                external: "203.0.113.20".parse().unwrap(),
                internal: "10.0.0.5".parse().unwrap(),
            }],
            routes: vec![],
        };
        let rules = nat_rules("hm_nat", &router);
        assert!(rules.contains("ip daddr 203.0.113.20 dnat to 10.0.0.5"));
        assert!(rules.contains("oifname \"gaaaaaaaa0e4\" ip saddr 10.0.0.5 snat to 203.0.113.20"));
        assert!(rules.contains("oifname \"gaaaaaaaa0e4\" snat to 203.0.113.10"));
        let fip_line = rules.find("snat to 203.0.113.20").unwrap();
        let snat_line = rules.find("snat to 203.0.113.10").unwrap();
        assert!(
            fip_line < snat_line,
            "a floating IP's own SNAT comes before the router's"
        );
        assert!(
            !rules.contains("policy drop"),
            "an up router filters nothing"
        );
        let down = nat_rules(
            "hm_nat",
            &Router {
                admin_state_up: false,
                ..router
            },
        );
        assert!(down.contains("hook input priority 0; policy drop;"));
        assert!(down.contains("hook forward priority 0; policy drop;"));
    }
}
