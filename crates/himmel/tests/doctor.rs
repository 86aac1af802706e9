//! `himmel doctor` tells whether this host can run the network dataplane.

use std::process::Command;

#[test]
fn doctor_gives_the_dataplane_verdict_of_this_host() {
    let out = Command::new(env!("CARGO_BIN_EXE_himmel"))
        .arg("doctor")
        .output()
        .expect("himmel doctor");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let verdict = text
        .lines()
        .find(|l| l.contains("network dataplane"))
        .unwrap_or_else(|| panic!("no dataplane line in:\n{text}"));
    match himmel_agent::host::can_run() {
        Ok(()) => assert!(verdict.starts_with("ok "), "{verdict}"),
        Err(missing) => {
            assert!(verdict.starts_with("no "), "{verdict}");
            assert!(
                verdict.contains(&missing),
                "names what is missing: {verdict}"
            );
        }
    }
    for item in [
        "root privileges",
        "iproute2",
        "nftables",
        "dnsmasq",
        "VXLAN",
        "bridge netfilter",
    ] {
        assert!(text.contains(item), "checks {item}:\n{text}");
    }
}
