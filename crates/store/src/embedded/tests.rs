use std::sync::Arc;

use tempfile::TempDir;
use tokio::sync::Barrier;

use super::*;
use crate::{
    DEFAULT_MAILBOXES, LocalTarget, Outbound, QueueRecipient, RecipientStatus, StoreError,
};

pub(super) fn open(dir: &TempDir) -> EmbeddedStore {
    EmbeddedStore::open(dir.path()).expect("open store")
}

pub(super) async fn create(store: &EmbeddedStore, address: &str) -> Account {
    store
        .create_account(address, "$argon2id$test")
        .await
        .expect("create account")
}

pub(super) fn inbox(account: &Account) -> LocalTarget {
    LocalTarget {
        account: account.id,
        mailbox: "INBOX".into(),
    }
}

pub(super) fn delivery(
    raw: &[u8],
    local: Vec<LocalTarget>,
    outbound: Option<Outbound>,
) -> Delivery {
    Delivery {
        raw: Arc::new(raw.to_vec()),
        internal_date: 1_700_000_000,
        local,
        outbound,
    }
}

fn outbound(recipients: &[&str]) -> Outbound {
    Outbound {
        sender: "alice@example.test".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        require_tls: false,
    }
}

pub(super) async fn mailbox_id(store: &EmbeddedStore, account: &Account, name: &str) -> MailboxId {
    store
        .mailbox(account.id, name)
        .await
        .unwrap()
        .expect("mailbox exists")
        .id
}

pub(super) async fn blob_count(store: &EmbeddedStore) -> i64 {
    store
        .readers
        .run(|conn| {
            conn.query_row("SELECT COUNT(*) FROM blobs", [], |row| row.get(0))
                .map_err(sql_error("count blobs"))
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn account_lifecycle_creates_default_mailboxes_and_ignores_case() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);

    let alice = create(&store, "  Alice@Example.TEST ").await;
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

#[tokio::test]
async fn malformed_addresses_are_invalid_to_create_and_absent_to_look_up() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
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

#[tokio::test]
async fn creating_an_account_makes_its_domain_local() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    assert!(!store.is_local_domain("example.test").await.unwrap());
    create(&store, "alice@Example.Test").await;
    assert!(store.is_local_domain("EXAMPLE.test").await.unwrap());
    assert_eq!(store.domains().await.unwrap(), ["example.test"]);
}

#[tokio::test]
async fn add_domain_is_idempotent_and_case_insensitive() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
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

#[tokio::test]
async fn uid_validity_grows_even_when_an_account_is_recreated() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let first = create(&store, "alice@example.test").await;
    let before = store.mailboxes(first.id).await.unwrap();
    store.remove_account("alice@example.test").await.unwrap();
    let second = create(&store, "alice@example.test").await;
    let after = store.mailboxes(second.id).await.unwrap();
    let highest_before = before.iter().map(|m| m.uid_validity).max().unwrap();
    assert!(after.iter().all(|m| m.uid_validity > highest_before));
}

#[tokio::test]
async fn one_delivery_reaches_two_accounts_and_the_queue() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = create(&store, "alice@example.test").await;
    let bob = create(&store, "bob@example.test").await;
    let raw = b"Subject: hi\r\n\r\nhello\r\n";

    let delivered = store
        .deliver(delivery(
            raw,
            vec![inbox(&alice), inbox(&bob)],
            Some(outbound(&["carol@remote.example", "dave@remote.example"])),
        ))
        .await
        .unwrap();

    let alice_inbox = mailbox_id(&store, &alice, "INBOX").await;
    let bob_inbox = mailbox_id(&store, &bob, "INBOX").await;
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
    assert_eq!(blob_count(&store).await, 1, "the bytes are stored once");

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

#[tokio::test]
async fn queue_entries_come_oldest_first() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
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

#[tokio::test]
async fn uids_increase_and_are_never_reused() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = create(&store, "alice@example.test").await;
    let mut uids = Vec::new();
    for _ in 0..3 {
        let delivered = store
            .deliver(delivery(b"x", vec![inbox(&alice)], None))
            .await
            .unwrap();
        uids.push(delivered.messages[0].1);
    }
    assert_eq!(uids, [1, 2, 3]);

    // Expunge the newest message behind the trait's back: the next UID must still be 4.
    let inbox_id = mailbox_id(&store, &alice, "INBOX").await;
    store
        .writer
        .submit(move |conn, _| {
            conn.execute(
                "DELETE FROM messages WHERE mailbox = ?1 AND uid = 3",
                [inbox_id],
            )
            .map_err(sql_error("expunge"))
        })
        .await
        .unwrap();
    let next = store
        .deliver(delivery(b"y", vec![inbox(&alice)], None))
        .await
        .unwrap();
    assert_eq!(next.messages, [(inbox_id, 4)]);

    let inbox = store.mailbox(alice.id, "INBOX").await.unwrap().unwrap();
    assert_eq!(inbox.uid_next, 5);
    let messages = store.messages(inbox_id).await.unwrap();
    assert_eq!(
        messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    assert!(messages.windows(2).all(|w| w[0].modseq < w[1].modseq));
    assert_eq!(inbox.highest_modseq, messages[2].modseq);
}

#[tokio::test]
async fn stored_bytes_round_trip_exactly_including_a_binary_megabyte() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = create(&store, "alice@example.test").await;
    let inbox_id = mailbox_id(&store, &alice, "INBOX").await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_from_200_tasks_get_distinct_uids_in_fewer_commits() {
    const TASKS: usize = 200;
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(&dir));
    let alice = create(&store, "alice@example.test").await;
    let bob = create(&store, "bob@example.test").await;
    let commits_before = store.commit_count();

    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| {
            let store = Arc::clone(&store);
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

    let commits = store.commit_count() - commits_before;
    assert!(
        commits < TASKS as u64,
        "{commits} commits for {TASKS} deliveries"
    );
    for account in [&alice, &bob] {
        let mailbox = mailbox_id(&store, account, "INBOX").await;
        let mut uids: Vec<u32> = delivered
            .iter()
            .filter(|(m, _)| *m == mailbox)
            .map(|(_, uid)| *uid)
            .collect();
        uids.sort_unstable();
        assert_eq!(uids, (1..=(TASKS / 2) as u32).collect::<Vec<_>>());
        assert_eq!(store.messages(mailbox).await.unwrap().len(), TASKS / 2);
    }
}

#[tokio::test]
async fn change_feed_announces_messages_and_queue_entries() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = create(&store, "alice@example.test").await;
    let bob = create(&store, "bob@example.test").await;
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

#[tokio::test]
async fn reopened_store_keeps_everything_without_rerunning_migrations() {
    let dir = TempDir::new().unwrap();
    let (alice, mailboxes, messages, queue) = {
        let store = open(&dir);
        let alice = create(&store, "alice@example.test").await;
        store.add_domain("other.example").await.unwrap();
        let delivered = store
            .deliver(delivery(
                b"durable\r\n",
                vec![inbox(&alice)],
                Some(outbound(&["x@remote.example"])),
            ))
            .await
            .unwrap();
        let messages = store.messages(delivered.messages[0].0).await.unwrap();
        (
            alice.clone(),
            store.mailboxes(alice.id).await.unwrap(),
            messages,
            store.queue_entries().await.unwrap(),
        )
    };

    let mut conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    assert_eq!(
        schema::migrate(&mut conn).unwrap(),
        0,
        "schema already current"
    );
    drop(conn);

    let store = open(&dir);
    assert_eq!(
        store.account("alice@example.test").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.domains().await.unwrap(),
        ["example.test", "other.example"]
    );
    assert_eq!(store.mailboxes(alice.id).await.unwrap()[0], {
        let mut inbox = mailboxes[0].clone();
        inbox.uid_next = 2;
        inbox.highest_modseq = messages[0].modseq;
        inbox
    });
    let inbox_id = messages[0].mailbox;
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

#[tokio::test]
async fn a_failing_request_in_a_batch_leaves_the_others_committed() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = create(&store, "alice@example.test").await;
    let commits_before = store.commit_count();

    // Hold the writer inside a request of its own until all three deliveries are
    // queued behind it, so they are certain to share the next batch.
    let (entered, writer_is_held) = tokio::sync::oneshot::channel();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let hold = store.writer.submit(move |_, _| {
        let _ = entered.send(());
        let _ = gate.recv();
        Ok(())
    });
    let missing = LocalTarget {
        account: alice.id,
        mailbox: "No Such Mailbox".into(),
    };
    let batch = async {
        writer_is_held.await.unwrap();
        tokio::join!(
            store.deliver(delivery(b"first", vec![inbox(&alice)], None)),
            store.deliver(delivery(b"lost", vec![inbox(&alice), missing], None)),
            store.deliver(delivery(b"second", vec![inbox(&alice)], None)),
            async { release.send(()).unwrap() },
        )
    };
    let (held, (first, failed, second, ())) = tokio::join!(hold, batch);
    held.unwrap();

    assert_eq!(
        store.commit_count() - commits_before,
        2,
        "hold, then one batch"
    );
    assert!(matches!(failed, Err(StoreError::NotFound(_))));
    let inbox_id = mailbox_id(&store, &alice, "INBOX").await;
    assert_eq!(first.unwrap().messages, [(inbox_id, 1)]);
    assert_eq!(
        second.unwrap().messages,
        [(inbox_id, 2)],
        "the failed delivery's UID was rolled back with it"
    );
    let stored = store.messages(inbox_id).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        store.message_raw(inbox_id, 2).await.unwrap().unwrap(),
        b"second"
    );
    assert_eq!(blob_count(&store).await, 2);
}

#[tokio::test]
async fn delivery_with_nowhere_to_go_is_invalid() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
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
    assert_eq!(blob_count(&store).await, 0);
}

#[tokio::test]
async fn removing_an_account_deletes_only_bytes_nothing_else_refers_to() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = create(&store, "alice@example.test").await;
    let bob = create(&store, "bob@example.test").await;
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
    assert_eq!(blob_count(&store).await, 3);

    store.remove_account("alice@example.test").await.unwrap();

    assert_eq!(blob_count(&store).await, 2);
    let bob_inbox = mailbox_id(&store, &bob, "INBOX").await;
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

#[tokio::test]
async fn batched_reads_return_bytes_in_the_order_asked_and_skip_missing_uids() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let alice = create(&store, "alice@example.test").await;
    for body in [b"one".as_slice(), b"two", b"three"] {
        store
            .deliver(delivery(body, vec![inbox(&alice)], None))
            .await
            .unwrap();
    }
    let inbox_id = mailbox_id(&store, &alice, "INBOX").await;
    let read = store.messages_raw(inbox_id, vec![3, 9, 1]).await.unwrap();
    assert_eq!(read, vec![(3, b"three".to_vec()), (1, b"one".to_vec())]);
}
