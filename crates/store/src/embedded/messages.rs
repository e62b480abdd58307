//! Message bytes and their copies in mailboxes: delivery (which also queues), APPEND,
//! COPY and MOVE, and reading them back.

use rusqlite::{Connection, OptionalExtension, params};

use super::mailboxes::Counters;
use super::{expunge, queue, sql_error};
use crate::flags::FlagSet;
use crate::{
    AccountId, Appended, Change, Copied, Delivered, Delivery, MailboxId, MessageMeta, NewMessage,
    Result, names,
};

/// Stores the bytes once, adds a copy to each target mailbox under its next UID and
/// MODSEQ, and queues the outbound part.
pub(super) fn deliver(
    conn: &Connection,
    delivery: &Delivery,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Delivered> {
    let blob = insert_blob(conn, &delivery.raw)?;
    let size = delivery.raw.len() as u64;

    let content = Content {
        blob,
        flags: String::new(),
        internal_date: delivery.internal_date,
        size,
    };
    let mut messages = Vec::with_capacity(delivery.local.len());
    for target in &delivery.local {
        let mut mailbox =
            Counters::load_by_name(conn, target.account, names::mailbox(&target.mailbox))?;
        let uid = insert(conn, &mut mailbox, &content, changes)?;
        mailbox.save(conn)?;
        messages.push((mailbox.id, uid));
    }

    let queue_id = match &delivery.outbound {
        Some(outbound) => {
            let id = queue::enqueue(conn, blob, outbound, size, now)?;
            changes.push(Change::QueueAdded { id });
            Some(id)
        }
        None => None,
    };
    Ok(Delivered { messages, queue_id })
}

/// RFC 9051 §6.3.12: one message, with the flags and date the client gave.
pub(super) fn append(
    conn: &Connection,
    mailbox: MailboxId,
    message: &NewMessage,
    flags: &FlagSet,
    changes: &mut Vec<Change>,
) -> Result<Appended> {
    let mut target = Counters::load(conn, mailbox)?;
    let content = Content {
        blob: insert_blob(conn, &message.raw)?,
        flags: flags.stored(),
        internal_date: message.internal_date,
        size: message.raw.len() as u64,
    };
    let uid = insert(conn, &mut target, &content, changes)?;
    target.save(conn)?;
    Ok(Appended {
        uid_validity: target.uid_validity,
        uid,
    })
}

/// RFC 9051 §6.4.7: the copies share the source's bytes and keep its flags and internal
/// date; UIDs that are not in the source are skipped.
pub(super) fn copy_messages(
    conn: &Connection,
    from: MailboxId,
    uids: &[u32],
    to: MailboxId,
    changes: &mut Vec<Change>,
) -> Result<Copied> {
    Counters::load(conn, from)?;
    let mut target = Counters::load(conn, to)?;
    let mut copied = Vec::new();
    for source in stored(conn, from, uids)? {
        let uid = insert(conn, &mut target, &source.content, changes)?;
        copied.push((source.uid, uid));
    }
    target.save(conn)?;
    Ok(Copied {
        uid_validity: target.uid_validity,
        uids: copied,
    })
}

/// RFC 6851: the copy and the removal of the sources are one transaction, so a client
/// never sees a message in both mailboxes or in neither.
pub(super) fn move_messages(
    conn: &Connection,
    from: MailboxId,
    uids: &[u32],
    to: MailboxId,
    changes: &mut Vec<Change>,
) -> Result<Copied> {
    let copied = copy_messages(conn, from, uids, to, changes)?;
    let sources: Vec<u32> = copied.uids.iter().map(|(source, _)| *source).collect();
    expunge::remove(conn, from, &sources, changes)?;
    Ok(copied)
}

fn insert_blob(conn: &Connection, raw: &[u8]) -> Result<i64> {
    conn.prepare_cached("INSERT INTO blobs (raw) VALUES (?1)")
        .and_then(|mut insert| insert.execute([raw]))
        .map_err(sql_error("store message bytes"))?;
    Ok(conn.last_insert_rowid())
}

/// What a message's row holds besides its place (mailbox, UID, MODSEQ).
pub(super) struct Content {
    pub(super) blob: i64,
    pub(super) flags: String,
    pub(super) internal_date: i64,
    pub(super) size: u64,
}

/// Adds a message with `content` to `mailbox` under its next UID and MODSEQ; the caller
/// saves the counters.
fn insert(
    conn: &Connection,
    mailbox: &mut Counters,
    content: &Content,
    changes: &mut Vec<Change>,
) -> Result<u32> {
    let uid = mailbox.take_uid()?;
    let modseq = mailbox.take_modseq();
    conn.prepare_cached(
        "INSERT INTO messages (mailbox, uid, blob, flags, internal_date, size, modseq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            mailbox.id,
            uid,
            content.blob,
            content.flags,
            content.internal_date,
            content.size,
            modseq
        ])
    })
    .map_err(sql_error("add message to mailbox"))?;
    changes.push(Change::MessageAdded {
        account: mailbox.account,
        mailbox: mailbox.id,
        uid,
    });
    Ok(uid)
}

/// A message as stored, read by writes that change or copy it.
pub(super) struct Stored {
    pub(super) uid: u32,
    pub(super) modseq: u64,
    pub(super) content: Content,
}

/// Those of `uids` that are in the mailbox, in ascending UID order, each once.
pub(super) fn stored(conn: &Connection, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<Stored>> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    let mut select = conn
        .prepare_cached(
            "SELECT blob, flags, internal_date, size, modseq FROM messages \
             WHERE mailbox = ?1 AND uid = ?2",
        )
        .map_err(sql_error("read message"))?;
    let mut found = Vec::new();
    for uid in uids {
        let row = select
            .query_row(params![mailbox, uid], |row| {
                Ok(Stored {
                    uid,
                    modseq: row.get(4)?,
                    content: Content {
                        blob: row.get(0)?,
                        flags: row.get(1)?,
                        internal_date: row.get(2)?,
                        size: row.get(3)?,
                    },
                })
            })
            .optional()
            .map_err(sql_error("read message"))?;
        found.extend(row);
    }
    Ok(found)
}

/// Every UID in the mailbox, ascending.
pub(super) fn uids(conn: &Connection, mailbox: MailboxId) -> Result<Vec<u32>> {
    let mut select = conn
        .prepare_cached("SELECT uid FROM messages WHERE mailbox = ?1 ORDER BY uid")
        .map_err(sql_error("list messages"))?;
    select
        .query_map([mailbox], |row| row.get(0))
        .and_then(Iterator::collect)
        .map_err(sql_error("list messages"))
}

pub(super) fn messages(conn: &Connection, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
    let mut select = conn
        .prepare_cached(
            "SELECT uid, flags, internal_date, size, modseq FROM messages \
             WHERE mailbox = ?1 ORDER BY uid",
        )
        .map_err(sql_error("list messages"))?;
    select
        .query_map([mailbox], |row| {
            let flags: String = row.get(1)?;
            Ok(MessageMeta {
                mailbox,
                uid: row.get(0)?,
                flags: FlagSet::from_stored(&flags).into_vec(),
                internal_date: row.get(2)?,
                size: row.get(3)?,
                modseq: row.get(4)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(sql_error("list messages"))
}

pub(super) fn message_raw(
    conn: &Connection,
    mailbox: MailboxId,
    uid: u32,
) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached(
        "SELECT blobs.raw FROM messages JOIN blobs ON blobs.id = messages.blob \
         WHERE messages.mailbox = ?1 AND messages.uid = ?2",
    )
    .and_then(|mut select| {
        select
            .query_row(params![mailbox, uid], |row| row.get(0))
            .optional()
    })
    .map_err(sql_error("read message"))
}

/// The bytes every message of the account refers to, collected before the account is
/// deleted so they can be checked for other references afterwards.
pub(super) fn blobs_of_account(conn: &Connection, account: AccountId) -> Result<Vec<i64>> {
    let mut select = conn
        .prepare_cached(
            "SELECT DISTINCT messages.blob FROM messages \
             JOIN mailboxes ON mailboxes.id = messages.mailbox WHERE mailboxes.account = ?1",
        )
        .map_err(sql_error("list account's messages"))?;
    select
        .query_map([account], |row| row.get(0))
        .and_then(Iterator::collect)
        .map_err(sql_error("list account's messages"))
}

/// The bytes the mailbox's messages refer to, collected before it is deleted.
pub(super) fn blobs_of_mailbox(conn: &Connection, mailbox: MailboxId) -> Result<Vec<i64>> {
    let mut select = conn
        .prepare_cached("SELECT DISTINCT blob FROM messages WHERE mailbox = ?1")
        .map_err(sql_error("list mailbox's messages"))?;
    select
        .query_map([mailbox], |row| row.get(0))
        .and_then(Iterator::collect)
        .map_err(sql_error("list mailbox's messages"))
}

/// Deletes those of `blobs` that no message and no queue entry refers to any more.
pub(super) fn delete_unreferenced_blobs(conn: &Connection, blobs: &[i64]) -> Result<()> {
    let mut delete = conn
        .prepare_cached(
            "DELETE FROM blobs WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM messages WHERE blob = ?1) \
             AND NOT EXISTS (SELECT 1 FROM queue WHERE blob = ?1)",
        )
        .map_err(sql_error("delete message bytes"))?;
    for blob in blobs {
        delete
            .execute([blob])
            .map_err(sql_error("delete message bytes"))?;
    }
    Ok(())
}
