//! Locks that hold across nodes for as long as a session lives: POP3's maildrop lock and
//! IMAP's per-account session slots. They are PostgreSQL session-level advisory locks,
//! all taken on one connection per node kept for them, so a node that dies (its
//! connection closing) frees its locks by itself, and a session does not tie up a
//! pooled connection for its whole life.
//!
//! Advisory locks nest within one connection, so the node also remembers which keys it
//! holds: a second session of this node asking for a held key is refused here, not
//! granted by PostgreSQL.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Mutex as AsyncMutex;

use super::connect::Target;
use super::sql::describe;
use crate::{Result, SessionLock, SessionLockGuard, StoreError};

pub(super) struct SessionLocks {
    target: Target,
    connection: AsyncMutex<Option<tokio_postgres::Client>>,
    held: Mutex<HashSet<i64>>,
    closed: AtomicBool,
}

impl SessionLocks {
    pub(super) fn new(target: Target) -> Arc<Self> {
        Arc::new(Self {
            target,
            connection: AsyncMutex::new(None),
            held: Mutex::new(HashSet::new()),
            closed: AtomicBool::new(false),
        })
    }

    pub(super) async fn try_lock(
        self: &Arc<Self>,
        lock: SessionLock,
    ) -> Result<Option<SessionLockGuard>> {
        let key = key(lock)?;
        if !self.held().insert(key) {
            return Ok(None);
        }
        match self.run(key, "SELECT pg_try_advisory_lock($1)").await {
            Ok(true) => {
                let locks = Arc::clone(self);
                Ok(Some(SessionLockGuard::new(move || locks.release(key))))
            }
            Ok(false) => {
                self.held().remove(&key);
                Ok(None)
            }
            Err(e) => {
                self.held().remove(&key);
                Err(e)
            }
        }
    }

    /// Frees `key` here at once and in PostgreSQL soon after. A lock of the same key
    /// taken in between nests on the connection and survives this unlock, as it should.
    fn release(self: Arc<Self>, key: i64) {
        self.held().remove(&key);
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        // Without a runtime (the process is ending) the connection closes, which frees it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = self.run(key, "SELECT pg_advisory_unlock($1)").await {
                    tracing::warn!(error = %e, "cannot release a session lock; it goes with the connection");
                }
            });
        }
    }

    /// Runs one advisory-lock function on the locks' connection, opening it first if
    /// there is none (or it was lost, which freed whatever it held).
    async fn run(&self, key: i64, sql: &str) -> Result<bool> {
        let mut connection = self.connection.lock().await;
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        if connection
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            if connection.is_some() {
                tracing::warn!(
                    database = %self.target.describe(),
                    "the session locks' connection was lost: sessions of this node that \
                     held locks no longer exclude other nodes'"
                );
            }
            let (client, driver) = self
                .target
                .config
                .connect(self.target.tls.clone())
                .await
                .map_err(|e| StoreError::Database(format!("session locks: {}", describe(&e))))?;
            tokio::spawn(driver);
            *connection = Some(client);
        }
        let client = connection.as_ref().ok_or(StoreError::Closed)?;
        let row = client
            .query_one(sql, &[&key])
            .await
            .map_err(|e| StoreError::Database(format!("session lock: {}", describe(&e))))?;
        row.try_get(0)
            .map_err(|e| StoreError::Database(format!("session lock: {}", describe(&e))))
    }

    /// Closes the locks' connection, freeing every lock this node holds, as a node
    /// that stops does (guards dropped later find nothing to unlock).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Ok(mut connection) = self.connection.try_lock() {
            connection.take();
        }
    }

    fn held(&self) -> MutexGuard<'_, HashSet<i64>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The advisory lock key: the kind in the top byte, an IMAP slot below it, the account
/// in the low 40 bits.
fn key(lock: SessionLock) -> Result<i64> {
    const ACCOUNT_BITS: u32 = 40;
    let (kind, slot, account) = match lock {
        SessionLock::Pop3Maildrop(account) => (1i64, 0u32, account),
        SessionLock::ImapSession { account, slot } => (2, slot, account),
    };
    if !(0..1 << ACCOUNT_BITS).contains(&account) || slot >= 1 << 16 {
        return Err(StoreError::Invalid {
            what: "session lock",
            value: format!("{lock:?}"),
        });
    }
    Ok(kind << 56 | i64::from(slot) << ACCOUNT_BITS | account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_locks_differ() {
        let keys = [
            key(SessionLock::Pop3Maildrop(7)).unwrap(),
            key(SessionLock::Pop3Maildrop(8)).unwrap(),
            key(SessionLock::ImapSession {
                account: 7,
                slot: 0,
            })
            .unwrap(),
            key(SessionLock::ImapSession {
                account: 7,
                slot: 1,
            })
            .unwrap(),
        ];
        let distinct: HashSet<i64> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len());
        assert!(key(SessionLock::Pop3Maildrop(-1)).is_err());
    }
}
