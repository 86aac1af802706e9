//! The one entry point: make the host match a [`DesiredDataplane`], remove what is not wanted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::cmd::run_with_input;
use crate::error::{Error, Result};
use crate::firewall::{self, BridgeZone, FilteredPort};
use crate::link::Link;
use crate::model::{DesiredDataplane, Network, Plug, Port, PortSecurity, Segment};
use crate::names::{check_id, check_ifname, check_netns, Kind, Names};
use crate::{conntrack, dhcp, link, network, port, router};

/// What one `ensure` achieved.
#[derive(Debug, Default)]
pub struct EnsureReport {
    /// Ports whose dataplane is in place: instance ports plugged into their namespace,
    /// filtered, served by DHCP; DHCP ports with dnsmasq running; router ports of routers in
    /// place. These are the ports a reconciler may report ACTIVE.
    pub active_ports: BTreeSet<String>,
    /// Objects that could not be brought in place this time (the next ensure retries).
    pub failures: Vec<String>,
    /// Established flows cut because their rules were removed.
    pub flows_cut: usize,
}

/// The dataplane of this host, for one name prefix.
pub struct Dataplane {
    names: Names,
    state_dir: PathBuf,
    /// One ensure at a time: two would race on the same links. It guards what earlier passes
    /// made whole, so that a pass checks those with the one link listing it makes anyway.
    lock: Mutex<Memory>,
}

/// What earlier passes left in place. An ensure trusts it where the link listing and the
/// namespaces' identities still agree; [`Dataplane::recheck`] forgets the parts that a
/// listing cannot confirm.
#[derive(Default)]
struct Memory {
    /// Plugs made whole, by port id (saves two `ip` calls per port and pass).
    plugged: HashMap<String, port::Plugged>,
    /// DHCP namespaces made whole, by network id (saves four `ip` calls per network and pass).
    dhcp: HashMap<String, dhcp::Placed>,
    /// The security of every filtered port as last applied, by port id; `None` when flows
    /// must be checked on every network (first pass, recheck). Flows are cut only where a
    /// port's rules changed, as listing a conntrack zone costs more than the rest of a pass.
    security: Option<HashMap<String, PortSecurity>>,
}

impl Dataplane {
    /// `prefix` (1-3 characters) marks everything this dataplane creates; `state_dir` holds
    /// its files (dnsmasq configurations and pid files).
    pub fn new(prefix: &str, state_dir: impl Into<PathBuf>) -> Result<Self> {
        Ok(Dataplane {
            names: Names::new(prefix)?,
            state_dir: state_dir.into(),
            lock: Mutex::new(Memory::default()),
        })
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Makes the host match `desired` and removes every object of this prefix that it does not
    /// name. Idempotent; repairs what was changed or deleted behind its back, except inside
    /// DHCP namespaces an earlier pass made whole and flows no rule change concerns, which
    /// [`recheck`](Self::recheck) covers (a reconciler calls it periodically).
    pub fn ensure(&self, desired: &DesiredDataplane) -> Result<EnsureReport> {
        let mut memory = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.ensure_locked(&mut memory, desired)
    }

    /// Like [`ensure`](Self::ensure), checking again everything earlier passes made whole that
    /// the host's link listing does not show: the inside of DHCP namespaces, and the tracked
    /// flows of every network against the rules.
    pub fn recheck(&self, desired: &DesiredDataplane) -> Result<EnsureReport> {
        let mut memory = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        memory.dhcp.clear();
        memory.security = None;
        self.ensure_locked(&mut memory, desired)
    }

    fn ensure_locked(
        &self,
        memory: &mut Memory,
        desired: &DesiredDataplane,
    ) -> Result<EnsureReport> {
        validate(desired)?;
        enable_bridge_netfilter()?;
        let mut report = EnsureReport::default();
        let networks: HashMap<&str, &Network> = desired
            .networks
            .iter()
            .map(|n| (n.id.as_str(), n))
            .collect();
        let mut networks_ok = HashSet::new();

        let current = link::links(None)?;
        // What is no longer wanted goes first: a network deleted since the last pass may hold
        // the VNI that a new one was just given, and the kernel refuses a second VXLAN device
        // with it.
        self.remove_unwanted(desired, &current)?;
        for net in &desired.networks {
            match network::ensure(&self.names, net, &current) {
                Ok(()) => {
                    networks_ok.insert(net.id.as_str());
                }
                Err(e) => report.failures.push(format!("network {}: {e}", net.id)),
            }
        }

        // Filters first, so that a port is never up without its rules.
        self.apply_firewall(desired)?;

        let mut dhcp_ok = HashSet::new();
        for net in desired
            .networks
            .iter()
            .filter(|n| networks_ok.contains(n.id.as_str()))
        {
            if !dhcp::wanted(net) {
                continue;
            }
            let ports: Vec<&Port> = desired
                .ports
                .iter()
                .filter(|p| p.network_id == net.id)
                .collect();
            let in_place = dhcp::placed(&self.names, net).is_some_and(|now| {
                memory.dhcp.get(&net.id) == Some(&now)
                    && dhcp::host_end_intact(&self.names, net, &current)
            });
            if !in_place {
                memory.dhcp.remove(&net.id);
            }
            match dhcp::ensure(&self.names, &self.state_dir, net, &ports, in_place) {
                Ok(()) => {
                    if let Some(now) = dhcp::placed(&self.names, net) {
                        memory.dhcp.insert(net.id.clone(), now);
                    }
                    dhcp_ok.insert(net.id.as_str());
                    report
                        .active_ports
                        .extend(net.dhcp.iter().map(|d| d.port_id.clone()));
                }
                Err(e) => {
                    memory.dhcp.remove(&net.id);
                    report
                        .failures
                        .push(format!("DHCP of network {}: {e}", net.id))
                }
            }
        }

        for r in &desired.routers {
            match router::ensure(&self.names, r, &networks) {
                Ok(()) => {
                    let ports = r.interfaces.iter().map(|i| i.port_id.clone());
                    report
                        .active_ports
                        .extend(ports.chain(r.gateway.iter().map(|g| g.port_id.clone())));
                }
                Err(e) => report.failures.push(format!("router {}: {e}", r.id)),
            }
        }

        memory.dhcp.retain(|id, _| dhcp_ok.contains(id.as_str()));
        let plugged = &mut memory.plugged;
        plugged.retain(|id, _| {
            desired
                .ports
                .iter()
                .any(|p| &p.id == id && p.plug.is_some())
        });
        for p in &desired.ports {
            let Some(plug) = &p.plug else { continue };
            let net = networks[p.network_id.as_str()];
            if !networks_ok.contains(net.id.as_str()) {
                continue;
            }
            let wanted = port::wanted(net, p, plug);
            let unchanged = wanted.is_some()
                && plugged.get(&p.id) == wanted.as_ref()
                && port::host_end_intact(&self.names, net, p, &current);
            let in_place = if unchanged {
                Ok(true)
            } else {
                plugged.remove(&p.id);
                port::ensure(&self.names, net, p, plug, Some(&current))
            };
            match in_place {
                Ok(true) => {
                    if let Some(w) = wanted {
                        plugged.insert(p.id.clone(), w);
                    }
                    if !dhcp::wanted(net) || dhcp_ok.contains(net.id.as_str()) {
                        report.active_ports.insert(p.id.clone());
                    }
                }
                Ok(false) => {}
                Err(e) => report.failures.push(format!("port {}: {e}", p.id)),
            }
        }

        report.flows_cut = self.cut_flows(desired, memory.security.as_ref(), &mut report.failures);
        memory.security = Some(filtered_security(desired));
        Ok(report)
    }

    /// Plugs one port now, without a whole ensure (the compute service plugs an instance's
    /// port as it starts it). The port must be part of the desired state of the last and next
    /// ensure: its security rules come from there, and ensure removes ports it does not know.
    /// Returns false when the namespace does not exist.
    pub fn plug_port(&self, network: &Network, port: &Port, plug: &Plug) -> Result<bool> {
        check_id("network", &network.id)?;
        check_id("port", &port.id)?;
        check_netns(&plug.netns)?;
        check_ifname(&plug.ifname)?;
        let mut memory = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        memory.plugged.remove(&port.id);
        port::ensure(&self.names, network, port, plug, None)
    }

    fn apply_firewall(&self, desired: &DesiredDataplane) -> Result<()> {
        let bridges: Vec<BridgeZone> = desired
            .networks
            .iter()
            .map(|n| BridgeZone {
                bridge: self.names.link(Kind::Bridge, &n.id),
                zone: network::conntrack_zone(n),
            })
            .collect();
        let ports: Vec<FilteredPort> = desired
            .ports
            .iter()
            .filter(|p| p.plug.is_some())
            .filter_map(|p| {
                p.security.as_ref().map(|security| FilteredPort {
                    dev: self.names.link(Kind::Port, &p.id),
                    chain_id: self.names.link(Kind::Port, &p.id),
                    port: p,
                    security,
                })
            })
            .collect();
        let script = firewall::ruleset(
            &self.names.ct_table(),
            &self.names.sg_table(),
            &bridges,
            &ports,
        );
        run_with_input("nft", &["-f", "-"], Some(&script)).map(drop)
    }

    /// Cuts flows that the current rules no longer allow, on every network or, when the
    /// security `applied` by the last pass is known, on the networks where a port's rules
    /// changed since. Failures are reported, not fatal: the filter itself is already in place.
    fn cut_flows(
        &self,
        desired: &DesiredDataplane,
        applied: Option<&HashMap<String, PortSecurity>>,
        failures: &mut Vec<String>,
    ) -> usize {
        if crate::host::find_program("conntrack").is_none() {
            return 0;
        }
        let changed = |p: &Port, now: &PortSecurity| {
            applied.is_none_or(|applied| applied.get(&p.id).is_some_and(|before| before != now))
        };
        let mut cut = 0;
        for net in &desired.networks {
            let ports: Vec<_> = desired
                .ports
                .iter()
                .filter(|p| p.network_id == net.id && p.plug.is_some())
                .filter_map(|p| p.security.as_ref().map(|s| (p, s)))
                .collect();
            if !ports.iter().any(|(p, s)| changed(p, s)) {
                continue;
            }
            match conntrack::cut_disallowed(network::conntrack_zone(net), &ports) {
                Ok(n) => cut += n,
                Err(e) => failures.push(format!("cutting flows of network {}: {e}", net.id)),
            }
        }
        cut
    }

    /// Deletes this prefix's links, namespaces and DHCP servers that `desired` does not name.
    /// `current` is the pass's listing of links, taken before it creates any.
    fn remove_unwanted(&self, desired: &DesiredDataplane, current: &[Link]) -> Result<()> {
        let n = &self.names;
        let mut links: HashSet<String> = HashSet::new();
        let mut namespaces: HashSet<String> = HashSet::new();
        let mut dhcp_networks: HashSet<&str> = HashSet::new();
        for net in &desired.networks {
            links.insert(n.link(Kind::Bridge, &net.id));
            if matches!(net.segment, Segment::Vxlan { .. }) {
                links.insert(n.link(Kind::Vxlan, &net.id));
            }
            if dhcp::wanted(net) {
                links.insert(n.link(Kind::Dhcp, &net.id));
                namespaces.insert(n.dhcp_netns(&net.id));
                dhcp_networks.insert(&net.id);
            }
        }
        for r in &desired.routers {
            namespaces.insert(n.router_netns(&r.id));
            links.extend(
                r.interfaces
                    .iter()
                    .map(|i| n.link(Kind::RouterInterface, &i.port_id)),
            );
            links.extend(
                r.gateway
                    .iter()
                    .map(|g| n.link(Kind::RouterGateway, &g.port_id)),
            );
        }
        links.extend(
            desired
                .ports
                .iter()
                .filter(|p| p.plug.is_some())
                .map(|p| n.link(Kind::Port, &p.id)),
        );

        for id in dhcp::known(&self.state_dir) {
            if !dhcp_networks.contains(id.as_str()) {
                dhcp::remove(&self.state_dir, &id)?;
            }
        }
        for ns in link::netns_list()? {
            if n.owns_netns(&ns) && !namespaces.contains(&ns) {
                link::delete_netns(&ns)?;
            }
        }
        // Bridges last, so their ports are gone first; deleting one end of a veth deletes both,
        // so a link may vanish while we go.
        let mut unwanted: Vec<(Kind, &str)> = current
            .iter()
            .filter_map(|l| n.owns_link(&l.name).map(|k| (k, l.name.as_str())))
            .filter(|(_, name)| !links.contains(*name))
            .collect();
        unwanted.sort_by_key(|(k, _)| *k == Kind::Bridge);
        for (_, name) in unwanted {
            if link::link(None, name)?.is_some() {
                link::delete_link(None, name)?;
            }
        }
        Ok(())
    }
}

/// The security of every plugged, filtered port, by port id.
fn filtered_security(desired: &DesiredDataplane) -> HashMap<String, PortSecurity> {
    desired
        .ports
        .iter()
        .filter(|p| p.plug.is_some())
        .filter_map(|p| Some((p.id.clone(), p.security.clone()?)))
        .collect()
}

/// `br_netfilter` must hand bridged packets to the inet hooks for the stateful filter.
fn enable_bridge_netfilter() -> Result<()> {
    for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
        let path = Path::new("/proc/sys/net/bridge").join(key);
        let on = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("{} (is br_netfilter loaded?)", path.display()), e))?;
        if on.trim() != "1" {
            std::fs::write(&path, "1")
                .map_err(|e| Error::io(format!("enabling {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// Every id and name that will reach a command or a path is checked before anything changes.
fn validate(desired: &DesiredDataplane) -> Result<()> {
    let mut network_ids = HashSet::new();
    for net in &desired.networks {
        check_id("network", &net.id)?;
        if !network_ids.insert(net.id.as_str()) {
            return Err(Error::invalid(format!("network {} appears twice", net.id)));
        }
        if !(68..=65535).contains(&net.mtu) {
            return Err(Error::invalid(format!(
                "network {} has MTU {}",
                net.id, net.mtu
            )));
        }
        if let Segment::Flat { interface: Some(i) } = &net.segment {
            check_ifname(i)?;
        }
        for s in &net.subnets {
            check_id("subnet", &s.id)?;
        }
        if let Some(d) = &net.dhcp {
            check_id("DHCP port", &d.port_id)?;
        }
    }
    let mut port_ids = HashSet::new();
    for p in &desired.ports {
        check_id("port", &p.id)?;
        if !port_ids.insert(p.id.as_str()) {
            return Err(Error::invalid(format!("port {} appears twice", p.id)));
        }
        if !network_ids.contains(p.network_id.as_str()) {
            return Err(Error::invalid(format!(
                "port {} is on unknown network {}",
                p.id, p.network_id
            )));
        }
        if let Some(plug) = &p.plug {
            check_netns(&plug.netns)?;
            check_ifname(&plug.ifname)?;
        }
    }
    let mut router_ids = HashSet::new();
    for r in &desired.routers {
        check_id("router", &r.id)?;
        if !router_ids.insert(r.id.as_str()) {
            return Err(Error::invalid(format!("router {} appears twice", r.id)));
        }
        for i in &r.interfaces {
            check_id("router interface port", &i.port_id)?;
        }
        if let Some(g) = &r.gateway {
            check_id("router gateway port", &g.port_id)?;
        }
    }
    Ok(())
}
