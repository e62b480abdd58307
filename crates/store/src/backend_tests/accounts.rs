//! Accounts and domains, delivery into mailboxes and the queue, the bytes round trip,
//! and the change feed.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::{TestStore, backend_tests, create, delivery, inbox, mailbox_id, outbound};
use crate::{Change, DEFAULT_MAILBOXES, LocalTarget, QueueRecipient, RecipientStatus, StoreError};

async fn account_lifecycle_creates_default_mailboxes_and_ignores_case(store: TestStore) {
    let alice = create(&*store, "  Alice@Example.TEST ").await;
    assert_eq!(alice.address, "alice@example.test");
    assert_eq!(
        store.account("ALICE@example.test").await.unwrap(),
        Some(alice.clone())
    );
    assert!(matches!(
        store.create_account("alice@EXAMPLE.test", "other").await,
        Err(StoreError::AlreadyExists(address)) if address == "alice@example.test"
    ));

    let mailboxes = store.mailboxes(alice.id).await.unwrap();
    let names: Vec<_> = mailboxes
        .iter()
        .map(|m| (m.name.as_str(), m.special_use.as_deref()))
        .collect();
    assert_eq!(names, DEFAULT_MAILBOXES);
    for mailbox in &mailboxes {
        assert_eq!(mailbox.account, alice.id);
        assert_eq!(mailbox.uid_next, 1);
        assert!(mailbox.subscribed);
    }
    assert!(
        mailboxes
            .windows(2)
            .all(|w| w[0].uid_validity < w[1].uid_validity)
    );
    assert_eq!(
        store
            .mailbox(alice.id, "inbox")
            .await
            .unwrap()
            .map(|m| m.name),
        Some("INBOX".to_string()),
        "INBOX is case-insensitive"
    );
    assert_eq!(store.mailbox(alice.id, "sent").await.unwrap(), None);

    store
        .set_password_hash("ALICE@example.test", "new")
        .await
        .unwrap();
    let alice = store.account("alice@example.test").await.unwrap().unwrap();
    assert_eq!(alice.password_hash, "new");
    assert_eq!(store.accounts().await.unwrap(), vec![alice.clone()]);

    store.remove_account("Alice@Example.test").await.unwrap();
    assert_eq!(store.account("alice@example.test").await.unwrap(), None);
    assert!(store.mailboxes(alice.id).await.unwrap().is_empty());
    assert!(matches!(
        store.remove_account("alice@example.test").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_password_hash("alice@example.test", "x").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn malformed_addresses_are_invalid_to_create_and_absent_to_look_up(store: TestStore) {
    for address in ["", "alice", "@example.test", "alice@", "a@b@example.test"] {
        assert!(
            matches!(
                store.create_account(address, "hash").await,
                Err(StoreError::Invalid {
                    what: "address",
                    ..
                })
            ),
            "{address:?} was accepted"
        );
        assert_eq!(store.account(address).await.unwrap(), None);
    }
    assert!(store.accounts().await.unwrap().is_empty());
    assert!(store.domains().await.unwrap().is_empty());
}

async fn creating_an_account_makes_its_domain_local(store: TestStore) {
    assert!(!store.is_local_domain("example.test").await.unwrap());
    create(&*store, "alice@Example.Test").await;
    assert!(store.is_local_domain("EXAMPLE.test").await.unwrap());
    assert_eq!(store.domains().await.unwrap(), ["example.test"]);
}

async fn add_domain_is_idempotent_and_case_insensitive(store: TestStore) {
    store.add_domain("Example.ORG").await.unwrap();
    store.add_domain("example.org").await.unwrap();
    store.add_domain("b.example").await.unwrap();
    assert_eq!(store.domains().await.unwrap(), ["b.example", "example.org"]);
    assert!(store.is_local_domain(" EXAMPLE.org ").await.unwrap());
    assert!(!store.is_local_domain("other.example").await.unwrap());
    assert!(!store.is_local_domain("").await.unwrap());
    assert!(matches!(
        store.add_domain("a@b").await,
        Err(StoreError::Invalid { what: "domain", .. })
    ));
}

async fn uid_validity_grows_even_when_an_account_is_recreated(store: TestStore) {
    let first = create(&*store, "alice@example.test").await;
    let before = store.mailboxes(first.id).await.unwrap();
    store.remove_account("alice@example.test").await.unwrap();
    let second = create(&*store, "alice@example.test").await;
    let after = store.mailboxes(second.id).await.unwrap();
    let highest_before = before.iter().map(|m| m.uid_validity).max().unwrap();
    assert!(after.iter().all(|m| m.uid_validity > highest_before));
}

async fn one_delivery_reaches_two_accounts_and_the_queue(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let bob = create(&*store, "bob@example.test").await;
    let raw = b"Subject: hi\r\n\r\nhello\r\n";

    let delivered = store
        .deliver(delivery(
            raw,
            vec![inbox(&alice), inbox(&bob)],
            Some(outbound(&["carol@remote.example", "dave@remote.example"])),
        ))
        .await
        .unwrap();

    let alice_inbox = mailbox_id(&*store, &alice, "INBOX").await;
    let bob_inbox = mailbox_id(&*store, &bob, "INBOX").await;
    assert_eq!(delivered.messages, [(alice_inbox, 1), (bob_inbox, 1)]);
    for mailbox in [alice_inbox, bob_inbox] {
        let messages = store.messages(mailbox).await.unwrap();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!((message.mailbox, message.uid), (mailbox, 1));
        assert!(message.flags.is_empty());
        assert_eq!(message.internal_date, 1_700_000_000);
        assert_eq!(message.size, raw.len() as u64);
        assert_eq!(store.message_raw(mailbox, 1).await.unwrap().unwrap(), raw);
    }
    assert_eq!(store.blob_count().await, 1, "the bytes are stored once");

    let queue = store.queue_entries().await.unwrap();
    assert_eq!(queue.len(), 1);
    let entry = &queue[0];
    assert_eq!(Some(entry.id), delivered.queue_id);
    assert_eq!(entry.sender, "alice@example.test");
    assert_eq!(entry.size, raw.len() as u64);
    assert_eq!(entry.attempts, 0);
    assert_eq!(entry.next_attempt, entry.created);
    let pending = |address: &str| QueueRecipient {
        address: address.into(),
        status: RecipientStatus::Pending,
        last_error: None,
    };
    assert_eq!(
        entry.recipients,
        [
            pending("carol@remote.example"),
            pending("dave@remote.example")
        ]
    );
    assert_eq!(store.queue_message(entry.id).await.unwrap().unwrap(), raw);
}

async fn queue_entries_come_oldest_first(store: TestStore) {
    let mut ids = Vec::new();
    for n in 0..3 {
        let raw = format!("message {n}");
        let delivered = store
            .deliver(delivery(
                raw.as_bytes(),
                vec![],
                Some(outbound(&["x@remote.example"])),
            ))
            .await
            .unwrap();
        ids.push(delivered.queue_id.unwrap());
    }
    let listed: Vec<_> = store
        .queue_entries()
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, ids);
}

async fn stored_bytes_round_trip_exactly_including_a_binary_megabyte(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;

    let mut megabyte = b"Subject: \xff\xfe 8-bit\r\nX-Bare: lf\n\r\0\r\n\r\n".to_vec();
    let mut state: u32 = 0x9e37_79b9;
    while megabyte.len() < 1 << 20 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        megabyte.extend_from_slice(&state.to_le_bytes());
    }
    let samples: [&[u8]; 4] = [b"", b"\0", b"\r\n.\r\n\r", &megabyte];

    for raw in samples {
        let delivered = store
            .deliver(delivery(
                raw,
                vec![inbox(&alice)],
                Some(outbound(&["x@remote.example"])),
            ))
            .await
            .unwrap();
        let uid = delivered.messages[0].1;
        assert_eq!(
            store.message_raw(inbox_id, uid).await.unwrap().as_deref(),
            Some(raw)
        );
        let queued = store
            .queue_message(delivered.queue_id.unwrap())
            .await
            .unwrap();
        assert_eq!(queued.as_deref(), Some(raw));
        let meta = store.messages(inbox_id).await.unwrap();
        assert_eq!(meta.last().map(|m| m.size), Some(raw.len() as u64));
    }
    assert_eq!(store.message_raw(inbox_id, 99).await.unwrap(), None);
    assert_eq!(store.queue_message(999).await.unwrap(), None);
}

async fn change_feed_announces_messages_and_queue_entries(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let bob = create(&*store, "bob@example.test").await;
    let mut feed = store.subscribe();

    let delivered = store
        .deliver(delivery(
            b"hi",
            vec![inbox(&alice), inbox(&bob)],
            Some(outbound(&["x@remote.example"])),
        ))
        .await
        .unwrap();

    // Changes are published before the delivery resolves, so they are already waiting.
    let mut changes = Vec::new();
    while let Ok(change) = feed.try_recv() {
        changes.push(change);
    }
    assert_eq!(
        changes,
        [
            Change::MessageAdded {
                account: alice.id,
                mailbox: delivered.messages[0].0,
                uid: 1
            },
            Change::MessageAdded {
                account: bob.id,
                mailbox: delivered.messages[1].0,
                uid: 1
            },
            Change::QueueAdded {
                id: delivered.queue_id.unwrap()
            },
        ]
    );
}

async fn delivery_with_nowhere_to_go_is_invalid(store: TestStore) {
    for nowhere in [
        delivery(b"x", vec![], None),
        delivery(b"x", vec![], Some(outbound(&[]))),
    ] {
        assert!(matches!(
            store.deliver(nowhere).await,
            Err(StoreError::Invalid {
                what: "delivery",
                ..
            })
        ));
    }
    assert_eq!(store.blob_count().await, 0);
}

async fn removing_an_account_deletes_only_bytes_nothing_else_refers_to(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let bob = create(&*store, "bob@example.test").await;
    store
        .deliver(delivery(b"alice only", vec![inbox(&alice)], None))
        .await
        .unwrap();
    store
        .deliver(delivery(b"shared", vec![inbox(&alice), inbox(&bob)], None))
        .await
        .unwrap();
    let queued = store
        .deliver(delivery(
            b"queued",
            vec![inbox(&alice)],
            Some(outbound(&["x@remote.example"])),
        ))
        .await
        .unwrap();
    assert_eq!(store.blob_count().await, 3);

    store.remove_account("alice@example.test").await.unwrap();

    assert_eq!(store.blob_count().await, 2);
    let bob_inbox = mailbox_id(&*store, &bob, "INBOX").await;
    assert_eq!(
        store.message_raw(bob_inbox, 1).await.unwrap().unwrap(),
        b"shared"
    );
    let queue_id = queued.queue_id.unwrap();
    assert_eq!(
        store.queue_message(queue_id).await.unwrap().unwrap(),
        b"queued"
    );
    assert!(
        store
            .messages(queued.messages[0].0)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn batched_reads_return_bytes_in_the_order_asked_and_skip_missing_uids(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    for body in [b"one".as_slice(), b"two", b"three"] {
        store
            .deliver(delivery(body, vec![inbox(&alice)], None))
            .await
            .unwrap();
    }
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    let read = store.messages_raw(inbox_id, vec![3, 9, 1]).await.unwrap();
    assert_eq!(read, vec![(3, b"three".to_vec()), (1, b"one".to_vec())]);
}

/// Many writers at once (on PostgreSQL: many pooled connections, each its own
/// transaction) still get each UID once, and every delivery is stored.
async fn concurrent_deliveries_from_200_tasks_get_distinct_uids(store: TestStore) {
    const TASKS: usize = 200;
    let alice = create(&*store, "alice@example.test").await;
    let bob = create(&*store, "bob@example.test").await;
    let shared = store.shared();
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| {
            let store = Arc::clone(&shared);
            let start = Arc::clone(&start);
            let target = inbox(if n % 2 == 0 { &alice } else { &bob });
            tokio::spawn(async move {
                start.wait().await;
                let raw = format!("Subject: {n}\r\n\r\n");
                store
                    .deliver(delivery(raw.as_bytes(), vec![target], None))
                    .await
            })
        })
        .collect();
    let mut delivered = Vec::new();
    for task in tasks {
        delivered.push(task.await.unwrap().unwrap().messages[0]);
    }
    for account in [&alice, &bob] {
        let mailbox = mailbox_id(&*store, account, "INBOX").await;
        let mut uids: Vec<u32> = delivered
            .iter()
            .filter(|(m, _)| *m == mailbox)
            .map(|(_, uid)| *uid)
            .collect();
        uids.sort_unstable();
        assert_eq!(uids, (1..=(TASKS / 2) as u32).collect::<Vec<_>>());
        let stored = store.messages(mailbox).await.unwrap();
        assert_eq!(stored.len(), TASKS / 2);
        assert!(
            stored.windows(2).all(|w| w[0].modseq < w[1].modseq),
            "MODSEQs grow with UIDs"
        );
    }
}

async fn a_reopened_store_keeps_everything(mut store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    store.add_domain("other.example").await.unwrap();
    let delivered = store
        .deliver(delivery(
            b"durable\r\n",
            vec![inbox(&alice)],
            Some(outbound(&["x@remote.example"])),
        ))
        .await
        .unwrap();
    let inbox_id = delivered.messages[0].0;
    let messages = store.messages(inbox_id).await.unwrap();
    let mailboxes = store.mailboxes(alice.id).await.unwrap();
    let queue = store.queue_entries().await.unwrap();

    store.reopen().await;

    assert_eq!(
        store.account("alice@example.test").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.domains().await.unwrap(),
        ["example.test", "other.example"]
    );
    assert_eq!(store.mailboxes(alice.id).await.unwrap(), mailboxes);
    assert_eq!(store.messages(inbox_id).await.unwrap(), messages);
    assert_eq!(
        store.message_raw(inbox_id, 1).await.unwrap().as_deref(),
        Some(&b"durable\r\n"[..])
    );
    assert_eq!(store.queue_entries().await.unwrap(), queue);
    let next = store
        .deliver(delivery(b"later", vec![inbox(&alice)], None))
        .await
        .unwrap();
    assert_eq!(next.messages, [(inbox_id, 2)]);
}

/// A delivery naming a mailbox that does not exist fails whole: the copies it made in
/// other mailboxes and the UIDs they took are rolled back with it.
async fn a_failed_delivery_leaves_nothing_behind(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    store
        .deliver(delivery(b"first", vec![inbox(&alice)], None))
        .await
        .unwrap();
    let missing = LocalTarget {
        account: alice.id,
        mailbox: "No Such Mailbox".into(),
    };
    assert!(matches!(
        store
            .deliver(delivery(b"lost", vec![inbox(&alice), missing], None))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let second = store
        .deliver(delivery(b"second", vec![inbox(&alice)], None))
        .await
        .unwrap();
    assert_eq!(second.messages, [(inbox_id, 2)]);
    assert_eq!(store.blob_count().await, 2);
}

/// Deliveries that arrive together may be written together (group commit): one that
/// fails among them fails alone, and the others are stored, each UID once.
async fn a_failing_delivery_among_concurrent_ones_fails_alone(store: TestStore) {
    const TASKS: u32 = 30;
    let alice = create(&*store, "alice@example.test").await;
    let shared = store.shared();
    let start = Arc::new(Barrier::new(TASKS as usize));
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| {
            let store = Arc::clone(&shared);
            let start = Arc::clone(&start);
            let mut targets = vec![inbox(&alice)];
            if n == TASKS / 2 {
                targets.push(LocalTarget {
                    account: alice.id,
                    mailbox: "No Such Mailbox".into(),
                });
            }
            tokio::spawn(async move {
                start.wait().await;
                store
                    .deliver(delivery(format!("{n}").as_bytes(), targets, None))
                    .await
            })
        })
        .collect();
    let mut uids = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(delivered) => uids.push(delivered.messages[0].1),
            Err(StoreError::NotFound(_)) if n == (TASKS / 2) as usize => {}
            Err(e) => panic!("delivery {n} failed: {e}"),
        }
    }
    uids.sort_unstable();
    assert_eq!(uids, (1..TASKS).collect::<Vec<_>>());
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    assert_eq!(
        store.messages(inbox_id).await.unwrap().len(),
        TASKS as usize - 1
    );
    assert_eq!(store.blob_count().await, i64::from(TASKS) - 1);
}

backend_tests!(
    a_failing_delivery_among_concurrent_ones_fails_alone,
    concurrent_deliveries_from_200_tasks_get_distinct_uids,
    a_reopened_store_keeps_everything,
    a_failed_delivery_leaves_nothing_behind,
    account_lifecycle_creates_default_mailboxes_and_ignores_case,
    malformed_addresses_are_invalid_to_create_and_absent_to_look_up,
    creating_an_account_makes_its_domain_local,
    add_domain_is_idempotent_and_case_insensitive,
    uid_validity_grows_even_when_an_account_is_recreated,
    one_delivery_reaches_two_accounts_and_the_queue,
    queue_entries_come_oldest_first,
    stored_bytes_round_trip_exactly_including_a_binary_megabyte,
    change_feed_announces_messages_and_queue_entries,
    delivery_with_nowhere_to_go_is_invalid,
    removing_an_account_deletes_only_bytes_nothing_else_refers_to,
    batched_reads_return_bytes_in_the_order_asked_and_skip_missing_uids,
);
