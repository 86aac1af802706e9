//! The external key holder: a key holder serving in-process over mutual
//! TLS, a region's keyring using it as its root key provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use himmel_db::Db;
use himmel_kms::keyholder::{self, AuditLog, Layout};
use himmel_kms::root::keyholder::KeyHolderClient;
use himmel_kms::root::RootKeyProvider;
use himmel_kms::{Key, Keyring, KmsError};

const REGION: &str = "CN=himmel region";

struct Holder {
    layout: Layout,
    url: String,
    _tmp: tempfile::TempDir,
}

impl Holder {
    async fn start() -> Holder {
        let tmp = tempfile::tempdir().unwrap();
        let layout = keyholder::init(&tmp.path().join("kh"), &[]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let dir = layout.dir().to_owned();
        tokio::spawn(async move { keyholder::serve(&dir, listener).await });
        Holder {
            layout,
            url,
            _tmp: tmp,
        }
    }

    fn dir(&self) -> &Path {
        self.layout.dir()
    }

    /// The region's client, with the files `init` made for it.
    fn client(&self) -> Arc<KeyHolderClient> {
        Arc::new(
            KeyHolderClient::new(
                &self.url,
                &self.layout.region_ca(),
                &self.layout.region_cert(),
                &self.layout.region_key(),
            )
            .unwrap(),
        )
    }

    /// (operation, project, client, outcome) of every log entry.
    fn log(&self) -> Vec<(String, String, String, String)> {
        AuditLog::new(&self.layout.audit_log())
            .read()
            .unwrap()
            .into_iter()
            .map(|e| (e.operation, e.project, e.client, e.outcome))
            .collect()
    }

    /// A plain HTTPS client with the region's certificate, to send what the
    /// region's provider never would.
    fn raw_client(&self) -> reqwest::Client {
        let ca = std::fs::read(self.layout.region_ca()).unwrap();
        let mut identity = std::fs::read(self.layout.region_cert()).unwrap();
        identity.extend(std::fs::read(self.layout.region_key()).unwrap());
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .identity(reqwest::Identity::from_pem(&identity).unwrap())
            .build()
            .unwrap()
    }
}

async fn keyring(root: Arc<KeyHolderClient>, cache_ttl: Duration) -> (Keyring, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
        .await
        .unwrap();
    (Keyring::new(db, root, cache_ttl, None), dir)
}

fn entries<'a>(
    log: &'a [(String, String, String, String)],
    project: &'a str,
) -> Vec<(&'a str, &'a str)> {
    log.iter()
        .filter(|(_, p, _, _)| p == project)
        .map(|(op, _, _, outcome)| (op.as_str(), outcome.as_str()))
        .collect()
}

#[tokio::test]
async fn data_round_trips_and_a_revocation_stops_access_within_the_cache_time() {
    let holder = Holder::start().await;
    let ttl = Duration::from_secs(1);
    let (ring, _db_dir) = keyring(holder.client(), ttl).await;
    assert!(ring.root().describe().contains(&holder.url));

    let sealed = ring.seal("p1", b"item-1", b"marker payload").await.unwrap();
    let other = ring.seal("p2", b"item-1", b"other payload").await.unwrap();
    assert_eq!(
        ring.open("p1", b"item-1", &sealed).await.unwrap(),
        b"marker payload"
    );
    // A region without cached keys goes to the key holder.
    ring.forget(None);
    assert_eq!(
        ring.open("p1", b"item-1", &sealed).await.unwrap(),
        b"marker payload"
    );

    keyholder::set_revoked(holder.dir(), "p1", true).unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(matches!(
        ring.open("p1", b"item-1", &sealed).await,
        Err(KmsError::Revoked(p)) if p == "p1"
    ));
    assert!(matches!(
        ring.seal("p1", b"item-2", b"x").await,
        Err(KmsError::Revoked(_))
    ));
    // Other projects are untouched.
    assert_eq!(
        ring.open("p2", b"item-1", &other).await.unwrap(),
        b"other payload"
    );

    keyholder::set_revoked(holder.dir(), "p1", false).unwrap();
    assert_eq!(
        ring.open("p1", b"item-1", &sealed).await.unwrap(),
        b"marker payload"
    );

    let log = holder.log();
    assert_eq!(
        entries(&log, "p1"),
        vec![
            ("wrap", "ok"),
            ("unwrap", "ok"),
            ("revoke", "ok"),
            ("unwrap", "revoked"),
            ("unwrap", "revoked"),
            ("unrevoke", "ok"),
            ("unwrap", "ok"),
        ]
    );
    for (op, _, client, _) in &log {
        let expected = if op.contains("revoke") {
            keyholder::LOCAL_OPERATOR
        } else {
            REGION
        };
        assert_eq!(client, expected, "{op}");
    }
}

#[tokio::test]
async fn clients_without_a_certificate_from_the_key_holders_ca_are_refused() {
    let holder = Holder::start().await;
    let stranger = tempfile::tempdir().unwrap();
    let other = keyholder::init(stranger.path(), &[]).unwrap();

    // Trusts the key holder, but presents a certificate of another CA.
    let impostor = KeyHolderClient::new(
        &holder.url,
        &holder.layout.region_ca(),
        &other.region_cert(),
        &other.region_key(),
    )
    .unwrap();
    let err = impostor
        .wrap("p1", b"ctx", &Key::generate())
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::RootUnavailable(_)), "{err}");

    // Presents no certificate at all.
    let anonymous = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(holder.layout.region_ca()).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let sent = anonymous
        .post(format!("{}/v1/rotate", holder.url))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "answered without a client certificate: {sent:?}"
    );

    // Neither got as far as the key holder's API.
    assert!(holder.log().is_empty(), "{:?}", holder.log());
    // ... while the region's own certificate works.
    holder
        .client()
        .wrap("p1", b"ctx", &Key::generate())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_key_holder_is_unavailable_not_revoked() {
    let holder = Holder::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = KeyHolderClient::new(
        &format!("https://127.0.0.1:{closed}"),
        &holder.layout.region_ca(),
        &holder.layout.region_cert(),
        &holder.layout.region_key(),
    )
    .unwrap();
    let err = client
        .wrap("p1", b"ctx", &Key::generate())
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::RootUnavailable(_)), "{err}");

    let missing = PathBuf::from("no-such-file.pem");
    for (ca, cert, key) in [
        (
            &missing,
            &holder.layout.region_cert(),
            &holder.layout.region_key(),
        ),
        (
            &holder.layout.region_ca(),
            &missing,
            &holder.layout.region_key(),
        ),
        // a key that does not belong to the certificate's place
        (
            &holder.layout.region_ca(),
            &holder.layout.region_cert(),
            &holder.layout.region_ca(),
        ),
    ] {
        assert!(KeyHolderClient::new(&holder.url, ca, cert, key).is_err());
    }
    let plain = holder.url.replace("https", "http");
    assert!(KeyHolderClient::new(
        &plain,
        &holder.layout.region_ca(),
        &holder.layout.region_cert(),
        &holder.layout.region_key()
    )
    .is_err());
}

#[tokio::test]
async fn a_wrapped_key_opens_only_for_its_project_and_context() {
    let holder = Holder::start().await;
    let client = holder.client();
    let kek = Key::generate();
    let wrapped = client.wrap("p1", b"kek/p1/1", &kek).await.unwrap();
    assert!(
        wrapped.root_ref.starts_with("keyholder:"),
        "{}",
        wrapped.root_ref
    );
    assert!(client.is_current(&wrapped.root_ref));
    let opened = client.unwrap("p1", b"kek/p1/1", &wrapped).await.unwrap();
    assert_eq!(opened.as_bytes(), kek.as_bytes());

    // After a revocation, naming another project does not open p1's key.
    keyholder::set_revoked(holder.dir(), "p1", true).unwrap();
    assert!(matches!(
        client.unwrap("p2", b"kek/p1/1", &wrapped).await,
        Err(KmsError::Corrupted(_))
    ));
    assert!(matches!(
        client.unwrap("p1", b"kek/p1/1", &wrapped).await,
        Err(KmsError::Revoked(_))
    ));
    keyholder::set_revoked(holder.dir(), "p1", false).unwrap();
    assert!(matches!(
        client.unwrap("p1", b"kek/p1/2", &wrapped).await,
        Err(KmsError::Corrupted(_))
    ));
    let foreign = himmel_kms::root::WrappedKek {
        root_ref: "file:1".into(),
        blob: wrapped.blob.clone(),
    };
    assert!(matches!(
        client.unwrap("p1", b"kek/p1/1", &foreign).await,
        Err(KmsError::RootUnavailable(_))
    ));

    // Nothing unwrapped is on the key holder's disk.
    let raw = kek.as_bytes().to_vec();
    let encoded = B64.encode(&raw).into_bytes();
    for path in files(holder.dir()) {
        let content = std::fs::read(&path).unwrap();
        for needle in [&raw, &encoded] {
            assert!(
                !content
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice()),
                "{path:?} holds the unwrapped key"
            );
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_root_rotation_rewraps_every_project_key_through_the_key_holder() {
    let holder = Holder::start().await;
    let (ring, _db_dir) = keyring(holder.client(), Duration::from_secs(60)).await;
    let a = ring.seal("p1", b"a", b"one").await.unwrap();
    let b = ring.seal("p2", b"b", b"two").await.unwrap();
    let rotation = ring.rotate_root().await.unwrap();
    assert_eq!(rotation.rewrapped, 2);
    assert!(ring.root().is_current(&rotation.new_root));

    // Without cached keys, the re-wrapped KEKs open through the key holder.
    ring.forget(None);
    assert_eq!(ring.open("p1", b"a", &a).await.unwrap(), b"one");
    assert_eq!(ring.open("p2", b"b", &b).await.unwrap(), b"two");
    let rotations = holder
        .log()
        .into_iter()
        .filter(|(op, _, _, outcome)| op == "rotate" && outcome == "ok")
        .count();
    assert_eq!(rotations, 1);
}

#[tokio::test]
async fn a_root_rotation_skips_revoked_projects_and_rewraps_the_rest() {
    let holder = Holder::start().await;
    let (ring, _db_dir) = keyring(holder.client(), Duration::from_secs(60)).await;
    ring.seal("p1", b"a", b"one").await.unwrap();
    let b = ring.seal("p2", b"b", b"two").await.unwrap();
    ring.forget(None);
    keyholder::set_revoked(holder.dir(), "p1", true).unwrap();

    let rotation = ring.rotate_root().await.unwrap();
    assert_eq!(rotation.rewrapped, 1);
    assert_eq!(rotation.skipped_revoked, ["p1"]);

    // restored, the revoked project's key opens under the old root version
    // and the next rotation re-wraps it
    keyholder::set_revoked(holder.dir(), "p1", false).unwrap();
    ring.forget(None);
    assert_eq!(ring.open("p2", b"b", &b).await.unwrap(), b"two");
    let again = ring.rotate_root().await.unwrap();
    assert!(again.skipped_revoked.is_empty());
    assert_eq!(again.rewrapped, 2);
}

#[tokio::test]
async fn malformed_requests_are_refused_with_a_reason_and_logged() {
    let holder = Holder::start().await;
    let http = holder.raw_client();
    let unwrap_url = format!("{}/v1/unwrap", holder.url);
    let cases = [
        ("not json".to_string(), "-"),
        (
            serde_json::json!({"project_id": "p1", "context": "!!", "root_ref": "file:1", "wrapped": ""})
                .to_string(),
            "p1",
        ),
        (
            serde_json::json!({"project_id": "../etc", "context": "", "root_ref": "file:1", "wrapped": ""})
                .to_string(),
            "\"../etc\"",
        ),
        (
            serde_json::json!({"project_id": "p1\n2026 unwrap p1 ok", "context": "", "root_ref": "file:1", "wrapped": ""})
                .to_string(),
            "\"p1\\n2026 unwrap p1 ok\"",
        ),
        (
            serde_json::json!({"project_id": "p1", "context": "", "root_ref": "file:1", "wrapped": "AAAA"})
                .to_string(),
            "p1",
        ),
    ];
    for (body, _) in &cases {
        let response = http
            .post(&unwrap_url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(status == 400 || status == 422, "{body}: {status}");
        assert!(answer["error"].is_string(), "{body}: {answer}");
        assert!(answer.get("key").is_none());
    }
    let wrap = http
        .post(format!("{}/v1/wrap", holder.url))
        .json(&serde_json::json!({"project_id": "p1", "context": "", "key": B64.encode([0u8; 5])}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrap.status(), 400);

    let log = holder.log();
    assert_eq!(log.len(), cases.len() + 1);
    assert!(log.iter().all(|(_, _, _, outcome)| outcome != "ok"));
    let projects: Vec<&str> = log.iter().map(|(_, p, _, _)| p.as_str()).collect();
    let mut expected: Vec<&str> = cases.iter().map(|(_, p)| *p).collect();
    expected.push("p1");
    assert_eq!(projects, expected);
}
