//! The root key on a PKCS#11 token (SoftHSM2): a restarted region reads its
//! data; with the token's key removed it cannot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use himmel_db::Db;
use himmel_kms::root::pkcs11::Pkcs11Root;
use himmel_kms::root::RootKeyProvider;
use himmel_kms::{Keyring, KmsError};

const TOKEN: &str = "himmel-test";
const PIN: &str = "4711-user";

/// Debian's softhsm2 package puts the module here.
fn softhsm_module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("running a SoftHSM tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A token of its own for this test, in a temporary directory.
fn init_token(dir: &Path) {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            tokens.display()
        ),
    )
    .unwrap();
    // Only this test in this binary touches the variable.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    run(Command::new("softhsm2-util").args([
        "--init-token",
        "--free",
        "--label",
        TOKEN,
        "--pin",
        PIN,
        "--so-pin",
        "4711-so",
    ]));
}

fn keyring(db: &Db, root: Arc<Pkcs11Root>) -> Keyring {
    Keyring::new(db.clone(), root, Duration::from_secs(60), None)
}

#[tokio::test]
async fn a_softhsm_root_key_opens_data_after_a_restart_and_nothing_without_it() {
    let Some(module) = softhsm_module() else {
        eprintln!("skipping: SoftHSM2 is not installed (Debian package softhsm2; scripts/test-deps installs it as root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    init_token(dir.path());
    let db = Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
        .await
        .unwrap();

    let root = Arc::new(Pkcs11Root::open(&module, TOKEN, PIN).unwrap());
    let sealed = keyring(&db, root.clone())
        .seal("p1", b"item", b"kept on the token")
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT root_ref FROM kms_project_keys")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(stored, "pkcs11:1");
    assert!(Pkcs11Root::open(&module, TOKEN, "wrong-pin").is_err());
    drop(root);

    // restart: a new session on the token, nothing cached
    let root = Arc::new(Pkcs11Root::open(&module, TOKEN, PIN).unwrap());
    assert_eq!(
        keyring(&db, root.clone())
            .open("p1", b"item", &sealed)
            .await
            .unwrap(),
        b"kept on the token"
    );

    // the root key rotates on the token; data still opens
    let ring = keyring(&db, root.clone());
    let rotation = ring.rotate_root().await.unwrap();
    assert_eq!(
        (rotation.new_root.as_str(), rotation.rewrapped),
        ("pkcs11:2", 1)
    );
    assert!(root.is_current("pkcs11:2"));
    assert_eq!(
        keyring(&db, root.clone())
            .open("p1", b"item", &sealed)
            .await
            .unwrap(),
        b"kept on the token"
    );
    drop((ring, root));

    // remove the token's keys: the region can no longer open anything
    for version in 1..=2 {
        run(Command::new("pkcs11-tool")
            .args(["--module"])
            .arg(&module)
            .args([
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                PIN,
                "--delete-object",
                "--type",
                "secrkey",
                "--label",
            ])
            .arg(format!("himmel-root-{version}")));
    }
    let root = Arc::new(Pkcs11Root::open(&module, TOKEN, PIN).unwrap());
    let reopened = keyring(&db, root.clone());
    assert!(matches!(
        reopened.open("p1", b"item", &sealed).await,
        Err(KmsError::RootUnavailable(_))
    ));
}
