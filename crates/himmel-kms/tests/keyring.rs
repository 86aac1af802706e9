//! The key hierarchy against a real state store (SQLite, and PostgreSQL when
//! the test command provides one).

use std::sync::Arc;
use std::time::Duration;

use himmel_db::Db;
use himmel_kms::root::file::KeyFile;
use himmel_kms::root::RootKeyProvider;
use himmel_kms::{Keyring, KmsError};

struct Setup {
    db: Db,
    root: Arc<KeyFile>,
    _dir: tempfile::TempDir,
}

async fn sqlite() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
        .await
        .unwrap();
    let root = Arc::new(KeyFile::open_or_create(&dir.path().join("root.key")).unwrap());
    Setup {
        db,
        root,
        _dir: dir,
    }
}

async fn postgres() -> Option<Setup> {
    let Ok(base) = std::env::var("HIMMEL_TEST_POSTGRES") else {
        eprintln!("skipping the PostgreSQL variant: HIMMEL_TEST_POSTGRES is not set (scripts/test sets it)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = himmel_db::testing::fresh_postgres(&base).await;
    let root = Arc::new(KeyFile::open_or_create(&dir.path().join("root.key")).unwrap());
    Some(Setup {
        db,
        root,
        _dir: dir,
    })
}

impl Setup {
    /// A keyring as a freshly started region has it: nothing cached.
    fn keyring(&self) -> Keyring {
        Keyring::new(
            self.db.clone(),
            self.root.clone(),
            Duration::from_secs(60),
            None,
        )
    }

    async fn add_project(&self, id: &str) {
        sqlx::query("INSERT INTO domains (id, name, created_at, updated_at) VALUES ('d', 'd', 0, 0) ON CONFLICT DO NOTHING")
            .execute(self.db.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO projects (id, name, domain_id, created_at, updated_at) VALUES ($1, $1, 'd', 0, 0)")
            .bind(id)
            .execute(self.db.pool())
            .await
            .unwrap();
    }
}

async fn for_each_engine<F, Fut>(test: F)
where
    F: Fn(Setup) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    test(sqlite().await).await;
    if let Some(pg) = postgres().await {
        test(pg).await;
    }
}

#[tokio::test]
async fn sealed_items_open_only_for_their_project_and_identity() {
    for_each_engine(|s| async move {
        let ring = s.keyring();
        let sealed = ring.seal("p1", b"secret-1", b"the payload").await.unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"the payload"));
        // a region restarted (no cache) opens it through the root key
        let fresh = s.keyring();
        assert_eq!(
            fresh.open("p1", b"secret-1", &sealed).await.unwrap(),
            b"the payload"
        );
        assert!(matches!(
            fresh.open("p2", b"secret-1", &sealed).await,
            Err(KmsError::Corrupted(_))
        ));
        assert!(matches!(
            fresh.open("p1", b"secret-2", &sealed).await,
            Err(KmsError::Corrupted(_))
        ));
        for cut in [0, 10, sealed.len() - 1] {
            assert!(fresh.open("p1", b"secret-1", &sealed[..cut]).await.is_err());
        }
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert!(matches!(
            fresh.open("p1", b"secret-1", &flipped).await,
            Err(KmsError::Corrupted(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn concurrent_first_use_makes_one_project_key() {
    for_each_engine(|s| async move {
        let ring = s.keyring();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let ring = ring.clone();
            tasks.push(tokio::spawn(async move {
                ring.seal("p1", format!("item-{i}").as_bytes(), b"x")
                    .await
                    .unwrap()
            }));
        }
        let mut sealed = Vec::new();
        for t in tasks {
            sealed.push(t.await.unwrap());
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM kms_project_keys WHERE project_id = 'p1'")
                .fetch_one(s.db.pool())
                .await
                .unwrap();
        assert_eq!(count, 1);
        let fresh = s.keyring();
        for (i, blob) in sealed.iter().enumerate() {
            assert_eq!(
                fresh
                    .open("p1", format!("item-{i}").as_bytes(), blob)
                    .await
                    .unwrap(),
                b"x"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn project_key_rotation_keeps_old_versions_for_decryption() {
    for_each_engine(|s| async move {
        let ring = s.keyring();
        let old = ring.seal("p1", b"a", b"before").await.unwrap();
        assert_eq!(ring.rotate_project_key("p1").await.unwrap(), 2);
        let new = ring.seal("p1", b"b", b"after").await.unwrap();
        assert_eq!(
            &new[4..8],
            &2u32.to_be_bytes(),
            "new data is under version 2"
        );
        let fresh = s.keyring();
        assert_eq!(fresh.open("p1", b"a", &old).await.unwrap(), b"before");
        assert_eq!(fresh.open("p1", b"b", &new).await.unwrap(), b"after");
    })
    .await;
}

#[tokio::test]
async fn root_rotation_rewraps_every_project_key_and_data_still_opens() {
    for_each_engine(|s| async move {
        let ring = s.keyring();
        let a = ring.seal("p1", b"a", b"one").await.unwrap();
        ring.rotate_project_key("p1").await.unwrap();
        let b = ring.seal("p2", b"b", b"two").await.unwrap();
        let before: Vec<String> =
            sqlx::query_scalar("SELECT wrapped FROM kms_project_keys ORDER BY project_id, version")
                .fetch_all(s.db.pool())
                .await
                .unwrap();

        let rotation = ring.rotate_root().await.unwrap();
        assert_eq!(rotation.new_root, "file:2");
        assert_eq!(rotation.rewrapped, 3);
        let refs: Vec<String> = sqlx::query_scalar(
            "SELECT root_ref FROM kms_project_keys ORDER BY project_id, version",
        )
        .fetch_all(s.db.pool())
        .await
        .unwrap();
        assert_eq!(refs, ["file:2", "file:2", "file:2"]);
        let after: Vec<String> =
            sqlx::query_scalar("SELECT wrapped FROM kms_project_keys ORDER BY project_id, version")
                .fetch_all(s.db.pool())
                .await
                .unwrap();
        assert!(before.iter().zip(&after).all(|(x, y)| x != y));

        let fresh = s.keyring();
        assert_eq!(fresh.open("p1", b"a", &a).await.unwrap(), b"one");
        assert_eq!(fresh.open("p2", b"b", &b).await.unwrap(), b"two");
        // a second rotation right after has nothing left under an old root
        assert_eq!(ring.rotate_root().await.unwrap().rewrapped, 3);
    })
    .await;
}

#[tokio::test]
async fn destroying_a_project_key_makes_its_data_unrecoverable() {
    for_each_engine(|s| async move {
        s.add_project("kept").await;
        s.add_project("doomed").await;
        let ring = s.keyring();
        let kept = ring.seal("kept", b"x", b"stays").await.unwrap();
        let doomed = ring.seal("doomed", b"x", b"goes").await.unwrap();
        ring.rotate_project_key("doomed").await.unwrap();

        // deleting the project in the identity store shreds its keys
        sqlx::query("DELETE FROM projects WHERE id = 'doomed'")
            .execute(s.db.pool())
            .await
            .unwrap();
        assert_eq!(ring.shred_deleted_projects().await.unwrap(), ["doomed"]);

        let wrapped: Vec<String> =
            sqlx::query_scalar("SELECT wrapped FROM kms_project_keys WHERE project_id = 'doomed'")
                .fetch_all(s.db.pool())
                .await
                .unwrap();
        assert_eq!(wrapped, ["", ""], "no wrapped key material is left");
        for r in [&ring, &s.keyring()] {
            assert!(matches!(
                r.open("doomed", b"x", &doomed).await,
                Err(KmsError::Destroyed(_))
            ));
            assert_eq!(r.open("kept", b"x", &kept).await.unwrap(), b"stays");
        }
        // even the root key cannot bring it back: the wrapped KEK is gone
        assert!(s.root.is_current("file:1"));
        assert!(ring.shred_deleted_projects().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_lost_root_key_is_refused_at_start_not_at_every_read() {
    let s = sqlite().await;
    let ring = s.keyring();
    ring.seal("p1", b"a", b"x").await.unwrap();
    assert_eq!(s.keyring().verify_root().await.unwrap(), 1);

    // the key file is gone and a new one was made in its place
    let dir = tempfile::tempdir().unwrap();
    let other = Arc::new(KeyFile::open_or_create(&dir.path().join("root.key")).unwrap());
    let replaced = Keyring::new(s.db.clone(), other, Duration::from_secs(60), None);
    let err = replaced.verify_root().await.unwrap_err();
    assert!(matches!(err, KmsError::RootUnavailable(_)));
    assert!(err.to_string().contains("file:1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn root_rotation_under_load_loses_nothing() {
    for_each_engine(|s| async move {
        // no cache: every operation goes through the root key mid-rotation
        let ring = Keyring::new(s.db.clone(), s.root.clone(), Duration::ZERO, None);
        let mut writers = Vec::new();
        for w in 0..4 {
            let ring = ring.clone();
            writers.push(tokio::spawn(async move {
                let mut sealed = Vec::new();
                for i in 0..40 {
                    let project = format!("p{}", (w + i) % 3);
                    let id = format!("item-{w}-{i}");
                    let blob = ring
                        .seal(&project, id.as_bytes(), id.as_bytes())
                        .await
                        .unwrap();
                    assert_eq!(
                        ring.open(&project, id.as_bytes(), &blob).await.unwrap(),
                        id.as_bytes()
                    );
                    sealed.push((project, id, blob));
                }
                sealed
            }));
        }
        for _ in 0..3 {
            ring.rotate_root().await.unwrap();
            ring.rotate_project_key("p1").await.unwrap();
        }
        let mut all = Vec::new();
        for w in writers {
            all.extend(w.await.unwrap());
        }
        assert_eq!(all.len(), 160);
        let fresh = s.keyring();
        for (project, id, blob) in &all {
            assert_eq!(
                fresh.open(project, id.as_bytes(), blob).await.unwrap(),
                id.as_bytes()
            );
        }
        // a rotation after the load re-wraps everything under the last root
        assert_eq!(ring.rotate_root().await.unwrap().new_root, "file:5");
        let refs: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT root_ref FROM kms_project_keys")
                .fetch_all(s.db.pool())
                .await
                .unwrap();
        assert_eq!(refs, ["file:5"]);
    })
    .await;
}
