//! EXPUNGE, and the tombstones it leaves so QRESYNC clients learn what vanished while
//! they were away (RFC 7162 §3.2.10).

use rusqlite::{Connection, params};

use super::mailboxes::Counters;
use super::{messages, sql_error};
use crate::flags::{DELETED, FlagSet};
use crate::{Change, MailboxId, Result};

/// RFC 9051 §6.4.3 and, with `uids`, UID EXPUNGE (§6.4.9): removes the messages flagged
/// `\Deleted`, and returns their UIDs in ascending order.
pub(super) fn expunge(
    conn: &Connection,
    mailbox: MailboxId,
    uids: Option<&[u32]>,
    changes: &mut Vec<Change>,
) -> Result<Vec<u32>> {
    let deleted: Vec<u32> = match uids {
        Some(uids) => messages::stored(conn, mailbox, uids)?
            .into_iter()
            .filter(|message| FlagSet::from_stored(&message.content.flags).contains(DELETED))
            .map(|message| message.uid)
            .collect(),
        None => flagged_deleted(conn, mailbox)?,
    };
    remove(conn, mailbox, &deleted, changes)?;
    Ok(deleted)
}

fn flagged_deleted(conn: &Connection, mailbox: MailboxId) -> Result<Vec<u32>> {
    // Stored flags are canonical and space-separated, so an exact word match suffices.
    let mut select = conn
        .prepare_cached(
            "SELECT uid FROM messages \
             WHERE mailbox = ?1 AND instr(' ' || flags || ' ', ' ' || ?2 || ' ') > 0 \
             ORDER BY uid",
        )
        .map_err(sql_error("find deleted messages"))?;
    select
        .query_map(params![mailbox, DELETED], |row| row.get(0))
        .and_then(Iterator::collect)
        .map_err(sql_error("find deleted messages"))
}

/// Deletes the messages `uids` (which must exist), leaving a tombstone for each under one
/// new MODSEQ of the mailbox, and the bytes nothing refers to any more. Removing nothing
/// changes nothing, not even the MODSEQ.
pub(super) fn remove(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &[u32],
    changes: &mut Vec<Change>,
) -> Result<()> {
    let mut counters = Counters::load(conn, mailbox)?;
    if uids.is_empty() {
        return Ok(());
    }
    let modseq = counters.take_modseq();
    let mut blob_of = conn
        .prepare_cached("SELECT blob FROM messages WHERE mailbox = ?1 AND uid = ?2")
        .map_err(sql_error("expunge message"))?;
    let mut delete = conn
        .prepare_cached("DELETE FROM messages WHERE mailbox = ?1 AND uid = ?2")
        .map_err(sql_error("expunge message"))?;
    let mut tombstone = conn
        .prepare_cached("INSERT INTO expunged (mailbox, uid, modseq) VALUES (?1, ?2, ?3)")
        .map_err(sql_error("record expunged message"))?;
    let mut blobs = Vec::with_capacity(uids.len());
    for &uid in uids {
        let blob: i64 = blob_of
            .query_row(params![mailbox, uid], |row| row.get(0))
            .map_err(sql_error("expunge message"))?;
        blobs.push(blob);
        delete
            .execute(params![mailbox, uid])
            .map_err(sql_error("expunge message"))?;
        tombstone
            .execute(params![mailbox, uid, modseq])
            .map_err(sql_error("record expunged message"))?;
    }
    blobs.sort_unstable();
    blobs.dedup();
    messages::delete_unreferenced_blobs(conn, &blobs)?;
    counters.save(conn)?;
    changes.push(Change::Expunged {
        account: counters.account,
        mailbox,
        uids: uids.to_vec(),
    });
    Ok(())
}

/// UIDs expunged after `modseq`, ascending.
pub(super) fn expunged_since(
    conn: &Connection,
    mailbox: MailboxId,
    modseq: u64,
) -> Result<Vec<u32>> {
    let mut select = conn
        .prepare_cached("SELECT uid FROM expunged WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid")
        .map_err(sql_error("list expunged messages"))?;
    select
        .query_map(params![mailbox, modseq], |row| row.get(0))
        .and_then(Iterator::collect)
        .map_err(sql_error("list expunged messages"))
}
