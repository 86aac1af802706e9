//! Guest metadata through the real dataplane (as root; skipped with the reason otherwise): a
//! namespace plugged as an instance's port gets its lease with the classless routes, then asks
//! 169.254.169.254 over HTTP and reaches the registered `InstanceMetadata` as its own instance
//! and port, whatever it claims in its headers; a second project's network with the same
//! addresses is answered as that project's instance, never as the first.

mod support;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use himmel_network::reconcile::{self, ReconcileConfig};
use himmel_network::{InstanceMetadata, MetadataAnswer};
use serde_json::{json, Value};
use support::{Engine, Region};

const HOST: &str = "metadata-test-host";

fn skip_reason() -> Option<String> {
    if let Err(missing) = himmel_agent::host::can_run() {
        return Some(missing);
    }
    himmel_agent::host::find_program("busybox")
        .is_none()
        .then(|| "`busybox` is missing (scripts/test-deps installs it)".to_string())
}

/// Answers `/test/whoami` with the instance and port it was asked for, nothing else; takes
/// posts to `/test/password` only.
#[derive(Default)]
struct Recorder {
    asked: Mutex<Vec<(String, String, String)>>,
    posted: Mutex<Vec<(String, String, Vec<u8>)>>,
}

#[async_trait::async_trait]
impl InstanceMetadata for Recorder {
    async fn answer(&self, instance_id: &str, port_id: &str, path: &str) -> Option<MetadataAnswer> {
        self.asked.lock().unwrap().push((
            instance_id.to_string(),
            port_id.to_string(),
            path.to_string(),
        ));
        (path == "/test/whoami").then(|| MetadataAnswer {
            content_type: "application/json",
            body: json!({"instance": instance_id, "port": port_id})
                .to_string()
                .into_bytes(),
        })
    }

    async fn post(&self, instance_id: &str, port_id: &str, path: &str, body: &[u8]) -> StatusCode {
        if path != "/test/password" {
            return StatusCode::NOT_FOUND;
        }
        self.posted.lock().unwrap().push((
            instance_id.to_string(),
            port_id.to_string(),
            body.to_vec(),
        ));
        StatusCode::OK
    }
}

/// The reconciler, the namespaces and DHCP servers a test made, removed at the end (also on
/// failure).
struct Cleanup {
    reconciler: Option<tokio::task::JoinHandle<()>>,
    prefix: String,
    namespaces: Vec<String>,
    state_dir: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(r) = self.reconciler.take() {
            r.abort();
        }
        // A pass that was under way finishes its ensure on a blocking thread.
        std::thread::sleep(Duration::from_secs(2));
        let dp = himmel_agent::Dataplane::new(&self.prefix, &self.state_dir).unwrap();
        let _ = dp.ensure(&himmel_agent::DesiredDataplane::default());
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for table in [
            ("inet", format!("{}_conntrack", self.prefix)),
            ("bridge", format!("{}_security_groups", self.prefix)),
        ] {
            let _ = Command::new("nft")
                .args(["delete", "table", table.0, &table.1])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A guest's DHCP client: applies the address and every classless static route (option 121),
/// as RFC 3442 clients do (they ignore the router option when routes are given).
const UDHCPC_SCRIPT: &str = "#!/bin/sh\n\
case \"$1\" in bound|renew)\n\
  ip addr flush dev \"$interface\"\n\
  ip addr add \"$ip/$mask\" dev \"$interface\"\n\
  set -- $staticroutes\n\
  while [ $# -ge 2 ]; do ip route replace \"$1\" via \"$2\" dev \"$interface\"; shift 2; done\n\
esac\n";

fn lease(ns: &str, script: &std::path::Path) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-f",
            "-t",
            "5",
            "-T",
            "1",
            "-O",
            "staticroutes",
            "-s",
        ])
        .arg(script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `busybox wget` of a metadata path from inside `ns`: the body, or None on an HTTP error.
fn fetch(ns: &str, path: &str, header: Option<&str>) -> Option<String> {
    request(ns, path, header, None)
}

/// `busybox wget` from inside `ns`, a GET or (with `post`) a POST of that body.
fn request(ns: &str, path: &str, header: Option<&str>, post: Option<&str>) -> Option<String> {
    let url = format!("http://169.254.169.254{path}");
    // busybox 1.35's `wget -T` crashes; coreutils' timeout bounds the request instead.
    let mut args = vec![
        "netns", "exec", ns, "timeout", "10", "busybox", "wget", "-q", "-O", "-",
    ];
    if let Some(h) = header {
        args.extend(["--header", h]);
    }
    if let Some(body) = post {
        args.extend(["--post-data", body]);
    }
    args.push(&url);
    let out = Command::new("ip").args(&args).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// A project's network 10.0.0.0/24 with one instance port at 10.0.0.5; returns (instance, port).
async fn project_with_instance(r: &Region, name: &str) -> (String, String) {
    let project = r.member(name, "member").await.project_id;
    let net = r
        .create(
            &r.admin,
            "networks",
            "network",
            json!({"name": name, "project_id": project}),
        )
        .await;
    let subnet = r
        .create(
            &r.admin,
            "subnets",
            "subnet",
            json!({"network_id": id(&net), "ip_version": 4, "cidr": "10.0.0.0/24", "project_id": project}),
        )
        .await;
    let instance = uuid::Uuid::new_v4().to_string();
    let port = r
        .create(
            &r.admin,
            "ports",
            "port",
            json!({"network_id": id(&net), "project_id": project, "device_id": instance,
                   "device_owner": "compute:nova", "binding:host_id": HOST,
                   "fixed_ips": [{"subnet_id": id(&subnet), "ip_address": "10.0.0.5"}]}),
        )
        .await;
    (instance, id(&port))
}

async fn wait_active(r: &Region, port: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = r
            .call("GET", &format!("/v2.0/ports/{port}"), &r.admin, None)
            .await;
        if v["port"]["status"] == "ACTIVE" {
            return;
        }
        assert!(Instant::now() < deadline, "port {port} never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_reach_their_own_metadata_and_only_theirs() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping the metadata dataplane test: {why}");
        return;
    }
    let r = Region::start(Engine::Sqlite).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    r.network.set_instance_metadata(recorder.clone());
    let state = tempfile::tempdir().unwrap();
    let prefix = format!("m{}", &uuid::Uuid::new_v4().simple().to_string()[..2]);
    let names = himmel_agent::names::Names::new(&prefix).unwrap();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("himmel_network=info")
        .with_test_writer()
        .try_init();
    let mut cleanup = Cleanup {
        reconciler: None,
        prefix: prefix.clone(),
        namespaces: Vec::new(),
        state_dir: state.path().join("dataplane"),
    };
    let script = state.path().join("udhcpc.script");
    std::fs::write(&script, UDHCPC_SCRIPT).unwrap();
    sh(&["chmod", "755", &script.display().to_string()]);

    cleanup.reconciler = reconcile::spawn(
        r.network.clone(),
        ReconcileConfig {
            prefix: prefix.clone(),
            state_dir: cleanup.state_dir.clone(),
            host: HOST.into(),
            external_interface: None,
            interval: Duration::from_secs(1),
        },
    );
    assert!(
        cleanup.reconciler.is_some(),
        "the reconciler starts on this host"
    );

    let mut guests = Vec::new();
    for project in ["meta-a", "meta-b"] {
        let (instance, port) = project_with_instance(&r, project).await;
        let ns = names.instance_netns(&instance);
        cleanup.namespaces.push(ns.clone());
        sh(&["ip", "netns", "add", &ns]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        r.network.changes().notify_one();
        guests.push((instance, port, ns));
    }
    for (instance, port, ns) in &guests {
        wait_active(&r, port).await;
        assert!(lease(ns, &script), "{instance}: udhcpc got a lease");
        let routes = sh(&["ip", "-n", ns, "-4", "route", "show"]);
        assert!(
            routes.contains("default via 10.0.0.1"),
            "option 121 carries the default route: {routes}"
        );
        assert!(
            routes.contains("169.254.169.254 via 10.0.0."),
            "option 121 routes the metadata address through the DHCP port: {routes}"
        );
    }

    for (instance, port, ns) in &guests {
        // The listener comes up with the pass that put the DHCP namespace in place.
        let deadline = Instant::now() + Duration::from_secs(15);
        let body = loop {
            if let Some(b) = fetch(ns, "/test/whoami", None) {
                break b;
            }
            assert!(
                Instant::now() < deadline,
                "{instance}: metadata never answered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let seen: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(seen, json!({"instance": instance, "port": port}));
        assert!(
            fetch(ns, "/no/such/path", None).is_none(),
            "what the provider does not know is 404"
        );
        // A guest posts (its password) as the same port.
        assert!(request(ns, "/test/password", None, Some("sealed")).is_some());
        assert!(request(ns, "/test/other", None, Some("sealed")).is_none());
        let posted = recorder.posted.lock().unwrap().pop();
        assert_eq!(
            posted,
            Some((instance.clone(), port.clone(), b"sealed".to_vec()))
        );
    }

    // The first project's guest claims to be the other one: the header is not believed.
    let (a_instance, a_port, a_ns) = &guests[0];
    let b_instance = &guests[1].0;
    let claimed = fetch(a_ns, "/test/whoami", Some("X-Forwarded-For: 10.0.0.5")).unwrap();
    let seen: Value = serde_json::from_str(&claimed).unwrap();
    assert_eq!(seen, json!({"instance": a_instance, "port": a_port}));
    let asked = recorder.asked.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .all(|(i, _, _)| i == a_instance || i == b_instance),
        "only the two instances were asked for: {asked:?}"
    );
    let from_b = asked.iter().filter(|(i, _, _)| i == b_instance).count();
    assert_eq!(
        from_b, 2,
        "the second guest was asked for exactly its own two requests"
    );
}
