//! Hypervisor benchmark, as root, printing JSON lines:
//! * `boot`: time from `start` until it returns (the moment the reconciler reports ACTIVE) and
//!   until the guest's web server answers over its DHCP address, for a namespace instance, a
//!   QEMU guest with KVM (when the probe passes) and one with TCG;
//! * `density`: N namespace instances running at once, the memory they use (their cgroups'
//!   usage), and what that makes per GiB of RAM.
//!
//! Usage: `scripts/build-test-image DIR` then
//! `cargo run --release -p himmel-agent --example hypervisor_bench -- DIR [N]` (N defaults to 20).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use himmel_agent::hypervisor::{Boot, Driver, Hypervisor, InstanceSpec, Nic};
use himmel_agent::MacAddr;

const PREFIX: &str = "hb";
const NET: &str = "hb-bench-net";
const MARK: &str = "himmel-test-image: lease ";

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge with dnsmasq in its own namespace: the "network" every instance is plugged into.
struct Network {
    dnsmasq: Child,
    _leases: tempfile::TempDir,
}

impl Network {
    fn new() -> Network {
        let _ = Command::new("ip")
            .args(["netns", "del", NET])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", NET]);
        sh(&["ip", "-n", NET, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", NET, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", NET, "addr", "add", "10.78.0.1/16", "dev", "br0"]);
        sh(&["ip", "-n", NET, "link", "set", "br0", "up"]);
        let leases = tempfile::tempdir().expect("temp dir");
        let dnsmasq = Command::new("ip")
            .args([
                "netns",
                "exec",
                NET,
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
            ])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--port=0",
                "--bind-interfaces",
                "--interface=br0",
            ])
            .args(["--except-interface=lo", "--user=root", "--pid-file="])
            .arg("--dhcp-range=10.78.1.1,10.78.255.254,255.255.0.0,1h")
            .arg(format!(
                "--dhcp-leasefile={}",
                leases.path().join("leases").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        Network {
            dnsmasq,
            _leases: leases,
        }
    }

    fn plug(&self, hv: &Hypervisor, id: &str) {
        hv.prepare(id).expect("prepare");
        let ns = hv.netns(id);
        let host_end = format!("v{}", &id[..8]);
        sh(&[
            "ip", "-n", NET, "link", "add", &host_end, "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        sh(&[
            "ip", "-n", NET, "link", "set", &host_end, "master", "br0", "up",
        ]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "link",
            "set",
            "eth0",
            "address",
            &mac(id).to_string(),
        ]);
    }

    fn answers(&self, ip: &str) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                NET,
                "curl",
                "-sf",
                "-m",
                "1",
                "-o",
                "/dev/null",
            ])
            .arg(format!("http://{ip}/"))
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
        let _ = Command::new("ip").args(["netns", "del", NET]).status();
    }
}

fn mac(id: &str) -> MacAddr {
    MacAddr::derived(id)
}

fn spec(id: &str, driver: Driver, image: &Path, memory_mib: u64) -> InstanceSpec {
    let boot = match driver {
        Driver::Namespace => Boot::RootFs {
            initrd: image.join("initramfs.cpio.gz"),
        },
        Driver::Qemu => Boot::Kernel {
            kernel: image.join("vmlinuz"),
            initrd: Some(image.join("initramfs.cpio.gz")),
            cmdline: "console=ttyS0 quiet hostname=bench".into(),
        },
    };
    InstanceSpec {
        id: id.to_string(),
        driver,
        vcpus: 1,
        memory_mib,
        boot,
        nics: vec![Nic {
            port_id: uuid::Uuid::new_v4().to_string(),
            mac: mac(id),
        }],
        config_drive: None,
        hostname: "bench".into(),
    }
}

/// The leased address once the console shows it.
fn lease(hv: &Hypervisor, id: &str, deadline: Instant) -> Option<String> {
    while Instant::now() < deadline {
        let console = hv.console_output(id, None).ok()?;
        if let Some(ip) = console.lines().find_map(|l| {
            l.trim_end_matches('\r')
                .split_once(MARK)
                .map(|(_, ip)| ip.trim().to_string())
        }) {
            return Some(ip);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Seconds from `start` until the guest answers on port 80 (None: not within `timeout`).
fn boot_time(
    hv: &Hypervisor,
    net: &Network,
    spec: &InstanceSpec,
    timeout: Duration,
) -> (f64, Option<f64>) {
    net.plug(hv, &spec.id);
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    hv.start(spec).expect("start");
    // When `start` returns the reconciler reports the server ACTIVE.
    let started = t0.elapsed().as_secs_f64();
    let Some(ip) = lease(hv, &spec.id, deadline) else {
        return (started, None);
    };
    while Instant::now() < deadline {
        if net.answers(&ip) {
            return (started, Some(t0.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (started, None)
}

fn cgroup_memory(id: &str) -> u64 {
    let root = Path::new("/sys/fs/cgroup");
    let group = format!("himmel-{PREFIX}");
    [
        root.join(&group).join(id).join("memory.current"),
        root.join("memory")
            .join(&group)
            .join(id)
            .join("memory.usage_in_bytes"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let image = PathBuf::from(args.next().expect("usage: hypervisor_bench IMAGE_DIR [N]"));
    let n: usize = args.next().map(|s| s.parse().expect("N")).unwrap_or(20);
    let state = tempfile::tempdir().expect("temp dir");
    let hv = Hypervisor::new(PREFIX, state.path().to_path_buf()).expect("hypervisor");
    let net = Network::new();

    let mut runs = vec![("namespace", Driver::Namespace, hv.kvm())];
    if hv.kvm() {
        runs.push(("qemu-kvm", Driver::Qemu, true));
    }
    runs.push(("qemu-tcg", Driver::Qemu, false));
    for (name, driver, kvm) in runs {
        let tcg_hv;
        let hv = if driver == Driver::Qemu && !kvm && hv.kvm() {
            tcg_hv = Hypervisor::new(PREFIX, state.path().to_path_buf())
                .expect("hypervisor")
                .without_kvm();
            &tcg_hv
        } else {
            &hv
        };
        let id = uuid::Uuid::new_v4().to_string();
        let (started, reachable) = boot_time(
            hv,
            &net,
            &spec(&id, driver, &image, 256),
            Duration::from_secs(300),
        );
        println!(
            "{}",
            serde_json::json!({"bench": "boot", "driver": name, "seconds_to_started": started,
                               "seconds_to_reachable": reachable})
        );
        hv.remove(&id).expect("remove");
    }

    // Density: N namespace instances at once, each limited to 64 MiB.
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let t0 = Instant::now();
    let mut reachable = 0;
    for id in &ids {
        if boot_time(
            &hv,
            &net,
            &spec(id, Driver::Namespace, &image, 64),
            Duration::from_secs(60),
        )
        .1
        .is_some()
        {
            reachable += 1;
        }
    }
    let used: u64 = ids.iter().map(|id| cgroup_memory(id)).sum();
    let per_instance = used as f64 / n.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "bench": "density",
            "driver": "namespace",
            "instances": n,
            "reachable": reachable,
            "seconds_to_start_all": t0.elapsed().as_secs_f64(),
            "memory_bytes": used,
            "memory_per_instance_bytes": per_instance as u64,
            "instances_per_gib": if per_instance > 0.0 { (1u64 << 30) as f64 / per_instance } else { 0.0 },
        })
    );
    for id in &ids {
        hv.remove(id).expect("remove");
    }
}
