//! The one thread that writes. SQLite allows a single writer at a time anyway; funnelling
//! every write through one thread that owns the write connection turns contention into a
//! queue, and the queue makes group commit possible: whatever arrived while the previous
//! batch was being fsync'd is written in the next transaction, so a burst of N deliveries
//! costs a handful of fsyncs rather than N.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{broadcast, oneshot};

use crate::{Change, Result, StoreError};

/// Most requests one transaction takes, so a flood of writes still commits (and answers
/// its callers) in steady steps.
const MAX_BATCH: usize = 256;

/// Handle to the writer thread; dropping it lets the thread finish its batch and exit.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn spawn(conn: Connection, feed: broadcast::Sender<Change>) -> Result<Self> {
        let (queue, requests) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let mut thread = WriterThread {
            conn,
            requests,
            feed,
            commits: Arc::clone(&commits),
        };
        let thread = std::thread::Builder::new()
            .name("sealpost-store-writer".into())
            .spawn(move || thread.run())
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            commits,
        })
    }

    /// Runs `write` inside the next batch's transaction and resolves once that
    /// transaction has committed. `write` records the changes to announce; if it fails,
    /// only its own savepoint is rolled back and the rest of the batch still commits.
    pub(super) async fn submit<T, F>(&self, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Change>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(Box::new(Pending { write, reply }))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue is the shutdown signal: the thread ends once it is drained.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store's writer thread panicked");
        }
    }
}

struct WriterThread {
    conn: Connection,
    requests: mpsc::Receiver<Box<dyn Job>>,
    feed: broadcast::Sender<Change>,
    commits: Arc<AtomicU64>,
}

impl WriterThread {
    fn run(&mut self) {
        while let Ok(first) = self.requests.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.requests.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    /// Runs every job in one transaction, each inside its own savepoint, commits once,
    /// then announces the changes and answers the callers.
    fn commit_batch(&mut self, batch: Vec<Box<dyn Job>>) {
        let mut applied = Vec::with_capacity(batch.len());
        let mut waiting = batch.into_iter();
        match self.write_batch(&mut waiting, &mut applied) {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                // Announce before answering, so a caller whose write resolved can count
                // on its change already being in the feed.
                for change in applied
                    .iter_mut()
                    .filter_map(|a| a.changes.take())
                    .flatten()
                {
                    // No subscribers is fine: nobody is waiting for news.
                    let _ = self.feed.send(change);
                }
                for outcome in applied {
                    (outcome.answer)(Ok(()));
                }
            }
            Err(message) => {
                tracing::error!(error = %message, "store write batch rolled back");
                for outcome in applied {
                    (outcome.answer)(Err(StoreError::Database(message.clone())));
                }
                for job in waiting {
                    job.reject(StoreError::Database(message.clone()));
                }
            }
        }
    }

    /// Applies jobs from `waiting` until it is empty, then commits. A job's own failure
    /// only rolls back its savepoint; an error here means the transaction itself is in
    /// doubt, so the whole batch is rolled back (by dropping it) and every caller told.
    fn write_batch(
        &mut self,
        waiting: &mut impl Iterator<Item = Box<dyn Job>>,
        applied: &mut Vec<Applied>,
    ) -> std::result::Result<(), String> {
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| format!("begin write transaction: {e}"))?;
        for job in waiting.by_ref() {
            let savepoint = match tx.savepoint() {
                Ok(savepoint) => savepoint,
                Err(e) => {
                    let message = format!("open savepoint: {e}");
                    job.reject(StoreError::Database(message.clone()));
                    return Err(message);
                }
            };
            let outcome = job.apply(&savepoint);
            let closed = if outcome.changes.is_some() {
                savepoint.commit()
            } else {
                // The savepoint's drop behaviour is rollback: undo this job alone.
                savepoint.finish()
            };
            applied.push(outcome);
            closed.map_err(|e| format!("close savepoint: {e}"))?;
        }
        tx.commit()
            .map_err(|e| format!("commit write transaction: {e}"))
    }
}

/// One caller's write, boxed so writes of every result type share the one queue.
trait Job: Send {
    /// Runs the write on the batch's connection.
    fn apply(self: Box<Self>, conn: &Connection) -> Applied;
    /// Answers the caller without running the write, when the batch cannot start.
    fn reject(self: Box<Self>, error: StoreError);
}

/// A write that has run, waiting for its batch to commit.
struct Applied {
    /// What to announce after commit; `None` when the write failed.
    changes: Option<Vec<Change>>,
    /// Sends the caller its result, given how the batch ended. A write that failed by
    /// itself reports its own error whatever the batch did.
    answer: Box<dyn FnOnce(Result<()>) + Send>,
}

struct Pending<T, F> {
    write: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &mut Vec<Change>) -> Result<T> + Send + 'static,
{
    fn apply(self: Box<Self>, conn: &Connection) -> Applied {
        let Pending { write, reply } = *self;
        let mut changes = Vec::new();
        // A caller that went away no longer needs an answer, so failed sends are ignored.
        match write(conn, &mut changes) {
            Ok(value) => Applied {
                changes: Some(changes),
                answer: Box::new(move |batch| {
                    let _ = reply.send(batch.map(|()| value));
                }),
            },
            Err(error) => Applied {
                changes: None,
                answer: Box::new(move |_| {
                    let _ = reply.send(Err(error));
                }),
            },
        }
    }

    fn reject(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}
