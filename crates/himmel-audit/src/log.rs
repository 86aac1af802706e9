//! [`AuditLog`]: the pipeline's audit sink. Callers hand records to one
//! background writer task, which appends everything queued to the chain in
//! a single transaction (group commit: one fsync for the whole batch) and
//! then answers every caller waiting on that batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use himmel_core::Error;
use himmel_db::Db;
use himmel_http::{AuditRecord, AuditSink};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::cadf::{event_from_record, Event};
use crate::chain::{link_hash, Checkpoint, KIND_CHECKPOINT};
use crate::store::{self, Chained};
use crate::AuditKey;

/// Most events one transaction takes; more wait for the next one.
const MAX_BATCH: usize = 10_000;

/// Waits before retrying a failed write.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(250),
    Duration::from_secs(1),
];

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// CADF observer id: the region name.
    pub observer_id: String,
    /// Sign a checkpoint after this many events (and on shutdown).
    pub checkpoint_every: u64,
    /// Sign the head at least this often while events arrive slowly.
    pub checkpoint_interval: Duration,
    /// Records that may wait for the writer before callers are slowed down.
    pub queue_capacity: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            observer_id: "RegionOne".into(),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(300),
            queue_capacity: 100_000,
        }
    }
}

type Ack = oneshot::Sender<Result<(), Error>>;

enum Msg {
    Event(Event, Option<Ack>),
    /// Answers once everything queued before it is committed.
    Flush(Ack),
    /// Commits what is queued, signs a final checkpoint, stops the writer.
    Shutdown(Ack),
}

/// The audit trail's writing side. Cheap to clone; all clones share one
/// writer task.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    db: Db,
    key: AuditKey,
    observer_id: String,
    commits: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AuditLog {
    /// Reads the chain head from `db` and starts the writer task.
    pub async fn start(db: Db, key: AuditKey, config: AuditConfig) -> anyhow::Result<AuditLog> {
        let head = store::chain_head(&db).await?;
        let last_checkpoint = store::last_checkpoint_seq(&db).await?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            db: db.clone(),
            key: key.clone(),
            checkpoint_every: config.checkpoint_every.max(1) as i64,
            checkpoint_interval: config.checkpoint_interval.max(Duration::from_secs(1)),
            head,
            last_checkpoint,
            commits: commits.clone(),
        };
        let handle = tokio::spawn(writer.run(rx));
        Ok(AuditLog {
            inner: Arc::new(Inner {
                tx,
                db,
                key,
                observer_id: config.observer_id,
                commits,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Appends `rec` to the trail. With `durable`, returns once it is
    /// committed; otherwise once it is queued.
    pub async fn record(&self, rec: AuditRecord, durable: bool) -> Result<(), Error> {
        let event = event_from_record(&rec, &self.inner.observer_id);
        if !durable {
            return self.send(Msg::Event(event, None)).await;
        }
        let (ack, done) = oneshot::channel();
        self.send(Msg::Event(event, Some(ack))).await?;
        done.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Waits until everything recorded so far is committed.
    pub async fn flush(&self) -> Result<(), Error> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Flush(ack)).await?;
        done.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Commits what is queued, signs a checkpoint over the head and stops
    /// the writer. Later records fail.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let (ack, done) = oneshot::channel();
        let result = match self.send(Msg::Shutdown(ack)).await {
            Ok(()) => done.await.unwrap_or_else(|_| Err(stopped())),
            Err(e) => Err(e),
        };
        if let Some(handle) = self.inner.writer.lock().await.take() {
            let _ = handle.await;
        }
        result
    }

    async fn send(&self, msg: Msg) -> Result<(), Error> {
        self.inner.tx.send(msg).await.map_err(|_| stopped())
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn key(&self) -> &AuditKey {
        &self.inner.key
    }

    /// Transactions the writer has committed (for tests and metrics).
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }
}

fn stopped() -> Error {
    Error::Unavailable("the audit log is shut down".into())
}

#[async_trait]
impl AuditSink for AuditLog {
    async fn record(&self, record: AuditRecord, durable: bool) -> Result<(), Error> {
        AuditLog::record(self, record, durable).await
    }
}

struct Writer {
    db: Db,
    key: AuditKey,
    checkpoint_every: i64,
    checkpoint_interval: Duration,
    /// (seq, hash) of the last committed event.
    head: (i64, String),
    last_checkpoint: i64,
    commits: Arc<AtomicU64>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        // The first quiet checkpoint is one period from now, not at once.
        let mut quiet_checkpoints = tokio::time::interval_at(
            tokio::time::Instant::now() + self.checkpoint_interval,
            self.checkpoint_interval,
        );
        quiet_checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                msg = rx.recv() => msg,
                _ = quiet_checkpoints.tick() => {
                    // Sign the head in quiet times too, so recent events do
                    // not wait for the next thousand to be covered.
                    if let Err(e) = self.commit(&[], true).await {
                        tracing::error!(error = %e, "periodic audit checkpoint failed");
                    }
                    continue;
                }
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut events = Vec::with_capacity(batch.len());
            let mut waiters = Vec::new();
            let mut shutdown = None;
            for msg in batch {
                match msg {
                    Msg::Event(ev, ack) => {
                        events.push(ev);
                        waiters.extend(ack);
                    }
                    Msg::Flush(ack) => waiters.push(ack),
                    Msg::Shutdown(ack) => shutdown = Some(ack),
                }
            }
            let result = self.commit(&events, shutdown.is_some()).await;
            for w in waiters {
                let _ = w.send(result.clone());
            }
            if let Some(ack) = shutdown {
                let _ = ack.send(result);
                return;
            }
        }
        // Every handle was dropped without a shutdown: still sign the head.
        if let Err(e) = self.commit(&[], true).await {
            tracing::error!(error = %e, "final audit checkpoint failed");
        }
    }

    /// Appends `events` in one transaction, with a checkpoint when one is
    /// due (or `sign_head` asks for one). A failed attempt re-reads the
    /// head and is retried, so a passing fault loses nothing and the chain
    /// stays intact.
    async fn commit(&mut self, events: &[Event], sign_head: bool) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            match self.try_commit(events, sign_head).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < RETRY_DELAYS.len() => {
                    tracing::warn!(error = %e, events = events.len(), "audit write failed, retrying");
                    tokio::time::sleep(RETRY_DELAYS[attempt]).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), "audit events could not be written");
                    return Err(e);
                }
            }
        }
    }

    async fn try_commit(&mut self, events: &[Event], final_checkpoint: bool) -> Result<(), Error> {
        let mut seq = self.head.0;
        let mut hashes = Vec::with_capacity(events.len() + 1);
        hashes.push(self.head.1.clone());
        for ev in events {
            seq += 1;
            let h = link_hash(hashes.last().map_or("", String::as_str), &ev.body);
            hashes.push(h);
        }
        let head_hash = hashes.last().cloned().unwrap_or_default();
        let since = seq - self.last_checkpoint;
        let checkpoint =
            (since > 0 && (since >= self.checkpoint_every || final_checkpoint)).then(|| {
                Checkpoint::sign(
                    &self.key,
                    KIND_CHECKPOINT,
                    seq,
                    &head_hash,
                    chrono::Utc::now().timestamp_micros(),
                )
            });
        if events.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        let chained: Vec<Chained> = events
            .iter()
            .enumerate()
            .map(|(i, event)| Chained {
                seq: self.head.0 + 1 + i as i64,
                prev_hash: &hashes[i],
                hash: &hashes[i + 1],
                event,
            })
            .collect();
        let result = async {
            let mut tx = self.db.begin_write().await?;
            store::insert_events(&mut tx, &chained).await?;
            if let Some(cp) = &checkpoint {
                store::insert_checkpoint(&mut tx, cp).await?;
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.head = (seq, head_hash);
                if checkpoint.is_some() {
                    self.last_checkpoint = seq;
                }
                Ok(())
            }
            Err(e) => {
                if let Ok(head) = store::chain_head(&self.db).await {
                    self.head = head;
                }
                if let Ok(cp) = store::last_checkpoint_seq(&self.db).await {
                    self.last_checkpoint = cp;
                }
                Err(Error::Internal(format!("writing audit events: {e}")))
            }
        }
    }
}
