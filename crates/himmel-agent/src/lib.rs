//! The host agent's network dataplane: real Linux networking driven to a desired state.
//!
//! A reconciler builds a [`DesiredDataplane`] (networks, ports, routers, with security group
//! rules already expanded to concrete CIDRs) and hands it to [`Dataplane::ensure`], which makes
//! the host match it and removes every object of its own that is no longer wanted. Everything it
//! creates carries the configured prefix, so it never touches anything else on the host, and two
//! dataplanes with different prefixes (as the tests use) live side by side.
//!
//! What it builds, per object:
//! * network: a Linux bridge, plus a VXLAN device for `vxlan` segments (see [`network`]) or the
//!   operator's uplink interface for `flat` ones; a namespace with dnsmasq for DHCP and DNS;
//! * port: a veth pair from the bridge into a namespace (the "plug"), and stateful nftables
//!   rules for its security groups and anti-spoofing (see [`firewall`]);
//! * router: a namespace with one veth per attached network, a gateway veth into the external
//!   bridge, nftables SNAT and floating-IP DNAT/SNAT, static routes.
//!
//! The metadata address ([`METADATA_IP`]) sits on each DHCP namespace's interface, and DHCP
//! routes guests to it through the DHCP port; the region answers there (see [`netns`]).
//!
//! All work is done by running `ip`, `nft`, `dnsmasq` and `conntrack`; every command's failure
//! is an [`Error`] naming the command and its stderr. Names are built only from validated ids.

mod cmd;
mod conntrack;
mod dhcp;
mod ensure;
mod error;
pub mod firewall;
pub mod host;
pub mod hypervisor;
mod link;
pub mod model;
pub mod names;
pub mod netns;
pub mod network;
mod port;
mod router;

pub use dhcp::METADATA_IP;
pub use ensure::{Dataplane, EnsureReport};
pub use error::{Error, Result};
pub use model::*;
