//! Token revocation events, as Keystone keeps them. A token is revoked when
//! an event matches it (same user, project, domain, audit id…) and the token
//! was issued at or before the event.
//!
//! Validation is the hot path, so events live in memory. This process adds
//! to the cache as it revokes; other API servers on the same database pick
//! new events up within [`REFRESH`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use himmel_core::Error;
use himmel_db::Db;

use super::{i, opt_s};
use crate::db_err;

const REFRESH: Duration = Duration::from_secs(2);

/// What an event matches on; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationEvent {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub audit_id: Option<String>,
    /// Tokens issued at or before this instant (Unix µs) are revoked.
    pub issued_before: i64,
}

/// What a token offers for matching.
pub struct TokenFacts<'a> {
    pub user_id: &'a str,
    pub user_domain_id: &'a str,
    pub project_id: Option<&'a str>,
    pub domain_id: Option<&'a str>,
    pub audit_ids: &'a [String],
    pub issued_at_us: i64,
}

impl RevocationEvent {
    fn matches(&self, t: &TokenFacts) -> bool {
        if t.issued_at_us > self.issued_before {
            return false;
        }
        let eq = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(w) => have == Some(w.as_str()),
        };
        eq(&self.user_id, Some(t.user_id))
            && eq(&self.project_id, t.project_id)
            && match &self.domain_id {
                None => true,
                Some(d) => t.domain_id == Some(d) || t.user_domain_id == d,
            }
            && match &self.audit_id {
                None => true,
                Some(a) => t.audit_ids.iter().any(|x| x == a),
            }
    }
}

pub struct RevocationCache {
    state: RwLock<(Vec<RevocationEvent>, Instant)>,
    /// Bumped whenever the set of events grows, so caches of validated
    /// tokens know to look again.
    generation: AtomicU64,
}

impl RevocationCache {
    pub async fn load(db: &Db) -> Result<RevocationCache, Error> {
        Ok(RevocationCache {
            state: RwLock::new((read_all(db).await?, Instant::now())),
            generation: AtomicU64::new(0),
        })
    }

    /// Re-reads the events when the copy here may miss another server's.
    pub async fn refresh_if_stale(&self, db: &Db) -> Result<(), Error> {
        let stale = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .elapsed()
            > REFRESH;
        if stale {
            let events = read_all(db).await?;
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            if events != state.0 {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            *state = (events, Instant::now());
        }
        Ok(())
    }

    /// Changes whenever a revocation may have happened.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub async fn is_revoked(&self, db: &Db, facts: &TokenFacts<'_>) -> Result<bool, Error> {
        self.refresh_if_stale(db).await?;
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        Ok(guard.0.iter().any(|e| e.matches(facts)))
    }

    /// Records a revocation: durable first, then visible here at once.
    pub async fn revoke(&self, db: &Db, mut event: RevocationEvent) -> Result<(), Error> {
        let now = super::now_us();
        if event.issued_before == 0 {
            event.issued_before = now;
        }
        let mut tx = db.begin_write().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO revocation_events (id, user_id, project_id, domain_id, audit_id, issued_before, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(himmel_core::ids::new_id())
        .bind(&event.user_id)
        .bind(&event.project_id)
        .bind(&event.domain_id)
        .bind(&event.audit_id)
        .bind(event.issued_before)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .push(event);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Drops events older than the longest token lifetime: no token they
    /// could match is still valid.
    pub async fn prune(&self, db: &Db, max_token_lifetime_s: i64) -> Result<(), Error> {
        let cutoff = super::now_us() - max_token_lifetime_s * 1_000_000 - 60_000_000;
        let mut tx = db.begin_write().await.map_err(db_err)?;
        sqlx::query("DELETE FROM revocation_events WHERE issued_before < $1")
            .bind(cutoff)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .retain(|e| e.issued_before >= cutoff);
        Ok(())
    }
}

async fn read_all(db: &Db) -> Result<Vec<RevocationEvent>, Error> {
    let rows = sqlx::query(
        "SELECT user_id, project_id, domain_id, audit_id, issued_before FROM revocation_events",
    )
    .fetch_all(db.pool())
    .await
    .map_err(db_err)?;
    Ok(rows
        .iter()
        .map(|r| RevocationEvent {
            user_id: opt_s(r, "user_id"),
            project_id: opt_s(r, "project_id"),
            domain_id: opt_s(r, "domain_id"),
            audit_id: opt_s(r, "audit_id"),
            issued_before: i(r, "issued_before"),
        })
        .collect())
}
