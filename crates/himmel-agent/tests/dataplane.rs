//! Real packets through the dataplane (as root; skipped with the reason otherwise).

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use himmel_agent::*;
use support::*;

/// Runs busybox udhcpc in `ns` with a script that applies the lease the way a guest would.
fn dhcp_lease(lab: &Lab, ns: &str) -> bool {
    let script = lab.state_dir().join("udhcpc.script");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         case \"$1\" in bound|renew)\n\
           ip addr flush dev \"$interface\"\n\
           ip addr add \"$ip/$mask\" dev \"$interface\"\n\
           for r in $router; do ip route replace default via \"$r\" dev \"$interface\"; done\n\
           echo \"$hostname\" > \"$(dirname \"$0\")/hostname-$interface\"\n\
         esac\n",
    )
    .expect("script");
    sh(&["chmod", "755", &script.display().to_string()]);
    Command::new("ip")
        .args([
            "netns", "exec", ns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5",
            "-T", "1", "-s",
        ])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_plugged_port_gets_its_address_and_default_route_by_dhcp() {
    if skip("dhcp") {
        return;
    }
    let mut lab = Lab::new("d1");
    let vm = lab.vm("vm");
    let net = tenant_network(101, "10.61.0.0/24");
    let mut p = port(&net, "10.61.0.10", &vm);
    p.dns_name = Some("web1".into());
    let desired = DesiredDataplane {
        networks: vec![net],
        ports: vec![p.clone()],
        routers: vec![],
    };
    let report = lab.ensure(&desired);
    assert!(report.active_ports.contains(&p.id), "the port is in place");
    assert!(dhcp_lease(&lab, &vm), "udhcpc got a lease");
    let addr = sh(&["ip", "-n", &vm, "-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("10.61.0.10/24"), "fixed IP by DHCP: {addr}");
    let route = sh(&["ip", "-n", &vm, "route", "show", "default"]);
    assert!(
        route.contains("via 10.61.0.1"),
        "default route to the gateway: {route}"
    );
    let hostname =
        std::fs::read_to_string(lab.state_dir().join("hostname-eth0")).unwrap_or_default();
    assert_eq!(hostname.trim(), "web1", "the port's DNS name");
    // DNS for the port's name from the network's dnsmasq.
    let answer = Command::new("ip")
        .args([
            "netns",
            "exec",
            &vm,
            "busybox",
            "nslookup",
            "web1",
            "10.61.0.2",
        ])
        .output()
        .expect("nslookup");
    assert!(
        String::from_utf8_lossy(&answer.stdout).contains("10.61.0.10"),
        "DNS name resolves"
    );

    // ensure is idempotent: the same state again changes nothing and stays in place.
    let again = lab.ensure(&desired);
    assert!(again.active_ports.contains(&p.id));
    assert!(dhcp_lease(&lab, &vm), "still serves leases");
}

/// The pid of the dnsmasq serving `network` (from its pid file).
fn dnsmasq_pid(lab: &Lab, network: &Network) -> String {
    let file = lab.state_dir().join("dhcp").join(&network.id).join("pid");
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_port_added_later_is_served_after_a_reload_not_a_restart() {
    if skip("dhcp reload") {
        return;
    }
    let mut lab = Lab::new("d2");
    let (vm1, vm2) = (lab.vm("vm1"), lab.vm("vm2"));
    let net = tenant_network(102, "10.62.0.0/24");
    let first = port(&net, "10.62.0.10", &vm1);
    let mut desired = DesiredDataplane {
        networks: vec![net.clone()],
        ports: vec![first],
        routers: vec![],
    };
    lab.ensure(&desired);
    assert!(dhcp_lease(&lab, &vm1), "the first port got a lease");
    let pid = dnsmasq_pid(&lab, &net);
    assert!(!pid.is_empty(), "dnsmasq runs");

    let mut second = port(&net, "10.62.0.11", &vm2);
    second.dns_name = Some("later".into());
    desired.ports.push(second.clone());
    let report = lab.ensure(&desired);
    assert!(report.active_ports.contains(&second.id));
    assert_eq!(dnsmasq_pid(&lab, &net), pid, "dnsmasq was not restarted");
    assert!(dhcp_lease(&lab, &vm2), "the later port got its lease");
    let addr = sh(&["ip", "-n", &vm2, "-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("10.62.0.11/24"), "its fixed IP: {addr}");
    let answer = Command::new("ip")
        .args([
            "netns",
            "exec",
            &vm2,
            "busybox",
            "nslookup",
            "later",
            "10.62.0.2",
        ])
        .output()
        .expect("nslookup");
    assert!(
        String::from_utf8_lossy(&answer.stdout).contains("10.62.0.11"),
        "its DNS name resolves after the reload"
    );
}

#[test]
fn ports_on_one_network_talk_and_unconnected_networks_do_not() {
    if skip("isolation") {
        return;
    }
    let mut lab = Lab::new("d2");
    let (a, b, c) = (lab.vm("a"), lab.vm("b"), lab.vm("c"));
    let net1 = tenant_network(102, "10.62.0.0/24");
    let net2 = tenant_network(103, "10.62.0.0/16");
    let desired = DesiredDataplane {
        ports: vec![
            port(&net1, "10.62.0.10", &a),
            port(&net1, "10.62.0.11", &b),
            // On another network whose range covers the first: only a router could join them.
            port(&net2, "10.62.0.12", &c),
        ],
        networks: vec![net1, net2],
        routers: vec![],
    };
    lab.ensure(&desired);
    configure(&a, "10.62.0.10/24", None);
    configure(&b, "10.62.0.11/24", None);
    configure(&c, "10.62.0.12/16", None);
    assert!(pings(&a, "10.62.0.11"), "two ports on one network talk");
    assert!(pings(&b, "10.62.0.10"));
    assert!(
        !pings(&a, "10.62.0.12"),
        "a port on an unconnected network is unreachable"
    );
    assert!(!pings(&c, "10.62.0.11"));
}

fn router_interface(net: &Network, address: &str) -> RouterInterface {
    let id = id();
    RouterInterface {
        mac: MacAddr::derived(&id),
        port_id: id,
        network_id: net.id.clone(),
        address: address.parse().expect("address"),
    }
}

#[test]
fn a_router_joins_two_subnets() {
    if skip("router") {
        return;
    }
    let mut lab = Lab::new("d3");
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let net1 = tenant_network(104, "10.63.1.0/24");
    let net2 = tenant_network(105, "10.63.2.0/24");
    let mut desired = DesiredDataplane {
        ports: vec![port(&net1, "10.63.1.10", &a), port(&net2, "10.63.2.10", &b)],
        routers: vec![],
        networks: vec![net1.clone(), net2.clone()],
    };
    lab.ensure(&desired);
    configure(&a, "10.63.1.10/24", Some("10.63.1.1"));
    configure(&b, "10.63.2.10/24", Some("10.63.2.1"));
    assert!(!pings(&a, "10.63.2.10"), "no router yet");
    desired.routers.push(Router {
        id: id(),
        admin_state_up: false,
        interfaces: vec![
            router_interface(&net1, "10.63.1.1/24"),
            router_interface(&net2, "10.63.2.1/24"),
        ],
        gateway: None,
        floating_ips: vec![],
        routes: vec![],
    });
    lab.ensure(&desired);
    assert!(!pings(&a, "10.63.1.1"), "a down router does not answer");
    assert!(!pings(&a, "10.63.2.10"), "a down router does not forward");
    desired.routers[0].admin_state_up = true;
    lab.ensure(&desired);
    assert!(pings(&a, "10.63.1.1"), "the gateway answers");
    assert!(pings(&a, "10.63.2.10"), "the router joins the subnets");
    assert!(pings(&b, "10.63.1.10"));
    // Detaching one subnet separates them again.
    desired.routers[0].interfaces.pop();
    lab.ensure(&desired);
    assert!(!pings(&a, "10.63.2.10"), "interface removed");
}

fn secured(mut p: Port, rules: Vec<Rule>) -> Port {
    p.security = Some(PortSecurity {
        rules,
        allowed_address_pairs: vec![],
    });
    p
}

/// A long-lived TCP connection: the client's stdin stays open, the server writes what it gets
/// to a file.
struct Connection {
    client: std::process::Child,
    server: std::process::Child,
    received: std::path::PathBuf,
}

impl Connection {
    fn open(lab: &Lab, client_ns: &str, server_ns: &str, ip: &str, port: u16) -> Connection {
        let received = lab.state_dir().join("received");
        let out = std::fs::File::create(&received).expect("file");
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                server_ns,
                "busybox",
                "nc",
                "-l",
                "-p",
                &port.to_string(),
            ])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("server");
        std::thread::sleep(Duration::from_millis(200));
        let client = Command::new("ip")
            .args([
                "netns",
                "exec",
                client_ns,
                "busybox",
                "nc",
                ip,
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("client");
        Connection {
            client,
            server,
            received,
        }
    }

    /// Sends a line and says whether the server got it within a second.
    fn delivers(&mut self, line: &str) -> bool {
        let stdin = self.client.stdin.as_mut().expect("stdin");
        if writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .is_err()
        {
            return false;
        }
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(100));
            if std::fs::read_to_string(&self.received)
                .unwrap_or_default()
                .contains(line)
            {
                return true;
            }
        }
        false
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for child in [&mut self.client, &mut self.server] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn security_groups_are_stateful_and_removing_a_rule_cuts_established_flows() {
    if skip("security groups") {
        return;
    }
    let mut lab = Lab::new("d4");
    let (a, b, c, d) = (lab.vm("a"), lab.vm("b"), lab.vm("c"), lab.vm("d"));
    let net = tenant_network(106, "10.64.0.0/24");
    // a and b: one default group; c and d: another.
    let group1 = default_group(&["10.64.0.10", "10.64.0.11"]);
    let group2 = default_group(&["10.64.0.12", "10.64.0.13"]);
    let pa = secured(port(&net, "10.64.0.10", &a), group1.clone());
    let pb = secured(port(&net, "10.64.0.11", &b), group1.clone());
    let pc = secured(port(&net, "10.64.0.12", &c), group2.clone());
    let pd = secured(port(&net, "10.64.0.13", &d), group2.clone());
    let mut desired = DesiredDataplane {
        networks: vec![net],
        ports: vec![pa, pb, pc, pd],
        routers: vec![],
    };
    lab.ensure(&desired);
    for (ns, addr) in [
        (&a, "10.64.0.10"),
        (&b, "10.64.0.11"),
        (&c, "10.64.0.12"),
        (&d, "10.64.0.13"),
    ] {
        configure(ns, &format!("{addr}/24"), None);
    }
    assert!(pings(&a, "10.64.0.11"), "same group: allowed");
    assert!(pings(&b, "10.64.0.10"));
    assert!(!pings(&c, "10.64.0.11"), "from another group: dropped");
    let _http = Server::start(&b, 8080);
    let _other = Server::start(&b, 8081);
    assert!(
        !tcp_answers(&c, "10.64.0.11", 8080),
        "closed before the rule"
    );

    // tcp/8080 from c's address only.
    let mut with_rule = group1.clone();
    with_rule.push(rule(
        Direction::Ingress,
        Some(6),
        Some((8080, 8080)),
        &["10.64.0.12/32"],
    ));
    desired.ports[1].security.as_mut().unwrap().rules = with_rule;
    lab.ensure(&desired);
    // c's own group admits nothing from b: the answer comes back only as part of the flow.
    assert!(
        tcp_answers(&c, "10.64.0.11", 8080),
        "the rule opens tcp/8080 from the CIDR, statefully"
    );
    assert!(!tcp_answers(&c, "10.64.0.11", 8081), "exactly that port");
    assert!(!tcp_answers(&d, "10.64.0.11", 8080), "exactly that CIDR");
    assert!(!pings(&c, "10.64.0.11"), "and not icmp");

    // An established flow, then the rule goes: the flow is cut too.
    drop(_http);
    let mut conn = Connection::open(&lab, &c, &b, "10.64.0.11", 8080);
    assert!(conn.delivers("before"), "established while the rule exists");
    desired.ports[1].security.as_mut().unwrap().rules = group1;
    let report = lab.ensure(&desired);
    assert!(report.flows_cut >= 1, "the established flow was cut");
    assert!(!conn.delivers("after"), "nothing passes on the cut flow");
    assert!(
        !tcp_answers(&c, "10.64.0.11", 8081),
        "new connections closed"
    );
}

#[test]
fn snat_reaches_the_internet_and_a_floating_ip_is_reachable_from_it() {
    if skip("snat") {
        return;
    }
    let mut lab = Lab::new("d5");
    let (inet, uplink) = lab.internet("198.51.100.1/24");
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let ext_id = id();
    let external = Network {
        id: ext_id.clone(),
        segment: Segment::Flat {
            interface: Some(uplink),
        },
        mtu: 1500,
        subnets: vec![Subnet {
            id: id(),
            cidr: "198.51.100.0/24".parse().unwrap(),
            gateway: Some(ip("198.51.100.1")),
            dhcp: false,
            dns_nameservers: vec![],
            host_routes: vec![],
        }],
        dhcp: None,
    };
    let tenant = tenant_network(107, "10.65.0.0/24");
    let gw_port = id();
    let mut desired = DesiredDataplane {
        ports: vec![
            port(&tenant, "10.65.0.10", &a),
            port(&tenant, "10.65.0.11", &b),
        ],
        routers: vec![Router {
            id: id(),
            admin_state_up: true,
            interfaces: vec![router_interface(&tenant, "10.65.0.1/24")],
            gateway: Some(RouterGateway {
                mac: MacAddr::derived(&gw_port),
                port_id: gw_port,
                network_id: ext_id,
                address: "198.51.100.10/24".parse().unwrap(),
                nexthop: Some(ip("198.51.100.1")),
                snat: true,
            }),
            floating_ips: vec![],
            routes: vec![],
        }],
        networks: vec![external, tenant],
    };
    lab.ensure(&desired);
    configure(&a, "10.65.0.10/24", Some("10.65.0.1"));
    configure(&b, "10.65.0.11/24", Some("10.65.0.1"));
    // The internet has no route to 10.65.0.0/24: an answer proves the source was translated.
    assert!(pings(&a, "198.51.100.1"), "SNAT to the internet");
    assert!(!pings(&inet, "198.51.100.20"), "no floating IP yet");

    desired.routers[0].floating_ips.push(FloatingIp {
        external: ip("198.51.100.20"),
        internal: ip("10.65.0.10"),
    });
    lab.ensure(&desired);
    assert!(
        pings(&inet, "198.51.100.20"),
        "the floating IP reaches the port"
    );
    let _server = Server::start(&a, 8080);
    assert!(
        tcp_answers(&inet, "198.51.100.20", 8080),
        "tcp through the floating IP"
    );

    // Without SNAT only the port with a floating IP gets out.
    desired.routers[0].gateway.as_mut().unwrap().snat = false;
    lab.ensure(&desired);
    assert!(!pings(&b, "198.51.100.1"), "SNAT off: no way out");
    assert!(pings(&a, "198.51.100.1"), "the floating IP still gets out");
}

#[test]
fn two_projects_with_the_same_cidr_never_exchange_a_packet() {
    if skip("overlap") {
        return;
    }
    let mut lab = Lab::new("d6");
    let (a1, b1, a2, b2) = (lab.vm("a1"), lab.vm("b1"), lab.vm("a2"), lab.vm("b2"));
    let net1 = tenant_network(108, "10.0.0.0/24");
    let net2 = tenant_network(109, "10.0.0.0/24");
    let desired = DesiredDataplane {
        ports: vec![
            port(&net1, "10.0.0.10", &a1),
            port(&net1, "10.0.0.11", &b1),
            port(&net2, "10.0.0.10", &a2),
            port(&net2, "10.0.0.11", &b2),
        ],
        networks: vec![net1, net2],
        routers: vec![],
    };
    lab.ensure(&desired);
    for (ns, addr) in [
        (&a1, "10.0.0.10/24"),
        (&b1, "10.0.0.11/24"),
        (&a2, "10.0.0.10/24"),
        (&b2, "10.0.0.11/24"),
    ] {
        configure(ns, addr, None);
    }
    // A DHCP interface that just came up announces itself on its own network for a moment
    // (IPv6 link-local duplicate address detection and MLD); only then is project 2 quiet.
    std::thread::sleep(Duration::from_secs(2));
    let before = (rx_packets(&a2, "eth0"), rx_packets(&b2, "eth0"));
    assert!(pings(&a1, "10.0.0.11"));
    assert!(pings(&b1, "10.0.0.10"));
    let after = (rx_packets(&a2, "eth0"), rx_packets(&b2, "eth0"));
    assert_eq!(before, after, "project 2 saw none of project 1's packets");
    assert!(pings(&a2, "10.0.0.11"), "and has its own working network");
}

#[test]
fn ensure_repairs_namespaces_deleted_by_hand() {
    if skip("repair") {
        return;
    }
    let mut lab = Lab::new("d7");
    let vm = lab.vm("vm");
    let net = tenant_network(110, "10.67.0.0/24");
    let p = port(&net, "10.67.0.10", &vm);
    let router = Router {
        id: id(),
        admin_state_up: true,
        interfaces: vec![router_interface(&net, "10.67.0.1/24")],
        gateway: None,
        floating_ips: vec![],
        routes: vec![],
    };
    let desired = DesiredDataplane {
        networks: vec![net.clone()],
        ports: vec![p],
        routers: vec![router.clone()],
    };
    lab.ensure(&desired);
    assert!(dhcp_lease(&lab, &vm));
    assert!(pings(&vm, "10.67.0.1"));

    let dhcp_ns = lab.dp.names().dhcp_netns(&net.id);
    sh(&["ip", "netns", "del", &dhcp_ns]);
    sh(&[
        "ip",
        "netns",
        "del",
        &lab.dp.names().router_netns(&router.id),
    ]);
    // (dnsmasq lives on in the unnamed namespace until ensure replaces it.)
    assert!(!sh(&["ip", "netns", "list"]).contains(&dhcp_ns));
    assert!(!pings(&vm, "10.67.0.1"), "the router is gone");

    lab.ensure(&desired);
    assert!(
        sh(&["ip", "netns", "list"]).contains(&dhcp_ns),
        "the DHCP namespace is back"
    );
    let pids = sh(&["ip", "netns", "pids", &dhcp_ns]);
    assert_eq!(pids.lines().count(), 1, "dnsmasq runs in it: {pids}");
    let ours = lab.state_dir().join("dhcp");
    let running = sh(&["ps", "-eo", "args"]);
    let dnsmasqs = running
        .lines()
        .filter(|l| l.contains(&ours.display().to_string()))
        .count();
    assert_eq!(dnsmasqs, 1, "the orphaned dnsmasq was stopped");
    sh(&["ip", "-n", &vm, "addr", "flush", "dev", "eth0"]);
    assert!(dhcp_lease(&lab, &vm), "DHCP serves again");
    assert!(pings(&vm, "10.67.0.1"), "the router is back");
}

#[test]
fn ensure_with_a_smaller_state_removes_the_rest() {
    if skip("removal") {
        return;
    }
    let mut lab = Lab::new("d8");
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let keep = tenant_network(111, "10.68.1.0/24");
    let gone = tenant_network(112, "10.68.2.0/24");
    let router = Router {
        id: id(),
        admin_state_up: true,
        interfaces: vec![
            router_interface(&keep, "10.68.1.1/24"),
            router_interface(&gone, "10.68.2.1/24"),
        ],
        gateway: None,
        floating_ips: vec![],
        routes: vec![],
    };
    let pa = port(&keep, "10.68.1.10", &a);
    let pb = port(&gone, "10.68.2.10", &b);
    let full = DesiredDataplane {
        networks: vec![keep.clone(), gone.clone()],
        ports: vec![pa.clone(), pb.clone()],
        routers: vec![router.clone()],
    };
    lab.ensure(&full);
    let names = lab.dp.names();
    let links = || sh(&["ip", "-o", "link", "show"]);
    let namespaces = || sh(&["ip", "netns", "list"]);
    assert!(links().contains(&names.link(names::Kind::Bridge, &gone.id)));
    assert!(namespaces().contains(&names.router_netns(&router.id)));

    // The removed network's VNI is handed straight to a new one (the region reuses the lowest
    // free VNI): the old VXLAN device must be gone before the new one is made.
    let successor = tenant_network(112, "10.68.3.0/24");
    let smaller = DesiredDataplane {
        networks: vec![keep.clone(), successor.clone()],
        ports: vec![pa.clone()],
        routers: vec![],
    };
    lab.ensure(&smaller);
    let (l, n) = (links(), namespaces());
    assert!(
        l.contains(&names.link(names::Kind::Vxlan, &successor.id)),
        "the new network has its VXLAN device with the reused VNI"
    );
    for kind in [names::Kind::Bridge, names::Kind::Vxlan, names::Kind::Dhcp] {
        assert!(
            !l.contains(&names.link(kind, &gone.id)),
            "{kind:?} of the removed network"
        );
        assert!(
            l.contains(&names.link(kind, &keep.id)),
            "{kind:?} of the kept network"
        );
    }
    assert!(
        !l.contains(&names.link(names::Kind::Port, &pb.id)),
        "the removed port's veth"
    );
    assert!(
        !n.contains(&names.router_netns(&router.id)),
        "the router namespace"
    );
    assert!(
        !n.contains(&names.dhcp_netns(&gone.id)),
        "the removed network's DHCP namespace"
    );
    assert!(n.contains(&names.dhcp_netns(&keep.id)));
    assert!(dhcp_lease(&lab, &a), "what stays still works");
    let dhcp_dirs = std::fs::read_dir(lab.state_dir().join("dhcp"))
        .unwrap()
        .count();
    assert_eq!(
        dhcp_dirs, 2,
        "only the kept and the new network's DHCP files remain"
    );
}

#[test]
fn a_recheck_repairs_inside_the_dhcp_namespace_and_a_taken_interface_name_is_replaced() {
    if skip("recheck") {
        return;
    }
    let mut lab = Lab::new("d9");
    let vm = lab.vm("vm");
    // Something else already holds the port's interface name in the instance's namespace.
    sh(&[
        "ip", "-n", &vm, "link", "add", "eth0", "type", "veth", "peer", "name", "other",
    ]);
    let net = tenant_network(111, "10.69.0.0/24");
    let p = port(&net, "10.69.0.10", &vm);
    let desired = DesiredDataplane {
        networks: vec![net.clone()],
        ports: vec![p.clone()],
        routers: vec![],
    };
    let report = lab.ensure(&desired);
    assert!(report.active_ports.contains(&p.id), "the port is in place");
    let eth0 = sh(&["ip", "-n", &vm, "-d", "link", "show", "dev", "eth0"]);
    assert!(
        eth0.contains("veth") && eth0.contains(&p.mac.to_string()),
        "eth0 is the port's veth now: {eth0}"
    );

    let dhcp_ns = lab.dp.names().dhcp_netns(&net.id);
    sh(&[
        "ip",
        "-n",
        &dhcp_ns,
        "addr",
        "flush",
        "dev",
        names::DHCP_INNER,
    ]);
    let report = lab.dp.recheck(&desired).expect("recheck");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let addr = sh(&[
        "ip",
        "-n",
        &dhcp_ns,
        "-4",
        "addr",
        "show",
        "dev",
        names::DHCP_INNER,
    ]);
    assert!(
        addr.contains("10.69.0.2/24"),
        "the server's address is back: {addr}"
    );
    assert!(dhcp_lease(&lab, &vm), "DHCP serves again");
}
