//! DHCP and DNS for a network: dnsmasq in the namespace `<prefix>-dhcp-<network>`, on a veth
//! into the network's bridge, in static mode (it answers only the ports it knows, each with its
//! fixed IP, the subnet's gateway as default route, and the port's DNS name).
//!
//! The ports are not in the configuration but in two files dnsmasq re-reads on SIGHUP (its
//! `dhcp-hostsfile` and `addn-hosts`), so a port coming or going costs a signal, not a restart;
//! only a change of the network's subnets restarts dnsmasq.
//!
//! Metadata the way Neutron's isolated metadata does it: the namespace's interface also holds
//! [`METADATA_IP`], and every DHCPv4 subnet hands out classless static routes (option 121) with
//! a host route to it through the DHCP port's address, the subnet's host routes and the
//! default route. RFC 3442 clients ignore the router option when option 121 is present, so the
//! default route must be among them; the router option stays for clients without option 121.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::cmd::in_netns;
use crate::error::{Error, Result};
use crate::link::{self, Link};
use crate::model::{MacAddr, Network, Port};
use crate::names::{Kind, Names, DHCP_INNER};
use crate::netns;

/// Where guests ask for their metadata (the link-local address every cloud uses).
pub const METADATA_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// How long a client keeps its lease; renewals are cheap and a short time lets changes spread.
const LEASE_SECONDS: u32 = 3600;

/// Whether the network needs a DHCP namespace.
pub fn wanted(network: &Network) -> bool {
    network.dhcp.is_some()
        && network
            .subnets
            .iter()
            .any(|s| s.dhcp && s.cidr.addr().is_ipv4())
}

fn state_dir(base: &Path, network_id: &str) -> PathBuf {
    base.join("dhcp").join(network_id)
}

/// The DHCP server's addresses, each with the prefix length of its subnet, and the metadata
/// address.
fn server_addresses(network: &Network) -> Vec<IpNet> {
    let Some(dhcp) = &network.dhcp else {
        return Vec::new();
    };
    let mut addresses: Vec<IpNet> = dhcp
        .ips
        .iter()
        .filter_map(|ip| {
            network
                .subnets
                .iter()
                .find(|s| s.cidr.contains(ip))
                .and_then(|s| IpNet::new(*ip, s.cidr.prefix_len()).ok())
        })
        .collect();
    addresses.push(IpNet::from(IpAddr::V4(METADATA_IP)));
    addresses
}

/// The DHCP server's own address in a subnet (the guests' next hop to the metadata address).
fn server_address_in(network: &Network, cidr: &IpNet) -> Option<IpAddr> {
    network
        .dhcp
        .as_ref()?
        .ips
        .iter()
        .find(|ip| cidr.contains(*ip))
        .copied()
}

/// A DNS label for a port: its `dns_name`, else `host-10-0-0-5`.
fn hostname(port: &Port, ip: &IpAddr) -> String {
    match &port.dns_name {
        Some(n)
            if !n.is_empty()
                && n.len() <= 63
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            n.clone()
        }
        _ => format!("host-{}", ip.to_string().replace(['.', ':'], "-")),
    }
}

/// The dnsmasq configuration for a network; a change restarts dnsmasq.
pub fn config(network: &Network, dir: &Path) -> String {
    let mut c = String::from("# written by the himmel dataplane; rewritten on every change\n");
    let _ = writeln!(c, "no-hosts\nno-resolv\nleasefile-ro\nbind-interfaces");
    let _ = writeln!(c, "interface={DHCP_INNER}\nexcept-interface=lo");
    let _ = writeln!(c, "pid-file={}", dir.join("pid").display());
    let _ = writeln!(c, "dhcp-hostsfile={}", dir.join(DHCP_HOSTS).display());
    let _ = writeln!(c, "addn-hosts={}", dir.join(DNS_HOSTS).display());
    for (i, subnet) in network.subnets.iter().enumerate() {
        if !subnet.dhcp {
            continue;
        }
        let IpNet::V4(v4) = subnet.cidr else {
            // IPv6 subnets are served by router advertisements, not by this DHCPv4 server.
            continue;
        };
        let tag = format!("subnet{i}");
        let _ = writeln!(
            c,
            "dhcp-range=set:{tag},{},static,{},{LEASE_SECONDS}s",
            v4.network(),
            v4.netmask()
        );
        match subnet.gateway {
            Some(gw) => {
                let _ = writeln!(c, "dhcp-option=tag:{tag},option:router,{gw}");
            }
            // An empty option stops dnsmasq from offering itself as the router.
            None => {
                let _ = writeln!(c, "dhcp-option=tag:{tag},option:router");
            }
        }
        let dns: Vec<String> = subnet
            .dns_nameservers
            .iter()
            .filter(|a| a.is_ipv4())
            .map(|a| a.to_string())
            .collect();
        if !dns.is_empty() {
            let _ = writeln!(
                c,
                "dhcp-option=tag:{tag},option:dns-server,{}",
                dns.join(",")
            );
        }
        let mut routes: Vec<String> = server_address_in(network, &subnet.cidr)
            .map(|server| format!("{METADATA_IP}/32,{server}"))
            .into_iter()
            .collect();
        routes.extend(
            subnet
                .host_routes
                .iter()
                .filter(|r| r.destination.addr().is_ipv4())
                .map(|r| format!("{},{}", r.destination, r.nexthop)),
        );
        // Classless static routes replace the router option on clients, so the default
        // route is repeated among them.
        if let Some(gw) = subnet.gateway {
            routes.push(format!("0.0.0.0/0,{gw}"));
        }
        if !routes.is_empty() {
            let _ = writeln!(
                c,
                "dhcp-option=tag:{tag},option:classless-static-route,{}",
                routes.join(",")
            );
        }
    }
    c
}

/// The file of DHCP hosts (`mac,ip,name` per address).
const DHCP_HOSTS: &str = "dhcp-hosts";
/// The file of DNS names (`ip name` per address).
const DNS_HOSTS: &str = "dns-hosts";

/// The contents of the DHCP hosts file and the DNS hosts file: each port's addresses on the
/// network's DHCPv4 subnets.
pub fn hosts(network: &Network, ports: &[&Port]) -> (String, String) {
    let (mut dhcp, mut dns) = (String::new(), String::new());
    for subnet in network
        .subnets
        .iter()
        .filter(|s| s.dhcp && s.cidr.addr().is_ipv4())
    {
        for port in ports {
            for ip in port.ips.iter().filter(|ip| subnet.cidr.contains(*ip)) {
                let name = hostname(port, ip);
                let _ = writeln!(dhcp, "{},{ip},{name}", port.mac);
                let _ = writeln!(dns, "{ip} {name}");
            }
        }
    }
    (dhcp, dns)
}

/// Creates `dir` (if missing) readable by everyone: dnsmasq drops to an unprivileged user
/// before it reads the hosts files (at start and on every SIGHUP), whatever the umask is.
fn readable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Writes `contents` to `path` (readable by dnsmasq's unprivileged user) unless it already
/// holds them; true when it wrote.
fn write_if_changed(path: &Path, contents: &str) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    std::fs::write(path, contents)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(true)
}

/// A DHCP namespace with its veth and addresses as an ensure left them (like a port's plug):
/// while the namespace is the same one, the host end is intact in the pass's link listing and
/// the network wants the same, only the files and dnsmasq need looking at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    netns: (u64, u64),
    mac: MacAddr,
    mtu: u32,
    addresses: Vec<IpNet>,
}

/// What the network's DHCP namespace is now wanted to be; `None` without a DHCP port or
/// before its namespace exists.
pub fn placed(names: &Names, network: &Network) -> Option<Placed> {
    Some(Placed {
        netns: netns::identity(&names.dhcp_netns(&network.id))?,
        mac: network.dhcp.as_ref()?.mac,
        mtu: network.mtu,
        addresses: server_addresses(network),
    })
}

/// Whether the DHCP veth's host end, as listed in `current`, is still as ensure left it.
pub fn host_end_intact(names: &Names, network: &Network, current: &[Link]) -> bool {
    let host = names.link(Kind::Dhcp, &network.id);
    let bridge = names.link(Kind::Bridge, &network.id);
    current.iter().any(|l| {
        l.name == host
            && l.kind.as_deref() == Some("veth")
            && l.up
            && l.master.as_deref() == Some(bridge.as_str())
            && l.mtu == Some(network.mtu)
    })
}

/// Makes the network's DHCP namespace, veth and dnsmasq match the desired state. With
/// `in_place`, an earlier ensure left the namespace, veth and addresses as they are wanted
/// (see [`Placed`]) and only the hosts files and dnsmasq are brought up to date.
pub fn ensure(
    names: &Names,
    base: &Path,
    network: &Network,
    ports: &[&Port],
    in_place: bool,
) -> Result<()> {
    let Some(dhcp) = &network.dhcp else {
        return Ok(());
    };
    let netns = names.dhcp_netns(&network.id);
    if !in_place {
        link::ensure_netns(&netns)?;
        let host = names.link(Kind::Dhcp, &network.id);
        let bridge = names.link(Kind::Bridge, &network.id);
        link::ensure_veth(&host, &bridge, network.mtu, &netns, DHCP_INNER, dhcp.mac)?;
        link::sync_addresses(Some(&netns), DHCP_INNER, &server_addresses(network))?;
    }

    let dir = state_dir(base, &network.id);
    for d in [base, &base.join("dhcp"), &dir] {
        readable_dir(d)?;
    }
    let conf_path = dir.join("dnsmasq.conf");
    let conf = config(network, &dir);
    let (dhcp_hosts, dns_hosts) = hosts(network, ports);
    let same_conf = std::fs::read_to_string(&conf_path).is_ok_and(|old| old == conf);
    let running = running_pid(&dir, &netns);
    let hosts_changed = write_if_changed(&dir.join(DHCP_HOSTS), &dhcp_hosts)?
        | write_if_changed(&dir.join(DNS_HOSTS), &dns_hosts)?;
    if let (true, Some(pid)) = (same_conf, running) {
        if hosts_changed {
            // SAFETY: kill(2) with the pid of our dnsmasq (checked by running_pid just now);
            // SIGHUP makes it re-read both hosts files.
            unsafe { libc::kill(pid, libc::SIGHUP) };
        }
        return Ok(());
    }
    if let Some(pid) = pid_of(&dir) {
        stop(pid, &conf_path);
    }
    std::fs::write(&conf_path, &conf)
        .map_err(|e| Error::io(format!("writing {}", conf_path.display()), e))?;
    let arg = format!("--conf-file={}", conf_path.display());
    in_netns(&netns, "dnsmasq", &[&arg]).map(drop)
}

/// Stops the DHCP server of a network that no longer has one, and forgets its files.
pub fn remove(base: &Path, network_id: &str) -> Result<()> {
    let dir = state_dir(base, network_id);
    if let Some(pid) = pid_of(&dir) {
        stop(pid, &dir.join("dnsmasq.conf"));
    }
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", dir.display()), e))
        }
        _ => Ok(()),
    }
}

/// Networks that have DHCP state on disk.
pub fn known(base: &Path) -> Vec<String> {
    std::fs::read_dir(base.join("dhcp"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn pid_of(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the process is our dnsmasq (its command line names our configuration), so that a
/// recycled pid is never signalled.
fn is_our_dnsmasq(pid: i32, conf_path: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let needle = conf_path.display().to_string();
        String::from_utf8_lossy(&cmdline).contains(&needle)
    })
}

/// The pid of our dnsmasq when it runs inside the namespace that now has the name `netns`
/// (after a namespace was deleted by hand, the old dnsmasq lives on in the orphaned one).
fn running_pid(dir: &Path, netns: &str) -> Option<i32> {
    let pid = pid_of(dir)?;
    if !is_our_dnsmasq(pid, &dir.join("dnsmasq.conf")) {
        return None;
    }
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    let named = std::fs::metadata(Path::new(link::NETNS_DIR).join(netns)).ok()?;
    (theirs.ino() == named.ino() && theirs.dev() == named.dev()).then_some(pid)
}

fn stop(pid: i32, conf_path: &Path) {
    if !is_our_dnsmasq(pid, conf_path) {
        return;
    }
    // SAFETY: kill(2) with a pid we verified to be our dnsmasq; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if is_our_dnsmasq(pid, conf_path) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DhcpPort, Route, Segment, Subnet};

    fn network(gateway: Option<&str>, host_routes: Vec<Route>) -> Network {
        Network {
            id: "11111111-1111-4111-8111-111111111111".into(),
            segment: Segment::Vxlan { vni: 7 },
            mtu: 1450,
            subnets: vec![Subnet {
                id: "22222222-2222-4222-8222-222222222222".into(),
                cidr: "10.0.0.0/24".parse().unwrap(),
                gateway: gateway.map(|g| g.parse().unwrap()),
                dhcp: true,
                dns_nameservers: vec![],
                host_routes,
            }],
            dhcp: Some(DhcpPort {
                port_id: "33333333-3333-4333-8333-333333333333".into(),
                mac: "fa:16:3e:00:00:02".parse().unwrap(),
                ips: vec!["10.0.0.2".parse().unwrap()],
            }),
        }
    }

    fn classless_routes(conf: &str) -> &str {
        conf.lines()
            .find_map(|l| l.split_once("option:classless-static-route,"))
            .map(|(_, routes)| routes)
            .unwrap_or("")
    }

    #[test]
    fn classless_routes_lead_to_metadata_and_keep_the_default_route() {
        let route = Route {
            destination: "192.168.7.0/24".parse().unwrap(),
            nexthop: "10.0.0.9".parse().unwrap(),
        };
        let net = network(Some("10.0.0.1"), vec![route]);
        let conf = config(&net, Path::new("/state"));
        assert_eq!(
            classless_routes(&conf),
            "169.254.169.254/32,10.0.0.2,192.168.7.0/24,10.0.0.9,0.0.0.0/0,10.0.0.1"
        );
        assert!(
            conf.contains("option:router,10.0.0.1"),
            "for clients without option 121"
        );
        assert!(server_addresses(&net).contains(&"169.254.169.254/32".parse().unwrap()));
    }

    #[test]
    fn without_a_gateway_only_metadata_is_routed() {
        let conf = config(&network(None, vec![]), Path::new("/state"));
        assert_eq!(classless_routes(&conf), "169.254.169.254/32,10.0.0.2");
    }
}
