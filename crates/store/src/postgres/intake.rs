//! Group commit for deliveries, the hot path of intake. A delivery holds its target
//! mailbox's row lock until its commit is flushed (that is what keeps UIDs in order across
//! nodes), so one transaction per message would cap a busy INBOX at one message per
//! flush. Deliveries that arrive while a transaction is committing are instead gathered
//! and written together in the next one: one lock and one flush for the batch, and each
//! caller still hears back only after that commit.
//!
//! A batch that fails is not the callers' problem: each of its deliveries is then written
//! on its own, so a bad one fails alone (as with the embedded store's writer).

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::messages::{self, Targets};
use super::{Node, unix_now};
use crate::{Delivered, Delivery, Result, StoreError};

/// Transactions one node runs for intake at once: one gathers while another commits.
const WORKERS: usize = 2;

/// Most deliveries in one transaction, so a flood still commits in steady steps.
const MAX_BATCH: usize = 64;

pub(super) struct Intake {
    queue: mpsc::Sender<Pending>,
    workers: Vec<JoinHandle<()>>,
}

struct Pending {
    delivery: Delivery,
    reply: oneshot::Sender<Result<Delivered>>,
}

impl Intake {
    pub(super) fn start(node: Node) -> Self {
        let (queue, waiting) = mpsc::channel(MAX_BATCH * WORKERS * 4);
        let waiting = Arc::new(Mutex::new(waiting));
        let workers = (0..WORKERS)
            .map(|_| tokio::spawn(work(node.clone(), Arc::clone(&waiting))))
            .collect();
        Self { queue, workers }
    }

    /// Stores the delivery in the next batch; resolves once that batch has committed.
    pub(super) async fn deliver(&self, delivery: Delivery) -> Result<Delivered> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { delivery, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

async fn work(node: Node, waiting: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let batch = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            batch
        };
        deliver_batch(&node, batch).await;
    }
}

async fn deliver_batch(node: &Node, batch: Vec<Pending>) {
    if batch.len() > 1 {
        let deliveries: Vec<&Delivery> = batch.iter().map(|pending| &pending.delivery).collect();
        let together = node
            .write(async |tx, changes| {
                let mut targets = Targets::lock(tx, &deliveries).await?;
                let now = unix_now();
                let mut delivered = Vec::with_capacity(deliveries.len());
                for delivery in &deliveries {
                    delivered.push(
                        messages::deliver_locked(tx, delivery, now, &mut targets, changes).await?,
                    );
                }
                targets.save(tx).await?;
                Ok(delivered)
            })
            .await;
        if let Ok(delivered) = together {
            for (pending, delivered) in batch.into_iter().zip(delivered) {
                // A caller that went away no longer needs the answer.
                let _ = pending.reply.send(Ok(delivered));
            }
            return;
        }
    }
    for pending in batch {
        let delivered = node
            .write(async |tx, changes| {
                messages::deliver(tx, &pending.delivery, unix_now(), changes).await
            })
            .await;
        let _ = pending.reply.send(delivered);
    }
}
