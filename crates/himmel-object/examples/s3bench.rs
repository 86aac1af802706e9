//! S3 load generator, run on demand against a running region; prints JSON
//! lines.
//!
//! It measures PUT and GET throughput of large objects and operations per
//! second of 4 KiB objects at concurrency 1, 16 and 64, and beside them this
//! machine's limits measured in the same run: the fsync'd sequential write
//! rate and the read rate of the data disk, and the raw AES-256-GCM rate of
//! one core.
//!
//! Lines: one `machine` (the limits), one `result` per concurrency (with
//! each figure as a share of the limit it is held against), one `targets`
//! (each target, the figure it is judged on and whether it is met).
//!
//! ```text
//! S3BENCH_ENDPOINT=http://127.0.0.1:8080 S3BENCH_ACCESS=… S3BENCH_SECRET=… \
//! S3BENCH_DIR=<the region's data dir> cargo run --release -p himmel-object --example s3bench
//! ```
//! Optional: S3BENCH_LARGE_MIB (64), S3BENCH_SECONDS per small-object phase
//! (5), S3BENCH_CONCURRENCY (1,16,64), S3BENCH_REGION (regionone).

use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};

struct Target {
    endpoint: String,
    access: String,
    secret: String,
    region: String,
    http: reqwest::Client,
}

fn env(name: &str, default: Option<&str>) -> String {
    std::env::var(name)
        .ok()
        .or(default.map(str::to_string))
        .unwrap_or_else(|| panic!("set {name}"))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

impl Target {
    /// A SigV4-signed request with an unsigned payload.
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<bytes::Bytes>,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.endpoint);
        let host = self.endpoint.split("://").nth(1).unwrap_or_default();
        let now = chrono::Utc::now();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let day = now.format("%Y%m%d").to_string();
        let canonical = format!(
            "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:{amz_date}\n\n\
             host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"
        );
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{}", self.secret).as_bytes(), day.as_bytes());
        for part in [self.region.as_bytes(), b"s3", b"aws4_request"] {
            key = hmac(&key, part);
        }
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
            self.access
        );
        let mut r = self
            .http
            .request(method, url)
            .header("x-amz-date", amz_date)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .header("authorization", auth);
        if let Some(b) = body {
            r = r.body(b);
        }
        r
    }

    async fn put(&self, path: &str, body: bytes::Bytes) {
        let resp = self
            .request(reqwest::Method::PUT, path, Some(body))
            .send()
            .await
            .expect("PUT");
        assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
    }

    async fn get(&self, path: &str) -> u64 {
        let mut resp = self
            .request(reqwest::Method::GET, path, None)
            .send()
            .await
            .expect("GET");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        let mut n = 0;
        while let Some(chunk) = resp.chunk().await.expect("body") {
            n += chunk.len() as u64;
        }
        n
    }
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

/// Sequential write with one fsync at the end, then a read with the
/// file's pages dropped from the cache first.
fn disk_rates(dir: &std::path::Path) -> (f64, f64) {
    let path = dir.join("s3bench-disk.tmp");
    let block = vec![0x5au8; 4 << 20];
    let total: u64 = 1 << 30;
    let started = Instant::now();
    let mut f = std::fs::File::create(&path).expect("create probe file");
    let mut written = 0;
    while written < total {
        f.write_all(&block).expect("write");
        written += block.len() as u64;
    }
    f.sync_all().expect("fsync");
    let write = mib_per_s(total, started.elapsed());
    // SAFETY: an advisory call on an open descriptor.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    drop(f);
    let mut f = std::fs::File::open(&path).expect("open probe file");
    let mut buf = vec![0u8; 4 << 20];
    let started = Instant::now();
    let mut read = 0u64;
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let read = mib_per_s(read, started.elapsed());
    let _ = std::fs::remove_file(&path);
    (write, read)
}

fn aes_gcm_rate() -> f64 {
    let cipher = Aes256Gcm::new(&[7u8; 32].into());
    let mut chunk = vec![0u8; 256 * 1024];
    let total: u64 = 512 << 20;
    let started = Instant::now();
    let mut done = 0;
    let mut i = 0u64;
    while done < total {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&i.to_be_bytes());
        cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut chunk)
            .expect("encrypt");
        done += chunk.len() as u64;
        i += 1;
    }
    mib_per_s(total, started.elapsed())
}

async fn large_phase(t: Arc<Target>, bucket: &str, size: u64, concurrency: usize) -> (f64, f64) {
    let body = bytes::Bytes::from(vec![0x42u8; size as usize]);
    let objects = concurrency.max(4);
    let run = |get: bool| {
        let t = t.clone();
        let body = body.clone();
        async move {
            let next = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (t, body, next) = (t.clone(), body.clone(), next.clone());
                    let bucket = bucket.to_string();
                    tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= objects as u64 {
                                break;
                            }
                            let path = format!("/{bucket}/large-{concurrency}-{i}");
                            if get {
                                t.get(&path).await;
                            } else {
                                t.put(&path, body.clone()).await;
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("worker");
            }
            mib_per_s(size * objects as u64, started.elapsed())
        }
    };
    let put = run(false).await;
    let get = run(true).await;
    (put, get)
}

async fn small_phase(t: Arc<Target>, bucket: &str, concurrency: usize, seconds: u64) -> (f64, f64) {
    let body = bytes::Bytes::from(vec![0x17u8; 4096]);
    let run = |get: bool, keys: u64| {
        let t = t.clone();
        let body = body.clone();
        async move {
            let count = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let tasks: Vec<_> = (0..concurrency)
                .map(|w| {
                    let (t, body, count) = (t.clone(), body.clone(), count.clone());
                    let bucket = bucket.to_string();
                    tokio::spawn(async move {
                        let mut i = 0u64;
                        while Instant::now() < deadline {
                            if get {
                                let k = (i * 7919 + w as u64) % keys.max(1);
                                t.get(&format!("/{bucket}/small-{concurrency}-{k}")).await;
                            } else {
                                let k = count.load(Ordering::Relaxed);
                                t.put(
                                    &format!("/{bucket}/small-{concurrency}-{k}-{w}-{i}"),
                                    body.clone(),
                                )
                                .await;
                            }
                            count.fetch_add(1, Ordering::Relaxed);
                            i += 1;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("worker");
            }
            (count.load(Ordering::Relaxed), started.elapsed())
        }
    };
    let (puts, d) = run(false, 0).await;
    // GETs read a fixed set of keys written for them.
    let keys = 256u64;
    for k in 0..keys {
        t.put(&format!("/{bucket}/small-{concurrency}-{k}"), body.clone())
            .await;
    }
    let (gets, dg) = run(true, keys).await;
    (
        puts as f64 / d.as_secs_f64(),
        gets as f64 / dg.as_secs_f64(),
    )
}

#[tokio::main]
async fn main() {
    let t = Arc::new(Target {
        endpoint: env("S3BENCH_ENDPOINT", None)
            .trim_end_matches('/')
            .to_string(),
        access: env("S3BENCH_ACCESS", None),
        secret: env("S3BENCH_SECRET", None),
        region: env("S3BENCH_REGION", Some("regionone")),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .expect("client"),
    });
    let dir = PathBuf::from(env("S3BENCH_DIR", None));
    let large = env("S3BENCH_LARGE_MIB", Some("64"))
        .parse::<u64>()
        .expect("a number")
        << 20;
    let seconds = env("S3BENCH_SECONDS", Some("5"))
        .parse::<u64>()
        .expect("a number");
    let levels: Vec<usize> = env("S3BENCH_CONCURRENCY", Some("1,16,64"))
        .split(',')
        .map(|c| c.trim().parse().expect("a number"))
        .collect();

    let (disk_write, disk_read) = disk_rates(&dir);
    let cipher = aes_gcm_rate();
    let bucket = format!("s3bench-{}", hex::encode(rand::random::<[u8; 4]>()));
    let resp = t
        .request(reqwest::Method::PUT, &format!("/{bucket}"), None)
        .send()
        .await
        .expect("create bucket");
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );

    let large_put_limit = 0.8 * disk_write;
    let large_get_limit = 0.7 * cipher.min(disk_read);
    line(json!({
        "kind": "machine",
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "disk_fsync_write_mib_s": disk_write,
        "disk_read_mib_s": disk_read,
        "aes_256_gcm_mib_s_one_core": cipher,
        "large_object_mib": large >> 20,
        "small_object_bytes": 4096,
    }));
    let mut best_put = 0f64;
    let mut best_get = 0f64;
    let mut small_at_16 = None;
    for &c in &levels {
        let (put, get) = large_phase(t.clone(), &bucket, large, c).await;
        let (small_put, small_get) = small_phase(t.clone(), &bucket, c, seconds).await;
        best_put = best_put.max(put);
        best_get = best_get.max(get);
        if c == 16 {
            small_at_16 = Some((small_put, small_get));
        }
        line(json!({
            "kind": "result",
            "concurrency": c,
            "large_put_mib_s": put,
            "large_put_of_disk_write": put / disk_write,
            "large_get_mib_s": get,
            "large_get_of_min_cipher_disk_read": get / cipher.min(disk_read),
            "small_put_ops_s": small_put,
            "small_get_ops_s": small_get,
        }));
    }
    let (small_put, small_get) = small_at_16.unwrap_or((f64::NAN, f64::NAN));
    let target = |want: f64, got: f64| json!({"target": want, "got": got, "met": got >= want});
    line(json!({
        "kind": "targets",
        "large_put_mib_s_best": target(large_put_limit, best_put),
        "large_get_mib_s_best": target(large_get_limit, best_get),
        "small_put_ops_s_at_16": target(2000.0, small_put),
        "small_get_ops_s_at_16": target(5000.0, small_get),
    }));
}

fn line(v: serde_json::Value) {
    println!("{v}");
}
