//! Cutting tracked flows that the security group rules no longer allow, as Neutron does when a
//! rule is removed: without this an established connection would outlive its rule.

use crate::cmd::run;
use crate::error::Result;
use crate::firewall::{allows, Flow};
use crate::model::{Direction, Port, PortSecurity};

/// Parses one line of `conntrack -L` (original direction: the first src/dst/ports).
fn parse_line(line: &str) -> Option<Flow> {
    let mut words = line.split_whitespace();
    words.next()?; // protocol name
    let protocol: u8 = words.next()?.parse().ok()?;
    let mut src = None;
    let mut dst = None;
    let mut dport = None;
    let mut icmp_type = None;
    let mut code = None;
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            continue;
        };
        match k {
            "src" if src.is_none() => src = v.parse().ok(),
            "dst" if dst.is_none() => dst = v.parse().ok(),
            "dport" if dport.is_none() => dport = v.parse().ok(),
            "type" if icmp_type.is_none() => icmp_type = v.parse().ok(),
            "code" if code.is_none() => code = v.parse().ok(),
            _ => {}
        }
    }
    Some(Flow {
        protocol,
        src: src?,
        dst: dst?,
        dport_or_type: dport.or(icmp_type),
        code,
    })
}

/// Deletes the flows in `zone` to or from `ports` that their rules no longer allow. Returns
/// how many were cut.
pub fn cut_disallowed(zone: u16, ports: &[(&Port, &PortSecurity)]) -> Result<usize> {
    let zone = zone.to_string();
    let listing = match run("conntrack", &["-L", "-w", &zone]) {
        Ok(out) => out,
        // An empty table is not an error for us.
        Err(e) if e.to_string().contains("0 flow entries") => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut cut = 0;
    for flow in listing.lines().filter_map(parse_line) {
        let denied = ports.iter().any(|(port, sec)| {
            (port.ips.contains(&flow.dst) && !allows(sec, Direction::Ingress, &flow))
                || (port.ips.contains(&flow.src) && !allows(sec, Direction::Egress, &flow))
        });
        if !denied {
            continue;
        }
        let (proto, src, dst) = (
            flow.protocol.to_string(),
            flow.src.to_string(),
            flow.dst.to_string(),
        );
        let mut args = vec!["-D", "-w", &zone, "-p", &proto, "-s", &src, "-d", &dst];
        let dport = flow.dport_or_type.map(|p| p.to_string());
        if let (Some(d), 6 | 17 | 33 | 132) = (&dport, flow.protocol) {
            args.extend(["--dport", d.as_str()]);
        }
        match run("conntrack", &args) {
            Ok(_) => cut += 1,
            // Gone meanwhile (expired or deleted with an earlier match).
            Err(e) if e.to_string().contains("0 flow entries") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_original_direction() {
        let line =
            "tcp      6 431999 ESTABLISHED src=10.0.0.5 dst=10.0.0.6 sport=40000 dport=8080 \
                    src=10.0.0.6 dst=10.0.0.5 sport=8080 dport=40000 [ASSURED] mark=0 zone=3 use=1";
        let f = parse_line(line).unwrap();
        assert_eq!(f.protocol, 6);
        assert_eq!(f.src.to_string(), "10.0.0.5");
        assert_eq!(f.dport_or_type, Some(8080));
        let icmp =
            "icmp     1 29 src=10.0.0.5 dst=10.0.0.6 type=8 code=0 id=7 src=10.0.0.6 dst=10.0.0.5 \
                    type=0 code=0 id=7 mark=0 zone=3 use=1";
        let f = parse_line(icmp).unwrap();
        assert_eq!((f.protocol, f.dport_or_type, f.code), (1, Some(8), Some(0)));
    }
}
