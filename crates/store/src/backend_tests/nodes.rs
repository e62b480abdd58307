//! Several nodes on one PostgreSQL database: each node is a `PostgresStore` of its own
//! (its own pool and change-feed listener), as two `sealpost serve` would have.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{TestStore, create, delivery, inbox, mailbox_id, outbound};
use crate::{Change, FlagOperation, FlagUpdate, PostgresStore, SessionLock, Store};

/// Later than any entry's creation time.
const FUTURE: i64 = 4_000_000_000;

/// Runs `test` with two nodes on a fresh database; skipped like the other PostgreSQL
/// tests when there is no server.
async fn with_two_nodes(test: impl AsyncFnOnce(Arc<dyn Store>, Arc<dyn Store>)) {
    let Some(first) = TestStore::postgres().await else {
        return;
    };
    let database = first.database().expect("a PostgreSQL test store");
    let second = PostgresStore::connect(&database.url)
        .await
        .expect("connect the second node");
    test(first.shared(), Arc::new(second)).await;
    drop(first);
    database.remove().await;
}

/// The next change on `feed` that is not a queue change, waiting at most `limit`.
async fn next_change(
    feed: &mut tokio::sync::broadcast::Receiver<Change>,
    limit: Duration,
) -> Change {
    tokio::time::timeout(limit, feed.recv())
        .await
        .expect("a change within the limit")
        .expect("an open feed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_on_one_node_is_announced_on_the_other_within_a_second() {
    with_two_nodes(async |a, b| {
        let alice = create(&*a, "alice@example.test").await;
        let mut feed = b.subscribe();
        let delivered = a
            .deliver(delivery(
                b"Subject: across\r\n\r\n",
                vec![inbox(&alice)],
                Some(outbound(&["x@remote.example"])),
            ))
            .await
            .unwrap();
        let (mailbox, uid) = delivered.messages[0];
        assert_eq!(
            next_change(&mut feed, Duration::from_secs(1)).await,
            Change::MessageAdded {
                account: alice.id,
                mailbox,
                uid
            }
        );
        assert_eq!(
            next_change(&mut feed, Duration::from_secs(1)).await,
            Change::QueueAdded {
                id: delivered.queue_id.unwrap()
            }
        );
        assert_eq!(
            b.message_raw(mailbox, uid).await.unwrap().as_deref(),
            Some(&b"Subject: across\r\n\r\n"[..])
        );

        let mut feed_a = a.subscribe();
        b.update_flags(
            mailbox,
            FlagUpdate {
                uids: vec![uid],
                operation: FlagOperation::Add,
                flags: vec!["\\Seen".into()],
                unchanged_since: None,
            },
        )
        .await
        .unwrap();
        b.expunge(mailbox, Some(vec![uid])).await.unwrap();
        b.create_mailbox(alice.id, "New").await.unwrap();
        assert_eq!(
            next_change(&mut feed_a, Duration::from_secs(1)).await,
            Change::FlagsChanged {
                account: alice.id,
                mailbox,
                uids: vec![uid]
            }
        );
        assert_eq!(
            next_change(&mut feed_a, Duration::from_secs(1)).await,
            Change::MailboxesChanged { account: alice.id },
            "an expunge of nothing announces nothing; the mailbox creation arrives"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_does_not_hear_its_own_changes_twice() {
    with_two_nodes(async |a, _b| {
        let alice = create(&*a, "alice@example.test").await;
        let mut feed = a.subscribe();
        a.create_mailbox(alice.id, "Once").await.unwrap();
        assert_eq!(
            feed.try_recv().unwrap(),
            Change::MailboxesChanged { account: alice.id }
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(feed.try_recv().is_err(), "the echo was skipped");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_delivering_to_one_mailbox_hand_out_each_uid_once_in_order() {
    const EACH: usize = 40;
    with_two_nodes(async |a, b| {
        let alice = create(&*a, "alice@example.test").await;
        let mut tasks = Vec::new();
        for n in 0..EACH * 2 {
            let node = Arc::clone(if n % 2 == 0 { &a } else { &b });
            let target = inbox(&alice);
            tasks.push(tokio::spawn(async move {
                let raw = format!("Subject: {n}\r\n\r\n");
                node.deliver(delivery(raw.as_bytes(), vec![target], None))
                    .await
            }));
        }
        let mut uids = Vec::new();
        for task in tasks {
            uids.push(task.await.unwrap().unwrap().messages[0].1);
        }
        uids.sort_unstable();
        assert_eq!(uids, (1..=(EACH * 2) as u32).collect::<Vec<_>>());
        let inbox_id = mailbox_id(&*b, &alice, "INBOX").await;
        let stored = b.messages(inbox_id).await.unwrap();
        assert_eq!(stored.len(), EACH * 2);
        assert!(stored.windows(2).all(|w| w[0].modseq < w[1].modseq));
        let mailbox = b.mailbox_by_id(inbox_id).await.unwrap().unwrap();
        assert_eq!(mailbox.uid_next, (EACH * 2) as u32 + 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_racing_on_two_nodes_take_each_entry_exactly_once() {
    const ENTRIES: usize = 60;
    with_two_nodes(async |a, b| {
        let mut all = HashSet::new();
        for n in 0..ENTRIES {
            let queued = a
                .deliver(delivery(
                    b"x",
                    Vec::new(),
                    Some(outbound(&[&format!("r{n}@example.org")])),
                ))
                .await
                .unwrap();
            all.insert(queued.queue_id.unwrap());
        }
        let workers: Vec<_> = [&a, &b, &a, &b]
            .into_iter()
            .map(|node| {
                let node = Arc::clone(node);
                tokio::spawn(async move {
                    let mut taken = Vec::new();
                    loop {
                        let claimed = node
                            .claim_queue_entries(FUTURE, FUTURE + 60, 4)
                            .await
                            .unwrap();
                        if claimed.is_empty() {
                            return taken;
                        }
                        taken.extend(claimed.into_iter().map(|entry| entry.id));
                    }
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for worker in workers {
            for id in worker.await.unwrap() {
                assert!(seen.insert(id), "entry {id} claimed twice");
            }
        }
        assert_eq!(seen, all);
        assert!(
            b.claim_queue_entries(FUTURE + 61, FUTURE + 120, 100)
                .await
                .unwrap()
                .len()
                == ENTRIES,
            "after the lease every entry is free again"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lock_taken_on_one_node_is_refused_on_both_until_dropped() {
    with_two_nodes(async |a, b| {
        let maildrop = SessionLock::Pop3Maildrop(7);
        let held = a.try_session_lock(maildrop).await.unwrap().expect("free");
        assert!(b.try_session_lock(maildrop).await.unwrap().is_none());
        assert!(
            a.try_session_lock(maildrop).await.unwrap().is_none(),
            "a second session of the same node is refused too"
        );
        let other = b
            .try_session_lock(SessionLock::Pop3Maildrop(8))
            .await
            .unwrap()
            .expect("another account's maildrop is free");
        drop(held);
        let mut taken = None;
        for _ in 0..50 {
            taken = b.try_session_lock(maildrop).await.unwrap();
            if taken.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            taken.is_some(),
            "the dropped lock became free for the other node"
        );
        drop((taken, other));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_goes_away_leaves_its_session_locks_to_the_others() {
    with_two_nodes(async |a, b| {
        let slot = SessionLock::ImapSession {
            account: 3,
            slot: 1,
        };
        let held = b.try_session_lock(slot).await.unwrap().expect("free");
        assert!(a.try_session_lock(slot).await.unwrap().is_none());
        // The guard outlives its node: the node's connection, and so its locks, are gone.
        drop(b);
        let mut taken = None;
        for _ in 0..50 {
            taken = a.try_session_lock(slot).await.unwrap();
            if taken.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(taken.is_some(), "the closed connection freed the lock");
        drop(held);
    })
    .await;
}
