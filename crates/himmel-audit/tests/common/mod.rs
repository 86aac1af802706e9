//! Shared helpers: databases on both engines, records as the pipeline
//! makes them.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use himmel_audit::{AuditConfig, AuditKey, AuditLog};
use himmel_core::{RequestContext, Scope};
use himmel_db::Db;
use himmel_http::AuditRecord;

pub struct Env {
    pub db: Db,
    pub key: AuditKey,
    pub dir: tempfile::TempDir,
}

pub async fn sqlite() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
        .await
        .unwrap();
    let key = AuditKey::load_or_create(&dir.path().join(himmel_audit::KEY_FILE_NAME)).unwrap();
    Env { db, key, dir }
}

pub async fn postgres() -> Option<Env> {
    let Ok(url) = std::env::var("HIMMEL_TEST_POSTGRES") else {
        eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set (the project's test command sets it)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = himmel_db::testing::fresh_postgres(&url).await;
    let key = AuditKey::load_or_create(&dir.path().join(himmel_audit::KEY_FILE_NAME)).unwrap();
    Some(Env { db, key, dir })
}

/// Runs an async scenario `fn(Env)` on SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::sqlite().await).await;
                }
            )*
        }
        mod postgres_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(env) = $crate::common::postgres().await {
                        super::$name(env).await;
                    }
                }
            )*
        }
    };
}

pub async fn start(env: &Env) -> AuditLog {
    start_with(env, 1000).await
}

pub async fn start_with(env: &Env, checkpoint_every: u64) -> AuditLog {
    let config = AuditConfig {
        observer_id: "region-test".into(),
        checkpoint_every,
        ..Default::default()
    };
    AuditLog::start(env.db.clone(), env.key.clone(), config)
        .await
        .unwrap()
}

pub fn project_ctx(user: &str, project: &str) -> Arc<RequestContext> {
    Arc::new(RequestContext {
        request_id: "req-x".into(),
        user_id: user.into(),
        user_name: format!("{user}-name"),
        user_domain_id: "default".into(),
        user_domain_name: "Default".into(),
        scope: Scope::Project {
            id: project.into(),
            name: project.into(),
            domain_id: "default".into(),
            domain_name: "Default".into(),
        },
        roles: vec!["member".into(), "reader".into()],
        methods: vec!["password".into()],
        audit_ids: vec![],
        application_credential_id: None,
        expires_at: String::new(),
        source_addr: "192.0.2.7".into(),
    })
}

pub fn record(n: u64, initiator: Option<Arc<RequestContext>>, at: DateTime<Utc>) -> AuditRecord {
    let (action, method, status) = match n % 3 {
        0 => ("identity:create_user", "POST", 201),
        1 => ("identity:get_user", "GET", 200),
        _ => ("identity:delete_user", "DELETE", 403),
    };
    AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        at,
        request_id: format!("req-{n}"),
        service: "identity",
        action,
        method: method.into(),
        path: format!("/v3/users/u{n}"),
        status,
        initiator,
        source_addr: "192.0.2.7".into(),
        target_type: "data/security/account/user".into(),
        target_id: Some(format!("u{n}")),
        elapsed_us: 1234,
    }
}

/// Records `n` events (project p1, user u1) and waits for them.
pub async fn fill(log: &AuditLog, n: u64) {
    for i in 0..n {
        log.record(record(i, Some(project_ctx("u1", "p1")), Utc::now()), false)
            .await
            .unwrap();
    }
    log.flush().await.unwrap();
}
