//! Both hypervisor drivers boot the test image (scripts/build-test-image) for real, as root: the
//! test stands in for the network reconciler (a veth `eth0` into the instance's namespace, its
//! other end on a bridge with dnsmasq), waits for the guest's DHCP lease on the console, talks
//! to the guest's web server, and goes through the lifecycle: idempotent start, pause, a new
//! `Hypervisor` finding the running instance, reboot, graceful stop, remove leaving nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use himmel_agent::hypervisor::{Boot, DiskFormat, Driver, Hypervisor, InstanceSpec, Nic};
use himmel_agent::MacAddr;

const MARK: &str = "himmel-test-image: ";

/// Why these tests cannot run here, if they cannot.
fn skip_reason(needs_qemu: bool) -> Option<String> {
    // SAFETY: geteuid has no side effects.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    let mut tools = vec!["ip", "tc", "dnsmasq", "curl", "apt-get", "dpkg-deb"];
    if needs_qemu {
        tools.push("qemu-system-x86_64");
    }
    for tool in tools {
        if himmel_agent::host::find_program(tool).is_none() {
            return Some(format!(
                "`{tool}` is missing (scripts/test-deps installs it)"
            ));
        }
    }
    None
}

fn skip(test: &str, needs_qemu: bool) -> bool {
    match skip_reason(needs_qemu) {
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            true
        }
        None => false,
    }
}

/// The test image, built once per target directory (under a lock: tests run in parallel
/// processes).
fn image() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-image");
    std::fs::create_dir_all(&out).expect("image dir");
    let lock = std::fs::File::create(out.with_extension("lock")).expect("lock file");
    use std::os::fd::AsRawFd;
    // SAFETY: flock on an fd we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-image");
    let status = Command::new(script)
        .arg(&out)
        .status()
        .expect("run build-test-image");
    assert!(status.success(), "scripts/build-test-image failed");
    out
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// One test's world: a hypervisor with its own prefix and state, and a "network" namespace with
/// a bridge and dnsmasq that instances are plugged into.
struct Lab {
    hv: Option<Hypervisor>,
    prefix: String,
    state: tempfile::TempDir,
    net: String,
    dnsmasq: Child,
    ids: Vec<String>,
}

const GATEWAY: &str = "10.77.0.1";

/// Deep enough that a socket's path inside an instance's directory would not fit in a socket
/// address (108 bytes), as a region's data directory may well be.
fn instances_dir(state: &tempfile::TempDir) -> PathBuf {
    state
        .path()
        .join("a-data-directory-nested-deeply-enough-to-overflow-a-socket-address")
        .join("instances")
}

impl Lab {
    fn new(prefix: &str) -> Lab {
        let state = tempfile::tempdir().expect("state dir");
        let hv = Hypervisor::new(prefix, instances_dir(&state)).expect("hypervisor");
        let net = format!("{prefix}-hvnet");
        quiet(&["ip", "netns", "del", &net]);
        sh(&["ip", "netns", "add", &net]);
        sh(&["ip", "-n", &net, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &net, "link", "add", "br0", "type", "bridge"]);
        sh(&[
            "ip",
            "-n",
            &net,
            "addr",
            "add",
            &format!("{GATEWAY}/24"),
            "dev",
            "br0",
        ]);
        sh(&["ip", "-n", &net, "link", "set", "br0", "up"]);
        let leases = state.path().join("leases");
        let dnsmasq = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net,
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
            .arg("--dhcp-range=10.77.0.10,10.77.0.200,255.255.255.0,1h")
            // As on a VXLAN tenant network: the guest must take the smaller MTU from DHCP.
            .arg("--dhcp-option=option:mtu,1400")
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        Lab {
            hv: Some(hv),
            prefix: prefix.to_string(),
            state,
            net,
            dnsmasq,
            ids: Vec::new(),
        }
    }

    fn hv(&self) -> &Hypervisor {
        self.hv.as_ref().expect("hypervisor")
    }

    /// A region restart: a new Hypervisor object on the same state.
    fn restart_hypervisor(&mut self) {
        self.hv = None;
        self.hv =
            Some(Hypervisor::new(&self.prefix, instances_dir(&self.state)).expect("hypervisor"));
    }

    /// Prepares an instance's namespace and plugs one port into it as eth0 (what the network
    /// reconciler does).
    fn plug(&mut self, id: &str, mac: MacAddr) {
        self.ids.push(id.to_string());
        self.hv().prepare(id).expect("prepare");
        self.hv().prepare(id).expect("prepare is idempotent");
        let ns = self.hv().netns(id);
        let host_end = format!("v{}", &id[..8]);
        sh(&[
            "ip", "-n", &self.net, "link", "add", &host_end, "type", "veth", "peer", "name",
            "eth0", "netns", &ns,
        ]);
        sh(&[
            "ip", "-n", &self.net, "link", "set", &host_end, "master", "br0", "up",
        ]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "link",
            "set",
            "eth0",
            "address",
            &mac.to_string(),
        ]);
    }

    /// The body of http://ip/ from the network namespace, if the guest answers.
    fn http(&self, ip: &str) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.net, "curl", "-sf", "-m", "2"])
            .arg(format!("http://{ip}/"))
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until the guest at `ip` answers; returns the body.
    fn wait_http(&self, id: &str, ip: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(body) = self.http(ip) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{ip} does not answer on port 80; console:\n{}",
                self.hv().console_output(id, None).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the console shows `marker` for the `nth` time (1-based); returns the rest of
    /// that line.
    fn wait_console(&self, id: &str, marker: &str, nth: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let console = self.hv().console_output(id, None).expect("console");
            let found: Vec<&str> = console
                .lines()
                .filter_map(|l| {
                    l.trim_end_matches('\r')
                        .split_once(&format!("{MARK}{marker}"))
                })
                .map(|(_, rest)| rest)
                .collect();
            if let Some(rest) = found.get(nth - 1) {
                return rest.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {marker:?} #{nth} on the console of {id} after {timeout:?}:\n{console}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asserts that nothing of instance `id` is left on the host.
    fn assert_gone(&self, id: &str, pid: u32) {
        assert_exited(pid);
        assert!(
            !Path::new("/run/netns").join(self.hv().netns(id)).exists(),
            "netns is left"
        );
        assert!(
            !self.hv().state_dir().join(id).exists(),
            "state dir is left"
        );
        for controller in ["", "memory", "cpu", "freezer", "pids"] {
            let dir = Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(format!("himmel-{}", self.prefix))
                .join(id);
            assert!(!dir.exists(), "cgroup {} is left", dir.display());
        }
        assert!(!self.hv().list().unwrap().contains(&id.to_string()));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(hv) = &self.hv {
            for id in &self.ids {
                if let Err(e) = hv.remove(id) {
                    eprintln!("cleanup of {id}: {e}");
                }
            }
        }
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
        quiet(&["ip", "netns", "del", &self.net]);
    }
}

/// The process is gone. It was orphaned on purpose (instances outlive the region), so the host's
/// init reaps it: give that a moment.
fn assert_exited(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "process {pid} is left");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn mac(id: &str) -> MacAddr {
    MacAddr::derived(id)
}

fn host_pids_of_cgroup(prefix: &str, id: &str) -> Vec<u32> {
    ["", "memory"]
        .iter()
        .map(|c| {
            Path::new("/sys/fs/cgroup")
                .join(c)
                .join(format!("himmel-{prefix}"))
                .join(id)
                .join("cgroup.procs")
        })
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.lines().filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_default()
}

fn memory_limit(prefix: &str, id: &str) -> Option<u64> {
    let group = Path::new("/sys/fs/cgroup");
    let name = format!("himmel-{prefix}");
    [
        group.join(&name).join(id).join("memory.max"),
        group
            .join("memory")
            .join(&name)
            .join(id)
            .join("memory.limit_in_bytes"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| s.trim().parse().ok())
}

#[test]
fn namespace_instance_lifecycle() {
    if skip("namespace_instance_lifecycle", false) {
        return;
    }
    let image = image();
    let mut lab = Lab::new("hn1");
    let id = new_id();
    lab.plug(&id, mac(&id));
    let spec = InstanceSpec {
        id: id.clone(),
        driver: Driver::Namespace,
        vcpus: 1,
        memory_mib: 128,
        boot: Boot::RootFs {
            initrd: image.join("initramfs.cpio.gz"),
        },
        nics: vec![Nic {
            port_id: new_id(),
            mac: mac(&id),
        }],
        config_drive: None,
        hostname: "ns-one".into(),
    };
    let started = lab.hv().start(&spec).expect("start");
    assert!(started.running);
    let pid = started.pid.expect("pid");
    let ip = lab.wait_console(&id, "lease ", 1, Duration::from_secs(30));
    assert!(ip.starts_with("10.77.0."), "lease {ip}");
    assert_eq!(lab.wait_http(&id, &ip, Duration::from_secs(10)), "ns-one");
    assert_eq!(
        memory_limit("hn1", &id),
        Some(128 << 20),
        "the cgroup limits memory"
    );
    let eth0 = sh(&["ip", "-n", &lab.hv().netns(&id), "link", "show", "eth0"]);
    assert!(eth0.contains("mtu 1400"), "the DHCP MTU is applied: {eth0}");

    // Idempotent start; a "region restart" finds the instance and does not start another.
    assert_eq!(lab.hv().start(&spec).unwrap().pid, Some(pid));
    let processes = host_pids_of_cgroup("hn1", &id);
    assert!(
        processes.contains(&pid),
        "init {pid} is in the cgroup {processes:?}"
    );
    lab.restart_hypervisor();
    assert_eq!(lab.hv().status(&id).unwrap().pid, Some(pid));
    assert_eq!(lab.hv().start(&spec).unwrap().pid, Some(pid));
    assert_eq!(
        host_pids_of_cgroup("hn1", &id).len(),
        processes.len(),
        "no second instance"
    );
    assert_eq!(lab.hv().list().unwrap(), vec![id.clone()]);

    // Pause freezes the guest; unpause brings it back.
    lab.hv().pause(&id).expect("pause");
    assert_eq!(lab.http(&ip), None, "a paused instance does not answer");
    // A snapshot of a paused instance leaves it paused.
    let snapshots = tempfile::tempdir().unwrap();
    let paused_snapshot = snapshots.path().join("paused.cpio.gz");
    assert!(lab
        .hv()
        .snapshot_rootfs(&id, &paused_snapshot, 128 << 20)
        .expect("snapshot"));
    assert_eq!(lab.http(&ip), None, "still paused after the snapshot");
    lab.hv().unpause(&id).expect("unpause");
    assert_eq!(lab.wait_http(&id, &ip, Duration::from_secs(10)), "ns-one");

    // A snapshot of a running instance holds what the guest wrote (its web page, made at
    // boot: the image has none), and the instance runs on.
    let snapshot = snapshots.path().join("running.cpio.gz");
    assert!(lab
        .hv()
        .snapshot_rootfs(&id, &snapshot, 128 << 20)
        .expect("snapshot"));
    assert_eq!(lab.wait_http(&id, &ip, Duration::from_secs(10)), "ns-one");
    let archive = Command::new("gzip")
        .arg("-dc")
        .arg(&snapshot)
        .output()
        .unwrap();
    assert!(archive.status.success());
    let page = archive
        .stdout
        .windows(15)
        .position(|w| w == b"www/index.html\0");
    assert!(page.is_some(), "the snapshot has the guest's web page");
    assert!(archive.stdout.windows(7).any(|w| w == b"ns-one\n"));
    assert!(
        lab.hv().snapshot_rootfs(&id, &snapshot, 4096).is_err(),
        "bigger than 4 KiB"
    );
    assert_eq!(
        lab.wait_http(&id, &ip, Duration::from_secs(10)),
        "ns-one",
        "thawed after a failure"
    );

    // Hard reboot: a new init, a new lease.
    let rebooted = lab.hv().reboot(&spec, true).expect("reboot");
    assert_ne!(rebooted.pid, Some(pid));
    lab.wait_console(&id, "lease ", 2, Duration::from_secs(30));
    let pid = rebooted.pid.unwrap();

    // Soft reboot: init is asked to stop first, then a new one starts.
    let soft = lab.hv().reboot(&spec, false).expect("soft reboot");
    assert_ne!(soft.pid, Some(pid));
    lab.wait_console(&id, "stopping", 1, Duration::from_secs(1));
    lab.wait_console(&id, "lease ", 3, Duration::from_secs(30));
    assert_exited(pid);
    let pid = soft.pid.unwrap();

    // Graceful stop: init gets SIGTERM and says so.
    lab.hv().stop(&id, Duration::from_secs(10)).expect("stop");
    lab.wait_console(&id, "stopping", 2, Duration::from_secs(1));
    assert!(!lab.hv().status(&id).unwrap().running);
    assert_exited(pid);
    assert!(host_pids_of_cgroup("hn1", &id).is_empty());
    assert!(
        !lab.hv().snapshot_rootfs(&id, &snapshot, 128 << 20).unwrap(),
        "a stopped instance has no live root filesystem"
    );

    // Start again after a stop.
    let again = lab.hv().start(&spec).expect("start after stop");
    let ip = lab.wait_console(&id, "lease ", 4, Duration::from_secs(30));
    assert_eq!(lab.wait_http(&id, &ip, Duration::from_secs(10)), "ns-one");
    // Nova counts the pieces between newlines (a final newline ends an empty last piece).
    let tail = lab.hv().console_output(&id, Some(2)).unwrap();
    assert_eq!(tail.split('\n').count(), 2, "{tail:?}");
    assert!(!tail.trim().is_empty(), "the end of the log: {tail:?}");

    lab.hv().remove(&id).expect("remove");
    lab.assert_gone(&id, again.pid.unwrap());
    lab.hv().remove(&id).expect("remove is idempotent");
}

#[test]
fn a_namespace_instance_takes_its_port_when_it_is_plugged_late() {
    if skip(
        "a_namespace_instance_takes_its_port_when_it_is_plugged_late",
        false,
    ) {
        return;
    }
    let image = image();
    let mut lab = Lab::new("hn3");
    let id = new_id();
    let spec = InstanceSpec {
        id: id.clone(),
        driver: Driver::Namespace,
        vcpus: 1,
        memory_mib: 64,
        boot: Boot::RootFs {
            initrd: image.join("initramfs.cpio.gz"),
        },
        nics: vec![Nic {
            port_id: new_id(),
            mac: mac(&id),
        }],
        config_drive: None,
        hostname: "late".into(),
    };
    // The reconciler plugs asynchronously: the instance starts first.
    lab.hv().start(&spec).expect("start");
    lab.wait_console(&id, "boot ", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    lab.plug(&id, mac(&id));
    let ip = lab.wait_console(&id, "lease ", 1, Duration::from_secs(30));
    assert_eq!(lab.wait_http(&id, &ip, Duration::from_secs(10)), "late");
}

#[test]
fn namespace_driver_refuses_what_it_cannot_boot() {
    if skip("namespace_driver_refuses_what_it_cannot_boot", false) {
        return;
    }
    let lab = Lab::new("hn2");
    let id = new_id();
    let mut spec = InstanceSpec {
        id: id.clone(),
        driver: Driver::Namespace,
        vcpus: 1,
        memory_mib: 64,
        boot: Boot::Kernel {
            kernel: "/nonexistent".into(),
            initrd: None,
            cmdline: String::new(),
        },
        nics: vec![],
        config_drive: None,
        hostname: "x".into(),
    };
    assert!(
        lab.hv().start(&spec).is_err(),
        "a kernel is not a root filesystem"
    );
    spec.id = "../../etc".into();
    assert!(lab.hv().start(&spec).is_err(), "ids are checked");
    assert!(lab.hv().prepare("not-a-uuid").is_err());
    lab.hv()
        .remove(&id)
        .expect("removing what never existed is fine");
}

#[test]
fn qemu_instance_lifecycle() {
    if skip("qemu_instance_lifecycle", true) {
        return;
    }
    let image = image();
    let mut lab = Lab::new("hq1");
    // TCG boots slowly on a busy 2-core machine.
    let boot_time = if lab.hv().kvm() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(240)
    };
    let id = new_id();
    lab.plug(&id, mac(&id));
    let spec = InstanceSpec {
        id: id.clone(),
        driver: Driver::Qemu,
        vcpus: 1,
        memory_mib: 256,
        boot: Boot::Kernel {
            kernel: image.join("vmlinuz"),
            initrd: Some(image.join("initramfs.cpio.gz")),
            cmdline: "console=ttyS0 quiet hostname=vm-one".into(),
        },
        nics: vec![Nic {
            port_id: new_id(),
            mac: mac(&id),
        }],
        config_drive: None,
        hostname: "vm-one".into(),
    };
    let started = lab.hv().start(&spec).expect("start");
    let pid = started.pid.expect("pid");
    let ip = lab.wait_console(&id, "lease ", 1, boot_time);
    assert_eq!(lab.wait_http(&id, &ip, Duration::from_secs(30)), "vm-one");
    // The guest's frames carry the port's MAC: the network side learned it on the bridge.
    let fdb = sh(&["ip", "-n", &lab.net, "neigh", "show", &ip]);
    assert!(fdb.contains(&mac(&id).to_string()), "neighbour {fdb}");

    // Idempotent start and a "region restart".
    assert_eq!(lab.hv().start(&spec).unwrap().pid, Some(pid));
    lab.restart_hypervisor();
    assert_eq!(lab.hv().start(&spec).unwrap().pid, Some(pid));
    assert_eq!(lab.hv().status(&id).unwrap().pid, Some(pid));

    lab.hv().pause(&id).expect("pause");
    assert_eq!(lab.http(&ip), None, "a paused VM does not answer");
    lab.hv().unpause(&id).expect("unpause");
    assert_eq!(lab.wait_http(&id, &ip, Duration::from_secs(30)), "vm-one");

    // Hard reboot resets the same QEMU process.
    assert_eq!(lab.hv().reboot(&spec, true).unwrap().pid, Some(pid));
    lab.wait_console(&id, "boot ", 2, boot_time);
    let ip = lab.wait_console(&id, "lease ", 2, boot_time);
    assert_eq!(lab.wait_http(&id, &ip, Duration::from_secs(30)), "vm-one");

    // Graceful stop: the ACPI power button reaches the guest, which shuts down by itself.
    lab.hv().stop(&id, Duration::from_secs(60)).expect("stop");
    lab.wait_console(&id, "stopping", 1, Duration::from_secs(1));
    assert!(!lab.hv().status(&id).unwrap().running);
    assert_exited(pid);

    let again = lab.hv().start(&spec).expect("start after stop");
    lab.wait_console(&id, "lease ", 3, boot_time);
    lab.hv().remove(&id).expect("remove");
    lab.assert_gone(&id, again.pid.unwrap());
}

/// A boot sector that prints a marker on COM1 and halts (GNU as, 16-bit, linked at 0x7c00):
/// `cli; xor ax,ax; mov ds,ax; mov dx,0x3f8; mov si,msg; 1: lodsb; test al,al; jz 2f;
/// out dx,al; jmp 1b; 2: hlt; jmp 2b; msg: .asciz "himmel-test-image: disk boot\n"`.
const BOOT_SECTOR_CODE: [u8; 22] = [
    0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0xba, 0xf8, 0x03, 0xbe, 0x16, 0x7c, 0xac, 0x84, 0xc0, 0x74, 0x03,
    0xee, 0xeb, 0xf8, 0xf4, 0xeb, 0xfd,
];

/// A 1 MiB raw disk whose MBR prints "himmel-test-image: disk boot".
fn boot_disk(path: &Path) {
    let mut disk = vec![0u8; 1 << 20];
    disk[..BOOT_SECTOR_CODE.len()].copy_from_slice(&BOOT_SECTOR_CODE);
    let msg = b"himmel-test-image: disk boot\n\0";
    disk[BOOT_SECTOR_CODE.len()..BOOT_SECTOR_CODE.len() + msg.len()].copy_from_slice(msg);
    disk[510] = 0x55;
    disk[511] = 0xaa;
    std::fs::write(path, disk).expect("write disk");
}

#[test]
fn qemu_boots_raw_and_qcow2_disks_with_a_config_drive() {
    if skip("qemu_boots_raw_and_qcow2_disks_with_a_config_drive", true) {
        return;
    }
    let lab = Lab::new("hq2");
    let raw = lab.state.path().join("disk.raw");
    boot_disk(&raw);
    let config_drive = lab.state.path().join("config.img");
    std::fs::write(&config_drive, vec![0u8; 64 << 10]).unwrap();
    let mut disks = vec![(raw.clone(), DiskFormat::Raw)];
    if himmel_agent::host::find_program("qemu-img").is_some() {
        let qcow2 = lab.state.path().join("disk.qcow2");
        sh(&[
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            qcow2.to_str().unwrap(),
        ]);
        disks.push((qcow2, DiskFormat::Qcow2));
    } else {
        eprintln!("qemu-img is missing: only the raw disk boots");
    }
    for (path, format) in disks {
        let id = new_id();
        let spec = InstanceSpec {
            id: id.clone(),
            driver: Driver::Qemu,
            vcpus: 1,
            memory_mib: 64,
            boot: Boot::Disk { path, format },
            nics: vec![],
            config_drive: Some(config_drive.clone()),
            hostname: "disk".into(),
        };
        let pid = lab.hv().start(&spec).expect("start").pid.unwrap();
        lab.wait_console(&id, "disk boot", 1, Duration::from_secs(60));
        lab.hv().remove(&id).expect("remove");
        lab.assert_gone(&id, pid);
    }
}
