//! The delivery side: claiming queue entries under a lease, recording attempts, retry
//! and drop, delivery memos, TLS session results and TLS-RPT reports.

use std::collections::HashSet;
use std::sync::Arc;

use super::{TestStore, backend_tests, create, delivery, inbox};
use crate::{
    Outbound, OutgoingReport, QueueAttempt, QueueEntry, QueueId, QueueRecipient, RecipientStatus,
    Store, StoreError, TlsSessionResult,
};

/// Later than any entry's creation time (`unix_now()` when the test runs).
const FUTURE: i64 = 4_000_000_000;

fn outbound(recipients: &[&str]) -> Outbound {
    Outbound {
        sender: "alice@example.test".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        require_tls: false,
    }
}

async fn queued(store: &dyn Store, recipients: &[&str]) -> QueueId {
    store
        .deliver(delivery(
            b"Subject: out\r\n\r\nbody\r\n",
            Vec::new(),
            Some(outbound(recipients)),
        ))
        .await
        .unwrap()
        .queue_id
        .unwrap()
}

pub(crate) fn recipient(
    address: &str,
    status: RecipientStatus,
    error: Option<&str>,
) -> QueueRecipient {
    QueueRecipient {
        address: address.into(),
        status,
        last_error: error.map(str::to_string),
    }
}

pub(crate) fn attempt(
    id: QueueId,
    recipients: Vec<QueueRecipient>,
    next_attempt: i64,
) -> QueueAttempt {
    QueueAttempt {
        id,
        recipients,
        next_attempt,
        policy: Some("mta-sts enforce: verified".into()),
    }
}

async fn entry(store: &dyn Store, id: QueueId) -> Option<QueueEntry> {
    store
        .queue_entries()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id == id)
}

fn ids(entries: &[QueueEntry]) -> Vec<QueueId> {
    entries.iter().map(|e| e.id).collect()
}

async fn require_tls_is_kept_and_a_new_entry_has_no_policy_yet(store: TestStore) {
    let mut requiring = outbound(&["bob@example.org"]);
    requiring.require_tls = true;
    let id = store
        .deliver(delivery(b"x", Vec::new(), Some(requiring)))
        .await
        .unwrap()
        .queue_id
        .unwrap();
    let plain = queued(&*store, &["carol@example.org"]).await;

    let listed = entry(&*store, id).await.unwrap();
    assert!(listed.require_tls);
    assert_eq!(listed.policy, None);
    assert_eq!(listed.attempts, 0);
    assert!(!entry(&*store, plain).await.unwrap().require_tls);
    let claimed = store
        .claim_queue_entries(FUTURE, FUTURE + 60, 10)
        .await
        .unwrap();
    assert!(claimed.iter().find(|e| e.id == id).unwrap().require_tls);
}

async fn concurrent_claims_never_share_an_entry(store: TestStore) {
    let store = store.shared();
    let mut all = HashSet::new();
    for n in 0..20 {
        all.insert(queued(&*store, &[&format!("r{n}@example.org")]).await);
    }

    let claims: Vec<_> = (0..2)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.claim_queue_entries(FUTURE, FUTURE + 60, 15).await })
        })
        .collect();
    let mut seen = HashSet::new();
    for claim in claims {
        for entry in claim.await.unwrap().unwrap() {
            assert!(seen.insert(entry.id), "entry {} claimed twice", entry.id);
            assert_eq!(entry.recipients.len(), 1);
        }
    }
    assert_eq!(
        seen, all,
        "between them the two claims took every due entry"
    );
    assert!(
        store
            .claim_queue_entries(FUTURE + 59, FUTURE + 120, 15)
            .await
            .unwrap()
            .is_empty(),
        "every entry is still leased"
    );
}

async fn an_expired_lease_lets_the_next_claim_take_the_entry(store: TestStore) {
    let id = queued(&*store, &["bob@example.org"]).await;

    let first = store
        .claim_queue_entries(FUTURE, FUTURE + 60, 10)
        .await
        .unwrap();
    assert_eq!(ids(&first), [id]);
    let during = store
        .claim_queue_entries(FUTURE + 30, FUTURE + 90, 10)
        .await
        .unwrap();
    assert!(during.is_empty());
    let after = store
        .claim_queue_entries(FUTURE + 60, FUTURE + 120, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&after),
        [id],
        "a worker that died leaves the entry to the next"
    );
}

async fn a_renewed_lease_outlasts_the_original_and_only_held_entries_are_renewed(store: TestStore) {
    let held = queued(&*store, &["bob@example.org"]).await;
    let finished = queued(&*store, &["carol@example.org"]).await;
    let gone = queued(&*store, &["dave@example.org"]).await;
    let claimed = store
        .claim_queue_entries(FUTURE, FUTURE + 60, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let pending = vec![recipient(
        "carol@example.org",
        RecipientStatus::Pending,
        Some("451"),
    )];
    store
        .finish_queue_attempt(attempt(finished, pending, FUTURE + 30))
        .await
        .unwrap();
    assert!(store.drop_queue_entry(gone).await.unwrap());

    store
        .renew_queue_leases(vec![held, finished, gone, 999_999], FUTURE + 200)
        .await
        .unwrap();
    store
        .renew_queue_leases(Vec::new(), FUTURE + 200)
        .await
        .unwrap();

    let after_first_lease = store
        .claim_queue_entries(FUTURE + 60, FUTURE + 1000, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&after_first_lease),
        [finished],
        "the held entry keeps its renewed lease; the finished one is free for its retry, \
         not leased again by the renewal"
    );
    let after_renewed_lease = store
        .claim_queue_entries(FUTURE + 200, FUTURE + 260, 10)
        .await
        .unwrap();
    assert_eq!(ids(&after_renewed_lease), [held]);
    assert!(
        store.queue_message(gone).await.unwrap().is_none(),
        "renewing a dropped entry brings nothing back"
    );
}

async fn claims_take_only_due_entries_the_oldest_due_first_up_to_the_limit(store: TestStore) {
    let late = queued(&*store, &["a@example.org"]).await;
    let early = queued(&*store, &["b@example.org"]).await;
    let never = queued(&*store, &["c@example.org"]).await;
    let pending = |address: &str| vec![recipient(address, RecipientStatus::Pending, Some("451"))];
    for (id, address, next) in [
        (late, "a@example.org", FUTURE + 200),
        (early, "b@example.org", FUTURE + 100),
        (never, "c@example.org", FUTURE + 10_000),
    ] {
        store
            .claim_queue_entries(FUTURE, FUTURE + 1, 10)
            .await
            .unwrap();
        store
            .finish_queue_attempt(attempt(id, pending(address), next))
            .await
            .unwrap();
    }

    let due = store
        .claim_queue_entries(FUTURE + 150, FUTURE + 160, 10)
        .await
        .unwrap();
    assert_eq!(ids(&due), [early], "not yet due entries wait");
    let due = store
        .claim_queue_entries(FUTURE + 500, FUTURE + 560, 1)
        .await
        .unwrap();
    assert_eq!(
        ids(&due),
        [early],
        "the oldest due first, and the limit kept"
    );
    let due = store
        .claim_queue_entries(FUTURE + 500, FUTURE + 560, 10)
        .await
        .unwrap();
    assert_eq!(ids(&due), [late]);
}

async fn the_entry_stays_while_a_recipient_is_pending_and_goes_with_its_bytes_after(
    store: TestStore,
) {
    let id = queued(
        &*store,
        &["bob@example.org", "carol@example.org", "dave@example.org"],
    )
    .await;
    store
        .claim_queue_entries(FUTURE, FUTURE + 60, 10)
        .await
        .unwrap();

    store
        .finish_queue_attempt(attempt(
            id,
            vec![
                recipient("bob@example.org", RecipientStatus::Delivered, None),
                recipient(
                    "carol@example.org",
                    RecipientStatus::Failed,
                    Some("550 5.1.1 no"),
                ),
                recipient(
                    "dave@example.org",
                    RecipientStatus::Pending,
                    Some("451 4.7.0 later"),
                ),
            ],
            FUTURE + 300,
        ))
        .await
        .unwrap();
    let kept = entry(&*store, id).await.expect("dave is still pending");
    assert_eq!(kept.attempts, 1);
    assert_eq!(kept.next_attempt, FUTURE + 300);
    assert_eq!(kept.policy.as_deref(), Some("mta-sts enforce: verified"));
    assert_eq!(
        kept.recipients,
        [
            recipient("bob@example.org", RecipientStatus::Delivered, None),
            recipient(
                "carol@example.org",
                RecipientStatus::Failed,
                Some("550 5.1.1 no")
            ),
            recipient(
                "dave@example.org",
                RecipientStatus::Pending,
                Some("451 4.7.0 later")
            ),
        ]
    );
    let again = store
        .claim_queue_entries(FUTURE + 300, FUTURE + 360, 10)
        .await
        .unwrap();
    assert_eq!(ids(&again), [id], "the lease was released with the attempt");
    assert_eq!(
        again[0].recipients.len(),
        3,
        "a claim returns every recipient"
    );

    store
        .finish_queue_attempt(attempt(
            id,
            vec![recipient(
                "dave@example.org",
                RecipientStatus::Delivered,
                None,
            )],
            FUTURE + 600,
        ))
        .await
        .unwrap();
    assert_eq!(entry(&*store, id).await, None);
    assert_eq!(store.queue_message(id).await.unwrap(), None);
    assert_eq!(store.blob_count().await, 0, "nothing else used the bytes");
}

async fn attempts_count_every_finished_attempt(store: TestStore) {
    let id = queued(&*store, &["bob@example.org"]).await;
    for n in 1..=3 {
        let deferred = recipient("bob@example.org", RecipientStatus::Pending, Some("421"));
        store
            .finish_queue_attempt(attempt(id, vec![deferred], FUTURE + n))
            .await
            .unwrap();
        assert_eq!(entry(&*store, id).await.unwrap().attempts, n as u32);
    }
}

async fn a_finished_entry_leaves_the_bytes_a_mailbox_copy_shares(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let raw = b"Subject: to both\r\n\r\nhi\r\n";
    let delivered = store
        .deliver(delivery(
            raw,
            vec![inbox(&alice)],
            Some(outbound(&["bob@example.org"])),
        ))
        .await
        .unwrap();
    let id = delivered.queue_id.unwrap();
    let (mailbox, uid) = delivered.messages[0];

    store
        .finish_queue_attempt(attempt(
            id,
            vec![recipient(
                "bob@example.org",
                RecipientStatus::Delivered,
                None,
            )],
            FUTURE,
        ))
        .await
        .unwrap();
    assert_eq!(entry(&*store, id).await, None);
    assert_eq!(store.blob_count().await, 1);
    assert_eq!(store.message_raw(mailbox, uid).await.unwrap().unwrap(), raw);
}

async fn an_attempt_naming_a_recipient_the_entry_lacks_changes_nothing(store: TestStore) {
    let id = queued(&*store, &["bob@example.org"]).await;
    let result = store
        .finish_queue_attempt(attempt(
            id,
            vec![
                recipient("bob@example.org", RecipientStatus::Delivered, None),
                // Matching is exact, as the address was stored.
                recipient("Bob@example.org", RecipientStatus::Delivered, None),
            ],
            FUTURE,
        ))
        .await;
    assert!(matches!(result, Err(StoreError::Invalid { .. })));
    let untouched = entry(&*store, id).await.unwrap();
    assert_eq!(untouched.attempts, 0);
    assert_eq!(untouched.recipients[0].status, RecipientStatus::Pending);
}

async fn a_finished_attempt_survives_a_reopen(mut store: TestStore) {
    let id = {
        let id = queued(&*store, &["bob@example.org"]).await;
        let deferred = recipient("bob@example.org", RecipientStatus::Pending, Some("451"));
        store
            .finish_queue_attempt(attempt(id, vec![deferred], FUTURE))
            .await
            .unwrap();
        id
    };
    store.reopen().await;
    let kept = entry(&*store, id).await.unwrap();
    assert_eq!((kept.attempts, kept.next_attempt), (1, FUTURE));
    assert_eq!(kept.recipients[0].last_error.as_deref(), Some("451"));
}

async fn retry_makes_a_deferred_entry_due_and_frees_its_lease(store: TestStore) {
    let id = queued(&*store, &["bob@example.org"]).await;
    let deferred = recipient("bob@example.org", RecipientStatus::Pending, Some("451"));
    store
        .finish_queue_attempt(attempt(id, vec![deferred], FUTURE + 10_000))
        .await
        .unwrap();
    store
        .claim_queue_entries(FUTURE + 10_000, FUTURE + 20_000, 10)
        .await
        .unwrap();
    assert!(
        store
            .claim_queue_entries(FUTURE, FUTURE + 60, 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(store.retry_queue_entry(id, FUTURE).await.unwrap());
    let due = store
        .claim_queue_entries(FUTURE, FUTURE + 60, 10)
        .await
        .unwrap();
    assert_eq!(ids(&due), [id]);
    assert!(!store.retry_queue_entry(id + 100, FUTURE).await.unwrap());
}

async fn dropping_removes_the_entry_and_unshared_bytes_and_a_late_attempt_is_not_found(
    store: TestStore,
) {
    let alice = create(&*store, "alice@example.test").await;
    let alone = queued(&*store, &["bob@example.org"]).await;
    let shared = store
        .deliver(delivery(
            b"shared",
            vec![inbox(&alice)],
            Some(outbound(&["bob@example.org"])),
        ))
        .await
        .unwrap()
        .queue_id
        .unwrap();
    assert_eq!(store.blob_count().await, 2);
    store
        .claim_queue_entries(FUTURE, FUTURE + 60, 10)
        .await
        .unwrap();

    assert!(store.drop_queue_entry(alone).await.unwrap());
    assert!(store.drop_queue_entry(shared).await.unwrap());
    assert!(!store.drop_queue_entry(alone).await.unwrap());
    assert!(store.queue_entries().await.unwrap().is_empty());
    assert_eq!(
        store.blob_count().await,
        1,
        "the mailbox copy keeps its bytes"
    );

    let late = store
        .finish_queue_attempt(attempt(
            alone,
            vec![recipient(
                "bob@example.org",
                RecipientStatus::Delivered,
                None,
            )],
            FUTURE,
        ))
        .await;
    assert!(matches!(late, Err(StoreError::NotFound(_))));
}

async fn delivery_memos_round_trip_by_kind_with_domains_in_any_case(store: TestStore) {
    store
        .set_delivery_memo("tls-seen", "Example.ORG", Some("1".into()))
        .await
        .unwrap();
    store
        .set_delivery_memo("tls-seen", "a.example", Some("1".into()))
        .await
        .unwrap();
    store
        .set_delivery_memo("mta-sts", "example.org", Some("policy".into()))
        .await
        .unwrap();

    assert_eq!(
        store
            .delivery_memo("tls-seen", "EXAMPLE.org")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        store.delivery_memos("tls-seen").await.unwrap(),
        [
            ("a.example".to_string(), "1".to_string()),
            ("example.org".into(), "1".into())
        ]
    );
    store
        .set_delivery_memo("mta-sts", "EXAMPLE.ORG", Some("newer".into()))
        .await
        .unwrap();
    assert_eq!(
        store
            .delivery_memo("mta-sts", "example.org")
            .await
            .unwrap()
            .as_deref(),
        Some("newer")
    );

    store
        .set_delivery_memo("tls-seen", "example.org", None)
        .await
        .unwrap();
    assert_eq!(
        store
            .delivery_memo("tls-seen", "example.org")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .delivery_memo("mta-sts", "example.org")
            .await
            .unwrap()
            .as_deref(),
        Some("newer"),
        "forgetting one kind leaves the others"
    );
    assert_eq!(store.delivery_memo("tls-seen", "").await.unwrap(), None);
    assert!(matches!(
        store
            .set_delivery_memo("tls-seen", " ", Some("1".into()))
            .await,
        Err(StoreError::Invalid { .. })
    ));
}

pub(crate) fn tls_result(at: i64) -> TlsSessionResult {
    TlsSessionResult {
        at,
        policy_domain: "example.org".into(),
        policy_type: "sts".into(),
        policy_strings: vec![
            "version: STSv1".into(),
            "mode: enforce".into(),
            "mx: *.example.org".into(),
        ],
        mx_host: "mx1.example.org".into(),
        receiving_ip: Some("2001:db8::25".parse().unwrap()),
        result_type: Some("certificate-host-mismatch".into()),
        failure_detail: Some("the certificate names mx.other.example".into()),
    }
}

async fn tls_results_are_kept_by_time_and_pruned(store: TestStore) {
    let success = TlsSessionResult {
        policy_type: "no-policy-found".into(),
        policy_strings: Vec::new(),
        receiving_ip: None,
        result_type: None,
        failure_detail: None,
        ..tls_result(200)
    };
    store
        .record_tls_results(vec![tls_result(300), success.clone(), tls_result(100)])
        .await
        .unwrap();

    assert_eq!(
        store.tls_results(100, 300).await.unwrap(),
        [tls_result(100), success],
        "oldest first, the end excluded"
    );
    assert_eq!(store.prune_tls_results(250).await.unwrap(), 2);
    assert_eq!(
        store.tls_results(0, i64::MAX).await.unwrap(),
        [tls_result(300)]
    );
}

pub(crate) fn tls_report(domain: &str, id: &str) -> OutgoingReport {
    OutgoingReport {
        policy_domain: domain.into(),
        begin: 86_400,
        end: 2 * 86_400 - 1,
        report_id: id.into(),
        delivery: delivery(
            b"Subject: Report Domain: example.org\r\n\r\nx\r\n",
            Vec::new(),
            Some(Outbound {
                sender: "noreply-smtp-tls-reporting@example.test".into(),
                recipients: vec!["tlsrpt@example.org".into()],
                require_tls: false,
            }),
        ),
    }
}

async fn a_tls_report_is_queued_once_per_domain_and_period_apart_from_dmarc_reports(
    store: TestStore,
) {
    let first = store
        .queue_tls_report(tls_report("example.org", "a"))
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(
        store
            .queue_tls_report(tls_report("EXAMPLE.org", "b"))
            .await
            .unwrap(),
        None
    );
    let dmarc = store
        .queue_dmarc_report(tls_report("example.org", "c"))
        .await
        .unwrap();
    assert!(
        dmarc.is_some(),
        "a DMARC report for the same day is another report"
    );
    let mut next_day = tls_report("example.org", "d");
    next_day.begin += 86_400;
    assert!(store.queue_tls_report(next_day).await.unwrap().is_some());
    assert_eq!(store.queue_entries().await.unwrap().len(), 3);

    let mut nowhere = tls_report("example.org", "e");
    nowhere.delivery.outbound = None;
    assert!(matches!(
        store.queue_tls_report(nowhere).await,
        Err(StoreError::Invalid { .. })
    ));
}

backend_tests!(
    require_tls_is_kept_and_a_new_entry_has_no_policy_yet,
    concurrent_claims_never_share_an_entry,
    an_expired_lease_lets_the_next_claim_take_the_entry,
    a_renewed_lease_outlasts_the_original_and_only_held_entries_are_renewed,
    claims_take_only_due_entries_the_oldest_due_first_up_to_the_limit,
    the_entry_stays_while_a_recipient_is_pending_and_goes_with_its_bytes_after,
    attempts_count_every_finished_attempt,
    a_finished_entry_leaves_the_bytes_a_mailbox_copy_shares,
    an_attempt_naming_a_recipient_the_entry_lacks_changes_nothing,
    a_finished_attempt_survives_a_reopen,
    retry_makes_a_deferred_entry_due_and_frees_its_lease,
    dropping_removes_the_entry_and_unshared_bytes_and_a_late_attempt_is_not_found,
    delivery_memos_round_trip_by_kind_with_domains_in_any_case,
    tls_results_are_kept_by_time_and_pruned,
    a_tls_report_is_queued_once_per_domain_and_period_apart_from_dmarc_reports,
);
