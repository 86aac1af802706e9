//! Per network: a Linux bridge, and a VXLAN device (tenant networks) or the operator's uplink
//! (flat networks) as a bridge port.
//!
//! VXLAN on one host: the device is created with `dstport 4789 nolearning` and no remote or
//! multicast group, so it is a multicast-free segment that carries nothing off the host until
//! a multi-host agent adds forwarding entries (`bridge fdb append 00:00:00:00:00:00 dst <peer>`)
//! for the other hosts with ports on the network. On a single host the bridge alone carries the
//! traffic; the device is there so the segment (VNI) is real and the MTU budget matches.

use crate::cmd::ip;
use crate::error::{Error, Result};
use crate::link::{self, Link};
use crate::model::{Network, Segment};
use crate::names::{check_ifname, Kind, Names};

/// The conntrack zone of a network. Zones keep the connection tracking of networks apart, so
/// two projects with the same addresses never share a flow entry. Tenant networks use their VNI
/// (VNIs up to 65519, as tenant VNI ranges are); larger VNIs fold into that range; flat
/// networks use the top 16 zones.
pub fn conntrack_zone(network: &Network) -> u16 {
    match network.segment {
        Segment::Vxlan { vni } if (1..=65519).contains(&vni) => vni as u16,
        Segment::Vxlan { vni } => (vni % 65519) as u16 + 1,
        Segment::Flat { .. } => {
            let sum: u32 = network.id.bytes().map(u32::from).sum();
            65520 + (sum % 16) as u16
        }
    }
}

/// Makes the network's bridge and segment device match `network`.
pub fn ensure(names: &Names, network: &Network, current: &[Link]) -> Result<()> {
    let bridge = names.link(Kind::Bridge, &network.id);
    let find = |name: &str| current.iter().find(|l| l.name == name);
    match find(&bridge) {
        Some(l) if l.kind.as_deref() == Some("bridge") => {}
        Some(_) => {
            link::delete_link(None, &bridge)?;
            create_bridge(&bridge)?;
        }
        None => create_bridge(&bridge)?,
    }
    if !find(&bridge).is_some_and(|l| l.up && l.mtu == Some(network.mtu)) {
        link::set_up(None, &bridge, network.mtu, None)?;
    }
    match &network.segment {
        Segment::Vxlan { vni } => {
            let vxlan = names.link(Kind::Vxlan, &network.id);
            let existing = find(&vxlan);
            if !existing.is_some_and(|l| {
                l.kind.as_deref() == Some("vxlan") && l.vni == Some(u64::from(*vni))
            }) {
                if existing.is_some() {
                    link::delete_link(None, &vxlan)?;
                }
                let vni = vni.to_string();
                ip(
                    None,
                    &[
                        "link",
                        "add",
                        &vxlan,
                        "type",
                        "vxlan",
                        "id",
                        &vni,
                        "dstport",
                        "4789",
                        "nolearning",
                    ],
                )?;
                ip(None, &["link", "set", "dev", &vxlan, "addrgenmode", "none"])?;
            }
            if !existing.is_some_and(|l| {
                l.up && l.master.as_deref() == Some(bridge.as_str()) && l.mtu == Some(network.mtu)
            }) {
                link::set_up(None, &vxlan, network.mtu, Some(&bridge))?;
            }
        }
        Segment::Flat { interface } => {
            if let Some(uplink) = interface {
                check_ifname(uplink)?;
                match find(uplink) {
                    None => {
                        return Err(Error::invalid(format!(
                            "uplink interface {uplink} of network {} does not exist",
                            network.id
                        )))
                    }
                    Some(l) if l.up && l.master.as_deref() == Some(bridge.as_str()) => {}
                    Some(_) => ip(
                        None,
                        &["link", "set", "dev", uplink, "master", &bridge, "up"],
                    )
                    .map(drop)?,
                }
            }
            // An uplink that the operator no longer names is released, never deleted.
            for l in current.iter().filter(|l| {
                l.master.as_deref() == Some(bridge.as_str())
                    && names.owns_link(&l.name).is_none()
                    && Some(&l.name) != interface.as_ref()
            }) {
                ip(None, &["link", "set", "dev", &l.name, "nomaster"])?;
            }
        }
    }
    Ok(())
}

fn create_bridge(name: &str) -> Result<()> {
    // No IPv6 link-local address on the bridge: the host takes no part in tenant networks.
    ip(None, &["link", "add", name, "type", "bridge"])?;
    ip(None, &["link", "set", "dev", name, "addrgenmode", "none"]).map(drop)
}
