//! Address arithmetic for IPAM: CIDRs, pools, numbers. IPv4 and IPv6 are
//! both handled as 128-bit numbers within a family.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use himmel_core::Error;
use ipnet::IpNet;

use crate::model::AllocationPool;

fn bad(msg: String) -> Error {
    Error::BadRequest(msg)
}

/// Parses a CIDR that must be given by its network address
/// (`10.0.0.0/24`, not `10.0.0.5/24`), as Neutron requires for subnets.
pub fn parse_subnet_cidr(s: &str) -> Result<IpNet, Error> {
    let net: IpNet = s.parse().map_err(|_| {
        bad(format!(
            "Invalid input for cidr. Reason: '{s}' is not a valid IP subnet."
        ))
    })?;
    if net.trunc() != net {
        return Err(bad(format!(
            "Invalid input for cidr. Reason: '{s}' isn't a recommended CIDR, use {} instead.",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Parses an address or CIDR (security group prefixes, address pairs,
/// routes); a bare address is a host prefix. Returns the normalised net.
pub fn parse_prefix(field: &str, s: &str) -> Result<IpNet, Error> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
        bad(format!(
            "Invalid input for {field}. Reason: '{s}' is not a valid IP address or CIDR."
        ))
    })
}

pub fn parse_ip(field: &str, s: &str) -> Result<IpAddr, Error> {
    s.parse::<IpAddr>().map_err(|_| {
        bad(format!(
            "Invalid input for {field}. Reason: '{s}' is not a valid IP address."
        ))
    })
}

pub fn version(net: &IpNet) -> i64 {
    match net {
        IpNet::V4(_) => 4,
        IpNet::V6(_) => 6,
    }
}

pub fn ip_version(ip: &IpAddr) -> i64 {
    if ip.is_ipv4() {
        4
    } else {
        6
    }
}

pub fn to_num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn from_num(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// The first and last usable host numbers of a subnet: IPv4 leaves out the
/// network and broadcast addresses, IPv6 the subnet-router anycast address.
pub fn usable_range(net: &IpNet) -> Option<(u128, u128)> {
    let first = to_num(net.network());
    let last = to_num(net.broadcast());
    let (lo, hi) = match net {
        IpNet::V4(_) if net.prefix_len() >= 31 => (first, last),
        IpNet::V4(_) => (first + 1, last - 1),
        IpNet::V6(_) if net.prefix_len() == 128 => (first, last),
        IpNet::V6(_) => (first + 1, last),
    };
    (lo <= hi).then_some((lo, hi))
}

/// True when `ip` may be a host address in `net` (inside, not the network
/// or broadcast address).
pub fn is_usable(net: &IpNet, ip: &IpAddr) -> bool {
    net.contains(ip) && usable_range(net).is_some_and(|(lo, hi)| (lo..=hi).contains(&to_num(*ip)))
}

/// The default pools: the usable range minus the gateway.
pub fn default_pools(net: &IpNet, gateway: Option<IpAddr>) -> Vec<AllocationPool> {
    let v4 = matches!(net, IpNet::V4(_));
    let Some((lo, hi)) = usable_range(net) else {
        return vec![];
    };
    let mut ranges = vec![(lo, hi)];
    if let Some(gw) = gateway.map(to_num) {
        ranges = ranges
            .into_iter()
            .flat_map(|(a, b)| {
                if gw < a || gw > b {
                    vec![(a, b)]
                } else {
                    let mut parts = vec![];
                    if gw > a {
                        parts.push((a, gw - 1));
                    }
                    if gw < b {
                        parts.push((gw + 1, b));
                    }
                    parts
                }
            })
            .collect();
    }
    ranges
        .into_iter()
        .map(|(a, b)| AllocationPool {
            start: from_num(v4, a).to_string(),
            end: from_num(v4, b).to_string(),
        })
        .collect()
}

/// Parsed pools as number ranges, validated against the subnet: inside it,
/// start <= end, not overlapping one another.
pub fn pool_ranges(net: &IpNet, pools: &[AllocationPool]) -> Result<Vec<(u128, u128)>, Error> {
    let mut ranges = Vec::with_capacity(pools.len());
    for p in pools {
        let start = parse_ip("allocation_pools", &p.start)?;
        let end = parse_ip("allocation_pools", &p.end)?;
        if !is_usable(net, &start) || !is_usable(net, &end) {
            return Err(bad(format!(
                "The allocation pool {}-{} spans beyond the subnet cidr {net}.",
                p.start, p.end
            )));
        }
        let (a, b) = (to_num(start), to_num(end));
        if a > b {
            return Err(bad(format!(
                "Invalid input for operation: The allocation pool {}-{} starts after it ends.",
                p.start, p.end
            )));
        }
        ranges.push((a, b));
    }
    let mut sorted = ranges.clone();
    sorted.sort();
    for w in sorted.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(bad(
                "Found overlapping allocation pools in the subnet.".to_string()
            ));
        }
    }
    Ok(ranges)
}

/// Number of addresses in pools (saturating: an IPv6 /64 is "a lot").
pub fn pool_size(ranges: &[(u128, u128)]) -> u128 {
    ranges
        .iter()
        .fold(0u128, |acc, (a, b)| acc.saturating_add(b - a + 1))
}

pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The address a host autoconfigures (SLAAC) in a /64 from its MAC:
/// the prefix, then the MAC with the universal/local bit flipped and
/// ff:fe in the middle (modified EUI-64).
pub fn eui64(net: &IpNet, mac: &str) -> Option<IpAddr> {
    let IpNet::V6(v6) = net else { return None };
    if v6.prefix_len() != 64 {
        return None;
    }
    let b: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let [m0, m1, m2, m3, m4, m5] = b[..] else {
        return None;
    };
    let iid = u64::from_be_bytes([m0 ^ 0x02, m1, m2, 0xff, 0xfe, m3, m4, m5]);
    let prefix = u128::from(v6.network());
    Some(IpAddr::V6(Ipv6Addr::from(prefix | u128::from(iid))))
}

/// A MAC address in OpenStack's locally administered prefix.
pub fn random_mac() -> String {
    let tail: [u8; 3] = rand::random();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", tail[0], tail[1], tail[2])
}

/// Validates a unicast MAC; returns it in lower case.
pub fn parse_mac(s: &str) -> Result<String, Error> {
    let parts: Vec<&str> = s.split(':').collect();
    let valid = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    let first = parts.first().and_then(|p| u8::from_str_radix(p, 16).ok());
    match (valid, first) {
        (true, Some(b)) if b & 1 == 0 && s != "00:00:00:00:00:00" => Ok(s.to_ascii_lowercase()),
        _ => Err(bad(format!(
            "Invalid input for mac_address. Reason: '{s}' is not a valid MAC address."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn default_pools_leave_out_gateway_network_and_broadcast() {
        let pools = default_pools(&net("10.0.0.0/24"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            pools,
            vec![AllocationPool {
                start: "10.0.0.2".into(),
                end: "10.0.0.254".into()
            }]
        );
        let pools = default_pools(&net("10.0.0.0/29"), Some("10.0.0.4".parse().unwrap()));
        assert_eq!(pools.len(), 2);
        assert_eq!(
            (pools[0].end.as_str(), pools[1].start.as_str()),
            ("10.0.0.3", "10.0.0.5")
        );
        let v6 = default_pools(&net("fd00::/64"), Some("fd00::1".parse().unwrap()));
        assert_eq!(v6[0].start, "fd00::2");
        assert_eq!(v6[0].end, "fd00::ffff:ffff:ffff:ffff");
    }

    #[test]
    fn cidrs_must_be_network_addresses() {
        assert!(parse_subnet_cidr("10.0.0.0/24").is_ok());
        assert!(parse_subnet_cidr("10.0.0.5/24").is_err());
        assert!(parse_subnet_cidr("10.0.0.0/33").is_err());
        assert!(parse_subnet_cidr("banana").is_err());
    }

    #[test]
    fn pools_outside_or_overlapping_are_refused() {
        let n = net("10.0.0.0/24");
        let p = |a: &str, b: &str| AllocationPool {
            start: a.into(),
            end: b.into(),
        };
        assert!(pool_ranges(&n, &[p("10.0.0.10", "10.0.0.20")]).is_ok());
        assert!(pool_ranges(&n, &[p("10.0.0.10", "10.0.1.20")]).is_err());
        assert!(pool_ranges(&n, &[p("10.0.0.20", "10.0.0.10")]).is_err());
        assert!(pool_ranges(&n, &[p("10.0.0.0", "10.0.0.10")]).is_err());
        assert!(pool_ranges(
            &n,
            &[p("10.0.0.10", "10.0.0.20"), p("10.0.0.15", "10.0.0.30")]
        )
        .is_err());
    }

    #[test]
    fn slaac_addresses_come_from_the_mac() {
        let ip = eui64(&net("2001:db8:1::/64"), "fa:16:3e:12:34:56").unwrap();
        assert_eq!(ip.to_string(), "2001:db8:1:0:f816:3eff:fe12:3456");
        assert!(eui64(&net("2001:db8:1::/80"), "fa:16:3e:12:34:56").is_none());
        assert!(eui64(&net("10.0.0.0/24"), "fa:16:3e:12:34:56").is_none());
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("FA:16:3E:00:00:01").unwrap(), "fa:16:3e:00:00:01");
        assert!(parse_mac("01:00:5e:00:00:01").is_err(), "multicast");
        assert!(parse_mac("fa:16:3e:00:00").is_err());
        assert!(parse_mac(&random_mac()).is_ok());
    }
}
