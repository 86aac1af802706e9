//! Bounded load generator for Keystone-compatible token APIs.
//!
//! `himmel-loadgen PLAN.json` runs, for each operation and concurrency in the
//! plan, one phase against every target in turn (so that the systems see the
//! same machine conditions), and prints one JSON line per (system, operation,
//! concurrency) and one ratio line per (operation, concurrency) comparing the
//! first target with the second.
//!
//! Every phase is bounded in time (warm-up + duration) and in request count;
//! only loopback targets are accepted.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Plan {
    targets: Vec<Target>,
    operations: Vec<Operation>,
    concurrency: Vec<usize>,
    warmup_s: f64,
    duration_s: f64,
    max_requests_per_phase: u64,
    request_timeout_s: f64,
}

#[derive(Deserialize, Clone)]
struct Target {
    system: String,
    /// Identity endpoint including the version, e.g. `http://127.0.0.1:5000/v3`.
    auth_url: String,
    username: String,
    password: String,
    user_domain: String,
    project: String,
    project_domain: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Operation {
    /// POST /v3/auth/tokens with password, project-scoped.
    Issue,
    /// GET /v3/auth/tokens with X-Auth-Token and X-Subject-Token.
    Validate,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Issue => "issue",
            Operation::Validate => "validate",
        }
    }
}

/// What one phase measured.
struct Phase {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Phase {
    fn record(&self, target: &Target, op: Operation, concurrency: usize) -> Value {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let ok = sorted.len() as u64;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mean_ms = if ok == 0 {
            0.0
        } else {
            sorted.iter().sum::<u64>() as f64 / ok as f64 / 1000.0
        };
        json!({
            "kind": "result",
            "system": target.system,
            "operation": op.name(),
            "concurrency": concurrency,
            "requests": ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "duration_s": round3(secs),
            "throughput_rps": round3(ok as f64 / secs),
            "mean_ms": round3(mean_ms),
            "p50_ms": round3(percentile(&sorted, 0.50)),
            "p90_ms": round3(percentile(&sorted, 0.90)),
            "p99_ms": round3(percentile(&sorted, 0.99)),
            "max_ms": round3(sorted.last().copied().unwrap_or(0) as f64 / 1000.0),
        })
    }
}

fn percentile(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64) * q).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Ratios span orders of magnitude: keep four significant digits.
fn significant4(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad URL {url}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !loopback {
        bail!("refusing to send load to {host}: only loopback targets are allowed");
    }
    Ok(())
}

fn issue_body(t: &Target) -> Value {
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": t.username, "password": t.password, "domain": {"name": t.user_domain}}}},
        "scope": {"project": {"name": t.project, "domain": {"name": t.project_domain}}},
    }})
}

/// One request of `op`; Ok(()) when the answer is the expected success.
async fn call(
    client: &reqwest::Client,
    t: &Target,
    op: Operation,
    body: &Value,
    token: &str,
) -> anyhow::Result<()> {
    let url = format!("{}/auth/tokens", t.auth_url.trim_end_matches('/'));
    let (want, request) = match op {
        Operation::Issue => (201, client.post(&url).json(body)),
        Operation::Validate => (
            200,
            client
                .get(&url)
                .header("X-Auth-Token", token)
                .header("X-Subject-Token", token),
        ),
    };
    let resp = request.send().await?;
    let status = resp.status().as_u16();
    let has_token = resp.headers().contains_key("x-subject-token");
    // read the whole body so that the connection can be reused
    let _ = resp.bytes().await?;
    if status != want || !has_token {
        bail!("HTTP {status} (want {want}, X-Subject-Token present: {has_token})");
    }
    Ok(())
}

async fn issue_token(client: &reqwest::Client, t: &Target) -> anyhow::Result<String> {
    let url = format!("{}/auth/tokens", t.auth_url.trim_end_matches('/'));
    let resp = client.post(&url).json(&issue_body(t)).send().await?;
    let status = resp.status();
    let token = resp
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match token {
        Some(token) if status.as_u16() == 201 => Ok(token),
        _ => bail!("{}: token issue answered HTTP {status}", t.system),
    }
}

async fn run_phase(
    client: &reqwest::Client,
    t: &Target,
    op: Operation,
    concurrency: usize,
    plan: &Plan,
) -> anyhow::Result<Phase> {
    let token = Arc::new(issue_token(client, t).await?);
    let body = Arc::new(issue_body(t));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(plan.warmup_s);
    let stop_at = measure_from + Duration::from_secs_f64(plan.duration_s);
    let budget = Arc::new(AtomicU64::new(0));
    let max_requests = plan.max_requests_per_phase;

    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, t, token, body, budget) = (
            client.clone(),
            t.clone(),
            token.clone(),
            body.clone(),
            budget.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            while Instant::now() < stop_at && budget.fetch_add(1, Ordering::Relaxed) < max_requests
            {
                let t0 = Instant::now();
                let outcome = call(&client, &t, op, &body, &token).await;
                let t1 = Instant::now();
                // Count what completes inside the window, whenever it started:
                // a slow server keeps working off warm-up requests during the
                // window, and that work is part of its steady state.
                if t1 < measure_from || t1 > stop_at {
                    continue;
                }
                match outcome {
                    Ok(()) => latencies.push((t1 - t0).as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut phase = Phase {
        latencies_us: Vec::new(),
        errors: 0,
        first_error: None,
        elapsed: stop_at - measure_from,
    };
    for worker in workers {
        let (latencies, errors, first_error) = worker.await?;
        phase.latencies_us.extend(latencies);
        phase.errors += errors;
        if phase.first_error.is_none() {
            phase.first_error = first_error;
        }
    }
    Ok(phase)
}

fn ratio(a: &Value, b: &Value, key: &str) -> Value {
    match (a[key].as_f64(), b[key].as_f64()) {
        (Some(x), Some(y)) if y > 0.0 => json!(significant4(x / y)),
        _ => Value::Null,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: himmel-loadgen PLAN.json")?;
    let plan: Plan = serde_json::from_slice(&std::fs::read(&path)?).context("reading the plan")?;
    for t in &plan.targets {
        ensure_loopback(&t.auth_url)?;
    }
    let max_conc = plan.concurrency.iter().copied().max().unwrap_or(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(max_conc)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs_f64(plan.request_timeout_s))
        .build()?;

    for &op in &plan.operations {
        for &concurrency in &plan.concurrency {
            let mut lines = Vec::new();
            for t in &plan.targets {
                let line = match run_phase(&client, t, op, concurrency, &plan).await {
                    Ok(phase) => phase.record(t, op, concurrency),
                    Err(e) => json!({"kind": "result", "system": t.system, "operation": op.name(),
                                     "concurrency": concurrency, "failed": format!("{e:#}")}),
                };
                println!("{line}");
                lines.push(line);
            }
            if let [a, b, ..] = lines.as_slice() {
                println!(
                    "{}",
                    json!({
                        "kind": "ratio",
                        "systems": format!("{}/{}", a["system"].as_str().unwrap_or("?"),
                                           b["system"].as_str().unwrap_or("?")),
                        "operation": op.name(),
                        "concurrency": concurrency,
                        "throughput": ratio(a, b, "throughput_rps"),
                        "p50_latency": ratio(a, b, "p50_ms"),
                        "p99_latency": ratio(a, b, "p99_ms"),
                    })
                );
            }
        }
    }
    Ok(())
}
