//! Plugging a port into a namespace: a veth whose inside end carries the port's MAC and whose
//! host end is a port of the network's bridge (where its security rules apply).

use crate::error::Result;
use crate::link::{self, Link};
use crate::model::{MacAddr, Network, Plug, Port};
use crate::names::{Kind, Names};
use crate::netns;

/// A plug as it was when last made whole: while the host end is still in place on the same
/// bridge and the namespace is still the same one, nothing needs to be asked of the kernel.
/// (Deleting either end of a veth deletes both; a namespace made again has another identity.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugged {
    netns: (u64, u64),
    ifname: String,
    mac: MacAddr,
    mtu: u32,
}

/// What the plug would be now; `None` when its namespace does not exist.
pub fn wanted(network: &Network, port: &Port, plug: &Plug) -> Option<Plugged> {
    Some(Plugged {
        netns: netns::identity(&plug.netns)?,
        ifname: plug.ifname.clone(),
        mac: port.mac,
        mtu: network.mtu,
    })
}

/// Whether the port's host end, as listed in `current`, is still as ensure left it.
pub fn host_end_intact(names: &Names, network: &Network, port: &Port, current: &[Link]) -> bool {
    let host = names.link(Kind::Port, &port.id);
    let bridge = names.link(Kind::Bridge, &network.id);
    current.iter().any(|l| {
        l.name == host
            && l.kind.as_deref() == Some("veth")
            && l.up
            && l.master.as_deref() == Some(bridge.as_str())
            && l.mtu == Some(network.mtu)
    })
}

/// Makes the port's veth exist between the network bridge and `plug.netns`. The namespace is
/// the caller's (an instance, a test); when it does not exist the port cannot be in place and
/// `Ok(false)` says so. `current`, a listing of the host's links taken in this pass, lets a
/// port whose host end is not there be created directly, without asking for either end first.
pub fn ensure(
    names: &Names,
    network: &Network,
    port: &Port,
    plug: &Plug,
    current: Option<&[Link]>,
) -> Result<bool> {
    if !link::netns_exists(&plug.netns) {
        return Ok(false);
    }
    let host = names.link(Kind::Port, &port.id);
    let bridge = names.link(Kind::Bridge, &network.id);
    let host_absent = current.is_some_and(|links| !links.iter().any(|l| l.name == host));
    if host_absent
        && link::create_veth(
            &host,
            &bridge,
            network.mtu,
            &plug.netns,
            &plug.ifname,
            port.mac,
        )
        .is_ok()
    {
        return Ok(true);
    }
    link::ensure_veth(
        &host,
        &bridge,
        network.mtu,
        &plug.netns,
        &plug.ifname,
        port.mac,
    )?;
    Ok(true)
}
