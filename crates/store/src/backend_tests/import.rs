//! Copying an embedded store into PostgreSQL (`sealpost store migrate`): everything the
//! trait can read back reads the same from the copy, and the copy goes on where the last
//! one stopped.

use std::sync::Arc;

use tempfile::TempDir;

use super::dmarc::{evaluation, received_report};
use super::queue::{attempt, recipient, tls_report, tls_result};
use super::{TestStore, create, delivery, inbox, mailbox_id, outbound};
use crate::{
    Account, EmbeddedStore, FlagOperation, FlagUpdate, ImportProgress, NewMessage, PostgresStore,
    RecipientStatus, Store, import_embedded,
};

/// Later than any entry's creation time.
const FUTURE: i64 = 4_000_000_000;

/// An embedded store with something in every table.
async fn filled_embedded_store(dir: &TempDir) -> Account {
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let alice = create(&store, "alice@example.test").await;
    let bob = create(&store, "bob@example.test").await;
    let inbox_id = mailbox_id(&store, &alice, "INBOX").await;
    for n in 0..5 {
        store
            .deliver(delivery(
                format!("Subject: {n}\r\n\r\nbody {n}\r\n").as_bytes(),
                vec![inbox(&alice), inbox(&bob)],
                None,
            ))
            .await
            .unwrap();
    }
    store
        .update_flags(
            inbox_id,
            FlagUpdate {
                uids: vec![2, 3],
                operation: FlagOperation::Add,
                flags: vec!["\\Deleted".into(), "$Later".into()],
                unchanged_since: None,
            },
        )
        .await
        .unwrap();
    store.expunge(inbox_id, Some(vec![3])).await.unwrap();
    let kept = store.create_mailbox(alice.id, "Kept/Deep").await.unwrap();
    store
        .copy_messages(inbox_id, vec![1, 2], kept.id)
        .await
        .unwrap();
    store
        .append(
            kept.id,
            NewMessage {
                raw: Arc::new(b"\0binary\xff".to_vec()),
                flags: vec!["\\Seen".into()],
                internal_date: 1_234_567,
            },
        )
        .await
        .unwrap();
    let queued = store
        .deliver(delivery(
            b"to the world",
            vec![inbox(&alice)],
            Some(outbound(&["x@remote.example", "y@remote.example"])),
        ))
        .await
        .unwrap()
        .queue_id
        .unwrap();
    store
        .finish_queue_attempt(attempt(
            queued,
            vec![recipient(
                "x@remote.example",
                RecipientStatus::Delivered,
                None,
            )],
            FUTURE,
        ))
        .await
        .unwrap();
    store
        .set_delivery_memo("tls-seen", "Remote.Example", Some("1700000000".into()))
        .await
        .unwrap();
    store
        .record_tls_results(vec![tls_result(10)])
        .await
        .unwrap();
    store
        .queue_tls_report(tls_report("example.org", "t1"))
        .await
        .unwrap();
    store.record_dmarc_evaluation(evaluation(20)).await.unwrap();
    store
        .store_dmarc_report(received_report("r1", 0))
        .await
        .unwrap();
    alice
}

/// Everything the trait shows of a store, for comparing two.
async fn everything(store: &dyn Store) -> String {
    let mut seen = Vec::new();
    seen.push(format!("{:?}", store.domains().await.unwrap()));
    for account in store.accounts().await.unwrap() {
        seen.push(format!("{account:?}"));
        for mailbox in store.mailboxes(account.id).await.unwrap() {
            seen.push(format!("{mailbox:?}"));
            let messages = store.messages(mailbox.id).await.unwrap();
            let uids: Vec<u32> = messages.iter().map(|m| m.uid).collect();
            seen.push(format!("{messages:?}"));
            seen.push(format!(
                "{:?}",
                store.messages_raw(mailbox.id, uids).await.unwrap()
            ));
            seen.push(format!(
                "{:?}",
                store.expunged_since(mailbox.id, 0).await.unwrap()
            ));
        }
    }
    for entry in store.queue_entries().await.unwrap() {
        seen.push(format!("{entry:?}"));
        seen.push(format!(
            "{:?}",
            store.queue_message(entry.id).await.unwrap()
        ));
    }
    seen.push(format!(
        "{:?}",
        store.delivery_memos("tls-seen").await.unwrap()
    ));
    seen.push(format!("{:?}", store.tls_results(0, FUTURE).await.unwrap()));
    seen.push(format!(
        "{:?}",
        store.dmarc_evaluations(0, FUTURE).await.unwrap()
    ));
    seen.push(format!(
        "{:?}",
        store.dmarc_reports("example.test").await.unwrap()
    ));
    seen.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_store_reads_the_same_and_keeps_counting_where_it_left_off() {
    let Some(target) = TestStore::postgres().await else {
        return;
    };
    let database = target.database().unwrap();
    drop(target);
    let dir = TempDir::new().unwrap();
    let alice = filled_embedded_store(&dir).await;
    let source = EmbeddedStore::open(dir.path()).unwrap();
    let expected = everything(&source).await;

    let mut reported = Vec::new();
    let report = import_embedded(dir.path(), &database.url, &mut |p: &ImportProgress| {
        reported.push((p.table, p.copied, p.total));
    })
    .await
    .unwrap();
    assert!(!report.resumed);
    assert!(reported.contains(&("messages", 13, 13)), "{reported:?}");
    assert!(
        report.tables.iter().all(|(_, rows)| *rows > 0),
        "every table had rows to copy: {:?}",
        report.tables
    );

    let copy = PostgresStore::connect(&database.url).await.unwrap();
    assert_eq!(everything(&copy).await, expected);

    // New rows continue the copied ids, UIDs and UIDVALIDITY values.
    let inbox_id = mailbox_id(&copy, &alice, "INBOX").await;
    let next = copy
        .deliver(delivery(b"new", vec![inbox(&alice)], None))
        .await
        .unwrap();
    assert_eq!(next.messages, [(inbox_id, 7)]);
    let carol = create(&copy, "carol@example.test").await;
    assert!(carol.id > alice.id + 1);
    let highest_before = source
        .mailboxes(alice.id)
        .await
        .unwrap()
        .iter()
        .chain(source.mailboxes(alice.id + 1).await.unwrap().iter())
        .map(|m| m.uid_validity)
        .max()
        .unwrap();
    let new_box = copy.create_mailbox(alice.id, "New").await.unwrap();
    assert!(new_box.uid_validity > highest_before);
    drop(copy);
    database.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_copy_is_refused_by_nodes_and_completed_by_running_it_again() {
    let Some(target) = TestStore::postgres().await else {
        return;
    };
    let database = target.database().unwrap();
    drop(target);
    let dir = TempDir::new().unwrap();
    filled_embedded_store(&dir).await;
    let expected = everything(&EmbeddedStore::open(dir.path()).unwrap()).await;
    import_embedded(dir.path(), &database.url, &mut |_| {})
        .await
        .unwrap();

    let admin = crate::postgres::test_support::connect(&database.url)
        .await
        .unwrap();
    admin
        .batch_execute(
            "UPDATE store_migration SET finished = NULL; \
             DELETE FROM messages WHERE uid > 2; \
             DELETE FROM blobs WHERE id NOT IN (SELECT blob FROM messages) \
                 AND id NOT IN (SELECT blob FROM queue);",
        )
        .await
        .unwrap();
    let Err(refused) = PostgresStore::connect(&database.url).await else {
        panic!("a node served a half-copied store");
    };
    assert!(refused.to_string().contains("unfinished"), "{refused}");

    let report = import_embedded(dir.path(), &database.url, &mut |_| {})
        .await
        .unwrap();
    assert!(report.resumed);
    let copy = PostgresStore::connect(&database.url).await.unwrap();
    assert_eq!(everything(&copy).await, expected);
    drop(copy);
    drop(admin);
    database.remove().await;
}
