//! Compute API benchmark (run on demand, no root needed):
//!
//!   cargo bench -p himmel-compute --bench api
//!
//! An in-process region (identity, networking and compute over HTTP on loopback; SQLite, or
//! PostgreSQL with BENCH_POSTGRES=1 and HIMMEL_TEST_POSTGRES set) whose host is the tests'
//! in-memory hypervisor, so what is timed is the control plane: API, scheduler and placement
//! claim, port, reconciler. The drivers' own start times are `hypervisor_bench`'s (himmel-agent).
//! Prints JSON lines:
//! * `create_to_active`: time from sending a server create until a GET shows it ACTIVE;
//! * `list`: latency of `GET /servers`, `/servers/detail` and `/servers/detail?limit=100`
//!   when the project has BENCH_SERVERS servers.
//!
//! Knobs (environment): BENCH_ACTIVE (servers timed one by one, default 20), BENCH_SERVERS
//! (default 1000), BENCH_LISTS (default 20).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Engine, Member, Region, DISK_IMAGE};

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

async fn ok(r: &Region, method: &str, path: &str, token: &str, body: Value) -> Value {
    let (status, v) = r.raw(method, path, token, Some(body), &[]).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    v
}

/// A project without quota limits, with a network to put servers on, and a small flavor.
async fn setup(r: &Region, servers: usize) -> (Member, String, String) {
    let m = r.member("bench", "member").await;
    let unlimited = json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}});
    let quota_path = format!("/compute/v2.1/os-quota-sets/{}", m.project_id);
    ok(r, "PUT", &quota_path, &r.admin, unlimited).await;
    let quota_path = format!("/networking/v2.0/quotas/{}", m.project_id);
    ok(
        r,
        "PUT",
        &quota_path,
        &r.admin,
        json!({"quota": {"port": -1}}),
    )
    .await;
    let net = ok(
        r,
        "POST",
        "/networking/v2.0/networks",
        &m.token,
        json!({"network": {"name": "bench"}}),
    )
    .await;
    let net = net["network"]["id"]
        .as_str()
        .expect("network id")
        .to_string();
    // Room for every server's port.
    let cidr = if servers < 250 {
        "10.90.0.0/24"
    } else {
        "10.90.0.0/16"
    };
    ok(
        r,
        "POST",
        "/networking/v2.0/subnets",
        &m.token,
        json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": cidr}}),
    )
    .await;
    let flavor = ok(
        r,
        "POST",
        "/compute/v2.1/flavors",
        &r.admin,
        json!({"flavor": {"name": "bench.tiny", "ram": 64, "vcpus": 1, "disk": 1}}),
    )
    .await;
    let flavor = flavor["flavor"]["id"]
        .as_str()
        .expect("flavor id")
        .to_string();
    (m, net, flavor)
}

fn server_body(name: &str, net: &str, flavor: &str, count: usize) -> Value {
    json!({"server": {"name": name, "imageRef": DISK_IMAGE, "flavorRef": flavor,
                      "networks": [{"uuid": net}], "min_count": count, "max_count": count}})
}

async fn status_of(r: &Region, token: &str, id: &str) -> String {
    let v = r
        .raw(
            "GET",
            &format!("/compute/v2.1/servers/{id}"),
            token,
            None,
            &[],
        )
        .await
        .1;
    v["server"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Creates servers one at a time and times each until the API shows it ACTIVE.
async fn create_to_active(r: &Region, m: &Member, net: &str, flavor: &str, n: usize) {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let body = server_body(&format!("active-{i}"), net, flavor, 1);
        let t = Instant::now();
        let created = ok(r, "POST", "/compute/v2.1/servers", &m.token, body).await;
        let id = created["server"]["id"]
            .as_str()
            .expect("server id")
            .to_string();
        let deadline = t + Duration::from_secs(30);
        loop {
            match status_of(r, &m.token, &id).await.as_str() {
                "ACTIVE" => break,
                "ERROR" => panic!("server {id} went to ERROR"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "server {id} never became ACTIVE");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(t.elapsed());
    }
    let mut line = summary(samples);
    line["type"] = json!("create_to_active");
    println!("{line}");
}

/// Fills the project up to `total` servers (in batches of min/max count) and times lists.
async fn lists(r: &Region, m: &Member, net: &str, flavor: &str, total: usize, lists: usize) {
    let mut have = r
        .raw("GET", "/compute/v2.1/servers", &m.token, None, &[])
        .await
        .1["servers"]
        .as_array()
        .map_or(0, Vec::len);
    while have < total {
        let batch = (total - have).min(100);
        let body = server_body(&format!("fill-{have}"), net, flavor, batch);
        ok(r, "POST", "/compute/v2.1/servers", &m.token, body).await;
        have += batch;
    }
    // Lists are timed once the reconciler has built them all, not while it works.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, v) = r
            .raw(
                "GET",
                "/compute/v2.1/servers?status=BUILD",
                &m.token,
                None,
                &[],
            )
            .await;
        if v["servers"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "servers still building: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for path in ["/servers", "/servers/detail", "/servers/detail?limit=100"] {
        let mut samples = Vec::with_capacity(lists);
        let mut returned = 0;
        for _ in 0..lists {
            let t = Instant::now();
            let (status, v) = r
                .raw("GET", &format!("/compute/v2.1{path}"), &m.token, None, &[])
                .await;
            samples.push(t.elapsed());
            assert_eq!(status, 200, "{v}");
            returned = v["servers"].as_array().map_or(0, Vec::len);
        }
        let mut line = summary(samples);
        line["type"] = json!("list");
        line["path"] = json!(path);
        line["returned"] = json!(returned);
        println!("{line}");
    }
}

#[tokio::main]
async fn main() {
    let engine = if std::env::var("BENCH_POSTGRES").is_ok() {
        Engine::Postgres
    } else {
        Engine::Sqlite
    };
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "{}",
        json!({"type": "config", "engine": format!("{engine:?}"), "build": build})
    );
    let Some(r) = Region::start(engine).await else {
        eprintln!("PostgreSQL is not available: set HIMMEL_TEST_POSTGRES");
        std::process::exit(2);
    };
    let total = knob("BENCH_SERVERS", 1000);
    let (m, net, flavor) = setup(&r, total).await;
    create_to_active(&r, &m, &net, &flavor, knob("BENCH_ACTIVE", 20)).await;
    lists(&r, &m, &net, &flavor, total, knob("BENCH_LISTS", 20)).await;
}
