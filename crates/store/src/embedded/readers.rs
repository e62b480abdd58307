//! Read-only connections for queries. In WAL mode readers never wait for the writer and
//! each sees the state as of the last commit, so reads run beside the writer thread on
//! tokio's blocking pool, leaving the async runtime free.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, sql_error};
use crate::{Result, StoreError};

/// Connections kept open between queries; a burst needing more opens extras and closes
/// them afterwards.
const MAX_IDLE: usize = 8;

pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            path,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `query` on a blocking thread with a connection of its own.
    pub(super) async fn run<T, F>(self: &Arc<Self>, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = readers.checkout()?;
            let result = query(&conn);
            readers.checkin(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }

    fn checkout(&self) -> Result<Connection> {
        if let Some(conn) = self.lock().pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(sql_error("open read connection"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql_error("set busy timeout"))?;
        Ok(conn)
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// A panic elsewhere cannot leave the list of idle connections half-updated, so a
    /// poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}
