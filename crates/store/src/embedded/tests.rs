//! What only the embedded backend has: its writer thread's group commit and batches,
//! and its schema steps. The behaviour both backends share is in `backend_tests`.

use std::sync::Arc;

use tempfile::TempDir;
use tokio::sync::Barrier;

use super::*;
use crate::LocalTarget;
use crate::backend_tests::{create, delivery, inbox, mailbox_id, outbound};

pub(super) fn open(dir: &TempDir) -> EmbeddedStore {
    EmbeddedStore::open(dir.path()).expect("open store")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_from_200_tasks_get_distinct_uids_in_fewer_commits() {
    const TASKS: usize = 200;
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(&dir));
    let alice = create(&*store, "alice@example.test").await;
    let bob = create(&*store, "bob@example.test").await;
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
        let mailbox = mailbox_id(&*store, account, "INBOX").await;
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
