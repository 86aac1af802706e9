//! The portability rules of the crate docs, checked on the engines at hand:
//! SQLite always, PostgreSQL when HIMMEL_TEST_POSTGRES names a server.

use himmel_db::{Db, Row};

async fn roundtrip(db: &Db) {
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("INSERT INTO regions (id, description) VALUES ($1, $2)")
        .bind("r1")
        .bind("first")
        .execute(&mut **tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Out-of-order and repeated placeholders.
    let row = sqlx::query(
        "SELECT id, description FROM regions WHERE description = $2 AND id = $1 AND id = $1",
    )
    .bind("r1")
    .bind("first")
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("id"), "r1");
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM regions")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 1);
    let dup = sqlx::query("INSERT INTO regions (id) VALUES ($1)")
        .bind("r1")
        .execute(db.pool())
        .await
        .unwrap_err();
    assert!(himmel_db::is_unique_violation(&dup));
}

#[tokio::test]
async fn sqlite_placeholders_and_uniqueness() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
        .await
        .unwrap();
    roundtrip(&db).await;
}

#[tokio::test]
async fn postgres_placeholders_and_uniqueness() {
    let Some(url) = std::env::var("HIMMEL_TEST_POSTGRES").ok() else {
        eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set (the project's test command sets it)");
        return;
    };
    let db = himmel_db::testing::fresh_postgres(&url).await;
    roundtrip(&db).await;
}
