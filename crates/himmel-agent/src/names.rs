//! Names of everything the dataplane creates.
//!
//! Interface names must fit IFNAMSIZ (15 bytes): `<prefix><kind><11 hex digits of the id>`,
//! with a prefix of 1 to 3 characters. Because the length is exact and the kind is one letter,
//! a dataplane with prefix `t1` never mistakes an interface of prefix `t10` for its own.
//! Namespaces have no length limit and carry the whole id: `<prefix>-dhcp-<network id>`,
//! `<prefix>-router-<router id>`.

use crate::error::{Error, Result};

/// Hex digits of an id kept in interface names (44 bits: collisions are not a practical concern
/// for UUIDs).
const ID_DIGITS: usize = 11;

/// What an interface is for; the letter after the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Linux bridge of a network.
    Bridge,
    /// The VXLAN device of a network.
    Vxlan,
    /// The host end of a plugged port.
    Port,
    /// The host end of a network's DHCP namespace.
    Dhcp,
    /// The host end of a router interface.
    RouterInterface,
    /// The host end of a router's external gateway.
    RouterGateway,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Bridge,
        Kind::Vxlan,
        Kind::Port,
        Kind::Dhcp,
        Kind::RouterInterface,
        Kind::RouterGateway,
    ];

    fn letter(self) -> char {
        match self {
            Kind::Bridge => 'b',
            Kind::Vxlan => 'x',
            Kind::Port => 't',
            Kind::Dhcp => 'd',
            Kind::RouterInterface => 'r',
            Kind::RouterGateway => 'g',
        }
    }
}

/// Checks a dataplane prefix: 1 to 3 characters, a lowercase letter then letters or digits.
pub fn check_prefix(prefix: &str) -> Result<()> {
    let mut chars = prefix.chars();
    let ok = (1..=3).contains(&prefix.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "dataplane prefix {prefix:?} must be 1-3 lowercase letters or digits, starting with a letter"
        )))
    }
}

/// Checks that an id is a UUID-like string (hex digits and dashes, at least 11 digits): only
/// such ids ever become part of a name or a command argument.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    let digits = id.chars().filter(|c| *c != '-').count();
    if digits >= ID_DIGITS
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        Ok(())
    } else {
        Err(Error::invalid(format!("{what} id {id:?} is not a UUID")))
    }
}

/// Checks an interface name given from outside (a plug's name inside its namespace, an uplink).
pub fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "interface name {name:?} is not valid"
        )))
    }
}

/// Checks a namespace name given from outside (where a port is plugged).
pub fn check_netns(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "namespace name {name:?} is not valid"
        )))
    }
}

fn short(id: &str) -> String {
    id.chars()
        .filter(|c| *c != '-')
        .take(ID_DIGITS)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Name generator for one dataplane prefix.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Result<Self> {
        check_prefix(prefix)?;
        Ok(Names {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The host interface of `kind` for the object `id` (validated with [`check_id`]).
    pub fn link(&self, kind: Kind, id: &str) -> String {
        format!("{}{}{}", self.prefix, kind.letter(), short(id))
    }

    /// Which of our kinds `name` is, when it is one of this prefix's interfaces.
    pub fn owns_link(&self, name: &str) -> Option<Kind> {
        let rest = name.strip_prefix(&self.prefix)?;
        let mut chars = rest.chars();
        let letter = chars.next()?;
        let digits = chars.as_str();
        if digits.len() != ID_DIGITS
            || !digits
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return None;
        }
        Kind::ALL.into_iter().find(|k| k.letter() == letter)
    }

    pub fn dhcp_netns(&self, network_id: &str) -> String {
        format!("{}-dhcp-{}", self.prefix, network_id.to_ascii_lowercase())
    }

    pub fn router_netns(&self, router_id: &str) -> String {
        format!("{}-router-{}", self.prefix, router_id.to_ascii_lowercase())
    }

    /// The namespace of an instance (`device_id`) whose ports this host plugs. The instance's
    /// driver (or a test) creates it; the dataplane never creates or deletes it.
    pub fn instance_netns(&self, device_id: &str) -> String {
        format!(
            "{}-instance-{}",
            self.prefix,
            device_id.to_ascii_lowercase()
        )
    }

    /// Whether a namespace is one of ours (a DHCP or router namespace of this prefix).
    pub fn owns_netns(&self, name: &str) -> bool {
        [
            format!("{}-dhcp-", self.prefix),
            format!("{}-router-", self.prefix),
        ]
        .iter()
        .any(|p| {
            name.strip_prefix(p.as_str())
                .is_some_and(|id| check_id("", id).is_ok())
        })
    }

    /// The nftables table names (root namespace) of this prefix.
    pub fn ct_table(&self) -> String {
        format!("{}_conntrack", self.prefix)
    }

    pub fn sg_table(&self) -> String {
        format!("{}_security_groups", self.prefix)
    }

    pub fn nat_table(&self) -> String {
        format!("{}_nat", self.prefix)
    }
}

/// The interface names inside our own namespaces (they only need to be unique there).
pub fn router_inner(kind: Kind, port_id: &str) -> String {
    let letter = match kind {
        Kind::RouterGateway => 'g',
        _ => 'i',
    };
    format!("{letter}{}", short(port_id))
}

/// The DHCP server's interface inside its namespace.
pub const DHCP_INNER: &str = "dhcp0";

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a1c9d-0e4b-4c8a-9f1e-2d3c4b5a6f70";

    #[test]
    fn names_fit_ifnamsiz_and_are_recognised() {
        let n = Names::new("abc").unwrap();
        let name = n.link(Kind::Port, ID);
        assert_eq!(name, "abct3f2a1c9d0e4");
        assert!(name.len() <= 15);
        assert_eq!(n.owns_link(&name), Some(Kind::Port));
        assert_eq!(n.owns_link("eth0"), None);
        assert_eq!(n.owns_link("abct3f2a1c9d0e"), None, "one digit short");
    }

    #[test]
    fn a_longer_prefix_is_not_ours() {
        let t1 = Names::new("t1").unwrap();
        let t10 = Names::new("t10").unwrap();
        assert_eq!(t1.owns_link(&t10.link(Kind::Bridge, ID)), None);
        assert!(!t1.owns_netns(&t10.dhcp_netns(ID)));
        assert!(t10.owns_netns(&t10.router_netns(ID)));
        assert!(
            !t10.owns_netns(&t10.instance_netns(ID)),
            "instances' namespaces are never removed by the dataplane"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(Names::new("").is_err());
        assert!(Names::new("abcd").is_err());
        assert!(Names::new("1a").is_err());
        assert!(check_id("port", "../../etc").is_err());
        assert!(check_id("port", "abc").is_err());
        assert!(check_id("port", ID).is_ok());
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("a b").is_err());
        assert!(check_ifname("sixteen-chars-xx").is_err());
        assert!(check_netns("../x").is_err());
    }
}
