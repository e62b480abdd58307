//! STORE: changing flags, each change under a new MODSEQ (RFC 7162 §3.1.3).

use deadpool_postgres::Transaction;

use super::mailboxes::Counters;
use super::messages;
use super::sql::{self, to_i64, uid_array};
use crate::flags::FlagSet;
use crate::{Change, FlagUpdate, FlagsUpdated, MailboxId, MessageMeta, Result};

/// Applies `update` to those of its UIDs that exist. A message whose flags would not
/// change keeps its MODSEQ; each one that changes gets the mailbox's next MODSEQ. With
/// UNCHANGEDSINCE, a message changed after that MODSEQ is left alone and reported as
/// modified (RFC 7162 §3.1.3). The changed rows are written in one statement.
pub(super) async fn update_flags(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
    update: &FlagUpdate,
    flags: &FlagSet,
    changes: &mut Vec<Change>,
) -> Result<FlagsUpdated> {
    let mut counters = Counters::lock(tx, mailbox).await?;
    let mut result = FlagsUpdated {
        changed: Vec::new(),
        modified: Vec::new(),
    };
    let mut stored_flags = Vec::new();
    for message in messages::stored(tx, mailbox, &update.uids).await? {
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
        stored_flags.push(new.stored());
        result.changed.push(MessageMeta {
            mailbox,
            uid: message.uid,
            flags: new.into_vec(),
            internal_date: message.content.internal_date,
            size: message.content.size,
            modseq: counters.take_modseq(),
        });
    }
    if result.changed.is_empty() {
        return Ok(result);
    }
    let uids: Vec<u32> = result.changed.iter().map(|m| m.uid).collect();
    let modseqs = result
        .changed
        .iter()
        .map(|m| to_i64(m.modseq))
        .collect::<Result<Vec<_>>>()?;
    sql::execute(
        tx,
        "store flags",
        "UPDATE messages SET flags = string_to_array(m.flags, ' '), modseq = m.modseq \
         FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS m(uid, flags, modseq) \
         WHERE messages.mailbox = $1 AND messages.uid = m.uid",
        &[&mailbox, &uid_array(&uids), &stored_flags, &modseqs],
    )
    .await?;
    counters.save(tx).await?;
    changes.push(Change::FlagsChanged {
        account: counters.account,
        mailbox,
        uids,
    });
    Ok(result)
}
