//! STORE: changing flags, each change under a new MODSEQ (RFC 7162 §3.1.3).

use rusqlite::{Connection, params};

use super::mailboxes::Counters;
use super::{messages, sql_error};
use crate::flags::FlagSet;
use crate::{Change, FlagUpdate, FlagsUpdated, MailboxId, MessageMeta, Result};

/// Applies `update` to those of its UIDs that exist. A message whose flags would not
/// change keeps its MODSEQ; each one that changes gets the mailbox's next MODSEQ. With
/// UNCHANGEDSINCE, a message changed after that MODSEQ is left alone and reported as
/// modified (RFC 7162 §3.1.3).
pub(super) fn update_flags(
    conn: &Connection,
    mailbox: MailboxId,
    update: &FlagUpdate,
    flags: &FlagSet,
    changes: &mut Vec<Change>,
) -> Result<FlagsUpdated> {
    let mut counters = Counters::load(conn, mailbox)?;
    let mut result = FlagsUpdated {
        changed: Vec::new(),
        modified: Vec::new(),
    };
    let mut write = conn
        .prepare_cached(
            "UPDATE messages SET flags = ?3, modseq = ?4 WHERE mailbox = ?1 AND uid = ?2",
        )
        .map_err(sql_error("store flags"))?;
    for message in messages::stored(conn, mailbox, &update.uids)? {
        if update
            .unchanged_since
            .is_some_and(|since| message.modseq > since)
        {
            result.modified.push(message.uid);
            continue;
        }
        let old = FlagSet::from_stored(&message.content.flags);
        let new = old.apply(update.operation, flags);
        if new.same_flags(&old) {
            continue;
        }
        let modseq = counters.take_modseq();
        write
            .execute(params![mailbox, message.uid, new.stored(), modseq])
            .map_err(sql_error("store flags"))?;
        result.changed.push(MessageMeta {
            mailbox,
            uid: message.uid,
            flags: new.into_vec(),
            internal_date: message.content.internal_date,
            size: message.content.size,
            modseq,
        });
    }
    if !result.changed.is_empty() {
        counters.save(conn)?;
        changes.push(Change::FlagsChanged {
            account: counters.account,
            mailbox,
            uids: result.changed.iter().map(|m| m.uid).collect(),
        });
    }
    Ok(result)
}
