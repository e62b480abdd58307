//! Message bytes and their copies in mailboxes: delivery (which also queues), APPEND,
//! COPY and MOVE, and reading them back.
//!
//! Bytes live in `blobs`, once however many mailboxes and queue entries share them. A
//! write that may leave bytes unreferenced locks their rows before it looks for other
//! references, so two nodes removing the last two references at once cannot both keep
//! them, and a copy adding a reference waits for (and then fails on, rather than
//! dangles from) a removal in progress.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::expunge;
use super::mailboxes::Counters;
use super::queue;
use super::sql::{self, get, get_u32, get_u64, to_i64, uid_array};
use crate::flags::FlagSet;
use crate::{
    AccountId, Appended, Change, Copied, Delivered, Delivery, MailboxId, MessageMeta, NewMessage,
    Result, StoreError, names,
};

/// The columns [`meta_from_row`] reads, flags as the stored space-separated string.
const META_COLUMNS: &str = "uid, array_to_string(flags, ' '), internal_date, size, modseq";

/// Stores the bytes once, adds a copy to each target mailbox under its next UID and
/// MODSEQ, and queues the outbound part.
pub(super) async fn deliver(
    tx: &Transaction<'_>,
    delivery: &Delivery,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Delivered> {
    let mut targets = Targets::lock(tx, &[delivery]).await?;
    let delivered = deliver_locked(tx, delivery, now, &mut targets, changes).await?;
    targets.save(tx).await?;
    Ok(delivered)
}

/// The mailboxes some deliveries go to, locked (in id order, in one statement) with
/// their counters, which the deliveries advance in memory and [`Targets::save`] writes
/// back once. A batch of deliveries so takes its mailboxes in the same order as every
/// other write, whatever order the deliveries name them in.
pub(super) struct Targets {
    by_name: HashMap<(AccountId, String), usize>,
    counters: Vec<Counters>,
}

impl Targets {
    pub(super) async fn lock(tx: &Transaction<'_>, deliveries: &[&Delivery]) -> Result<Self> {
        let mut accounts = Vec::new();
        let mut names = Vec::new();
        for target in deliveries.iter().flat_map(|delivery| &delivery.local) {
            accounts.push(target.account);
            names.push(names::mailbox(&target.mailbox));
        }
        let locked = Counters::lock_by_name(tx, &accounts, &names).await?;
        let mut by_name = HashMap::with_capacity(locked.len());
        let mut counters = Vec::with_capacity(locked.len());
        for (index, (mailbox, name)) in locked.into_iter().enumerate() {
            by_name.insert((mailbox.account, name), index);
            counters.push(mailbox);
        }
        Ok(Self { by_name, counters })
    }

    /// The locked mailbox `name` of `account`; `NotFound` if it does not exist.
    fn get(&mut self, account: AccountId, name: &str) -> Result<&mut Counters> {
        let index = self
            .by_name
            .get(&(account, name.to_string()))
            .copied()
            .ok_or_else(|| {
                StoreError::NotFound(format!("mailbox {name:?} of account {account}"))
            })?;
        Ok(&mut self.counters[index])
    }

    pub(super) async fn save(&self, tx: &Transaction<'_>) -> Result<()> {
        Counters::save_all(tx, &self.counters).await
    }
}

/// [`deliver`] into mailboxes the caller has locked.
pub(super) async fn deliver_locked(
    tx: &Transaction<'_>,
    delivery: &Delivery,
    now: i64,
    targets: &mut Targets,
    changes: &mut Vec<Change>,
) -> Result<Delivered> {
    // Missing mailboxes fail the delivery before anything is written.
    for target in &delivery.local {
        targets.get(target.account, names::mailbox(&target.mailbox))?;
    }
    let blob = insert_blob(tx, &delivery.raw).await?;
    let content = Content {
        blob,
        flags: String::new(),
        internal_date: delivery.internal_date,
        size: delivery.raw.len() as u64,
    };
    let mut messages = Vec::with_capacity(delivery.local.len());
    for target in &delivery.local {
        let mailbox = targets.get(target.account, names::mailbox(&target.mailbox))?;
        let uids = insert(tx, mailbox, &[&content], changes).await?;
        messages.extend(uids.into_iter().map(|uid| (mailbox.id, uid)));
    }
    let queue_id = match &delivery.outbound {
        Some(outbound) => {
            let id = queue::enqueue(tx, blob, outbound, content.size, now).await?;
            changes.push(Change::QueueAdded { id });
            Some(id)
        }
        None => None,
    };
    Ok(Delivered { messages, queue_id })
}

/// RFC 9051 §6.3.12: one message, with the flags and date the client gave.
pub(super) async fn append(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
    message: &NewMessage,
    flags: &FlagSet,
    changes: &mut Vec<Change>,
) -> Result<Appended> {
    let mut target = Counters::lock(tx, mailbox).await?;
    let content = Content {
        blob: insert_blob(tx, &message.raw).await?,
        flags: flags.stored(),
        internal_date: message.internal_date,
        size: message.raw.len() as u64,
    };
    let uids = insert(tx, &mut target, &[&content], changes).await?;
    target.save(tx).await?;
    Ok(Appended {
        uid_validity: target.uid_validity,
        uid: uids[0],
    })
}

/// RFC 9051 §6.4.7: the copies share the source's bytes and keep its flags and internal
/// date; UIDs that are not in the source are skipped.
pub(super) async fn copy_messages(
    tx: &Transaction<'_>,
    from: MailboxId,
    uids: &[u32],
    to: MailboxId,
    changes: &mut Vec<Change>,
) -> Result<Copied> {
    let locked = Counters::lock_all(tx, &[from, to]).await?;
    let find = |id| {
        locked
            .iter()
            .find(|counters| counters.id == id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {id}")))
    };
    find(from)?;
    let mut target = find(to)?;
    let sources = stored(tx, from, uids).await?;
    let contents: Vec<&Content> = sources.iter().map(|source| &source.content).collect();
    let new_uids = insert(tx, &mut target, &contents, changes).await?;
    target.save(tx).await?;
    Ok(Copied {
        uid_validity: target.uid_validity,
        uids: sources
            .iter()
            .map(|source| source.uid)
            .zip(new_uids)
            .collect(),
    })
}

/// RFC 6851: the copy and the removal of the sources are one transaction, so a client
/// never sees a message in both mailboxes or in neither.
pub(super) async fn move_messages(
    tx: &Transaction<'_>,
    from: MailboxId,
    uids: &[u32],
    to: MailboxId,
    changes: &mut Vec<Change>,
) -> Result<Copied> {
    let copied = copy_messages(tx, from, uids, to, changes).await?;
    let sources: Vec<u32> = copied.uids.iter().map(|(source, _)| *source).collect();
    // Still locked from the copy; this reads the counters the copy left.
    let mut source = Counters::lock(tx, from).await?;
    expunge::remove(tx, &mut source, &sources, changes).await?;
    Ok(copied)
}

pub(super) async fn insert_blob(tx: &Transaction<'_>, raw: &[u8]) -> Result<i64> {
    let row = sql::row(
        tx,
        "store message bytes",
        "INSERT INTO blobs (raw) VALUES ($1) RETURNING id",
        &[&raw],
    )
    .await?
    .ok_or_else(|| StoreError::Database("store message bytes: no id returned".into()))?;
    get(&row, 0)
}

/// What a message's row holds besides its place (mailbox, UID, MODSEQ).
pub(super) struct Content {
    pub(super) blob: i64,
    /// As [`FlagSet::stored`] writes them.
    pub(super) flags: String,
    pub(super) internal_date: i64,
    pub(super) size: u64,
}

/// Adds messages with `contents` to `mailbox` under its next UIDs and MODSEQs, in one
/// statement; the caller saves the counters.
async fn insert(
    tx: &Transaction<'_>,
    mailbox: &mut Counters,
    contents: &[&Content],
    changes: &mut Vec<Change>,
) -> Result<Vec<u32>> {
    if contents.is_empty() {
        return Ok(Vec::new());
    }
    let mut uids = Vec::with_capacity(contents.len());
    let mut modseqs = Vec::with_capacity(contents.len());
    let mut sizes = Vec::with_capacity(contents.len());
    for content in contents {
        uids.push(mailbox.take_uid()?);
        modseqs.push(to_i64(mailbox.take_modseq())?);
        sizes.push(to_i64(content.size)?);
    }
    let blobs: Vec<i64> = contents.iter().map(|c| c.blob).collect();
    let flags: Vec<&str> = contents.iter().map(|c| c.flags.as_str()).collect();
    let dates: Vec<i64> = contents.iter().map(|c| c.internal_date).collect();
    sql::execute(
        tx,
        "add message to mailbox",
        "INSERT INTO messages (mailbox, uid, blob, flags, internal_date, size, modseq) \
         SELECT $1, m.uid, m.blob, string_to_array(m.flags, ' '), m.internal_date, m.size, \
                m.modseq \
         FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], \
                     $7::bigint[]) AS m(uid, blob, flags, internal_date, size, modseq)",
        &[
            &mailbox.id,
            &uid_array(&uids),
            &blobs,
            &flags,
            &dates,
            &sizes,
            &modseqs,
        ],
    )
    .await?;
    changes.extend(uids.iter().map(|&uid| Change::MessageAdded {
        account: mailbox.account,
        mailbox: mailbox.id,
        uid,
    }));
    Ok(uids)
}

/// A message as stored, read by writes that change or copy it.
pub(super) struct Stored {
    pub(super) uid: u32,
    pub(super) modseq: u64,
    pub(super) content: Content,
}

/// Those of `uids` that are in the mailbox, in ascending UID order, each once.
pub(super) async fn stored(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<Stored>> {
    sql::rows(
        db,
        "read message",
        "SELECT uid, blob, array_to_string(flags, ' '), internal_date, size, modseq \
         FROM messages WHERE mailbox = $1 AND uid = ANY($2) ORDER BY uid",
        &[&mailbox, &uid_array(uids)],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(Stored {
            uid: get_u32(row, 0)?,
            modseq: get_u64(row, 5)?,
            content: Content {
                blob: get(row, 1)?,
                flags: get(row, 2)?,
                internal_date: get(row, 3)?,
                size: get_u64(row, 4)?,
            },
        })
    })
    .collect()
}

/// Every UID in the mailbox, ascending.
pub(super) async fn uids(db: &impl GenericClient, mailbox: MailboxId) -> Result<Vec<u32>> {
    sql::rows(
        db,
        "list messages",
        "SELECT uid FROM messages WHERE mailbox = $1 ORDER BY uid",
        &[&mailbox],
    )
    .await?
    .iter()
    .map(|row| get_u32(row, 0))
    .collect()
}

pub(super) async fn messages(
    db: &impl GenericClient,
    mailbox: MailboxId,
) -> Result<Vec<MessageMeta>> {
    sql::rows(
        db,
        "list messages",
        &format!("SELECT {META_COLUMNS} FROM messages WHERE mailbox = $1 ORDER BY uid"),
        &[&mailbox],
    )
    .await?
    .iter()
    .map(|row| meta_from_row(mailbox, row))
    .collect()
}

fn meta_from_row(mailbox: MailboxId, row: &Row) -> Result<MessageMeta> {
    let flags: String = get(row, 1)?;
    Ok(MessageMeta {
        mailbox,
        uid: get_u32(row, 0)?,
        flags: FlagSet::from_stored(&flags).into_vec(),
        internal_date: get(row, 2)?,
        size: get_u64(row, 3)?,
        modseq: get_u64(row, 4)?,
    })
}

pub(super) async fn message_raw(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uid: u32,
) -> Result<Option<Vec<u8>>> {
    sql::row(
        db,
        "read message",
        "SELECT blobs.raw FROM messages JOIN blobs ON blobs.id = messages.blob \
         WHERE messages.mailbox = $1 AND messages.uid = $2",
        &[&mailbox, &i64::from(uid)],
    )
    .await?
    .map(|row| get(&row, 0))
    .transpose()
}

/// The bytes of `uids` in one query, handed back in the order asked (a UID asked twice
/// comes twice); UIDs not in the mailbox are left out.
pub(super) async fn messages_raw(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>> {
    let rows = sql::rows(
        db,
        "read messages",
        "SELECT messages.uid, blobs.raw FROM messages JOIN blobs ON blobs.id = messages.blob \
         WHERE messages.mailbox = $1 AND messages.uid = ANY($2)",
        &[&mailbox, &uid_array(uids)],
    )
    .await?;
    let mut found: HashMap<u32, Vec<u8>> = HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(get_u32(row, 0)?, get(row, 1)?);
    }
    let mut last_asked: HashMap<u32, usize> = HashMap::with_capacity(uids.len());
    for (position, &uid) in uids.iter().enumerate() {
        last_asked.insert(uid, position);
    }
    let mut ordered = Vec::with_capacity(found.len());
    for (position, &uid) in uids.iter().enumerate() {
        // The last request for a UID takes its bytes; an earlier one gets a copy.
        let raw = if last_asked.get(&uid) == Some(&position) {
            found.remove(&uid)
        } else {
            found.get(&uid).cloned()
        };
        ordered.extend(raw.map(|raw| (uid, raw)));
    }
    Ok(ordered)
}

/// The bytes the mailboxes' messages refer to, collected before they are deleted so they
/// can be checked for other references afterwards.
pub(super) async fn blobs_of_mailboxes(
    db: &impl GenericClient,
    mailboxes: &[MailboxId],
) -> Result<Vec<i64>> {
    sql::rows(
        db,
        "list messages' bytes",
        "SELECT DISTINCT blob FROM messages WHERE mailbox = ANY($1) ORDER BY blob",
        &[&mailboxes],
    )
    .await?
    .iter()
    .map(|row| get(row, 0))
    .collect()
}

/// Deletes those of `blobs` that no message and no queue entry refers to any more.
pub(super) async fn delete_unreferenced_blobs(tx: &Transaction<'_>, blobs: &[i64]) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    // The lock waits for writes adding or removing references to commit; the delete,
    // a new statement, then sees what they left.
    sql::execute(
        tx,
        "lock message bytes",
        "SELECT 1 FROM blobs WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&blobs],
    )
    .await?;
    sql::execute(
        tx,
        "delete message bytes",
        "DELETE FROM blobs WHERE id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.blob = blobs.id) \
         AND NOT EXISTS (SELECT 1 FROM queue WHERE queue.blob = blobs.id)",
        &[&blobs],
    )
    .await?;
    Ok(())
}
