//! Envelope encryption against its limit, run on demand:
//! `cargo bench -p himmel-kms --bench envelope`.
//!
//! Prints one JSON object per line: for 4 KiB, 1 MiB and 64 MiB items the
//! envelope's encrypt and decrypt rates (MiB/s, one core) beside the raw
//! AES-256-GCM rate of the same library sealing the item in one call, and
//! their ratio; then project-key unwraps per second with and without the
//! key cache (key file root key, SQLite state store).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use himmel_kms::envelope::{decrypt_stream, Encryptor, Header, DEFAULT_CHUNK_SIZE};
use himmel_kms::root::file::KeyFile;
use himmel_kms::{Key, Keyring};

const MIB: f64 = 1024.0 * 1024.0;

/// Runs `f` until at least `min` has passed; returns bytes per second.
fn rate(bytes: usize, min: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < min {
        f();
        rounds += 1;
    }
    (bytes as f64 * rounds as f64) / start.elapsed().as_secs_f64()
}

fn main() {
    let min = Duration::from_millis(
        std::env::var("HIMMEL_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    );
    let key = Key::generate();
    for (label, size) in [("4KiB", 4 << 10), ("1MiB", 1 << 20), ("64MiB", 64 << 20)] {
        let plain = vec![0x5au8; size];
        let mut work = plain.clone();
        let raw_cipher = Aes256Gcm::new(key.as_bytes().into());
        let raw = rate(size, min, || {
            work.copy_from_slice(&plain);
            raw_cipher
                .encrypt_in_place_detached(Nonce::from_slice(&[7u8; 12]), b"aad", &mut work)
                .unwrap();
        });
        let mut sealed = Vec::with_capacity(size + size / 1000 + 64);
        let encrypt = rate(size, min, || {
            sealed.clear();
            let mut enc = Encryptor::new(
                &key,
                b"bench",
                Header::new(DEFAULT_CHUNK_SIZE, 1),
                &mut sealed,
            )
            .unwrap();
            enc.write(&plain).unwrap();
            enc.finish().unwrap();
        });
        let mut out = Vec::with_capacity(size);
        let decrypt = rate(size, min, || {
            out.clear();
            decrypt_stream(&key, b"bench", &sealed[..], &mut out).unwrap();
        });
        assert_eq!(out, plain);
        println!(
            "{}",
            serde_json::json!({
                "bench": "envelope", "item": label, "chunk_bytes": DEFAULT_CHUNK_SIZE,
                "raw_aes256gcm_mib_s": (raw / MIB).round(),
                "encrypt_mib_s": (encrypt / MIB).round(),
                "decrypt_mib_s": (decrypt / MIB).round(),
                "encrypt_vs_raw": (encrypt / raw * 1000.0).round() / 1000.0,
                "decrypt_vs_raw": (decrypt / raw * 1000.0).round() / 1000.0,
            })
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = himmel_db::Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
            .await
            .unwrap();
        let root = Arc::new(KeyFile::open_or_create(&dir.path().join("root.key")).unwrap());
        for (cache, ttl) in [
            ("cached", Duration::from_secs(60)),
            ("uncached", Duration::ZERO),
        ] {
            let ring = Keyring::new(db.clone(), root.clone(), ttl, None);
            let (_, wrapped) = ring.new_data_key("bench", b"item").await.unwrap();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < min {
                ring.open_data_key("bench", b"item", &wrapped)
                    .await
                    .unwrap();
                n += 1;
            }
            println!(
                "{}",
                serde_json::json!({
                    "bench": "data_key_unwrap", "kek_cache": cache,
                    "ops_per_s": (n as f64 / start.elapsed().as_secs_f64()).round(),
                })
            );
        }
    });
}
