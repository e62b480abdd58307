//! One claimed queue entry through one attempt. Its recipients may be at several
//! domains, each delivered by its own connections; the entry collects their outcomes
//! and, once every domain has reported, the attempt is written to the store in one
//! transaction (`finish_queue_attempt`): the lease is held until then, so no other
//! claim can start a second attempt of the same entry meanwhile.
//!
//! Writing the attempt is also where the entry's fate is decided: deferred recipients of
//! an entry older than `max_age` are given up, the next try is scheduled with backoff,
//! and the sender gets a DSN for every recipient that failed for good.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use sealpost_store::{
    QueueAttempt, QueueEntry, QueueRecipient, RecipientStatus, Store, StoreError,
};
use time::OffsetDateTime;

use crate::DeliverySettings;
use crate::dsn::{Bounce, Sent};
use crate::header_section::header_section;
use crate::outcome::{RecipientOutcome, Verdict};
use crate::retry::{expired, gave_up, retry_delay};

/// RFC 3463 X.4.7: delivery time expired.
const EXPIRED: (u8, u16, u16) = (5, 4, 7);

/// When the recipients still pending are due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// After the backoff for this many attempts.
    Backoff,
    /// At once: the attempt was cut short (shutdown), not failed.
    AtOnce,
}

pub(crate) struct EntryAttempt {
    pub entry: QueueEntry,
    state: Mutex<State>,
}

struct State {
    outcomes: Vec<(String, RecipientOutcome)>,
    /// The TLS policy each domain's delivery ran under, for `queue list`.
    policies: Vec<String>,
    /// Domains that have not reported yet.
    parcels_left: usize,
}

impl EntryAttempt {
    /// An attempt whose recipients go out in `parcels` per-domain parts; `settled` are
    /// outcomes known before any connection (an address without a domain).
    pub fn new(
        entry: QueueEntry,
        parcels: usize,
        settled: Vec<(String, RecipientOutcome)>,
    ) -> Self {
        Self {
            entry,
            state: Mutex::new(State {
                outcomes: settled,
                policies: Vec::new(),
                parcels_left: parcels,
            }),
        }
    }

    /// One domain's outcomes; `true` when it was the last domain to report, and the
    /// attempt is ready to be finished.
    pub fn report(
        &self,
        outcomes: Vec<(String, RecipientOutcome)>,
        policy: Option<String>,
    ) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.outcomes.extend(outcomes);
        if let Some(policy) = policy
            && !state.policies.contains(&policy)
        {
            state.policies.push(policy);
        }
        state.parcels_left = state.parcels_left.saturating_sub(1);
        state.parcels_left == 0
    }

    /// Whether every domain has reported.
    pub fn is_complete(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.parcels_left == 0
    }

    /// Whether some recipient was deferred (and will be retried).
    pub fn has_deferred(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .outcomes
            .iter()
            .any(|(_, outcome)| outcome.verdict == Verdict::Deferred)
    }

    /// Whether any domain has reported anything yet.
    pub fn has_outcomes(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        !state.outcomes.is_empty()
    }

    /// Writes the attempt: sends the DSN that is due (before the entry can disappear with
    /// its message), then records every recipient's new state and the next try.
    /// `StoreError::NotFound` means the entry was dropped meanwhile.
    pub async fn finish(
        &self,
        store: &dyn Store,
        settings: &DeliverySettings,
        now: OffsetDateTime,
        schedule: Schedule,
    ) -> Result<(), StoreError> {
        let (mut outcomes, policies) = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            (state.outcomes.clone(), state.policies.clone())
        };
        let now_unix = now.unix_timestamp();
        give_up_if_expired(settings, &self.entry, &mut outcomes, now_unix);
        let failed: Vec<(String, RecipientOutcome)> = outcomes
            .iter()
            .filter(|(_, outcome)| matches!(outcome.verdict, Verdict::Failed { .. }))
            .cloned()
            .collect();
        if !failed.is_empty() {
            self.bounce(store, settings, &failed, now).await?;
        }
        let next_attempt = match schedule {
            Schedule::Backoff => next_attempt(settings, &self.entry, now_unix),
            Schedule::AtOnce => now_unix,
        };
        store
            .finish_queue_attempt(QueueAttempt {
                id: self.entry.id,
                recipients: recipient_states(&outcomes),
                next_attempt,
                policy: (!policies.is_empty()).then(|| policies.join("; ")),
            })
            .await
    }

    /// Gives the entry back without an attempt (shutdown before any domain reported):
    /// due again as it was, lease released.
    pub async fn release(&self, store: &dyn Store) -> Result<bool, StoreError> {
        store
            .retry_queue_entry(self.entry.id, self.entry.next_attempt)
            .await
    }

    async fn bounce(
        &self,
        store: &dyn Store,
        settings: &DeliverySettings,
        failed: &[(String, RecipientOutcome)],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if self.entry.sender.is_empty() {
            // RFC 5321 §4.5.5 / RFC 3464 §1: never a DSN about a DSN (or a report).
            return Ok(());
        }
        let message = store
            .queue_message(self.entry.id)
            .await?
            .unwrap_or_default();
        let bounce = Bounce {
            hostname: &settings.hostname,
            sender: &self.entry.sender,
            queue_id: self.entry.id,
            arrival: self.entry.created,
            require_tls: self.entry.require_tls,
            failed,
            last_attempt: now.unix_timestamp(),
            original_headers: header_section(&message),
        };
        match bounce.send(store, now).await? {
            Sent::Inbox => {
                tracing::info!(target: "delivery", id = self.entry.id, sender = %self.entry.sender, "DSN delivered to the sender's INBOX")
            }
            Sent::Queued(dsn) => {
                tracing::info!(target: "delivery", id = self.entry.id, dsn, sender = %self.entry.sender, "DSN queued for the sender")
            }
            Sent::Withheld(why) => {
                tracing::warn!(target: "delivery", id = self.entry.id, sender = %self.entry.sender, "no DSN sent: {why}")
            }
        }
        Ok(())
    }
}

/// After the backoff for this attempt, but no later than the entry's expiry: the last
/// try is made when `max_age` is reached, not up to `max_retry` after it.
fn next_attempt(settings: &DeliverySettings, entry: &QueueEntry, now: i64) -> i64 {
    let attempts = entry.attempts.saturating_add(1);
    let backoff = now.saturating_add(retry_delay(settings, attempts).as_secs() as i64);
    let expiry = entry
        .created
        .saturating_add(settings.max_age.as_secs() as i64);
    backoff.min(expiry).max(now)
}

/// An entry queued `max_age` ago or longer: its deferred recipients fail now, keeping
/// the last error (and the last reply, for the DSN's Diagnostic-Code).
fn give_up_if_expired(
    settings: &DeliverySettings,
    entry: &QueueEntry,
    outcomes: &mut [(String, RecipientOutcome)],
    now: i64,
) {
    if !expired(settings, entry.created, now) {
        return;
    }
    for (_, outcome) in outcomes.iter_mut() {
        if outcome.verdict == Verdict::Deferred {
            outcome.verdict = Verdict::Failed { status: EXPIRED };
            outcome.reason = gave_up(entry.created, now, &outcome.reason);
        }
    }
}

/// The store's view of the outcomes: one state per address (the last reported wins).
fn recipient_states(outcomes: &[(String, RecipientOutcome)]) -> Vec<QueueRecipient> {
    let mut by_address: HashMap<&str, usize> = HashMap::new();
    let mut states: Vec<QueueRecipient> = Vec::with_capacity(outcomes.len());
    for (address, outcome) in outcomes {
        let (status, last_error) = match outcome.verdict {
            Verdict::Delivered => (RecipientStatus::Delivered, None),
            Verdict::Deferred => (RecipientStatus::Pending, Some(outcome.reason.clone())),
            Verdict::Failed { .. } => (RecipientStatus::Failed, Some(outcome.reason.clone())),
        };
        let state = QueueRecipient {
            address: address.clone(),
            status,
            last_error,
        };
        match by_address.get(address.as_str()) {
            Some(&index) => states[index] = state,
            None => {
                by_address.insert(address, states.len());
                states.push(state);
            }
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sealpost_store::{Delivery, EmbeddedStore, Outbound};

    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            hostname: "mail.example.test".into(),
            ..DeliverySettings::default()
        }
    }

    fn failed(reason: &str) -> RecipientOutcome {
        RecipientOutcome {
            verdict: Verdict::Failed { status: (5, 1, 1) },
            reason: reason.into(),
            reply: Some("550 5.1.1 no such user".into()),
            remote_mta: Some("mx.example.org".into()),
        }
    }

    fn delivered() -> RecipientOutcome {
        RecipientOutcome {
            verdict: Verdict::Delivered,
            reason: String::new(),
            reply: Some("250 2.0.0 ok".into()),
            remote_mta: Some("mx.example.org".into()),
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<EmbeddedStore>,
        alice: i64,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        store.add_domain("example.test").await.unwrap();
        let alice = store
            .create_account("alice@example.test", "x")
            .await
            .unwrap()
            .id;
        Fixture {
            _dir: dir,
            store,
            alice,
        }
    }

    async fn queue(store: &EmbeddedStore, sender: &str, recipients: &[&str]) -> QueueEntry {
        let raw = format!("From: {sender}\r\nSubject: hello\r\n\r\nbody\r\n");
        store
            .deliver(Delivery {
                raw: Arc::new(raw.into_bytes()),
                internal_date: 0,
                local: Vec::new(),
                outbound: Some(Outbound {
                    sender: sender.into(),
                    recipients: recipients.iter().map(|r| r.to_string()).collect(),
                    require_tls: false,
                }),
            })
            .await
            .unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut claimed = store
            .claim_queue_entries(now + 1, now + 600, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        claimed.remove(0)
    }

    #[test]
    fn an_entry_is_ready_when_its_last_domain_reports() {
        let entry = QueueEntry {
            id: 1,
            sender: "a@example.test".into(),
            recipients: Vec::new(),
            size: 1,
            created: 0,
            next_attempt: 0,
            attempts: 0,
            require_tls: false,
            policy: None,
        };
        let attempt = EntryAttempt::new(entry, 2, Vec::new());
        assert!(!attempt.has_outcomes());
        assert!(!attempt.report(
            vec![("b@one.example".into(), delivered())],
            Some("dane: verified".into())
        ));
        assert!(!attempt.is_complete());
        assert!(attempt.report(
            vec![("c@two.example".into(), failed("x"))],
            Some("dane: verified".into())
        ));
        assert!(attempt.is_complete());
        assert_eq!(attempt.state.lock().unwrap().policies, ["dane: verified"]);
    }

    #[test]
    fn expired_entries_give_up_deferred_recipients_only() {
        let settings = settings();
        let entry = QueueEntry {
            id: 1,
            sender: String::new(),
            recipients: Vec::new(),
            size: 1,
            created: 0,
            next_attempt: 0,
            attempts: 9,
            require_tls: false,
            policy: None,
        };
        let now = settings.max_age.as_secs() as i64;
        let mut outcomes = vec![
            (
                "a@x.example".to_string(),
                RecipientOutcome::deferred("451 4.3.0 later"),
            ),
            ("b@x.example".to_string(), delivered()),
        ];
        give_up_if_expired(&settings, &entry, &mut outcomes, now - 1);
        assert_eq!(outcomes[0].1.verdict, Verdict::Deferred);
        give_up_if_expired(&settings, &entry, &mut outcomes, now);
        assert_eq!(outcomes[0].1.verdict, Verdict::Failed { status: (5, 4, 7) });
        assert_eq!(
            outcomes[0].1.reason,
            "gave up after 5 days: 451 4.3.0 later"
        );
        assert_eq!(outcomes[1].1.verdict, Verdict::Delivered);
    }

    #[test]
    fn the_last_retry_falls_on_the_expiry_not_after_it() {
        let settings = settings();
        let max_age = settings.max_age.as_secs() as i64;
        let entry = QueueEntry {
            id: 1,
            sender: String::new(),
            recipients: Vec::new(),
            size: 1,
            created: 0,
            next_attempt: 0,
            attempts: 20,
            require_tls: false,
            policy: None,
        };
        // Early on: the backoff (capped at max_retry, 4 hours).
        assert_eq!(next_attempt(&settings, &entry, 1000), 1000 + 4 * 3600);
        // An hour before the expiry: at the expiry.
        assert_eq!(next_attempt(&settings, &entry, max_age - 3600), max_age);
        let first = QueueEntry {
            attempts: 0,
            ..entry
        };
        assert_eq!(next_attempt(&settings, &first, 10), 10 + 300);
    }

    #[test]
    fn recipient_states_map_verdicts_to_store_statuses() {
        let states = recipient_states(&[
            ("a@x.example".into(), delivered()),
            ("b@x.example".into(), RecipientOutcome::deferred("later")),
            ("c@x.example".into(), failed("no such user")),
        ]);
        let summary: Vec<(RecipientStatus, Option<&str>)> = states
            .iter()
            .map(|s| (s.status, s.last_error.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (RecipientStatus::Delivered, None),
                (RecipientStatus::Pending, Some("later")),
                (RecipientStatus::Failed, Some("no such user")),
            ]
        );
    }

    #[tokio::test]
    async fn a_deferred_attempt_is_retried_after_the_backoff() {
        let fixture = fixture().await;
        let entry = queue(&fixture.store, "alice@example.test", &["bob@example.org"]).await;
        let attempt = EntryAttempt::new(entry.clone(), 1, Vec::new());
        attempt.report(
            vec![(
                "bob@example.org".into(),
                RecipientOutcome::deferred("451 later"),
            )],
            Some("opportunistic: plaintext".into()),
        );
        let now = OffsetDateTime::now_utc();
        attempt
            .finish(fixture.store.as_ref(), &settings(), now, Schedule::Backoff)
            .await
            .unwrap();
        let entries = fixture.store.queue_entries().await.unwrap();
        assert_eq!(entries.len(), 1);
        let queued = &entries[0];
        assert_eq!(queued.attempts, 1);
        assert_eq!(queued.next_attempt, now.unix_timestamp() + 300);
        assert_eq!(queued.policy.as_deref(), Some("opportunistic: plaintext"));
        assert_eq!(
            queued.recipients[0].last_error.as_deref(),
            Some("451 later")
        );
        // Not claimable again before then.
        let claim = fixture
            .store
            .claim_queue_entries(now.unix_timestamp() + 299, now.unix_timestamp() + 900, 10)
            .await
            .unwrap();
        assert!(claim.is_empty());
    }

    #[tokio::test]
    async fn a_permanent_failure_puts_a_dsn_in_the_local_senders_inbox() {
        let fixture = fixture().await;
        let entry = queue(&fixture.store, "alice@example.test", &["bob@example.org"]).await;
        let attempt = EntryAttempt::new(entry, 1, Vec::new());
        attempt.report(
            vec![("bob@example.org".into(), failed("mx said 550"))],
            None,
        );
        attempt
            .finish(
                fixture.store.as_ref(),
                &settings(),
                OffsetDateTime::now_utc(),
                Schedule::Backoff,
            )
            .await
            .unwrap();
        assert!(fixture.store.queue_entries().await.unwrap().is_empty());
        let inbox = fixture
            .store
            .mailbox(fixture.alice, "INBOX")
            .await
            .unwrap()
            .unwrap();
        let messages = fixture.store.messages(inbox.id).await.unwrap();
        assert_eq!(messages.len(), 1);
        let raw = fixture
            .store
            .message_raw(inbox.id, messages[0].uid)
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.contains("Final-Recipient: rfc822; bob@example.org"),
            "{text}"
        );
        assert!(
            text.contains("Subject: hello"),
            "original headers missing: {text}"
        );
    }

    #[tokio::test]
    async fn a_remote_sender_gets_a_queued_dsn_with_the_null_sender() {
        let fixture = fixture().await;
        let entry = queue(
            &fixture.store,
            "carol@elsewhere.example",
            &["bob@example.org"],
        )
        .await;
        let attempt = EntryAttempt::new(entry.clone(), 1, Vec::new());
        attempt.report(vec![("bob@example.org".into(), failed("550"))], None);
        attempt
            .finish(
                fixture.store.as_ref(),
                &settings(),
                OffsetDateTime::now_utc(),
                Schedule::Backoff,
            )
            .await
            .unwrap();
        let entries = fixture.store.queue_entries().await.unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_ne!(entries[0].id, entry.id);
        assert_eq!(entries[0].sender, "");
        assert_eq!(entries[0].recipients[0].address, "carol@elsewhere.example");
    }

    #[tokio::test]
    async fn no_dsn_for_the_null_sender() {
        let fixture = fixture().await;
        let entry = queue(&fixture.store, "", &["bob@example.org"]).await;
        let attempt = EntryAttempt::new(entry, 1, Vec::new());
        attempt.report(vec![("bob@example.org".into(), failed("550"))], None);
        attempt
            .finish(
                fixture.store.as_ref(),
                &settings(),
                OffsetDateTime::now_utc(),
                Schedule::Backoff,
            )
            .await
            .unwrap();
        assert!(fixture.store.queue_entries().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn partial_success_keeps_the_entry_for_the_rest() {
        let fixture = fixture().await;
        let entry = queue(&fixture.store, "", &["a@one.example", "b@two.example"]).await;
        let attempt = EntryAttempt::new(entry, 2, Vec::new());
        attempt.report(vec![("a@one.example".into(), delivered())], None);
        attempt.report(
            vec![(
                "b@two.example".into(),
                RecipientOutcome::deferred("refused"),
            )],
            None,
        );
        attempt
            .finish(
                fixture.store.as_ref(),
                &settings(),
                OffsetDateTime::now_utc(),
                Schedule::Backoff,
            )
            .await
            .unwrap();
        let entries = fixture.store.queue_entries().await.unwrap();
        let statuses: Vec<RecipientStatus> =
            entries[0].recipients.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [RecipientStatus::Delivered, RecipientStatus::Pending]
        );
    }
}
