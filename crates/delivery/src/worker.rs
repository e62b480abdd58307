//! The queue worker: claims due entries from the store, splits them into per-domain
//! parcels for the destinations' connections (`courier.rs`), and writes each entry's
//! attempt back once all its domains have reported (`attempt.rs`).
//!
//! It wakes when something is queued (the store's change feed, bursts coalesced), when a
//! retry falls due, every few seconds anyway (an admin's `queue retry` in another
//! process), and at start, for what an earlier run left behind. At most
//! [`IN_FLIGHT`] entries are held at once, however long the queue: the rest stay in the
//! store until there is room.
//!
//! Claims are leases: an entry claimed here is no one else's until its attempt is
//! written or the lease runs out. The lease is short (`[delivery] lease`, two minutes)
//! and renewed every third of it for every entry still held, so a node that dies hands
//! its entries to the others within a lease, while an attempt that outlasts the lease
//! (a slow MX, a long DATA) keeps its entry and is not claimed twice. A crash between
//! the remote's 250 and that write means the message is sent again later: a possible
//! duplicate, never a loss.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use sealpost_smtp::client::ClientSettings;
use sealpost_store::{Change, QueueEntry, QueueId, RecipientStatus, Store, StoreError};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::DeliverySettings;
use crate::attempt::{EntryAttempt, Schedule};
use crate::courier::Courier;
use crate::destination::{DestinationKey, DestinationQueue, DomainLimits, Parcel, group_by_domain};
use crate::header_section::asks_tls_not_required;
use crate::outcome::RecipientOutcome;
use crate::policy::PolicyEngine;
use crate::retry::retry_delay;

/// Entries held at once (claimed, not yet written back).
const IN_FLIGHT: usize = 1000;

/// With a backlog, claim again only once this many slots are free, so claims stay big.
const CLAIM_BATCH: usize = IN_FLIGHT / 4;

/// The shortest pause between two lease renewals, whatever the configured lease.
const MIN_RENEW_EVERY: Duration = Duration::from_millis(100);

/// The longest sleep between two looks at the queue.
const POLL: Duration = Duration::from_secs(5);

/// At shutdown, how long connections get to finish the message they are sending.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long the end of DATA may take (RFC 5321 §4.5.3.2.6: 10 minutes).
const DATA_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Delivers the queue in the background.
pub struct QueueWorker {
    store: Arc<dyn Store>,
    engine: PolicyEngine,
    settings: Arc<DeliverySettings>,
    sole_worker: bool,
}

impl QueueWorker {
    pub fn new(
        store: Arc<dyn Store>,
        engine: PolicyEngine,
        settings: Arc<DeliverySettings>,
    ) -> Self {
        Self {
            store,
            engine,
            settings,
            sole_worker: false,
        }
    }

    /// This is the only worker on the store (the embedded store, used by one server):
    /// leases still held at start are left from a run that crashed, and are released
    /// at once instead of waiting out the lease.
    pub fn sole_worker(mut self, sole: bool) -> Self {
        self.sole_worker = sole;
        self
    }

    /// Runs until `shutdown` turns true; then lets messages under way finish (briefly),
    /// writes what was done and gives the rest back to the queue.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let changes = self.store.subscribe();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (stopping_tx, stopping_rx) = watch::channel(false);
        let settings = self.settings.clone();
        let courier = Arc::new(Courier {
            store: self.store.clone(),
            engine: self.engine.clone(),
            client: ClientSettings {
                helo: settings.hostname.clone(),
                connect_timeout: settings.connect_timeout,
                command_timeout: settings.command_timeout,
                data_timeout: DATA_TIMEOUT.max(settings.command_timeout),
            },
            connections: Arc::new(Semaphore::new(settings.max_connections.max(1))),
            domains: DomainLimits::new(settings.per_destination),
            settings,
            done: done_tx,
            stopping: stopping_rx,
        });
        let renew_every = (self.settings.lease / 3).max(MIN_RENEW_EVERY);
        let mut worker = Worker {
            store: self.store,
            engine: self.engine,
            courier,
            destinations: HashMap::new(),
            in_flight: HashMap::new(),
            connections: JoinSet::new(),
            finishing: JoinSet::new(),
            done: done_rx,
            next_retry: None,
            backlog: false,
            renew_every,
            renew_at: Instant::now() + renew_every,
            looked_at: Instant::now(),
        };
        if self.sole_worker {
            worker.release_leases_left_by_a_crash().await;
        }
        tracing::info!(target: "delivery", "queue worker started");
        worker.serve(changes, &mut shutdown).await;
        let _ = stopping_tx.send(true);
        worker.stop().await;
        tracing::info!(target: "delivery", "queue worker stopped");
    }
}

struct Worker {
    store: Arc<dyn Store>,
    engine: PolicyEngine,
    courier: Arc<Courier>,
    destinations: HashMap<DestinationKey, Arc<DestinationQueue>>,
    in_flight: HashMap<QueueId, Arc<EntryAttempt>>,
    /// Connection tasks; each returns its destination, to forget it when idle.
    connections: JoinSet<DestinationKey>,
    /// Attempts being written to the store.
    finishing: JoinSet<QueueId>,
    done: mpsc::UnboundedReceiver<Arc<EntryAttempt>>,
    /// The earliest retry this worker scheduled that is still ahead (seconds since the
    /// epoch).
    next_retry: Option<i64>,
    /// The last claim was full: more is due than there was room for.
    backlog: bool,
    /// How often the leases of the entries held are renewed (a third of the lease).
    renew_every: Duration,
    renew_at: Instant,
    /// When the queue was last looked at (or the poll found no room to): the next look
    /// is due [`POLL`] after it, however often other events (renewals) wake the loop.
    looked_at: Instant,
}

impl Worker {
    async fn serve(
        &mut self,
        mut changes: broadcast::Receiver<Change>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut due = true;
        let mut feed_open = true;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if due && self.room_to_claim() {
                due = false;
                self.claim().await;
            }
            let wake = self.wake_at();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                Some(attempt) = self.done.recv() => self.finish(attempt),
                Some(finished) = self.finishing.join_next(), if !self.finishing.is_empty() => {
                    if let Ok(id) = finished {
                        self.in_flight.remove(&id);
                    }
                    due |= self.backlog;
                }
                Some(ended) = self.connections.join_next(), if !self.connections.is_empty() => {
                    if let Ok(key) = ended {
                        self.forget_if_idle(&key);
                    }
                }
                change = changes.recv(), if feed_open => match change {
                    Ok(Change::QueueAdded { .. }) | Err(RecvError::Lagged(_)) => {
                        due = true;
                        drain(&mut changes);
                    }
                    Ok(_) => {}
                    // No more change notices: polling alone finds new entries.
                    Err(RecvError::Closed) => feed_open = false,
                },
                _ = tokio::time::sleep_until(self.renew_at) => self.renew_leases().await,
                _ = tokio::time::sleep_until(wake) => {
                    self.looked_at = Instant::now();
                    due = true;
                }
            }
        }
    }

    /// Room for a claim: any when idle, otherwise a batch's worth when there is a
    /// backlog (so claims stay big), else any.
    fn room_to_claim(&self) -> bool {
        let free = IN_FLIGHT.saturating_sub(self.in_flight.len());
        if self.backlog && !self.in_flight.is_empty() {
            free >= CLAIM_BATCH
        } else {
            free > 0
        }
    }

    fn wake_at(&self) -> Instant {
        wake_time(
            self.looked_at,
            self.next_retry,
            self.room_to_claim(),
            Instant::now(),
            unix_now(),
        )
    }

    /// Claims what is due and has room, and hands it to the destinations.
    async fn claim(&mut self) {
        self.looked_at = Instant::now();
        let now = unix_now();
        if self.next_retry.is_some_and(|retry| retry <= now) {
            self.next_retry = None;
        }
        let limit = IN_FLIGHT.saturating_sub(self.in_flight.len());
        let lease_until = self.lease_until(now);
        let claimed = match self
            .store
            .claim_queue_entries(now, lease_until, limit)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(target: "delivery", %error, "cannot claim queue entries; trying again shortly");
                return;
            }
        };
        self.backlog = claimed.len() >= limit;
        let mut parcels: HashMap<DestinationKey, Vec<Parcel>> = HashMap::new();
        for entry in claimed {
            if self.in_flight.contains_key(&entry.id) {
                // Our own entry whose lease ran out while it was still under way.
                continue;
            }
            if let Some((attempt, split)) = self.prepare(entry).await {
                self.in_flight.insert(attempt.entry.id, attempt.clone());
                if split.is_empty() {
                    self.finish(attempt);
                }
                for (key, parcel) in split {
                    parcels.entry(key).or_default().push(parcel);
                }
            }
        }
        for (key, parcels) in parcels {
            self.dispatch(key, parcels);
        }
    }

    /// A lease taken or renewed at `now` runs until then.
    fn lease_until(&self, now: i64) -> i64 {
        let lease = self.courier.settings.lease.as_secs().max(1);
        now.saturating_add(i64::try_from(lease).unwrap_or(i64::MAX))
    }

    /// Extends the lease of every entry held (under way, or being written back), and
    /// schedules the next renewal. Entries already written back keep no lease: the store
    /// renews only leases still held.
    async fn renew_leases(&mut self) {
        self.renew_at = Instant::now() + self.renew_every;
        if self.in_flight.is_empty() {
            return;
        }
        let ids: Vec<QueueId> = self.in_flight.keys().copied().collect();
        let count = ids.len();
        let lease_until = self.lease_until(unix_now());
        if let Err(error) = self.store.renew_queue_leases(ids, lease_until).await {
            // Retried at the next renewal; should the lease run out meanwhile, another
            // worker may send these entries too (a duplicate, never a loss).
            tracing::warn!(target: "delivery", %error, count, "cannot renew the leases of entries under way");
        }
    }

    /// Splits an entry's pending recipients by destination. `None` when the entry is no
    /// longer there.
    async fn prepare(
        &mut self,
        entry: QueueEntry,
    ) -> Option<(Arc<EntryAttempt>, Vec<(DestinationKey, Parcel)>)> {
        let tls_required_no = match self.store.queue_message(entry.id).await {
            Ok(Some(message)) => !entry.require_tls && asks_tls_not_required(&message),
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(target: "delivery", id = entry.id, %error, "cannot read a queued message; trying again after the lease");
                return None;
            }
        };
        let pending = entry
            .recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Pending)
            .map(|r| r.address.as_str());
        let (domains, without_domain) = group_by_domain(pending);
        let settled = without_domain
            .into_iter()
            .map(|address| {
                let outcome = RecipientOutcome::failed(
                    (5, 1, 3),
                    format!("{address}: no domain to deliver to"),
                );
                (address, outcome)
            })
            .collect();
        let attempt = Arc::new(EntryAttempt::new(entry, domains.len(), settled));
        let split = domains
            .into_iter()
            .map(|(domain, recipients)| {
                let key = DestinationKey {
                    domain,
                    require_tls: attempt.entry.require_tls,
                    tls_required_no,
                };
                let parcel = Parcel {
                    attempt: attempt.clone(),
                    recipients,
                };
                (key, parcel)
            })
            .collect();
        Some((attempt, split))
    }

    /// Queues parcels at their destination and starts the connections they need.
    fn dispatch(&mut self, key: DestinationKey, parcels: Vec<Parcel>) {
        let queue = match self.destinations.entry(key.clone()) {
            Entry::Occupied(existing) => existing.get().clone(),
            Entry::Vacant(vacant) => vacant.insert(Arc::new(DestinationQueue::new(key))).clone(),
        };
        let start = queue.push(parcels, self.courier.settings.per_destination);
        for _ in 0..start {
            let courier = self.courier.clone();
            let queue = queue.clone();
            self.connections.spawn(async move {
                let key = queue.key.clone();
                courier.run(queue).await;
                key
            });
        }
    }

    fn forget_if_idle(&mut self, key: &DestinationKey) {
        if self
            .destinations
            .get(key)
            .is_some_and(|queue| queue.is_idle())
        {
            self.destinations.remove(key);
        }
        self.courier.domains.sweep();
    }

    /// Writes an attempt whose every domain has reported, in the background (writes of
    /// many attempts share the store's commits).
    fn finish(&mut self, attempt: Arc<EntryAttempt>) {
        if attempt.has_deferred() {
            let settings = &self.courier.settings;
            let delay = retry_delay(settings, attempt.entry.attempts.saturating_add(1));
            let next = unix_now().saturating_add(delay.as_secs() as i64);
            self.next_retry = Some(self.next_retry.map_or(next, |current| current.min(next)));
        }
        let store = self.store.clone();
        let settings = self.courier.settings.clone();
        self.finishing.spawn(async move {
            let id = attempt.entry.id;
            let now = OffsetDateTime::now_utc();
            match attempt.finish(store.as_ref(), &settings, now, Schedule::Backoff).await {
                Ok(()) => {}
                Err(StoreError::NotFound(_)) => {
                    tracing::info!(target: "delivery", id, "queue entry dropped during its attempt");
                }
                Err(error) => {
                    tracing::error!(target: "delivery", id, %error, "delivery attempt not recorded; the entry is retried after its lease");
                }
            }
            id
        });
    }

    /// Shutdown: connections finish the message under way (within [`STOP_GRACE`]),
    /// finished attempts are written, and entries not (fully) attempted go back to the
    /// queue as they were.
    async fn stop(&mut self) {
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            tokio::select! {
                Some(attempt) = self.done.recv() => self.finish(attempt),
                ended = self.connections.join_next() => {
                    if ended.is_none() {
                        break;
                    }
                }
                // The grace period may outlast what is left of a short lease.
                _ = tokio::time::sleep_until(self.renew_at) => self.renew_leases().await,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(target: "delivery", "deliveries still under way at shutdown were cut; they will be retried");
                    self.connections.shutdown().await;
                    break;
                }
            }
        }
        while let Ok(attempt) = self.done.try_recv() {
            self.finish(attempt);
        }
        for queue in self.destinations.values() {
            drop(queue.take_all());
        }
        while self.finishing.join_next().await.is_some() {}
        let unfinished: Vec<Arc<EntryAttempt>> = self
            .in_flight
            .drain()
            .map(|(_, attempt)| attempt)
            .filter(|attempt| !attempt.is_complete())
            .collect();
        for attempt in unfinished {
            let result = if attempt.has_outcomes() {
                // Some domains were done: record them; the rest is due again at once.
                let now = OffsetDateTime::now_utc();
                attempt
                    .finish(
                        self.store.as_ref(),
                        &self.courier.settings,
                        now,
                        Schedule::AtOnce,
                    )
                    .await
            } else {
                attempt.release(self.store.as_ref()).await.map(|_| ())
            };
            if let Err(error) = result {
                tracing::warn!(target: "delivery", id = attempt.entry.id, %error, "entry not given back at shutdown; it is retried after its lease");
            }
        }
        self.engine.flush().await;
    }

    /// Leases found at start on a store no other worker uses are a crashed run's: give
    /// those entries back now. Entries not yet due were finished (their lease released)
    /// and are left alone.
    async fn release_leases_left_by_a_crash(&mut self) {
        let now = unix_now();
        let entries = match self.store.queue_entries().await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(target: "delivery", %error, "cannot read the queue at start");
                return;
            }
        };
        let mut releases = JoinSet::new();
        for entry in entries.into_iter().filter(|e| e.next_attempt <= now) {
            let store = self.store.clone();
            releases
                .spawn(async move { store.retry_queue_entry(entry.id, entry.next_attempt).await });
            // A bounded number of writes in flight; they share the store's commits.
            while releases.len() >= 256 {
                releases.join_next().await;
            }
        }
        while releases.join_next().await.is_some() {}
    }
}

/// Takes every change already waiting: one claim answers a burst.
fn drain(changes: &mut broadcast::Receiver<Change>) {
    loop {
        match changes.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// When the worker looks at the queue next: at the next poll, or earlier when a retry it
/// scheduled falls due — but only if there is room to claim it. Without room a due retry
/// would wake the loop again at once, over and over, until an attempt finishes (which
/// wakes it anyway).
fn wake_time(
    looked_at: Instant,
    next_retry: Option<i64>,
    room: bool,
    now: Instant,
    unix_now: i64,
) -> Instant {
    let poll = looked_at + POLL;
    match next_retry {
        Some(retry) if room => {
            let wait = retry.saturating_sub(unix_now).max(0) as u64;
            poll.min(now + Duration::from_secs(wait))
        }
        _ => poll,
    }
}

#[cfg(test)]
mod wake_tests {
    use super::*;

    #[test]
    fn a_due_retry_wakes_at_once_only_when_there_is_room_to_claim_it() {
        let now = Instant::now();
        let looked_at = now - Duration::from_secs(1);
        assert_eq!(wake_time(looked_at, Some(100), true, now, 100), now);
        assert_eq!(
            wake_time(looked_at, Some(100), false, now, 100),
            looked_at + POLL
        );
    }

    #[test]
    fn a_later_retry_wakes_when_it_falls_due_and_never_after_the_poll() {
        let now = Instant::now();
        assert_eq!(
            wake_time(now, Some(102), true, now, 100),
            (now + POLL).min(now + Duration::from_secs(2))
        );
        assert_eq!(wake_time(now, Some(10_000), true, now, 100), now + POLL);
        assert_eq!(wake_time(now, None, true, now, 100), now + POLL);
    }
}
