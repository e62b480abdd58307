//! Recipients grouped by where they go. A claimed entry is split into parcels, one per
//! recipient domain; parcels for the same destination wait in one queue, from which up
//! to `per_destination` connections take them one after another. That is what makes a
//! burst to one domain cheap: one TLS handshake carries many messages, and a connection
//! that runs dry lingers a moment for the next claim's parcels instead of hanging up.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::attempt::EntryAttempt;

/// What decides a route: the domain, and the two message properties the policy engine
/// takes into account. Messages with the same key share connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DestinationKey {
    /// Lower-case, without a trailing dot (or an address literal).
    pub domain: String,
    /// REQUIRETLS (RFC 8689).
    pub require_tls: bool,
    /// `TLS-Required: No` (RFC 8689 §5).
    pub tls_required_no: bool,
}

/// One entry's recipients at one destination.
pub(crate) struct Parcel {
    pub attempt: Arc<EntryAttempt>,
    pub recipients: Vec<String>,
}

/// The domain of an address, as destinations are keyed: after the last `@`,
/// lower-case, without a trailing dot. `None` for an address without a domain.
pub(crate) fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// The recipients of one entry grouped by domain, in first-seen order of addresses;
/// addresses without a domain are returned apart.
pub(crate) fn group_by_domain<'a>(
    recipients: impl IntoIterator<Item = &'a str>,
) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut domains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut without_domain = Vec::new();
    for address in recipients {
        match domain_of(address) {
            Some(domain) => domains.entry(domain).or_default().push(address.to_string()),
            None => without_domain.push(address.to_string()),
        }
    }
    (domains, without_domain)
}

/// The parcels waiting for one destination and the connections serving it.
pub(crate) struct DestinationQueue {
    pub key: DestinationKey,
    state: Mutex<QueueState>,
    arrived: Notify,
}

#[derive(Default)]
struct QueueState {
    parcels: VecDeque<Parcel>,
    /// Connection tasks alive for this destination (waiting for a permit, talking, or
    /// lingering).
    connections: usize,
    /// Of those, the ones lingering for a parcel.
    lingering: usize,
}

impl DestinationQueue {
    pub fn new(key: DestinationKey) -> Self {
        Self {
            key,
            state: Mutex::new(QueueState::default()),
            arrived: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds parcels and returns how many connections to start for them: enough that
    /// every parcel has a connection, at most `per_destination` in all. The count is
    /// reserved here; each started connection leaves through one of the `leave` paths.
    pub fn push(&self, parcels: Vec<Parcel>, per_destination: usize) -> usize {
        let mut state = self.state();
        let arrived = parcels.len();
        state.parcels.extend(parcels);
        let uncovered = state.parcels.len().saturating_sub(state.lingering);
        let start = uncovered.min(per_destination.saturating_sub(state.connections));
        state.connections += start;
        drop(state);
        for _ in 0..arrived {
            self.arrived.notify_one();
        }
        start
    }

    /// The next parcel, without waiting; `None` (and the connection has left) when
    /// there is none.
    pub fn next_or_leave(&self) -> Option<Parcel> {
        let mut state = self.state();
        let parcel = state.parcels.pop_front();
        if parcel.is_none() {
            state.connections = state.connections.saturating_sub(1);
        }
        parcel
    }

    /// The next parcel, waiting up to `linger` for one to arrive; `None` (and the
    /// connection has left) when none came, or when `stop` turned true meanwhile.
    /// Leaving and finding the queue empty happen under one lock, so a parcel pushed
    /// meanwhile is never stranded.
    pub async fn next_or_leave_after(
        &self,
        linger: Duration,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Parcel> {
        let deadline = tokio::time::Instant::now() + linger;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if *stop.borrow() || tokio::time::Instant::now() >= deadline {
                    state.connections = state.connections.saturating_sub(1);
                    return None;
                }
                if let Some(parcel) = state.parcels.pop_front() {
                    return Some(parcel);
                }
                state.lingering += 1;
            }
            // A stop signal whose sender is gone counts as stop.
            let sender_gone = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => false,
                _ = &mut notified => false,
                changed = stop.changed() => changed.is_err(),
            };
            let mut state = self.state();
            state.lingering = state.lingering.saturating_sub(1);
            if sender_gone {
                state.connections = state.connections.saturating_sub(1);
                return None;
            }
        }
    }

    /// A connection that could not reach the destination leaves. When it was the last,
    /// it takes every waiting parcel: nobody else will try them in this round, and they
    /// share its failure.
    pub fn leave_unreachable(&self) -> Vec<Parcel> {
        let mut state = self.state();
        state.connections = state.connections.saturating_sub(1);
        if state.connections == 0 {
            state.parcels.drain(..).collect()
        } else {
            Vec::new()
        }
    }

    /// Every waiting parcel, for a connection whose route failed (the failure is the
    /// same for all of them) or for the worker releasing them at shutdown.
    pub fn take_all(&self) -> Vec<Parcel> {
        self.state().parcels.drain(..).collect()
    }

    /// A connection leaves for good (stopping).
    pub fn leave(&self) {
        let mut state = self.state();
        state.connections = state.connections.saturating_sub(1);
    }

    /// No connection and no parcel: the queue can be forgotten.
    pub fn is_idle(&self) -> bool {
        let state = self.state();
        state.connections == 0 && state.parcels.is_empty()
    }
}

/// At most `per_destination` connections to one domain at once, whatever the messages'
/// REQUIRETLS or `TLS-Required` (which make different destination queues).
pub(crate) struct DomainLimits {
    per_domain: usize,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl DomainLimits {
    pub fn new(per_domain: usize) -> Self {
        Self {
            per_domain: per_domain.max(1),
            semaphores: Mutex::new(HashMap::new()),
        }
    }

    pub async fn acquire(&self, domain: &str) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut semaphores = self
                .semaphores
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            semaphores
                .entry(domain.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_domain)))
                .clone()
        };
        semaphore
            .acquire_owned()
            .await
            .expect("a domain's semaphore is never closed")
    }

    /// Forgets the semaphores of domains nobody holds or waits for.
    pub fn sweep(&self) {
        let mut semaphores = self
            .semaphores
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        semaphores.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
    }
}

#[cfg(test)]
mod tests {
    use sealpost_store::QueueEntry;

    use super::*;

    fn parcel(id: i64) -> Parcel {
        let entry = QueueEntry {
            id,
            sender: String::new(),
            recipients: Vec::new(),
            size: 1,
            created: 0,
            next_attempt: 0,
            attempts: 0,
            require_tls: false,
            policy: None,
        };
        Parcel {
            attempt: Arc::new(EntryAttempt::new(entry, 1, Vec::new())),
            recipients: vec![format!("r{id}@example.org")],
        }
    }

    fn queue() -> DestinationQueue {
        DestinationQueue::new(DestinationKey {
            domain: "example.org".into(),
            require_tls: false,
            tls_required_no: false,
        })
    }

    #[test]
    fn recipients_are_grouped_by_lower_case_domain() {
        let (domains, without) = group_by_domain([
            "a@Example.ORG",
            "b@example.org.",
            "c@other.example",
            "postmaster",
            "d@[192.0.2.1]",
            "e@",
        ]);
        assert_eq!(
            domains.into_iter().collect::<Vec<_>>(),
            [
                ("[192.0.2.1]".to_string(), vec!["d@[192.0.2.1]".to_string()]),
                (
                    "example.org".to_string(),
                    vec!["a@Example.ORG".to_string(), "b@example.org.".to_string()]
                ),
                (
                    "other.example".to_string(),
                    vec!["c@other.example".to_string()]
                ),
            ]
        );
        assert_eq!(without, ["postmaster", "e@"]);
    }

    #[test]
    fn domain_is_after_the_last_at() {
        assert_eq!(
            domain_of("\"a@b\"@Example.org").as_deref(),
            Some("example.org")
        );
        assert_eq!(domain_of("nobody"), None);
    }

    #[test]
    fn parcels_get_connections_up_to_the_per_destination_limit() {
        let queue = queue();
        assert_eq!(queue.push(vec![parcel(1)], 4), 1);
        assert_eq!(queue.push((2..12).map(parcel).collect(), 4), 3);
        assert_eq!(queue.push(vec![parcel(12)], 4), 0);
        // Each connection takes parcels in order until none are left.
        let taken: Vec<i64> = std::iter::from_fn(|| queue.next_or_leave())
            .map(|p| p.attempt.entry.id)
            .collect();
        assert_eq!(taken, (1..=12).collect::<Vec<_>>());
        // That `None` was one connection leaving; three are still counted.
        assert!(!queue.is_idle());
        queue.leave();
        queue.leave();
        assert_eq!(queue.leave_unreachable().len(), 0);
        assert!(queue.is_idle());
    }

    #[test]
    fn the_last_unreachable_connection_takes_the_waiting_parcels() {
        let queue = queue();
        assert_eq!(queue.push((1..=5).map(parcel).collect(), 2), 2);
        assert!(
            queue.leave_unreachable().is_empty(),
            "the other connection may still get through"
        );
        assert_eq!(queue.leave_unreachable().len(), 5);
        assert!(queue.is_idle());
    }

    #[tokio::test]
    async fn a_lingering_connection_takes_a_parcel_pushed_meanwhile() {
        let queue = Arc::new(queue());
        assert_eq!(queue.push(vec![parcel(1)], 1), 1);
        assert!(queue.next_or_leave().is_some());
        let (_stop, mut stopped) = watch::channel(false);
        let waiting = {
            let queue = queue.clone();
            tokio::spawn(async move {
                queue
                    .next_or_leave_after(Duration::from_secs(30), &mut stopped)
                    .await
            })
        };
        // Until the lingering connection is counted, a push may start another one.
        while queue.state().lingering == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            queue.push(vec![parcel(2)], 4),
            0,
            "the lingering connection covers it"
        );
        let got = waiting.await.unwrap().expect("the pushed parcel");
        assert_eq!(got.attempt.entry.id, 2);
    }

    #[tokio::test]
    async fn a_lingering_connection_leaves_when_nothing_comes() {
        let queue = queue();
        assert_eq!(queue.push(vec![parcel(1)], 1), 1);
        assert!(queue.next_or_leave().is_some());
        let (_stop, mut stopped) = watch::channel(false);
        let next = queue
            .next_or_leave_after(Duration::from_millis(20), &mut stopped)
            .await;
        assert!(next.is_none());
        assert!(queue.is_idle());
    }

    #[tokio::test]
    async fn a_lingering_connection_leaves_at_once_when_stopped() {
        let queue = Arc::new(queue());
        assert_eq!(queue.push(vec![parcel(1)], 1), 1);
        assert!(queue.next_or_leave().is_some());
        let (stop, mut stopped) = watch::channel(false);
        let waiting = {
            let queue = queue.clone();
            tokio::spawn(async move {
                queue
                    .next_or_leave_after(Duration::from_secs(3600), &mut stopped)
                    .await
            })
        };
        while queue.state().lingering == 0 {
            tokio::task::yield_now().await;
        }
        stop.send(true).unwrap();
        let left = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(left.expect("it left promptly").unwrap().is_none());
        assert!(queue.is_idle());
    }

    #[tokio::test]
    async fn one_domain_gets_at_most_its_limit_of_connections() {
        let limits = DomainLimits::new(2);
        let first = limits.acquire("example.org").await;
        let _second = limits.acquire("example.org").await;
        let third =
            tokio::time::timeout(Duration::from_millis(50), limits.acquire("example.org")).await;
        assert!(third.is_err(), "a third connection got a permit");
        let _other = limits.acquire("other.example").await;
        drop(first);
        let _third = limits.acquire("example.org").await;
        drop(_other);
        limits.sweep();
        assert_eq!(limits.semaphores.lock().unwrap().len(), 1);
    }
}
