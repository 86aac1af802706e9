//! Reading and changing links, addresses, routes and namespaces with `ip -j`.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

use crate::cmd::{in_netns, ip};
use crate::error::{Error, Result};
use crate::model::MacAddr;

/// Where named namespaces live (`ip netns add` creates a bind mount here).
pub const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, Deserialize)]
struct RawLink {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    mtu: Option<u32>,
    master: Option<String>,
    address: Option<String>,
    linkinfo: Option<RawLinkInfo>,
}

#[derive(Debug, Deserialize)]
struct RawLinkInfo {
    info_kind: Option<String>,
    info_data: Option<serde_json::Value>,
}

/// What the dataplane needs to know about an existing link.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub kind: Option<String>,
    pub master: Option<String>,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// VXLAN devices: the VNI.
    pub vni: Option<u64>,
}

fn parse_links(json: &str) -> Result<Vec<Link>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<RawLink> = serde_json::from_str(json)
        .map_err(|e| Error::invalid(format!("cannot read `ip -j link` output: {e}")))?;
    Ok(raw
        .into_iter()
        .map(|r| {
            let (kind, vni) = match r.linkinfo {
                Some(info) => (
                    info.info_kind,
                    info.info_data
                        .as_ref()
                        .and_then(|d| d.get("id"))
                        .and_then(|v| v.as_u64()),
                ),
                None => (None, None),
            };
            Link {
                // `ip` shows a veth as `name@peer` only in text output; JSON has the plain name.
                name: r.ifname,
                kind,
                master: r.master,
                mac: r.address.and_then(|a| a.parse().ok()),
                mtu: r.mtu,
                up: r.flags.iter().any(|f| f == "UP"),
                vni,
            }
        })
        .collect())
}

/// Every link in the root namespace or in `netns`.
pub fn links(netns: Option<&str>) -> Result<Vec<Link>> {
    parse_links(&ip(netns, &["-d", "-j", "link", "show"])?)
}

/// One link, or `None` when it does not exist.
pub fn link(netns: Option<&str>, name: &str) -> Result<Option<Link>> {
    match ip(netns, &["-d", "-j", "link", "show", "dev", name]) {
        Ok(json) => Ok(parse_links(&json)?.into_iter().find(|l| l.name == name)),
        // "No such device": it went between ip's name lookup and its query (a veth deleted
        // with its peer, a namespace going away); gone all the same.
        Err(e) if is_gone(&e.to_string()) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_gone(message: &str) -> bool {
    message.contains("does not exist") || message.contains("No such device")
}

/// Deletes a link; one that is already gone is fine (deleting a veth or a
/// namespace takes its peer with it, so a listing can be stale by now).
pub fn delete_link(netns: Option<&str>, name: &str) -> Result<()> {
    match ip(netns, &["link", "del", "dev", name]) {
        Err(e) if e.to_string().contains("Cannot find device") => Ok(()),
        other => other.map(drop),
    }
}

/// Brings a link up with the given MTU (and, when given, master).
pub fn set_up(netns: Option<&str>, name: &str, mtu: u32, master: Option<&str>) -> Result<()> {
    let mtu = mtu.to_string();
    let mut args = vec!["link", "set", "dev", name, "mtu", mtu.as_str()];
    if let Some(m) = master {
        args.extend(["master", m]);
    }
    args.push("up");
    ip(netns, &args).map(drop)
}

#[derive(Debug, Deserialize)]
struct RawAddrLink {
    #[serde(default)]
    addr_info: Vec<RawAddr>,
}

#[derive(Debug, Deserialize)]
struct RawAddr {
    local: IpAddr,
    prefixlen: u8,
    scope: Option<String>,
}

/// The global addresses of a link.
pub fn addresses(netns: Option<&str>, dev: &str) -> Result<Vec<IpNet>> {
    let json = ip(netns, &["-j", "addr", "show", "dev", dev])?;
    let raw: Vec<RawAddrLink> = serde_json::from_str(&json)
        .map_err(|e| Error::invalid(format!("cannot read `ip -j addr` output: {e}")))?;
    Ok(raw
        .into_iter()
        .flat_map(|l| l.addr_info)
        .filter(|a| a.scope.as_deref() == Some("global"))
        .filter_map(|a| IpNet::new(a.local, a.prefixlen).ok())
        .collect())
}

/// Makes the link's global addresses exactly `wanted`.
pub fn sync_addresses(netns: Option<&str>, dev: &str, wanted: &[IpNet]) -> Result<()> {
    let have = addresses(netns, dev)?;
    for extra in have.iter().filter(|a| !wanted.contains(a)) {
        ip(netns, &["addr", "del", &extra.to_string(), "dev", dev])?;
    }
    for missing in wanted.iter().filter(|a| !have.contains(a)) {
        // IPv6 duplicate address detection would delay the address for a second or two.
        let mut args = vec!["addr", "add", "", "dev", dev];
        let text = missing.to_string();
        args[2] = &text;
        if missing.addr().is_ipv6() {
            args.push("nodad");
        }
        ip(netns, &args)?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct RawRoute {
    dst: String,
    gateway: Option<IpAddr>,
}

/// Makes the `proto static` routes of a namespace exactly `wanted` (destination, next hop).
/// Only routes we add carry `proto static`, so kernel routes of the interfaces stay alone.
pub fn sync_static_routes(netns: &str, wanted: &[(IpNet, IpAddr)]) -> Result<()> {
    let mut have = Vec::new();
    for family in ["-4", "-6"] {
        let json = ip(
            Some(netns),
            &[family, "-j", "route", "show", "proto", "static"],
        )?;
        if json.trim().is_empty() {
            continue;
        }
        let raw: Vec<RawRoute> = serde_json::from_str(&json)
            .map_err(|e| Error::invalid(format!("cannot read `ip -j route` output: {e}")))?;
        for r in raw {
            let dst = match (r.dst.as_str(), family) {
                ("default", "-4") => "0.0.0.0/0".parse().ok(),
                ("default", _) => "::/0".parse().ok(),
                (d, _) => d.parse::<IpNet>().ok().or_else(|| {
                    d.parse::<IpAddr>().ok().map(|a| {
                        IpNet::new(a, if a.is_ipv4() { 32 } else { 128 }).unwrap_or(IpNet::from(a))
                    })
                }),
            };
            if let (Some(dst), Some(gw)) = (dst, r.gateway) {
                have.push((dst, gw));
            }
        }
    }
    for (dst, gw) in have.iter().filter(|r| !wanted.contains(r)) {
        ip(
            Some(netns),
            &[
                "route",
                "del",
                &dst.to_string(),
                "via",
                &gw.to_string(),
                "proto",
                "static",
            ],
        )?;
    }
    for (dst, gw) in wanted.iter().filter(|r| !have.contains(r)) {
        ip(
            Some(netns),
            &[
                "route",
                "replace",
                &dst.to_string(),
                "via",
                &gw.to_string(),
                "proto",
                "static",
            ],
        )?;
    }
    Ok(())
}

/// Named namespaces on the host.
pub fn netns_list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {NETNS_DIR}"), e)),
    };
    Ok(dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

pub fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// Creates a namespace (with `lo` up) unless it exists.
pub fn ensure_netns(name: &str) -> Result<()> {
    if !netns_exists(name) {
        ip(None, &["netns", "add", name])?;
    }
    ip(Some(name), &["link", "set", "dev", "lo", "up"]).map(drop)
}

pub fn delete_netns(name: &str) -> Result<()> {
    ip(None, &["netns", "del", name]).map(drop)
}

/// Sets a sysctl inside a namespace.
pub fn netns_sysctl(netns: &str, key: &str, value: &str) -> Result<()> {
    in_netns(netns, "sysctl", &["-qw", &format!("{key}={value}")]).map(drop)
}

/// Creates a veth pair that does not exist yet, in three commands instead of the checks and
/// six of [`ensure_veth`]: the pair with its MTUs, MAC, master and namespace at once, then the
/// host end's address mode and both ends up (the address mode must be set before the host end
/// comes up, and the kernel refuses both on creation, as it refuses the inner end up there).
/// On an error the caller falls back to [`ensure_veth`], which repairs whatever half exists.
pub fn create_veth(
    host: &str,
    bridge: &str,
    mtu: u32,
    netns: &str,
    inner: &str,
    mac: MacAddr,
) -> Result<()> {
    let (mtu, mac) = (mtu.to_string(), mac.to_string());
    ip(
        None,
        &[
            "link", "add", host, "mtu", &mtu, "master", bridge, "type", "veth", "peer", "name",
            inner, "address", &mac, "mtu", &mtu, "netns", netns,
        ],
    )?;
    // The bridge port needs no IPv6 link-local address of its own.
    ip(
        None,
        &["link", "set", "dev", host, "addrgenmode", "none", "up"],
    )?;
    ip(Some(netns), &["link", "set", "dev", inner, "up"]).map(drop)
}

/// Makes a veth pair whose host end `host` is attached to `bridge` and whose other end is
/// `inner` with `mac` inside `netns`. Repairs a half-present pair by recreating it.
pub fn ensure_veth(
    host: &str,
    bridge: &str,
    mtu: u32,
    netns: &str,
    inner: &str,
    mac: MacAddr,
) -> Result<()> {
    let mut host_link = link(None, host)?;
    let mut inner_link = link(Some(netns), inner)?;
    let intact = matches!((&host_link, &inner_link), (Some(h), Some(i))
        if h.kind.as_deref() == Some("veth") && i.kind.as_deref() == Some("veth") && i.mac == Some(mac));
    if !intact {
        if host_link.is_some() {
            delete_link(None, host)?;
        }
        if inner_link.is_some() {
            delete_link(Some(netns), inner)?;
        }
        let mac = mac.to_string();
        ip(
            None,
            &[
                "link", "add", host, "type", "veth", "peer", "name", inner, "address", &mac,
                "netns", netns,
            ],
        )?;
        // The bridge port needs no IPv6 link-local address of its own.
        ip(None, &["link", "set", "dev", host, "addrgenmode", "none"])?;
        (host_link, inner_link) = (None, None);
    }
    if !host_link.is_some_and(|h| h.up && h.master.as_deref() == Some(bridge) && h.mtu == Some(mtu))
    {
        set_up(None, host, mtu, Some(bridge))?;
    }
    if !inner_link.is_some_and(|i| i.up && i.mtu == Some(mtu)) {
        set_up(Some(netns), inner, mtu, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vxlan_and_bridge_ports() {
        let json = r#"[{"ifname":"hbx1","flags":["BROADCAST","UP"],"mtu":1450,"master":"hbb1",
            "address":"fa:16:3e:00:00:01","linkinfo":{"info_kind":"vxlan","info_data":{"id":42}}},
            {"ifname":"lo","flags":["LOOPBACK"],"mtu":65536,"address":"00:00:00:00:00:00"}]"#;
        let links = parse_links(json).unwrap();
        assert_eq!(links[0].vni, Some(42));
        assert_eq!(links[0].master.as_deref(), Some("hbb1"));
        assert!(links[0].up);
        assert!(!links[1].up);
        assert_eq!(links[1].kind, None);
    }
}
