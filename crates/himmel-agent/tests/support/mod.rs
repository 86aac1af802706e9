//! Helpers for the dataplane tests: they run as root, build a desired state, apply it, and
//! check real packets between namespaces. Each test uses its own prefix and namespace names,
//! and removes everything it made when it ends (also on failure).

#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use himmel_agent::*;

/// Why the dataplane tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if let Err(missing) = host::can_run() {
        return Some(missing);
    }
    for tool in ["busybox", "ping", "conntrack"] {
        if host::find_program(tool).is_none() {
            return Some(format!(
                "`{tool}` is missing (scripts/test-deps installs it)"
            ));
        }
    }
    None
}

/// Returns true (and says why) when the test must skip.
pub fn skip(test: &str) -> bool {
    match skip_reason() {
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            true
        }
        None => false,
    }
}

pub fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One test's world: a dataplane with its own prefix, and the namespaces standing for
/// instances and for "the internet".
pub struct Lab {
    pub dp: Dataplane,
    pub prefix: String,
    namespaces: Vec<String>,
    uplinks: Vec<String>,
    _state: tempfile::TempDir,
}

impl Lab {
    pub fn new(prefix: &str) -> Lab {
        let state = tempfile::tempdir().expect("temp dir");
        let dp = Dataplane::new(prefix, state.path()).expect("dataplane");
        let lab = Lab {
            dp,
            prefix: prefix.to_string(),
            namespaces: Vec::new(),
            uplinks: Vec::new(),
            _state: state,
        };
        // Leftovers of an earlier run that died before cleaning up.
        lab.dp
            .ensure(&DesiredDataplane::default())
            .expect("clean start");
        lab
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dp.state_dir().to_path_buf()
    }

    /// A namespace standing for an instance, with IPv6 off so that it sends nothing on its own
    /// (router solicitations would muddle the "not a single packet" checks).
    pub fn vm(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.prefix);
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", &ns]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        for key in ["all", "default"] {
            sh(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
            ]);
        }
        self.namespaces.push(ns.clone());
        ns
    }

    /// "The internet": a namespace with `address` on a veth whose other end, `uplink`, is the
    /// interface the operator names for the external network.
    pub fn internet(&mut self, address: &str) -> (String, String) {
        let ns = self.vm("inet");
        let uplink = format!("{}up", self.prefix);
        let _ = Command::new("ip")
            .args(["link", "del", &uplink])
            .stderr(Stdio::null())
            .status();
        sh(&[
            "ip", "link", "add", &uplink, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        sh(&["ip", "link", "set", &uplink, "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &ns, "addr", "add", address, "dev", "eth0"]);
        self.uplinks.push(uplink.clone());
        (ns, uplink)
    }

    pub fn ensure(&self, desired: &DesiredDataplane) -> EnsureReport {
        let report = self.dp.ensure(desired).expect("ensure");
        assert!(
            report.failures.is_empty(),
            "ensure failures: {:?}",
            report.failures
        );
        report
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.dp.ensure(&DesiredDataplane::default()) {
            eprintln!("cleanup of prefix {}: {e}", self.prefix);
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for l in &self.uplinks {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs a command that must succeed.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `from` gets an answer to one ping to `to`.
pub fn pings(from: &str, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", from, "ping", "-c1", "-W1", to])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Gives an instance namespace its address and default route by hand (most tests do not need
/// to wait for DHCP).
pub fn configure(ns: &str, address: &str, gateway: Option<&str>) {
    sh(&["ip", "-n", ns, "addr", "add", address, "dev", "eth0"]);
    if let Some(gw) = gateway {
        sh(&["ip", "-n", ns, "route", "add", "default", "via", gw]);
    }
}

/// A TCP server in `ns` on `port` that answers every connection with "hello".
pub struct Server(std::process::Child);

impl Server {
    pub fn start(ns: &str, port: u16) -> Server {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "busybox",
                "nc",
                "-ll",
                "-p",
                &port.to_string(),
                "-e",
                "echo",
                "hello",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nc server");
        std::thread::sleep(std::time::Duration::from_millis(200));
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a TCP connection from `ns` to `ip:port` gets the server's "hello".
pub fn tcp_answers(ns: &str, ip: &str, port: u16) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "busybox",
            "nc",
            "-w",
            "1",
            ip,
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("hello"))
}

pub fn rx_packets(ns: &str, dev: &str) -> u64 {
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{dev}/statistics/rx_packets"),
    ])
    .trim()
    .parse()
    .expect("counter")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

pub fn mac(s: &str) -> MacAddr {
    s.parse().expect("mac")
}

/// A tenant network with one IPv4 subnet: gateway `.1`, DHCP server `.2`.
pub fn tenant_network(vni: u32, cidr: &str) -> Network {
    let net: ipnet::IpNet = cidr.parse().expect("cidr");
    let base = match net.network() {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(_) => panic!("IPv4 only"),
    };
    let at = |n: u32| IpAddr::V4((base + n).into());
    let id = id();
    Network {
        segment: Segment::Vxlan { vni },
        mtu: 1450,
        subnets: vec![Subnet {
            id: self::id(),
            cidr: net,
            gateway: Some(at(1)),
            dhcp: true,
            dns_nameservers: vec![],
            host_routes: vec![],
        }],
        dhcp: Some(DhcpPort {
            port_id: self::id(),
            mac: MacAddr::derived(&id),
            ips: vec![at(2)],
        }),
        id,
    }
}

/// A port plugged as `eth0` into `netns`, without port security.
pub fn port(network: &Network, address: &str, netns: &str) -> Port {
    let id = id();
    Port {
        mac: MacAddr::derived(&id),
        id,
        network_id: network.id.clone(),
        ips: vec![ip(address)],
        dns_name: None,
        security: None,
        plug: Some(Plug {
            netns: netns.to_string(),
            ifname: "eth0".into(),
        }),
    }
}

/// A rule from `remote` CIDRs.
pub fn rule(
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
        remote: remote.iter().map(|r| r.parse().expect("cidr")).collect(),
    }
}

/// Neutron's default group as seen by one member: ingress from the group's members, egress to
/// anywhere.
pub fn default_group(members: &[&str]) -> Vec<Rule> {
    let members: Vec<String> = members.iter().map(|m| format!("{m}/32")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    vec![
        rule(Direction::Ingress, None, None, &members),
        rule(Direction::Egress, None, None, &["0.0.0.0/0"]),
    ]
}
