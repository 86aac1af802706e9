//! The dataplane reconciler: a background task of `himmel serve` that reads the network store,
//! builds the host agent's desired state from it, applies it with one idempotent `ensure`, and
//! reports ports ACTIVE once their dataplane is in place (DOWN otherwise): instance ports when
//! plugged, filtered and served by DHCP, DHCP ports when dnsmasq runs, router ports when their
//! router is in place.
//!
//! It runs after every committed change (the service's notifier) and every
//! [`ReconcileConfig::interval`], so a crash, a restart or a namespace deleted by hand is
//! repaired by the next pass. It only starts when the host can run the dataplane (root and
//! the tools); otherwise it says once why the dataplane is off and the API works alone.
//!
//! Plugging: a port bound to this host (`binding:host_id`) and owned by an instance
//! (`device_owner` `compute:*`) is plugged into the instance's namespace
//! ([`himmel_agent::names::Names::instance_netns`] of its `device_id`) as `eth0`, `eth1`, ...
//! in creation order; the instance driver (or a test) creates that namespace.
//!
//! Metadata: after each pass, every network whose DHCP namespace is in place gets a
//! [`metadata`](crate::metadata) listener on the metadata address inside that namespace.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use himmel_agent::{names, Dataplane, DesiredDataplane};
use ipnet::IpNet;

use crate::metadata::Listeners;
use crate::model::{self, Port, Subnet};
use crate::store::{self, Snapshot};
use crate::NetworkService;

/// How the reconciler drives this host.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Marks every object the dataplane creates (1-3 characters).
    pub prefix: String,
    /// Where the dataplane keeps its files (dnsmasq configurations).
    pub state_dir: PathBuf,
    /// This host's name, as ports are bound to it (`binding:host_id`).
    pub host: String,
    /// The operator's interface for flat (external) networks.
    pub external_interface: Option<String>,
    /// Time between passes when nothing changes.
    pub interval: Duration,
}

/// Starts the reconciler, unless this host cannot run the dataplane (then it logs why, once).
pub fn spawn(
    service: NetworkService,
    config: ReconcileConfig,
) -> Option<tokio::task::JoinHandle<()>> {
    if let Err(missing) = himmel_agent::host::can_run() {
        tracing::info!("network dataplane off: {missing}");
        return None;
    }
    let dataplane = match Dataplane::new(&config.prefix, &config.state_dir) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::error!("network dataplane off: {e}");
            return None;
        }
    };
    tracing::info!(prefix = %config.prefix, "network dataplane on");
    Some(tokio::spawn(run(service, config, dataplane)))
}

/// Passes after a change trust what earlier passes made whole (see [`Dataplane::ensure`]);
/// the periodic ones, every [`ReconcileConfig::interval`] however busy the API is, check it
/// all again ([`Dataplane::recheck`]).
async fn run(service: NetworkService, config: ReconcileConfig, dataplane: Arc<Dataplane>) {
    let changes = service.changes();
    let mut listeners = Listeners::default();
    let mut periodic = tokio::time::interval(config.interval);
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate and stands for the first pass, a recheck.
    periodic.tick().await;
    let mut recheck = true;
    loop {
        if let Err(e) = pass(&service, &config, &dataplane, &mut listeners, recheck).await {
            tracing::warn!("network dataplane pass failed (retrying): {e}");
        }
        recheck = tokio::select! {
            _ = changes.notified() => false,
            _ = periodic.tick() => true,
        };
    }
}

/// One pass: snapshot, ensure, port statuses. Its errors are only logged (and the pass
/// retried), so a message is all they carry.
async fn pass(
    service: &NetworkService,
    config: &ReconcileConfig,
    dataplane: &Arc<Dataplane>,
    listeners: &mut Listeners,
    recheck: bool,
) -> Result<(), String> {
    let snapshot = store::snapshot(service.db())
        .await
        .map_err(|e| e.to_string())?;
    let desired = desired(&snapshot, config, dataplane.names());
    let dhcp_ports: Vec<(String, String)> = desired
        .networks
        .iter()
        .filter_map(|n| Some((n.id.clone(), n.dhcp.as_ref()?.port_id.clone())))
        .collect();
    let dp = dataplane.clone();
    let report = tokio::task::spawn_blocking(move || {
        if recheck {
            dp.recheck(&desired)
        } else {
            dp.ensure(&desired)
        }
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let served: Vec<String> = dhcp_ports
        .into_iter()
        .filter(|(_, port)| report.active_ports.contains(port))
        .map(|(network, _)| network)
        .collect();
    listeners.sync(service, dataplane.names(), &served);
    for failure in &report.failures {
        tracing::warn!("network dataplane: {failure}");
    }
    if report.flows_cut > 0 {
        tracing::info!(
            flows = report.flows_cut,
            "cut flows that removed rules no longer allow"
        );
    }
    for port in &snapshot.ports {
        let want = if report.active_ports.contains(&port.meta.id) {
            model::STATUS_ACTIVE
        } else {
            model::STATUS_DOWN
        };
        if port.status != want {
            store::set_port_status(service.db(), &port.meta.id, want)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn network_owned(p: &Port) -> bool {
    p.device_owner.starts_with("network:")
}

/// The desired dataplane for a snapshot of the store. Resources that cannot be expressed (a
/// network type other than vxlan/flat, an address that does not parse) are left out.
pub fn desired(
    snap: &Snapshot,
    config: &ReconcileConfig,
    names: &names::Names,
) -> DesiredDataplane {
    let subnets_of = |network_id: &str| -> Vec<&Subnet> {
        snap.subnets
            .iter()
            .filter(|s| s.network_id == network_id)
            .collect()
    };
    let subnet_by_id: HashMap<&str, &Subnet> = snap
        .subnets
        .iter()
        .map(|s| (s.meta.id.as_str(), s))
        .collect();

    let mut networks = Vec::new();
    for n in &snap.networks {
        let segment = match (n.network_type.as_str(), n.segmentation_id) {
            ("vxlan", Some(vni)) if (1..=0xff_ffff).contains(&vni) => {
                himmel_agent::Segment::Vxlan { vni: vni as u32 }
            }
            ("flat", _) => himmel_agent::Segment::Flat {
                interface: config.external_interface.clone(),
            },
            _ => continue,
        };
        let subnets = subnets_of(&n.meta.id)
            .into_iter()
            .filter_map(|s| {
                Some(himmel_agent::Subnet {
                    id: s.meta.id.clone(),
                    cidr: s.cidr.parse().ok()?,
                    gateway: s.gateway_ip.as_deref().and_then(|g| g.parse().ok()),
                    dhcp: s.enable_dhcp,
                    dns_nameservers: s
                        .dns_nameservers
                        .iter()
                        .filter_map(|d| d.parse().ok())
                        .collect(),
                    host_routes: s
                        .host_routes
                        .iter()
                        .filter_map(|r| route(&r.destination, &r.nexthop))
                        .collect(),
                })
            })
            .collect();
        let dhcp = snap
            .ports
            .iter()
            .find(|p| p.network_id == n.meta.id && p.device_owner == model::OWNER_DHCP)
            .and_then(|p| {
                Some(himmel_agent::DhcpPort {
                    port_id: p.meta.id.clone(),
                    mac: p.mac_address.parse().ok()?,
                    ips: fixed_ips(p),
                })
            });
        networks.push(himmel_agent::Network {
            id: n.meta.id.clone(),
            segment,
            mtu: u32::try_from(n.mtu).unwrap_or(1450),
            subnets,
            dhcp,
        });
    }
    let present: HashSet<&str> = networks.iter().map(|n| n.id.as_str()).collect();

    let members = group_members(snap);
    let mut plugs_per_device: HashMap<&str, usize> = HashMap::new();
    let mut ports = Vec::new();
    for p in snap
        .ports
        .iter()
        .filter(|p| !network_owned(p) && present.contains(p.network_id.as_str()))
    {
        let Ok(mac) = p.mac_address.parse() else {
            continue;
        };
        let plug = (p.admin_state_up
            && p.host_id == config.host
            && p.device_owner.starts_with("compute:")
            && names::check_id("device", &p.device_id).is_ok())
        .then(|| {
            let n = plugs_per_device.entry(p.device_id.as_str()).or_default();
            *n += 1;
            himmel_agent::Plug {
                netns: names.instance_netns(&p.device_id),
                ifname: format!("eth{}", *n - 1),
            }
        });
        let security = p.port_security_enabled.then(|| himmel_agent::PortSecurity {
            rules: p
                .security_groups
                .iter()
                .flat_map(|g| rules_of(snap, g, &members))
                .collect(),
            allowed_address_pairs: p
                .allowed_address_pairs
                .iter()
                .filter_map(|a| {
                    Some(himmel_agent::AddressPair {
                        ip: prefix(&a.ip_address)?,
                        mac: a.mac_address.parse().ok(),
                    })
                })
                .collect(),
        });
        ports.push(himmel_agent::Port {
            id: p.meta.id.clone(),
            network_id: p.network_id.clone(),
            mac,
            ips: fixed_ips(p),
            dns_name: None,
            security,
            plug,
        });
    }

    let mut routers = Vec::new();
    for r in &snap.routers {
        let owned = |owner: &'static str| {
            snap.ports
                .iter()
                .filter(move |p| p.device_id == r.meta.id && p.device_owner == owner)
                .filter(|p| present.contains(p.network_id.as_str()))
        };
        let interfaces = owned(model::OWNER_ROUTER_INTERFACE)
            .filter_map(|p| {
                let (address, _) = address_on_subnet(p, &subnet_by_id)?;
                Some(himmel_agent::RouterInterface {
                    port_id: p.meta.id.clone(),
                    network_id: p.network_id.clone(),
                    mac: p.mac_address.parse().ok()?,
                    address,
                })
            })
            .collect();
        let gateway = r.external_gateway_info.as_ref().and_then(|info| {
            let p = owned(model::OWNER_ROUTER_GATEWAY).next()?;
            let (address, subnet) = address_on_subnet(p, &subnet_by_id)?;
            Some(himmel_agent::RouterGateway {
                port_id: p.meta.id.clone(),
                network_id: p.network_id.clone(),
                mac: p.mac_address.parse().ok()?,
                address,
                nexthop: subnet.gateway_ip.as_deref().and_then(|g| g.parse().ok()),
                snat: info.enable_snat,
            })
        });
        let floating_ips = snap
            .floating_ips
            .iter()
            .filter(|f| f.router_id.as_deref() == Some(r.meta.id.as_str()))
            .filter_map(|f| {
                Some(himmel_agent::FloatingIp {
                    external: f.floating_ip_address.parse().ok()?,
                    internal: f.fixed_ip_address.as_deref()?.parse().ok()?,
                })
            })
            .collect();
        routers.push(himmel_agent::Router {
            id: r.meta.id.clone(),
            admin_state_up: r.admin_state_up,
            interfaces,
            gateway,
            floating_ips,
            routes: r
                .routes
                .iter()
                .filter_map(|h| route(&h.destination, &h.nexthop))
                .collect(),
        });
    }
    DesiredDataplane {
        networks,
        ports,
        routers,
    }
}

fn fixed_ips(p: &Port) -> Vec<IpAddr> {
    p.fixed_ips
        .iter()
        .filter_map(|f| f.ip_address.parse().ok())
        .collect()
}

/// The port's first IPv4 address (else its first) with its subnet's prefix length.
fn address_on_subnet<'a>(
    p: &Port,
    subnets: &HashMap<&str, &'a Subnet>,
) -> Option<(IpNet, &'a Subnet)> {
    let mut candidates: Vec<_> = p
        .fixed_ips
        .iter()
        .filter_map(|f| {
            let subnet = *subnets.get(f.subnet_id.as_str())?;
            let cidr: IpNet = subnet.cidr.parse().ok()?;
            let ip: IpAddr = f.ip_address.parse().ok()?;
            Some((IpNet::new(ip, cidr.prefix_len()).ok()?, subnet))
        })
        .collect();
    candidates.sort_by_key(|(a, _)| !a.addr().is_ipv4());
    candidates.into_iter().next()
}

fn prefix(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn route(destination: &str, nexthop: &str) -> Option<himmel_agent::Route> {
    Some(himmel_agent::Route {
        destination: prefix(destination)?,
        nexthop: nexthop.parse().ok()?,
    })
}

/// The addresses of each security group's member ports (for rules with a remote group).
fn group_members(snap: &Snapshot) -> HashMap<&str, Vec<IpNet>> {
    let mut members: HashMap<&str, Vec<IpNet>> = HashMap::new();
    for p in &snap.ports {
        for g in &p.security_groups {
            members
                .entry(g.as_str())
                .or_default()
                .extend(fixed_ips(p).into_iter().map(IpNet::from));
        }
    }
    members
}

/// A Neutron protocol (name or number) as an IP protocol number; `Ok(None)` is any.
pub fn protocol_number(protocol: Option<&str>) -> Result<Option<u8>, String> {
    let Some(p) = protocol else { return Ok(None) };
    if let Ok(n) = p.parse::<u8>() {
        return Ok(Some(n));
    }
    Ok(Some(match p.to_ascii_lowercase().as_str() {
        "any" | "" => return Ok(None),
        "icmp" => 1,
        "igmp" => 2,
        "ipip" => 4,
        "tcp" => 6,
        "egp" => 8,
        "udp" => 17,
        "dccp" => 33,
        "ipv6-encap" => 41,
        "ipv6-route" => 43,
        "ipv6-frag" => 44,
        "rsvp" => 46,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "ospf" => 89,
        "pgm" => 113,
        "encap" => 98,
        "vrrp" => 112,
        "sctp" => 132,
        "udplite" => 136,
        other => return Err(format!("unknown protocol {other:?}")),
    }))
}

/// The rules of a security group, remote groups expanded to their members' addresses.
fn rules_of(
    snap: &Snapshot,
    group: &str,
    members: &HashMap<&str, Vec<IpNet>>,
) -> Vec<himmel_agent::Rule> {
    snap.security_group_rules
        .iter()
        .filter(|r| r.security_group_id == group)
        .filter_map(|r| {
            let m = &r.rule;
            let ethertype = match m.ethertype.as_str() {
                "IPv6" => himmel_agent::EtherType::IPv6,
                _ => himmel_agent::EtherType::IPv4,
            };
            let remote = match (&m.remote_ip_prefix, &m.remote_group_id) {
                // A prefix may keep host bits as written; match its network.
                (Some(p), _) => vec![prefix(p)?.trunc()],
                (None, Some(g)) => members.get(g.as_str()).cloned().unwrap_or_default(),
                (None, None) => vec![match ethertype {
                    himmel_agent::EtherType::IPv4 => "0.0.0.0/0".parse().ok()?,
                    himmel_agent::EtherType::IPv6 => "::/0".parse().ok()?,
                }],
            };
            Some(himmel_agent::Rule {
                direction: if m.direction == "egress" {
                    himmel_agent::Direction::Egress
                } else {
                    himmel_agent::Direction::Ingress
                },
                ethertype,
                protocol: protocol_number(m.protocol.as_deref()).ok()?,
                port_range_min: m.port_range_min.and_then(|v| u16::try_from(v).ok()),
                port_range_max: m.port_range_max.and_then(|v| u16::try_from(v).ok()),
                remote,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn meta(id: &str) -> Value {
        json!({"id": id, "project_id": "p", "revision_number": 1, "created_at": "", "updated_at": ""})
    }

    fn with_meta(id: &str, fields: Value) -> Value {
        let mut v = meta(id);
        v.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        v
    }

    fn port(
        id: &str,
        network: &str,
        owner: &str,
        device: &str,
        ips: &[(&str, &str)],
        groups: &[&str],
    ) -> Port {
        let fixed: Vec<Value> = ips
            .iter()
            .map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip}))
            .collect();
        serde_json::from_value(with_meta(
            id,
            json!({"name": "", "network_id": network, "admin_state_up": true, "status": "DOWN",
                   "mac_address": format!("fa:16:3e:00:00:{}", &id[..2]), "fixed_ips": fixed,
                   "device_id": device, "device_owner": owner, "binding:host_id": "h1",
                   "security_groups": groups, "allowed_address_pairs": [],
                   "port_security_enabled": owner.starts_with("compute:")}),
        ))
        .unwrap()
    }

    const NET: &str = "11111111-1111-4111-8111-111111111111";
    const EXT: &str = "22222222-2222-4222-8222-222222222222";
    const SUB: &str = "33333333-3333-4333-8333-333333333333";
    const EXT_SUB: &str = "44444444-4444-4444-8444-444444444444";
    const ROUTER: &str = "55555555-5555-4555-8555-555555555555";
    const VM: &str = "66666666-6666-4666-8666-666666666666";
    const SG: &str = "77777777-7777-4777-8777-777777777777";

    fn snapshot() -> Snapshot {
        let network = |id: &str, kind: &str, vni: Option<i64>| {
            serde_json::from_value(with_meta(
                id,
                json!({"name": "", "admin_state_up": true, "status": "ACTIVE", "shared": false,
                       "router:external": kind == "flat", "mtu": 1450, "port_security_enabled": true,
                       "availability_zone_hints": [], "provider:network_type": kind,
                       "provider:physical_network": null, "provider:segmentation_id": vni}),
            ))
            .unwrap()
        };
        let subnet = |id: &str, net: &str, cidr: &str, gw: &str| {
            serde_json::from_value(with_meta(
                id,
                json!({"name": "", "network_id": net, "ip_version": 4, "cidr": cidr, "gateway_ip": gw,
                       "allocation_pools": [], "enable_dhcp": true, "dns_nameservers": [], "host_routes": [],
                       "ipv6_ra_mode": null, "ipv6_address_mode": null}),
            ))
            .unwrap()
        };
        Snapshot {
            networks: vec![network(NET, "vxlan", Some(7)), network(EXT, "flat", None)],
            subnets: vec![
                subnet(SUB, NET, "10.0.0.0/24", "10.0.0.1"),
                subnet(EXT_SUB, EXT, "203.0.113.0/24", "203.0.113.1"),
            ],
            ports: vec![
                port("aa000000-0000-4000-8000-000000000001", NET, "network:dhcp", "dhcp", &[(SUB, "10.0.0.2")], &[]),
                port("bb000000-0000-4000-8000-000000000002", NET, "compute:nova", VM, &[(SUB, "10.0.0.5")], &[SG]),
                port("cc000000-0000-4000-8000-000000000003", NET, "compute:nova", VM, &[(SUB, "10.0.0.6")], &[SG]),
                port("dd000000-0000-4000-8000-000000000004", NET, "network:router_interface", ROUTER, &[(SUB, "10.0.0.1")], &[]),
                port("ee000000-0000-4000-8000-000000000005", EXT, "network:router_gateway", ROUTER, &[(EXT_SUB, "203.0.113.10")], &[]),
            ],
            routers: vec![serde_json::from_value(with_meta(
                ROUTER,
                json!({"name": "", "admin_state_up": true, "status": "ACTIVE",
                       "external_gateway_info": {"network_id": EXT, "enable_snat": true, "external_fixed_ips": []},
                       "routes": [], "availability_zone_hints": []}),
            ))
            .unwrap()],
            floating_ips: vec![serde_json::from_value(with_meta(
                "88888888-8888-4888-8888-888888888888",
                json!({"floating_network_id": EXT, "floating_ip_address": "203.0.113.20",
                       "floating_subnet_id": EXT_SUB, "port_id": "bb000000-0000-4000-8000-000000000002",
                       "fixed_ip_address": "10.0.0.5", "router_id": ROUTER, "status": "ACTIVE"}),
            ))
            .unwrap()],
            security_groups: vec![],
            security_group_rules: vec![serde_json::from_value(with_meta(
                "99999999-9999-4999-8999-999999999999",
                json!({"security_group_id": SG, "direction": "ingress", "ethertype": "IPv4", "protocol": null,
                       "port_range_min": null, "port_range_max": null, "remote_ip_prefix": null,
                       "remote_group_id": SG}),
            ))
            .unwrap()],
        }
    }

    fn config() -> ReconcileConfig {
        ReconcileConfig {
            prefix: "hm".into(),
            state_dir: "/nonexistent".into(),
            host: "h1".into(),
            external_interface: Some("eth9".into()),
            interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_store_becomes_a_desired_dataplane() {
        let names = names::Names::new("hm").unwrap();
        let d = desired(&snapshot(), &config(), &names);
        let net = d.networks.iter().find(|n| n.id == NET).unwrap();
        assert_eq!(net.segment, himmel_agent::Segment::Vxlan { vni: 7 });
        let dhcp = net.dhcp.as_ref().unwrap();
        assert_eq!(dhcp.port_id, "aa000000-0000-4000-8000-000000000001");
        assert_eq!(dhcp.ips, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        let ext = d.networks.iter().find(|n| n.id == EXT).unwrap();
        assert_eq!(
            ext.segment,
            himmel_agent::Segment::Flat {
                interface: Some("eth9".into())
            }
        );

        assert_eq!(
            d.ports.len(),
            2,
            "network-owned ports are not instance ports"
        );
        let plugs: Vec<_> = d.ports.iter().map(|p| p.plug.clone().unwrap()).collect();
        assert_eq!(plugs[0].netns, names.instance_netns(VM));
        assert_eq!(
            (plugs[0].ifname.as_str(), plugs[1].ifname.as_str()),
            ("eth0", "eth1")
        );
        let rules = &d.ports[0].security.as_ref().unwrap().rules;
        let mut remote: Vec<String> = rules[0].remote.iter().map(|r| r.to_string()).collect();
        remote.sort();
        assert_eq!(
            remote,
            ["10.0.0.5/32", "10.0.0.6/32"],
            "remote group: its members"
        );

        let r = &d.routers[0];
        assert_eq!(r.interfaces[0].address.to_string(), "10.0.0.1/24");
        let gw = r.gateway.as_ref().unwrap();
        assert_eq!(gw.address.to_string(), "203.0.113.10/24");
        assert_eq!(gw.nexthop, Some("203.0.113.1".parse().unwrap()));
        assert!(gw.snat);
        assert_eq!(r.floating_ips[0].internal.to_string(), "10.0.0.5");
    }

    #[test]
    fn only_ports_bound_to_this_host_are_plugged() {
        let names = names::Names::new("hm").unwrap();
        let mut cfg = config();
        cfg.host = "another-host".into();
        let d = desired(&snapshot(), &cfg, &names);
        assert!(d.ports.iter().all(|p| p.plug.is_none()));
    }

    #[test]
    fn protocols_by_name_or_number() {
        assert_eq!(protocol_number(Some("tcp")), Ok(Some(6)));
        assert_eq!(protocol_number(Some("ipv6-icmp")), Ok(Some(58)));
        assert_eq!(protocol_number(Some("132")), Ok(Some(132)));
        assert_eq!(protocol_number(None), Ok(None));
        assert!(protocol_number(Some("bogus")).is_err());
    }
}
