//! Group commit of new object versions.
//!
//! Every PUT ends in a metadata commit, and every commit waits for the
//! database to make it durable (an fsync of SQLite's WAL, a WAL flush in
//! PostgreSQL). One writer task takes the versions that arrive while the
//! previous commit is running and commits them together in one
//! transaction; each caller hears back only after the transaction holding
//! its version committed, so an acknowledged PUT is as durable as before.
//! With one PUT at a time a batch is that one version and nothing waits.

use tokio::sync::{mpsc, oneshot};

use himmel_db::Db;

use crate::store::{self, DbResult, ObjectRow};

/// The most versions one transaction carries.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<DbResult<Vec<ObjectRow>>>;

/// Hands new object versions to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<(ObjectRow, Reply)>,
}

impl Committer {
    /// Starts the writer task on the current runtime.
    pub fn start(db: Db) -> Committer {
        let (queue, incoming) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(db, incoming));
        Committer { queue }
    }

    /// Makes `row` the latest version of its key, as [`store::put_object`]
    /// does; returns the rows it replaced once the commit is durable.
    pub async fn put_object(&self, row: &ObjectRow) -> DbResult<Vec<ObjectRow>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((row.clone(), reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> sqlx::Error {
    sqlx::Error::PoolClosed
}

async fn write_batches(db: Db, mut incoming: mpsc::Receiver<(ObjectRow, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let committed = {
            let rows: Vec<&ObjectRow> = batch.iter().map(|(row, _)| row).collect();
            commit_together(&db, &rows).await
        };
        match committed {
            Ok(replaced) => {
                for ((_, reply), replaced) in batch.drain(..).zip(replaced) {
                    let _ = reply.send(Ok(replaced));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some((_, reply)) = batch.pop() {
                    let _ = reply.send(Err(e));
                }
            }
            // One version cannot spoil the others' commit: each goes again
            // on its own and hears its own outcome.
            Err(_) => {
                for (row, reply) in batch.drain(..) {
                    let _ = reply.send(store::put_object(&db, &row).await);
                }
            }
        }
    }
}

async fn commit_together(db: &Db, rows: &[&ObjectRow]) -> DbResult<Vec<Vec<ObjectRow>>> {
    let mut tx = db.begin_write().await?;
    let replaced = store::put_objects_in(&mut tx, rows).await?;
    tx.commit().await?;
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn version(key: &str, n: usize) -> ObjectRow {
        ObjectRow {
            id: format!("{key}-{n}"),
            bucket_id: "b".into(),
            key: key.into(),
            version_id: "null".into(),
            segments: vec![(format!("file-{key}-{n}"), 1)],
            ..Default::default()
        }
    }

    /// 64 writers put 8 versions each of 8 keys at once: every version
    /// commits, each key ends with exactly one latest version, and every
    /// replaced version is handed back exactly once (its files are
    /// removed by the one who replaced it).
    async fn concurrent_versions_all_commit(db: Db) {
        let committer = Committer::start(db.clone());
        let tasks: Vec<_> = (0..64)
            .map(|w| {
                let c = committer.clone();
                tokio::spawn(async move {
                    let mut replaced = Vec::new();
                    for n in 0..8 {
                        let row = version(&format!("k{}", w % 8), w * 8 + n);
                        replaced.extend(c.put_object(&row).await.unwrap());
                    }
                    replaced
                })
            })
            .collect();
        let mut replaced = HashSet::new();
        for t in tasks {
            for r in t.await.unwrap() {
                assert!(replaced.insert(r.id.clone()), "{} handed back twice", r.id);
            }
        }
        assert_eq!(replaced.len(), 64 * 8 - 8);
        let mut latest = HashSet::new();
        for k in 0..8 {
            let row = store::get_latest(&db, "b", &format!("k{k}"))
                .await
                .unwrap()
                .expect("a latest version");
            assert!(!replaced.contains(&row.id));
            latest.insert(row.id);
        }
        assert_eq!(latest.len(), 8);
    }

    /// One batch that names a key twice, with "null" versions (each
    /// replaces the one before) and a versioned one: the same outcome as
    /// one version at a time.
    async fn a_batch_acts_as_its_versions_one_by_one(db: Db) {
        let null = |key: &str, n: usize| version(key, n);
        let versioned = ObjectRow {
            version_id: "v9".into(),
            ..version("a", 9)
        };
        let first = null("a", 1);
        store::put_object(&db, &first).await.unwrap();
        let batch = [null("a", 2), null("b", 3), versioned.clone(), null("a", 4)];
        let rows: Vec<&ObjectRow> = batch.iter().collect();
        let mut tx = db.begin_write().await.unwrap();
        let replaced = store::put_objects_in(&mut tx, &rows).await.unwrap();
        tx.commit().await.unwrap();
        let ids = |rs: &Vec<ObjectRow>| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            replaced.iter().map(ids).collect::<Vec<_>>(),
            vec![
                vec!["a-1".to_string()],
                vec![],
                vec![],
                vec!["a-2".to_string()],
            ]
        );
        let latest = store::get_latest(&db, "b", "a").await.unwrap().unwrap();
        assert_eq!(latest.id, "a-4");
        assert!(store::get_version(&db, "b", "a", "v9")
            .await
            .unwrap()
            .is_some_and(|r| !r.is_latest));
        assert_eq!(
            store::get_latest(&db, "b", "b").await.unwrap().unwrap().id,
            "b-3"
        );
    }

    #[tokio::test]
    async fn a_batch_acts_as_its_versions_one_by_one_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
            .await
            .unwrap();
        a_batch_acts_as_its_versions_one_by_one(db).await;
    }

    #[tokio::test]
    async fn a_batch_acts_as_its_versions_one_by_one_on_postgres() {
        let Ok(base) = std::env::var("HIMMEL_TEST_POSTGRES") else {
            eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set");
            return;
        };
        a_batch_acts_as_its_versions_one_by_one(himmel_db::testing::fresh_postgres(&base).await)
            .await;
    }

    #[tokio::test]
    async fn concurrent_versions_all_commit_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/state.db", dir.path().display()))
            .await
            .unwrap();
        concurrent_versions_all_commit(db).await;
    }

    #[tokio::test]
    async fn concurrent_versions_all_commit_on_postgres() {
        let Ok(base) = std::env::var("HIMMEL_TEST_POSTGRES") else {
            eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set");
            return;
        };
        concurrent_versions_all_commit(himmel_db::testing::fresh_postgres(&base).await).await;
    }
}
