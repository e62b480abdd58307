//! Message bytes, their copies in mailboxes, and delivery, which writes both (and the
//! queue entry) at once.

use rusqlite::{Connection, OptionalExtension, params};

use super::{queue, sql_error};
use crate::{
    AccountId, Change, Delivered, Delivery, MailboxId, MessageMeta, Result, StoreError, names,
};

/// Refuses a delivery that would store bytes nothing refers to, or a queue entry with
/// nobody to send it to.
pub(super) fn check(delivery: &Delivery) -> Result<()> {
    let problem = match &delivery.outbound {
        Some(outbound) if outbound.recipients.is_empty() => "outbound without recipients",
        None if delivery.local.is_empty() => "no local mailbox and no outbound recipients",
        _ => return Ok(()),
    };
    Err(StoreError::Invalid {
        what: "delivery",
        value: problem.to_string(),
    })
}

/// Stores the bytes once, adds a copy to each target mailbox under its next UID and
/// MODSEQ, and queues the outbound part.
pub(super) fn deliver(
    conn: &Connection,
    delivery: &Delivery,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Delivered> {
    let size = delivery.raw.len() as u64;
    conn.prepare_cached("INSERT INTO blobs (raw) VALUES (?1)")
        .and_then(|mut insert| insert.execute([delivery.raw.as_slice()]))
        .map_err(sql_error("store message bytes"))?;
    let blob = conn.last_insert_rowid();

    let mut messages = Vec::with_capacity(delivery.local.len());
    for target in &delivery.local {
        let name = names::mailbox(&target.mailbox);
        let slot = next_slot(conn, target.account, name)?;
        conn.prepare_cached(
            "INSERT INTO messages (mailbox, uid, blob, internal_date, size, modseq) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                slot.mailbox,
                slot.uid,
                blob,
                delivery.internal_date,
                size,
                slot.modseq
            ])
        })
        .map_err(sql_error("add message to mailbox"))?;
        messages.push((slot.mailbox, slot.uid));
        changes.push(Change::MessageAdded {
            account: target.account,
            mailbox: slot.mailbox,
            uid: slot.uid,
        });
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

/// Where a new message goes in a mailbox.
struct Slot {
    mailbox: MailboxId,
    uid: u32,
    modseq: u64,
}

/// Takes the mailbox's next UID and MODSEQ. Both are counters kept on the mailbox rather
/// than derived from its messages, so a UID is never handed out twice, even after the
/// message that had it is gone (RFC 9051 §2.3.1.1).
fn next_slot(conn: &Connection, account: AccountId, name: &str) -> Result<Slot> {
    let found: Option<(MailboxId, u32, u64)> = conn
        .prepare_cached(
            "SELECT id, uid_next, highest_modseq FROM mailboxes WHERE account = ?1 AND name = ?2",
        )
        .and_then(|mut select| {
            select
                .query_row(params![account, name], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
        })
        .map_err(sql_error("look up target mailbox"))?;
    let Some((mailbox, uid, highest_modseq)) = found else {
        return Err(StoreError::NotFound(format!(
            "mailbox {name:?} of account {account}"
        )));
    };
    // uid_next must itself stay a valid 32-bit UID, so the last one is never used.
    if uid == u32::MAX {
        return Err(StoreError::Database(format!(
            "mailbox {name:?} of account {account} has used up its UIDs"
        )));
    }
    let modseq = highest_modseq + 1;
    conn.prepare_cached("UPDATE mailboxes SET uid_next = ?2, highest_modseq = ?3 WHERE id = ?1")
        .and_then(|mut update| update.execute(params![mailbox, uid + 1, modseq]))
        .map_err(sql_error("advance mailbox UID"))?;
    Ok(Slot {
        mailbox,
        uid,
        modseq,
    })
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
                flags: flags.split_whitespace().map(str::to_string).collect(),
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
