//! EXPUNGE, and the tombstones it leaves so QRESYNC clients learn what vanished while
//! they were away (RFC 7162 §3.2.10).

use deadpool_postgres::{GenericClient, Transaction};

use super::mailboxes::Counters;
use super::messages;
use super::sql::{self, get, get_u32, to_i64, uid_array};
use crate::{Change, MailboxId, Result};

/// RFC 9051 §6.4.3 and, with `uids`, UID EXPUNGE (§6.4.9): removes the messages flagged
/// `\Deleted`, and returns their UIDs in ascending order. The mailbox is locked before
/// the flags are read, so a STORE on another node lands wholly before or after.
pub(super) async fn expunge(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
    uids: Option<&[u32]>,
    changes: &mut Vec<Change>,
) -> Result<Vec<u32>> {
    let mut counters = Counters::lock(tx, mailbox).await?;
    // The literal predicate matches the partial index `messages_deleted`.
    let deleted: Vec<u32> = match uids {
        Some(uids) => {
            sql::rows(
                tx,
                "find deleted messages",
                "SELECT uid FROM messages WHERE mailbox = $1 AND uid = ANY($2) \
             AND '\\Deleted' = ANY (flags) ORDER BY uid",
                &[&mailbox, &uid_array(uids)],
            )
            .await?
        }
        None => {
            sql::rows(
                tx,
                "find deleted messages",
                "SELECT uid FROM messages WHERE mailbox = $1 AND '\\Deleted' = ANY (flags) \
             ORDER BY uid",
                &[&mailbox],
            )
            .await?
        }
    }
    .iter()
    .map(|row| get_u32(row, 0))
    .collect::<Result<_>>()?;
    remove(tx, &mut counters, &deleted, changes).await?;
    Ok(deleted)
}

/// Deletes the messages `uids` of the locked mailbox, leaving a tombstone for each under
/// one new MODSEQ, and the bytes nothing refers to any more. Removing nothing changes
/// nothing, not even the MODSEQ.
pub(super) async fn remove(
    tx: &Transaction<'_>,
    mailbox: &mut Counters,
    uids: &[u32],
    changes: &mut Vec<Change>,
) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let removed = sql::rows(
        tx,
        "expunge message",
        "DELETE FROM messages WHERE mailbox = $1 AND uid = ANY($2) RETURNING uid, blob",
        &[&mailbox.id, &uid_array(uids)],
    )
    .await?;
    let mut removed_uids = Vec::with_capacity(removed.len());
    let mut blobs = Vec::with_capacity(removed.len());
    for row in &removed {
        removed_uids.push(get_u32(row, 0)?);
        blobs.push(get::<i64>(row, 1)?);
    }
    if removed_uids.is_empty() {
        return Ok(());
    }
    removed_uids.sort_unstable();
    blobs.sort_unstable();
    blobs.dedup();
    let modseq = to_i64(mailbox.take_modseq())?;
    sql::execute(
        tx,
        "record expunged message",
        "INSERT INTO expunged (mailbox, uid, modseq) SELECT $1, uid, $3 FROM unnest($2::bigint[]) AS uid \
         ON CONFLICT (mailbox, uid) DO UPDATE SET modseq = excluded.modseq",
        &[&mailbox.id, &uid_array(&removed_uids), &modseq],
    )
    .await?;
    messages::delete_unreferenced_blobs(tx, &blobs).await?;
    mailbox.save(tx).await?;
    changes.push(Change::Expunged {
        account: mailbox.account,
        mailbox: mailbox.id,
        uids: removed_uids,
    });
    Ok(())
}

/// UIDs expunged after `modseq`, ascending.
pub(super) async fn expunged_since(
    db: &impl GenericClient,
    mailbox: MailboxId,
    modseq: u64,
) -> Result<Vec<u32>> {
    sql::rows(
        db,
        "list expunged messages",
        "SELECT uid FROM expunged WHERE mailbox = $1 AND modseq > $2 ORDER BY uid",
        &[&mailbox, &to_i64(modseq)?],
    )
    .await?
    .iter()
    .map(|row| get_u32(row, 0))
    .collect()
}
