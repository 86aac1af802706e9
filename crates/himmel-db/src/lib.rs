//! The state store: one sqlx pool over SQLite (embedded default) or
//! PostgreSQL, with one set of migrations for both.
//!
//! Portability rules for every query in himmel, so the same SQL runs on
//! both engines through sqlx's `Any` driver:
//! * placeholders are `$1, $2, …`;
//! * integers and booleans are `BIGINT` (booleans as 0/1), decoded as `i64`;
//! * timestamps are `BIGINT` microseconds since the Unix epoch;
//! * JSON and binary values are `TEXT` (binary hex- or base64-encoded).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use sqlx;
pub use sqlx::any::AnyRow;
pub use sqlx::Row;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A handle on the state store. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
    /// SQLite allows one writer at a time; taking this lock before a write
    /// transaction turns lock contention into a fair queue instead of
    /// SQLITE_BUSY retries. PostgreSQL does not need it.
    write_lock: Arc<Mutex<()>>,
}

/// A write transaction (plus, on SQLite, the writer lock it holds).
pub struct WriteTx {
    pub tx: Tx,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

impl Db {
    /// Opens (creating if needed) the database at `url` and runs migrations.
    /// `url` is `sqlite://PATH` or `postgres://…`.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            anyhow::bail!("unsupported database URL (want sqlite:// or postgres://)");
        };
        let url = match engine {
            Engine::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let opts: AnyConnectOptions = url.parse().context("parsing database URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(match engine {
                Engine::Sqlite => 8,
                Engine::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL for concurrent readers; FULL so a commit is on
                        // disk before we acknowledge it.
                        conn.execute(
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                             PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .context("connecting to the database")?;
        MIGRATOR.run(&pool).await.context("running migrations")?;
        Ok(Db {
            pool,
            engine,
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Begins a transaction that will write.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let (guard, tx) = match self.engine {
            // IMMEDIATE takes SQLite's write lock at once: a transaction that
            // read first and then wrote would fail at once ("database is
            // locked") whenever a write from outside this lock committed in
            // between, where waiting for the lock is what we want.
            Engine::Sqlite => {
                let guard = self.write_lock.clone().lock_owned().await;
                (Some(guard), self.pool.begin_with("BEGIN IMMEDIATE").await?)
            }
            Engine::Postgres => (None, self.pool.begin().await?),
        };
        Ok(WriteTx { tx, _guard: guard })
    }
}

/// Booleans are stored as 0/1.
pub fn b(v: bool) -> i64 {
    v as i64
}

/// Reads a 0/1 column as bool.
pub fn get_bool(row: &AnyRow, col: &str) -> bool {
    row.try_get::<i64, _>(col).map(|v| v != 0).unwrap_or(false)
}

/// True when `e` is a uniqueness violation (a 409 for the API).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.code().as_deref() == Some("23505")
                || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// Helpers for tests that need a database of their own.
pub mod testing {
    use super::Db;
    use sqlx::Executor;

    /// Creates a new, empty database on the PostgreSQL server at `base_url`
    /// (e.g. `postgres://postgres@127.0.0.1:5432`) and connects to it.
    pub async fn fresh_postgres(base_url: &str) -> Db {
        let url = fresh_postgres_url(base_url).await;
        Db::connect(&url).await.expect("connect test database")
    }

    /// Creates a new, empty database on the server and returns its URL.
    pub async fn fresh_postgres_url(base_url: &str) -> String {
        sqlx::any::install_default_drivers();
        let base = base_url.trim_end_matches('/');
        let name = format!("himmel_test_{}", uuid_like());
        let admin = sqlx::AnyPool::connect(&format!("{base}/postgres"))
            .await
            .expect("postgres");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        admin.close().await;
        format!("{base}/{name}")
    }

    fn uuid_like() -> String {
        use std::time::{SystemTime, UNIX_EPOCH};
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!("{:x}{:x}", t, std::process::id())
    }
}
