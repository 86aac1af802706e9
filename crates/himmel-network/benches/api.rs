//! Networking API benchmark (run on demand; the dataplane phase as root):
//!
//!   cargo bench -p himmel-network --bench api
//!
//! An in-process region (identity and networking over HTTP on loopback, SQLite, or PostgreSQL
//! with BENCH_POSTGRES=1 and HIMMEL_TEST_POSTGRES set) measured by a project member's requests.
//! Prints JSON lines:
//! * `create`: latency p50/p99 of sequential creates of networks, subnets, ports, routers and
//!   security groups (each create is a committed write transaction with its quota check);
//! * `port_active`: time from sending a port create (an instance port bound to this host) to
//!   the port being ACTIVE, i.e. the reconciler has plugged, filtered and served it by DHCP
//!   and written the status (skipped with the reason when the host cannot run the dataplane);
//! * `list`: latency of listing every network and every port when the project has
//!   BENCH_NETWORKS networks and BENCH_PORTS ports.
//!
//! Knobs (environment): BENCH_CREATES (per kind, default 200), BENCH_ACTIVE (ports, default
//! 20), BENCH_NETWORKS (default 1000), BENCH_PORTS (default 10000), BENCH_LISTS (default 20).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use himmel_network::reconcile::{self, ReconcileConfig};
use serde_json::{json, Value};
use support::{Engine, Region};

const HOST: &str = "bench-host";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50, p99, mean and max of a set of samples, in milliseconds.
fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    let mean = ms(samples.iter().sum::<Duration>()) / samples.len() as f64;
    json!({"n": samples.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "mean_ms": mean,
           "max_ms": at(1.0)})
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

async fn timed_create(
    r: &Region,
    token: &str,
    collection: &str,
    key: &str,
    body: Value,
) -> (Duration, Value) {
    let t = Instant::now();
    let v = r.create(token, collection, key, body).await;
    (t.elapsed(), v)
}

async fn unlimited_quotas(r: &Region, project: &str) {
    let (status, v) = r
        .call(
            "PUT",
            &format!("/v2.0/quotas/{project}"),
            &r.admin,
            Some(
                json!({"quota": {"network": -1, "subnet": -1, "port": -1, "router": -1,
                                  "security_group": -1, "security_group_rule": -1}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "quota update: {v}");
}

async fn creates(r: &Region, token: &str, n: usize) {
    let net = r
        .create(token, "networks", "network", json!({"name": "bench-ports"}))
        .await;
    r.create(
        token,
        "subnets",
        "subnet",
        json!({"network_id": id(&net), "ip_version": 4, "cidr": "10.200.0.0/16"}),
    )
    .await;
    let subnet_net = r
        .create(
            token,
            "networks",
            "network",
            json!({"name": "bench-subnets"}),
        )
        .await;
    let mut samples: Vec<(&str, Vec<Duration>)> = Vec::new();
    for kind in ["network", "subnet", "port", "router", "security_group"] {
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let (collection, body) = match kind {
                "network" => ("networks", json!({"name": format!("bench-{i}")})),
                "subnet" => (
                    "subnets",
                    json!({"network_id": id(&subnet_net), "ip_version": 4,
                           "cidr": format!("10.{}.{}.0/24", 100 + i / 256, i % 256)}),
                ),
                "port" => ("ports", json!({"network_id": id(&net)})),
                "router" => ("routers", json!({"name": format!("bench-{i}")})),
                _ => ("security-groups", json!({"name": format!("bench-{i}")})),
            };
            let (t, _) = timed_create(r, token, collection, kind, body).await;
            times.push(t);
        }
        samples.push((kind, times));
    }
    for (kind, times) in samples {
        let mut line = summary(times);
        line["type"] = json!("create");
        line["resource"] = json!(kind);
        println!("{line}");
    }
}

/// Port create to ACTIVE through the real reconciler; None with the reason when it cannot run.
async fn port_active(r: &Region, project: &str, n: usize) -> Result<(), String> {
    himmel_agent::host::can_run()?;
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let prefix = "bq";
    let names = himmel_agent::names::Names::new(prefix).map_err(|e| e.to_string())?;
    let dataplane_dir = state.path().join("dataplane");
    let reconciler = reconcile::spawn(
        r.network.clone(),
        ReconcileConfig {
            prefix: prefix.into(),
            state_dir: dataplane_dir.clone(),
            host: HOST.into(),
            external_interface: None,
            interval: Duration::from_secs(10),
        },
    )
    .ok_or("the reconciler did not start")?;
    let mut namespaces = Vec::new();
    let measured = measure_port_active(r, project, n, &names, &mut namespaces).await;
    // Whatever happened, nothing of the benchmark stays on the host.
    reconciler.abort();
    let _ = reconciler.await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dp = himmel_agent::Dataplane::new(prefix, &dataplane_dir).map_err(|e| e.to_string())?;
    let cleaned = dp.ensure(&himmel_agent::DesiredDataplane::default());
    for ns in namespaces {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .status();
    }
    for (family, table) in [("inet", "bq_conntrack"), ("bridge", "bq_security_groups")] {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", family, table])
            .stderr(std::process::Stdio::null())
            .status();
    }
    let (times, api) = measured?;
    cleaned.map_err(|e| e.to_string())?;
    let mut line = summary(times);
    line["type"] = json!("port_active");
    line["api_create"] = summary(api);
    println!("{line}");
    Ok(())
}

/// Creates `n` instance ports one after the other (after one to warm up the network) and
/// waits for each to be ACTIVE; returns the times to ACTIVE and the times of the creates.
async fn measure_port_active(
    r: &Region,
    project: &str,
    n: usize,
    names: &himmel_agent::names::Names,
    namespaces: &mut Vec<String>,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let net = r
        .create(
            &r.admin,
            "networks",
            "network",
            json!({"name": "bench-active", "project_id": project}),
        )
        .await;
    r.create(
        &r.admin,
        "subnets",
        "subnet",
        json!({"network_id": id(&net), "ip_version": 4, "cidr": "10.201.0.0/24", "project_id": project}),
    )
    .await;
    // A warm-up port first, so the network's bridge and DHCP namespace exist before timing.
    let mut times = Vec::new();
    let mut api = Vec::new();
    for i in 0..=n {
        let device = uuid::Uuid::new_v4().to_string();
        let ns = names.instance_netns(&device);
        std::process::Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .map_err(|e| e.to_string())?;
        namespaces.push(ns);
        let t = Instant::now();
        let port = r
            .create(
                &r.admin,
                "ports",
                "port",
                json!({"network_id": id(&net), "project_id": project, "device_id": device,
                       "device_owner": "compute:nova", "binding:host_id": HOST}),
            )
            .await;
        let created = t.elapsed();
        let port_id = id(&port);
        loop {
            let mut conn = r
                .network
                .db()
                .pool()
                .acquire()
                .await
                .map_err(|e| e.to_string())?;
            let p: Option<himmel_network::model::Port> =
                himmel_network::store::get(&mut conn, &port_id)
                    .await
                    .map_err(|e| e.to_string())?;
            drop(conn);
            if p.is_some_and(|p| p.status == "ACTIVE") {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(format!("port {port_id} not ACTIVE after 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if i > 0 {
            times.push(t.elapsed());
            api.push(created);
        }
    }
    Ok((times, api))
}

/// Creates `n` of something with a few requests in flight.
async fn populate(
    r: &Region,
    token: &str,
    n: usize,
    make: impl Fn(usize) -> (&'static str, &'static str, Value),
) {
    let mut pending = Vec::new();
    for i in 0..n {
        let (collection, key, body) = make(i);
        let r2 = (r.url.clone(), r.http.clone(), token.to_string());
        pending.push(tokio::spawn(async move {
            let (url, http, token) = r2;
            let resp = http
                .post(format!("{url}/networking/v2.0/{collection}"))
                .header("x-auth-token", token)
                .json(&json!({ key: body }))
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status().as_u16(), 201, "populating {collection}");
        }));
        if pending.len() >= 8 {
            for p in pending.drain(..) {
                p.await.expect("populate task");
            }
        }
    }
    for p in pending {
        p.await.expect("populate task");
    }
}

async fn lists(r: &Region, token: &str, networks: usize, ports: usize, rounds: usize) {
    let (_, have) = r.call("GET", "/v2.0/networks?fields=id", token, None).await;
    let existing = have["networks"].as_array().map_or(0, |a| a.len());
    populate(r, token, networks.saturating_sub(existing), |i| {
        (
            "networks",
            "network",
            json!({"name": format!("bench-list-{i}")}),
        )
    })
    .await;
    let net = r
        .create(
            token,
            "networks",
            "network",
            json!({"name": "bench-list-ports"}),
        )
        .await;
    let net_id = id(&net);
    r.create(
        token,
        "subnets",
        "subnet",
        json!({"network_id": net_id, "ip_version": 4, "cidr": "10.0.0.0/16"}),
    )
    .await;
    let (_, have) = r.call("GET", "/v2.0/ports?fields=id", token, None).await;
    let existing = have["ports"].as_array().map_or(0, |a| a.len());
    populate(r, token, ports.saturating_sub(existing), |_| {
        ("ports", "port", json!({"network_id": net_id}))
    })
    .await;
    for (collection, query) in [
        ("networks", ""),
        ("ports", ""),
        ("ports", "?limit=100"),
        ("ports", "?network_id=NET&fields=id&fields=fixed_ips"),
    ] {
        let path = format!("/v2.0/{collection}{}", query.replace("NET", &net_id));
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let (status, v) = r.call("GET", &path, token, None).await;
            times.push(t.elapsed());
            assert_eq!(status, 200, "{path}");
            count = v[collection].as_array().map_or(0, |a| a.len());
        }
        let mut line = summary(times);
        line["type"] = json!("list");
        line["path"] = json!(path);
        line["returned"] = json!(count);
        println!("{line}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let engine = if std::env::var("BENCH_POSTGRES").is_ok_and(|v| v == "1") {
        Engine::Postgres
    } else {
        Engine::Sqlite
    };
    let Some(r) = Region::start(engine).await else {
        eprintln!("network API benchmark skipped: HIMMEL_TEST_POSTGRES is not set");
        return;
    };
    let member = r.member("bench", "member").await;
    unlimited_quotas(&r, &member.project_id).await;
    println!(
        "{}",
        json!({"type": "config", "engine": format!("{engine:?}"), "build": if cfg!(debug_assertions) { "debug" } else { "release" }})
    );
    // First, while the region is empty: every reconciler pass covers the whole region.
    if let Err(why) = port_active(&r, &member.project_id, knob("BENCH_ACTIVE", 20)).await {
        eprintln!("port_active skipped: {why}");
    }
    creates(&r, &member.token, knob("BENCH_CREATES", 200)).await;
    lists(
        &r,
        &member.token,
        knob("BENCH_NETWORKS", 1000),
        knob("BENCH_PORTS", 10000),
        knob("BENCH_LISTS", 20),
    )
    .await;
}
