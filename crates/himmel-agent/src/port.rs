//! Plugging a port into a namespace: a veth whose inside end carries the port's MAC and whose
//! host end is a port of the network's bridge (where its security rules apply).

use crate::error::Result;
use crate::link;
use crate::model::{Network, Plug, Port};
use crate::names::{Kind, Names};

/// Makes the port's veth exist between the network bridge and `plug.netns`. The namespace is
/// the caller's (an instance, a test); when it does not exist the port cannot be in place and
/// `Ok(false)` says so.
pub fn ensure(names: &Names, network: &Network, port: &Port, plug: &Plug) -> Result<bool> {
    if !link::netns_exists(&plug.netns) {
        return Ok(false);
    }
    let host = names.link(Kind::Port, &port.id);
    let bridge = names.link(Kind::Bridge, &network.id);
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
