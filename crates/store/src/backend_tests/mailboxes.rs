//! The operations IMAP (with CONDSTORE/QRESYNC, UIDPLUS, MOVE) and POP3 build on.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{TestStore, backend_tests, create, delivery, inbox, mailbox_id};
use crate::{
    Change, FlagOperation, FlagUpdate, Mailbox, MailboxId, MessageMeta, NewMessage, Store,
    StoreError,
};

fn message(raw: &[u8], flags: &[&str]) -> NewMessage {
    NewMessage {
        raw: Arc::new(raw.to_vec()),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        internal_date: 1_600_000_000,
    }
}

fn update(uids: &[u32], operation: FlagOperation, flags: &[&str]) -> FlagUpdate {
    FlagUpdate {
        uids: uids.to_vec(),
        operation,
        flags: flags.iter().map(|f| f.to_string()).collect(),
        unchanged_since: None,
    }
}

async fn append_all(store: &dyn Store, mailbox: MailboxId, count: usize) -> Vec<u32> {
    let mut uids = Vec::new();
    for n in 0..count {
        let raw = format!("Subject: {n}\r\n\r\n");
        uids.push(
            store
                .append(mailbox, message(raw.as_bytes(), &[]))
                .await
                .unwrap()
                .uid,
        );
    }
    uids
}

async fn fetch(store: &dyn Store, mailbox: MailboxId) -> Vec<MessageMeta> {
    store.messages(mailbox).await.unwrap()
}

async fn counters(store: &dyn Store, mailbox: MailboxId) -> Mailbox {
    store.mailbox_by_id(mailbox).await.unwrap().unwrap()
}

fn uids_of(messages: &[MessageMeta]) -> Vec<u32> {
    messages.iter().map(|m| m.uid).collect()
}

fn drain(feed: &mut broadcast::Receiver<Change>) -> Vec<Change> {
    let mut changes = Vec::new();
    while let Ok(change) = feed.try_recv() {
        changes.push(change);
    }
    changes
}

async fn append_returns_increasing_uids_and_the_bytes_round_trip(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    let before = counters(&*store, inbox_id).await;

    let first = store
        .append(
            inbox_id,
            message(b"first\r\n", &["\\SEEN", "$Work", "\\seen"]),
        )
        .await
        .unwrap();
    let second = store
        .append(inbox_id, message(b"\0binary\xff", &[]))
        .await
        .unwrap();

    assert_eq!(first.uid_validity, before.uid_validity);
    assert_eq!((first.uid, second.uid), (1, 2));
    assert_eq!(
        store.message_raw(inbox_id, 1).await.unwrap().unwrap(),
        b"first\r\n"
    );
    assert_eq!(
        store.message_raw(inbox_id, 2).await.unwrap().unwrap(),
        b"\0binary\xff"
    );
    let messages = fetch(&*store, inbox_id).await;
    assert_eq!(messages[0].flags, ["$Work", "\\Seen"]);
    assert_eq!(messages[0].internal_date, 1_600_000_000);
    assert!(messages[1].flags.is_empty());
    assert!(messages[0].modseq < messages[1].modseq);
    let after = counters(&*store, inbox_id).await;
    assert_eq!(after.uid_next, 3);
    assert_eq!(after.highest_modseq, messages[1].modseq);
}

async fn append_refuses_malformed_flags_and_unknown_mailboxes(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    for flag in ["\\Recent", "two words", ""] {
        assert!(matches!(
            store.append(inbox_id, message(b"x", &[flag])).await,
            Err(StoreError::Invalid { what: "flag", .. })
        ));
    }
    assert!(matches!(
        store.append(9999, message(b"x", &[])).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(fetch(&*store, inbox_id).await.is_empty());
    assert_eq!(store.blob_count().await, 0);
}

async fn flag_updates_give_a_new_modseq_only_to_messages_that_change(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    store
        .append(inbox_id, message(b"1", &["\\Seen"]))
        .await
        .unwrap();
    store.append(inbox_id, message(b"2", &[])).await.unwrap();
    store.append(inbox_id, message(b"3", &[])).await.unwrap();
    let before = fetch(&*store, inbox_id).await;
    let highest = counters(&*store, inbox_id).await.highest_modseq;

    // UID 1 is already \Seen, UID 9 does not exist: only 2 and 3 change.
    let added = store
        .update_flags(
            inbox_id,
            update(&[1, 2, 3, 9], FlagOperation::Add, &["\\seen"]),
        )
        .await
        .unwrap();
    assert_eq!(uids_of(&added.changed), [2, 3]);
    assert!(added.modified.is_empty());
    assert_eq!(
        added.changed.iter().map(|m| m.modseq).collect::<Vec<_>>(),
        [highest + 1, highest + 2],
        "one new MODSEQ per changed message"
    );
    assert!(added.changed.iter().all(|m| m.flags == ["\\Seen"]));
    assert_eq!(added.changed[0].size, 1);
    let after = fetch(&*store, inbox_id).await;
    assert_eq!(
        after[0], before[0],
        "the unchanged message keeps its MODSEQ"
    );
    assert_eq!(after[1..], added.changed[..]);
    assert_eq!(
        counters(&*store, inbox_id).await.highest_modseq,
        highest + 2
    );

    let removed = store
        .update_flags(inbox_id, update(&[1], FlagOperation::Remove, &["\\Seen"]))
        .await
        .unwrap();
    assert_eq!(uids_of(&removed.changed), [1]);
    assert!(removed.changed[0].flags.is_empty());
    assert_eq!(removed.changed[0].modseq, highest + 3);

    let replaced = store
        .update_flags(
            inbox_id,
            update(&[1, 2], FlagOperation::Replace, &["\\Flagged", "$Later"]),
        )
        .await
        .unwrap();
    assert_eq!(uids_of(&replaced.changed), [1, 2]);
    assert!(
        replaced
            .changed
            .iter()
            .all(|m| m.flags == ["$Later", "\\Flagged"])
    );

    let nothing = store
        .update_flags(
            inbox_id,
            update(&[1, 2], FlagOperation::Replace, &["$later", "\\FLAGGED"]),
        )
        .await
        .unwrap();
    assert!(nothing.changed.is_empty(), "same flags in another case");
    assert_eq!(
        counters(&*store, inbox_id).await.highest_modseq,
        highest + 5
    );
}

async fn unchanged_since_leaves_newer_messages_alone_and_reports_them(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    append_all(&*store, inbox_id, 3).await;
    let known = counters(&*store, inbox_id).await.highest_modseq;
    // Another client changes UID 2 after our client last looked.
    store
        .update_flags(inbox_id, update(&[2], FlagOperation::Add, &["$Other"]))
        .await
        .unwrap();

    let result = store
        .update_flags(
            inbox_id,
            FlagUpdate {
                unchanged_since: Some(known),
                ..update(&[1, 2, 3], FlagOperation::Add, &["\\Deleted"])
            },
        )
        .await
        .unwrap();

    assert_eq!(uids_of(&result.changed), [1, 3]);
    assert_eq!(result.modified, [2]);
    let flags: Vec<_> = fetch(&*store, inbox_id)
        .await
        .into_iter()
        .map(|m| m.flags)
        .collect();
    assert_eq!(
        flags,
        [vec!["\\Deleted"], vec!["$Other"], vec!["\\Deleted"]]
    );
}

async fn expunge_removes_only_deleted_messages_and_leaves_tombstones(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    append_all(&*store, inbox_id, 5).await;
    let delete = |uids: &[u32]| update(uids, FlagOperation::Add, &["\\Deleted"]);

    store.update_flags(inbox_id, delete(&[1])).await.unwrap();
    assert_eq!(store.expunge(inbox_id, None).await.unwrap(), [1]);
    let after_first = counters(&*store, inbox_id).await.highest_modseq;

    store
        .update_flags(inbox_id, delete(&[2, 3, 4]))
        .await
        .unwrap();
    let before_second = counters(&*store, inbox_id).await.highest_modseq;
    assert_eq!(
        store.expunge(inbox_id, Some(vec![3, 4, 5])).await.unwrap(),
        [3, 4],
        "UID EXPUNGE: only deleted messages among the given UIDs"
    );
    let after_second = counters(&*store, inbox_id).await.highest_modseq;
    assert_eq!(after_second, before_second + 1, "one MODSEQ per expunge");
    assert_eq!(uids_of(&fetch(&*store, inbox_id).await), [2, 5]);

    assert_eq!(store.expunged_since(inbox_id, 0).await.unwrap(), [1, 3, 4]);
    assert_eq!(
        store.expunged_since(inbox_id, after_first).await.unwrap(),
        [3, 4],
        "not the ones expunged before that MODSEQ"
    );
    assert!(
        store
            .expunged_since(inbox_id, after_second)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        store
            .expunge(inbox_id, Some(vec![5]))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        counters(&*store, inbox_id).await.highest_modseq,
        after_second,
        "expunging nothing changes nothing"
    );
    assert_eq!(store.expunge(inbox_id, None).await.unwrap(), [2]);
    assert_eq!(store.blob_count().await, 1, "expunged bytes are deleted");
}

async fn uids_are_never_reused_after_expunge(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    append_all(&*store, inbox_id, 3).await;
    store
        .update_flags(
            inbox_id,
            update(&[2, 3], FlagOperation::Add, &["\\Deleted"]),
        )
        .await
        .unwrap();
    store.expunge(inbox_id, None).await.unwrap();

    assert_eq!(append_all(&*store, inbox_id, 1).await, [4]);
    assert_eq!(counters(&*store, inbox_id).await.uid_next, 5);
}

async fn copy_keeps_flags_and_date_shares_the_bytes_and_skips_missing_uids(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    let archive_id = mailbox_id(&*store, &alice, "Archive").await;
    store
        .append(archive_id, message(b"already here", &[]))
        .await
        .unwrap();
    store
        .append(inbox_id, message(b"one", &["\\Seen", "$Work"]))
        .await
        .unwrap();
    store
        .append(inbox_id, message(b"two", &["\\Flagged"]))
        .await
        .unwrap();
    let blobs = store.blob_count().await;

    let copied = store
        .copy_messages(inbox_id, vec![2, 7, 1], archive_id)
        .await
        .unwrap();

    let archive = counters(&*store, archive_id).await;
    assert_eq!(copied.uid_validity, archive.uid_validity);
    assert_eq!(copied.uids, [(1, 2), (2, 3)]);
    assert_eq!(store.blob_count().await, blobs, "no bytes were copied");
    let source = fetch(&*store, inbox_id).await;
    let target = fetch(&*store, archive_id).await;
    assert_eq!(uids_of(&source), [1, 2], "the sources stay");
    for (from, to) in source.iter().zip(&target[1..]) {
        assert_eq!(to.flags, from.flags);
        assert_eq!(to.internal_date, from.internal_date);
        assert_eq!(to.size, from.size);
        assert_eq!(
            store.message_raw(archive_id, to.uid).await.unwrap(),
            store.message_raw(inbox_id, from.uid).await.unwrap()
        );
    }
    assert_eq!(archive.uid_next, 4);
    assert_eq!(archive.highest_modseq, target[2].modseq);

    assert!(matches!(
        store.copy_messages(inbox_id, vec![1], 9999).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn move_removes_the_sources_with_tombstones_and_fills_the_target(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    let trash_id = mailbox_id(&*store, &alice, "Trash").await;
    append_all(&*store, inbox_id, 3).await;
    store
        .update_flags(inbox_id, update(&[3], FlagOperation::Add, &["\\Seen"]))
        .await
        .unwrap();
    let modseq_before = counters(&*store, inbox_id).await.highest_modseq;
    let mut feed = store.subscribe();

    let moved = store
        .move_messages(inbox_id, vec![1, 3, 42], trash_id)
        .await
        .unwrap();

    assert_eq!(moved.uids, [(1, 1), (3, 2)]);
    assert_eq!(uids_of(&fetch(&*store, inbox_id).await), [2]);
    let trash = fetch(&*store, trash_id).await;
    assert_eq!(uids_of(&trash), [1, 2]);
    assert_eq!(trash[1].flags, ["\\Seen"]);
    assert_eq!(
        store.expunged_since(inbox_id, modseq_before).await.unwrap(),
        [1, 3]
    );
    assert_eq!(store.blob_count().await, 3);
    assert_eq!(
        drain(&mut feed),
        [
            Change::MessageAdded {
                account: alice.id,
                mailbox: trash_id,
                uid: 1
            },
            Change::MessageAdded {
                account: alice.id,
                mailbox: trash_id,
                uid: 2
            },
            Change::Expunged {
                account: alice.id,
                mailbox: inbox_id,
                uids: vec![1, 3]
            },
        ]
    );
}

async fn a_move_that_fails_changes_neither_mailbox(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    let trash_id = mailbox_id(&*store, &alice, "Trash").await;
    append_all(&*store, inbox_id, 2).await;
    let inbox_before = counters(&*store, inbox_id).await;
    let trash_before = counters(&*store, trash_id).await;
    store.delete_mailbox(alice.id, "Trash").await.unwrap();

    assert!(matches!(
        store.move_messages(inbox_id, vec![1, 2], trash_id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(uids_of(&fetch(&*store, inbox_id).await), [1, 2]);
    assert_eq!(counters(&*store, inbox_id).await, inbox_before);
    assert!(store.expunged_since(inbox_id, 0).await.unwrap().is_empty());
    assert_eq!(store.mailbox_by_id(trash_before.id).await.unwrap(), None);
}

async fn created_mailboxes_start_empty_unsubscribed_and_may_nest_without_parents(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let highest_before = store
        .mailboxes(alice.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid_validity)
        .max()
        .unwrap();

    let created = store.create_mailbox(alice.id, "a/b/c").await.unwrap();

    assert_eq!(created.name, "a/b/c");
    assert_eq!(created.account, alice.id);
    assert_eq!((created.uid_next, created.highest_modseq), (1, 1));
    assert!(created.uid_validity > highest_before);
    assert_eq!(created.special_use, None);
    assert!(!created.subscribed);
    assert_eq!(
        store.mailbox(alice.id, "a/b/c").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.mailbox(alice.id, "a").await.unwrap(), None);
    assert_eq!(
        store.mailbox_by_id(created.id).await.unwrap(),
        Some(created)
    );

    for taken in ["a/b/c", "Sent", "INBOX", "inbox", "InBox"] {
        assert!(
            matches!(
                store.create_mailbox(alice.id, taken).await,
                Err(StoreError::AlreadyExists(_))
            ),
            "{taken:?} was created twice"
        );
    }
    for invalid in ["", "bad\r\nname", "a//b", "trailing/"] {
        assert!(
            matches!(
                store.create_mailbox(alice.id, invalid).await,
                Err(StoreError::Invalid { .. })
            ),
            "{invalid:?} was created"
        );
    }
    assert!(matches!(
        store.create_mailbox(9999, "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store.create_mailbox(alice.id, "sent").await.is_ok(),
        "names other than INBOX are case-sensitive"
    );
}

async fn deleting_a_mailbox_removes_its_messages_and_a_recreated_name_gets_a_new_uid_validity(
    store: TestStore,
) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    let work = store.create_mailbox(alice.id, "Work").await.unwrap();
    store.create_mailbox(alice.id, "Work/Old").await.unwrap();
    store
        .append(work.id, message(b"only here", &[]))
        .await
        .unwrap();
    store
        .append(inbox_id, message(b"shared", &[]))
        .await
        .unwrap();
    store
        .copy_messages(inbox_id, vec![1], work.id)
        .await
        .unwrap();
    assert_eq!(store.blob_count().await, 2);

    store.delete_mailbox(alice.id, "Work").await.unwrap();

    assert_eq!(store.mailbox(alice.id, "Work").await.unwrap(), None);
    assert!(fetch(&*store, work.id).await.is_empty());
    assert_eq!(store.blob_count().await, 1, "the bytes INBOX shares stay");
    assert!(
        store.mailbox(alice.id, "Work/Old").await.unwrap().is_some(),
        "mailboxes below it stay"
    );
    assert!(matches!(
        store.delete_mailbox(alice.id, "Work").await,
        Err(StoreError::NotFound(_))
    ));
    for inbox in ["INBOX", "inbox"] {
        assert!(matches!(
            store.delete_mailbox(alice.id, inbox).await,
            Err(StoreError::Invalid { .. })
        ));
    }

    let recreated = store.create_mailbox(alice.id, "Work").await.unwrap();
    assert!(recreated.uid_validity > work.uid_validity);
    assert_eq!(recreated.uid_next, 1);
}

async fn rename_keeps_uid_validity_and_messages_and_moves_children_along(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let projects = store.create_mailbox(alice.id, "Projects").await.unwrap();
    let child = store
        .create_mailbox(alice.id, "Projects/2024")
        .await
        .unwrap();
    let grandchild = store
        .create_mailbox(alice.id, "Projects/2024/Q1")
        .await
        .unwrap();
    let lookalike = store.create_mailbox(alice.id, "ProjectsX").await.unwrap();
    store
        .append(projects.id, message(b"plan", &["\\Seen"]))
        .await
        .unwrap();
    let messages = fetch(&*store, projects.id).await;

    store
        .rename_mailbox(alice.id, "Projects", "Work/Projects")
        .await
        .unwrap();

    let renamed = store
        .mailbox(alice.id, "Work/Projects")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.id, projects.id);
    assert_eq!(renamed.uid_validity, projects.uid_validity);
    assert_eq!(fetch(&*store, renamed.id).await, messages);
    let name_of = |id| {
        let store = &store;
        async move { store.mailbox_by_id(id).await.unwrap().unwrap().name }
    };
    assert_eq!(name_of(child.id).await, "Work/Projects/2024");
    assert_eq!(name_of(grandchild.id).await, "Work/Projects/2024/Q1");
    assert_eq!(name_of(lookalike.id).await, "ProjectsX", "not a child");
    assert_eq!(store.mailbox(alice.id, "Projects").await.unwrap(), None);
}

async fn rename_refuses_missing_sources_and_taken_names_without_changing_anything(
    store: TestStore,
) {
    let alice = create(&*store, "alice@example.test").await;
    store.create_mailbox(alice.id, "a").await.unwrap();
    store.create_mailbox(alice.id, "a/x").await.unwrap();
    store.create_mailbox(alice.id, "b/x").await.unwrap();
    let before = store.mailboxes(alice.id).await.unwrap();

    assert!(matches!(
        store.rename_mailbox(alice.id, "missing", "c").await,
        Err(StoreError::NotFound(_))
    ));
    for taken in ["Sent", "inbox", "a"] {
        assert!(
            matches!(
                store.rename_mailbox(alice.id, "a", taken).await,
                Err(StoreError::AlreadyExists(_))
            ),
            "renamed onto {taken:?}"
        );
    }
    assert!(
        matches!(
            store.rename_mailbox(alice.id, "a", "b").await,
            Err(StoreError::AlreadyExists(name)) if name == "b/x"
        ),
        "the child a/x would land on b/x"
    );
    assert!(matches!(
        store.rename_mailbox(alice.id, "a", "").await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(store.mailboxes(alice.id).await.unwrap(), before);
}

async fn rename_may_move_a_mailbox_onto_a_name_its_own_child_had(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let ab = store.create_mailbox(alice.id, "a/b").await.unwrap();
    let aby = store.create_mailbox(alice.id, "a/b/y").await.unwrap();
    let abby = store.create_mailbox(alice.id, "a/b/b/y").await.unwrap();

    store.rename_mailbox(alice.id, "a/b", "a").await.unwrap();

    let names: Vec<_> = store
        .mailboxes(alice.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| [ab.id, aby.id, abby.id].contains(&m.id))
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["a", "a/y", "a/b/y"]);
}

async fn renaming_inbox_moves_its_messages_to_a_new_mailbox_and_leaves_it_empty(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_before = store.mailbox(alice.id, "INBOX").await.unwrap().unwrap();
    let inbox_child = store.create_mailbox(alice.id, "INBOX/Lists").await.unwrap();
    for raw in [&b"one"[..], b"two"] {
        store
            .deliver(delivery(raw, vec![inbox(&alice)], None))
            .await
            .unwrap();
    }
    store
        .update_flags(
            inbox_before.id,
            update(&[2], FlagOperation::Add, &["\\Seen"]),
        )
        .await
        .unwrap();
    let mut feed = store.subscribe();

    store
        .rename_mailbox(alice.id, "inbox", "Old Mail")
        .await
        .unwrap();

    let inbox = store.mailbox(alice.id, "INBOX").await.unwrap().unwrap();
    assert_eq!(inbox.id, inbox_before.id);
    assert_eq!(inbox.uid_validity, inbox_before.uid_validity);
    assert_eq!(inbox.uid_next, 3, "INBOX's UIDs are not reused");
    assert!(fetch(&*store, inbox.id).await.is_empty());
    assert_eq!(store.expunged_since(inbox.id, 0).await.unwrap(), [1, 2]);

    let old_mail = store.mailbox(alice.id, "Old Mail").await.unwrap().unwrap();
    assert!(old_mail.uid_validity > inbox_child.uid_validity);
    let moved = fetch(&*store, old_mail.id).await;
    assert_eq!(uids_of(&moved), [1, 2]);
    assert_eq!(moved[1].flags, ["\\Seen"]);
    assert_eq!(
        store.message_raw(old_mail.id, 2).await.unwrap().unwrap(),
        b"two"
    );
    assert_eq!(
        store
            .mailbox_by_id(inbox_child.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "INBOX/Lists",
        "mailboxes below INBOX are not renamed with it"
    );
    let changes = drain(&mut feed);
    assert!(changes.contains(&Change::Expunged {
        account: alice.id,
        mailbox: inbox.id,
        uids: vec![1, 2]
    }));
    assert_eq!(
        changes.last(),
        Some(&Change::MailboxesChanged { account: alice.id })
    );

    assert!(matches!(
        store.rename_mailbox(alice.id, "INBOX", "Old Mail").await,
        Err(StoreError::AlreadyExists(_))
    ));
}

async fn subscriptions_can_be_set_and_cleared(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    store.create_mailbox(alice.id, "Lists").await.unwrap();
    let subscribed = |name: &'static str| {
        let store = &store;
        async move {
            store
                .mailbox(alice.id, name)
                .await
                .unwrap()
                .unwrap()
                .subscribed
        }
    };

    store.set_subscribed(alice.id, "Lists", true).await.unwrap();
    assert!(subscribed("Lists").await);
    store
        .set_subscribed(alice.id, "inbox", false)
        .await
        .unwrap();
    assert!(!subscribed("INBOX").await);
    store
        .set_subscribed(alice.id, "Lists", false)
        .await
        .unwrap();
    assert!(!subscribed("Lists").await);
    assert!(matches!(
        store.set_subscribed(alice.id, "Nowhere", true).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn change_feed_announces_flag_changes_expunges_and_mailbox_changes(store: TestStore) {
    let alice = create(&*store, "alice@example.test").await;
    let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
    append_all(&*store, inbox_id, 2).await;
    let mut feed = store.subscribe();

    store
        .update_flags(
            inbox_id,
            update(&[1, 2], FlagOperation::Add, &["\\Deleted"]),
        )
        .await
        .unwrap();
    store
        .update_flags(
            inbox_id,
            update(&[1, 2], FlagOperation::Add, &["\\Deleted"]),
        )
        .await
        .unwrap();
    store.expunge(inbox_id, Some(vec![2])).await.unwrap();
    store.expunge(inbox_id, Some(vec![2])).await.unwrap();
    store.create_mailbox(alice.id, "New").await.unwrap();
    store.set_subscribed(alice.id, "New", true).await.unwrap();
    store
        .rename_mailbox(alice.id, "New", "Newer")
        .await
        .unwrap();
    store.delete_mailbox(alice.id, "Newer").await.unwrap();

    let mailboxes_changed = Change::MailboxesChanged { account: alice.id };
    assert_eq!(
        drain(&mut feed),
        [
            Change::FlagsChanged {
                account: alice.id,
                mailbox: inbox_id,
                uids: vec![1, 2]
            },
            Change::Expunged {
                account: alice.id,
                mailbox: inbox_id,
                uids: vec![2]
            },
            mailboxes_changed.clone(),
            mailboxes_changed.clone(),
            mailboxes_changed.clone(),
            mailboxes_changed,
        ],
        "writes that changed nothing announce nothing"
    );
}

async fn flags_tombstones_counters_and_mailboxes_survive_reopening(mut store: TestStore) {
    let (alice, inbox_id, before) = {
        let alice = create(&*store, "alice@example.test").await;
        let inbox_id = mailbox_id(&*store, &alice, "INBOX").await;
        store.create_mailbox(alice.id, "Kept").await.unwrap();
        store.set_subscribed(alice.id, "Kept", true).await.unwrap();
        store.create_mailbox(alice.id, "Gone").await.unwrap();
        store.delete_mailbox(alice.id, "Gone").await.unwrap();
        store
            .rename_mailbox(alice.id, "Kept", "Renamed")
            .await
            .unwrap();
        append_all(&*store, inbox_id, 3).await;
        store
            .update_flags(
                inbox_id,
                update(&[1, 3], FlagOperation::Add, &["\\Deleted", "$Keep"]),
            )
            .await
            .unwrap();
        store.expunge(inbox_id, Some(vec![1])).await.unwrap();
        let renamed = mailbox_id(&*store, &alice, "Renamed").await;
        store
            .copy_messages(inbox_id, vec![3], renamed)
            .await
            .unwrap();
        let before = (
            store.mailboxes(alice.id).await.unwrap(),
            fetch(&*store, inbox_id).await,
            fetch(&*store, renamed).await,
        );
        (alice, inbox_id, before)
    };

    store.reopen().await;
    let mailboxes = store.mailboxes(alice.id).await.unwrap();
    assert_eq!(mailboxes, before.0);
    assert!(
        mailboxes
            .iter()
            .any(|m| m.name == "Renamed" && m.subscribed)
    );
    assert!(!mailboxes.iter().any(|m| m.name == "Gone"));
    assert_eq!(fetch(&*store, inbox_id).await, before.1);
    assert_eq!(before.1[1].flags, ["$Keep", "\\Deleted"]);
    let renamed = mailbox_id(&*store, &alice, "Renamed").await;
    assert_eq!(fetch(&*store, renamed).await, before.2);
    assert_eq!(store.expunged_since(inbox_id, 0).await.unwrap(), [1]);
    assert_eq!(store.expunge(inbox_id, None).await.unwrap(), [3]);
    assert_eq!(append_all(&*store, inbox_id, 1).await, [4]);
}

backend_tests!(
    append_returns_increasing_uids_and_the_bytes_round_trip,
    append_refuses_malformed_flags_and_unknown_mailboxes,
    flag_updates_give_a_new_modseq_only_to_messages_that_change,
    unchanged_since_leaves_newer_messages_alone_and_reports_them,
    expunge_removes_only_deleted_messages_and_leaves_tombstones,
    uids_are_never_reused_after_expunge,
    copy_keeps_flags_and_date_shares_the_bytes_and_skips_missing_uids,
    move_removes_the_sources_with_tombstones_and_fills_the_target,
    a_move_that_fails_changes_neither_mailbox,
    created_mailboxes_start_empty_unsubscribed_and_may_nest_without_parents,
    deleting_a_mailbox_removes_its_messages_and_a_recreated_name_gets_a_new_uid_validity,
    rename_keeps_uid_validity_and_messages_and_moves_children_along,
    rename_refuses_missing_sources_and_taken_names_without_changing_anything,
    rename_may_move_a_mailbox_onto_a_name_its_own_child_had,
    renaming_inbox_moves_its_messages_to_a_new_mailbox_and_leaves_it_empty,
    subscriptions_can_be_set_and_cleared,
    change_feed_announces_flag_changes_expunges_and_mailbox_changes,
    flags_tombstones_counters_and_mailboxes_survive_reopening,
);
