//! Dataplane benchmark (as root, with iperf3; run on demand):
//!
//!   cargo bench -p himmel-agent --bench dataplane
//!
//! Prints JSON lines:
//! * `throughput`: TCP throughput (iperf3, one stream) between two namespaces over a plain veth
//!   pair (the host's limit) and between two ports of one tenant network (veths into the
//!   network bridge, through the stateful security-group filter), and their ratio. On one host
//!   port-to-port traffic crosses the bridge, not the VXLAN device (see `network.rs`), so this
//!   measures the bridge and filter path;
//! * `ensure`: how long one `ensure` takes with N plugged ports when nothing changed (the cost
//!   of a periodic pass) and when one port is added (the agent's share of "port create to
//!   ACTIVE").
//!
//! Knobs (environment): BENCH_SECONDS (iperf3 duration, default 5), BENCH_PORTS (default 20).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use himmel_agent::*;
use serde_json::json;

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stderr(Stdio::null())
        .status();
}

fn netns(name: &str) -> String {
    quiet(&["ip", "netns", "del", name]);
    sh(&["ip", "netns", "add", name]);
    sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
    name.to_string()
}

/// Bits per second from `client` to `server_ip` (iperf3 server in `server`).
fn iperf(server: &str, client: &str, server_ip: &str, seconds: u32) -> f64 {
    let mut srv = Command::new("ip")
        .args(["netns", "exec", server, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        client,
        "iperf3",
        "-J",
        "-c",
        server_ip,
        "-t",
        &seconds.to_string(),
    ]);
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_str(&out).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn port(net: &Network, ip: &str, ns: &str, members: &[IpNet]) -> Port {
    let id = id();
    Port {
        mac: MacAddr::derived(&id),
        id,
        network_id: net.id.clone(),
        ips: vec![ip.parse().expect("ip")],
        dns_name: None,
        security: Some(PortSecurity {
            rules: vec![
                Rule {
                    direction: Direction::Ingress,
                    ethertype: EtherType::IPv4,
                    protocol: None,
                    port_range_min: None,
                    port_range_max: None,
                    remote: members.to_vec(),
                },
                Rule {
                    direction: Direction::Egress,
                    ethertype: EtherType::IPv4,
                    protocol: None,
                    port_range_min: None,
                    port_range_max: None,
                    remote: vec!["0.0.0.0/0".parse().expect("cidr")],
                },
            ],
            allowed_address_pairs: vec![],
        }),
        plug: Some(Plug {
            netns: ns.to_string(),
            ifname: "eth0".into(),
        }),
    }
}

use ipnet::IpNet;

fn main() {
    if let Err(missing) = host::can_run() {
        eprintln!("dataplane benchmark skipped: {missing}");
        return;
    }
    if host::find_program("iperf3").is_none() {
        eprintln!("dataplane benchmark skipped: iperf3 is missing (Debian package iperf3)");
        return;
    }
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let n_ports: usize = std::env::var("BENCH_PORTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let state = tempfile::tempdir().expect("temp dir");
    let dp = Dataplane::new("bn", state.path()).expect("dataplane");
    dp.ensure(&DesiredDataplane::default())
        .expect("clean start");

    // The limit: a veth pair between two namespaces.
    let (va, vb) = (netns("bn-veth-a"), netns("bn-veth-b"));
    sh(&[
        "ip", "-n", &va, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
        &vb,
    ]);
    for (ns, ip) in [(&va, "192.0.2.1/24"), (&vb, "192.0.2.2/24")] {
        sh(&["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }
    let veth = iperf(&vb, &va, "192.0.2.2", seconds);

    // Two ports of a tenant network.
    let net_id = id();
    let net = Network {
        segment: Segment::Vxlan { vni: 4242 },
        mtu: 1450,
        subnets: vec![],
        dhcp: None,
        id: net_id,
    };
    let members: Vec<IpNet> = (0..n_ports.max(2))
        .map(|i| {
            format!("10.99.{}.{}/32", i / 250, i % 250 + 2)
                .parse()
                .expect("cidr")
        })
        .collect();
    let namespaces: Vec<String> = (0..n_ports.max(2))
        .map(|i| netns(&format!("bn-port-{i}")))
        .collect();
    let ports: Vec<Port> = namespaces
        .iter()
        .zip(&members)
        .map(|(ns, ip)| port(&net, &ip.addr().to_string(), ns, &members))
        .collect();
    let mut desired = DesiredDataplane {
        networks: vec![net.clone()],
        ports: ports[..ports.len() - 1].to_vec(),
        routers: vec![],
    };
    dp.ensure(&desired).expect("ensure");
    let t = Instant::now();
    dp.ensure(&desired).expect("ensure");
    let unchanged = t.elapsed();
    desired.ports.push(ports[ports.len() - 1].clone());
    let t = Instant::now();
    let report = dp.ensure(&desired).expect("ensure");
    let add_one = t.elapsed();
    assert!(report.active_ports.contains(&ports[ports.len() - 1].id));

    for (ns, ip) in namespaces.iter().zip(&members).take(2) {
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/16", ip.addr()),
            "dev",
            "eth0",
        ]);
    }
    let bridged = iperf(
        &namespaces[1],
        &namespaces[0],
        &members[1].addr().to_string(),
        seconds,
    );

    println!(
        "{}",
        json!({"type": "throughput", "seconds": seconds, "veth_bits_per_second": veth,
               "network_bits_per_second": bridged, "ratio": bridged / veth})
    );
    println!(
        "{}",
        json!({"type": "ensure", "ports": desired.ports.len(),
               "unchanged_ms": unchanged.as_secs_f64() * 1e3, "add_one_port_ms": add_one.as_secs_f64() * 1e3})
    );

    dp.ensure(&DesiredDataplane::default()).expect("cleanup");
    for ns in namespaces.iter().chain([&va, &vb]) {
        quiet(&["ip", "netns", "del", ns]);
    }
}
