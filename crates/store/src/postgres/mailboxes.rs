//! Mailboxes: the UIDVALIDITY values they are born with, the UID and MODSEQ counters
//! every write to them advances, and CREATE, DELETE, RENAME and SUBSCRIBE.
//!
//! A write that takes UIDs or MODSEQs from a mailbox first locks its row (`FOR UPDATE`)
//! and holds the lock until it commits. That is what makes the counters safe when several
//! nodes write to one database: a second writer waits, then reads the counters the first
//! one left, so no UID is handed out twice and UIDs become visible in ascending order.
//! Writes that lock several mailboxes lock them in id order, so two never deadlock.

use std::collections::HashSet;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::messages;
use super::sql::{self, db_error, get, get_u32, get_u64, is_unique_violation};
use crate::{
    AccountId, Change, DEFAULT_MAILBOXES, MAILBOX_DELIMITER, Mailbox, MailboxId, Result, StoreError,
};

const COLUMNS: &str =
    "id, account, name, uid_validity, uid_next, highest_modseq, special_use, subscribed";

const COUNTER_COLUMNS: &str = "id, account, uid_validity, uid_next, highest_modseq";

pub(super) async fn create_defaults(
    tx: &Transaction<'_>,
    account: AccountId,
    now: i64,
) -> Result<()> {
    for (name, special_use) in DEFAULT_MAILBOXES {
        let uid_validity = i64::from(next_uid_validity(tx, now).await?);
        sql::execute(
            tx,
            "create mailbox",
            "INSERT INTO mailboxes (account, name, uid_validity, special_use) \
             VALUES ($1, $2, $3, $4)",
            &[&account, name, &uid_validity, special_use],
        )
        .await?;
    }
    Ok(())
}

/// The current Unix time, or one more than the last value handed out if that is not
/// smaller: unique and increasing across every mailbox ever created in the database, even
/// ones since deleted, as RFC 9051 §2.3.1.1 needs for a name that is reused. The update
/// locks the one row, so nodes creating mailboxes at once take turns.
async fn next_uid_validity(tx: &Transaction<'_>, now: i64) -> Result<u32> {
    let row = sql::row(
        tx,
        "record UIDVALIDITY",
        "UPDATE uid_validity SET last = GREATEST($1, last + 1) RETURNING last",
        &[&now],
    )
    .await?
    .ok_or_else(|| StoreError::Database("the uid_validity row is missing".into()))?;
    get_u32(&row, 0).map_err(|_| StoreError::Database("UIDVALIDITY does not fit in 32 bits".into()))
}

/// A mailbox's UID and MODSEQ counters, read under its row lock, advanced in memory as a
/// write takes UIDs and MODSEQs, and written back by [`Counters::save`]. Both are kept on
/// the mailbox rather than derived from its messages, so a UID is never handed out twice,
/// even after the message that had it is gone (RFC 9051 §2.3.1.1), and a MODSEQ never
/// goes back (RFC 7162).
#[derive(Debug, Clone)]
pub(super) struct Counters {
    pub(super) id: MailboxId,
    pub(super) account: AccountId,
    pub(super) uid_validity: u32,
    uid_next: u32,
    highest_modseq: u64,
}

impl Counters {
    /// Locks the mailbox and reads its counters; `NotFound` if it does not exist.
    pub(super) async fn lock(tx: &Transaction<'_>, mailbox: MailboxId) -> Result<Self> {
        let mut locked = Self::lock_all(tx, &[mailbox]).await?;
        locked
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
    }

    /// Locks the mailboxes that exist among `ids`, in id order, and reads their counters.
    pub(super) async fn lock_all(tx: &Transaction<'_>, ids: &[MailboxId]) -> Result<Vec<Self>> {
        sql::rows(
            tx,
            "lock mailbox",
            &format!(
                "SELECT {COUNTER_COLUMNS} FROM mailboxes WHERE id = ANY($1) ORDER BY id \
                 FOR UPDATE"
            ),
            &[&ids],
        )
        .await?
        .iter()
        .map(Self::from_row)
        .collect()
    }

    /// Locks the mailboxes named by the pairs (`accounts[i]`, `names[i]`) that exist, in
    /// id order, and reads their counters with their names.
    pub(super) async fn lock_by_name(
        tx: &Transaction<'_>,
        accounts: &[AccountId],
        names: &[&str],
    ) -> Result<Vec<(Self, String)>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        sql::rows(
            tx,
            "lock mailbox",
            &format!(
                "SELECT {COUNTER_COLUMNS}, name FROM mailboxes \
                 WHERE (account, name) IN (SELECT * FROM unnest($1::bigint[], $2::text[])) \
                 ORDER BY id FOR UPDATE"
            ),
            &[&accounts, &names],
        )
        .await?
        .iter()
        .map(|row| Ok((Self::from_row(row)?, get(row, 5)?)))
        .collect()
    }

    /// Writes back the counters of several locked mailboxes in one statement.
    pub(super) async fn save_all(tx: &Transaction<'_>, mailboxes: &[Self]) -> Result<()> {
        if mailboxes.is_empty() {
            return Ok(());
        }
        let ids: Vec<MailboxId> = mailboxes.iter().map(|m| m.id).collect();
        let uid_next: Vec<i64> = mailboxes.iter().map(|m| i64::from(m.uid_next)).collect();
        let modseqs = mailboxes
            .iter()
            .map(|m| sql::to_i64(m.highest_modseq))
            .collect::<Result<Vec<_>>>()?;
        sql::execute(
            tx,
            "advance mailbox counters",
            "UPDATE mailboxes SET uid_next = m.uid_next, highest_modseq = m.modseq \
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS m(id, uid_next, modseq) \
             WHERE mailboxes.id = m.id",
            &[&ids, &uid_next, &modseqs],
        )
        .await?;
        Ok(())
    }

    fn from_row(row: &Row) -> Result<Self> {
        Ok(Self {
            id: get(row, 0)?,
            account: get(row, 1)?,
            uid_validity: get_u32(row, 2)?,
            uid_next: get_u32(row, 3)?,
            highest_modseq: get_u64(row, 4)?,
        })
    }

    pub(super) fn take_uid(&mut self) -> Result<u32> {
        // uid_next must itself stay a valid 32-bit UID, so the last one is never used.
        if self.uid_next == u32::MAX {
            return Err(StoreError::Database(format!(
                "mailbox {} has used up its UIDs",
                self.id
            )));
        }
        self.uid_next += 1;
        Ok(self.uid_next - 1)
    }

    pub(super) fn take_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    pub(super) async fn save(&self, tx: &Transaction<'_>) -> Result<()> {
        let modseq = sql::to_i64(self.highest_modseq)?;
        sql::execute(
            tx,
            "advance mailbox counters",
            "UPDATE mailboxes SET uid_next = $2, highest_modseq = $3 WHERE id = $1",
            &[&self.id, &i64::from(self.uid_next), &modseq],
        )
        .await?;
        Ok(())
    }
}

/// The id of the account's mailbox `name`; `NotFound` if there is none.
pub(super) async fn id_by_name(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
) -> Result<MailboxId> {
    let row = sql::row(
        db,
        "look up mailbox",
        "SELECT id FROM mailboxes WHERE account = $1 AND name = $2",
        &[&account, &name],
    )
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("mailbox {name:?} of account {account}")))?;
    get(&row, 0)
}

/// RFC 9051 §6.3.4. A created mailbox is not subscribed: SUBSCRIBE is the client's own
/// step (§6.3.7).
pub(super) async fn create(
    tx: &Transaction<'_>,
    account: AccountId,
    name: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Mailbox> {
    let id = insert(tx, account, name, now).await?;
    changes.push(Change::MailboxesChanged { account });
    by_id(tx, id)
        .await?
        .ok_or_else(|| StoreError::Database(format!("mailbox {id} vanished")))
}

async fn insert(
    tx: &Transaction<'_>,
    account: AccountId,
    name: &str,
    now: i64,
) -> Result<MailboxId> {
    let exists = sql::row(
        tx,
        "look up account",
        "SELECT 1 FROM accounts WHERE id = $1",
        &[&account],
    )
    .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    let uid_validity = i64::from(next_uid_validity(tx, now).await?);
    // A taken name fails the statement (and so the whole write) with a unique violation,
    // told apart from other failures here.
    let inserted = async {
        let statement = tx
            .prepare_cached(
                "INSERT INTO mailboxes (account, name, uid_validity, subscribed) \
                 VALUES ($1, $2, $3, false) RETURNING id",
            )
            .await?;
        tx.query_one(&statement, &[&account, &name, &uid_validity])
            .await
    }
    .await;
    match inserted {
        Ok(row) => get(&row, 0),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(name.to_string())),
        Err(e) => Err(db_error("create mailbox")(e)),
    }
}

/// RFC 9051 §6.3.5: the mailbox goes with its messages and tombstones (foreign-key
/// cascade), then so do the bytes nothing else refers to. Mailboxes below it stay.
pub(super) async fn delete(
    tx: &Transaction<'_>,
    account: AccountId,
    name: &str,
    changes: &mut Vec<Change>,
) -> Result<()> {
    if name == "INBOX" {
        return Err(StoreError::Invalid {
            what: "mailbox to delete",
            value: name.to_string(),
        });
    }
    let id = id_by_name(tx, account, name).await?;
    let mailbox = Counters::lock(tx, id).await?;
    let blobs = messages::blobs_of_mailboxes(tx, &[mailbox.id]).await?;
    sql::execute(
        tx,
        "delete mailbox",
        "DELETE FROM mailboxes WHERE id = $1",
        &[&mailbox.id],
    )
    .await?;
    messages::delete_unreferenced_blobs(tx, &blobs).await?;
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

/// RFC 9051 §6.3.6: the mailbox keeps its id, UIDVALIDITY and messages under the new
/// name, and every mailbox below it moves along (`from/x` becomes `to/x`).
pub(super) async fn rename(
    tx: &Transaction<'_>,
    account: AccountId,
    from: &str,
    to: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<()> {
    if from == "INBOX" {
        return rename_inbox(tx, account, to, now, changes).await;
    }
    let all = names(tx, account).await?;
    let Some(&(source, _)) = all.iter().find(|(_, name)| name == from) else {
        return Err(StoreError::NotFound(format!("mailbox {from:?}")));
    };
    if all.iter().any(|(_, name)| name == to) {
        return Err(StoreError::AlreadyExists(to.to_string()));
    }
    let below = format!("{from}{MAILBOX_DELIMITER}");
    let mut renames = vec![(source, to.to_string())];
    renames.extend(all.iter().filter_map(|(id, name)| {
        let rest = name.strip_prefix(&below)?;
        Some((*id, format!("{to}{MAILBOX_DELIMITER}{rest}")))
    }));
    let moving: HashSet<MailboxId> = renames.iter().map(|(id, _)| *id).collect();
    for (_, new_name) in &renames {
        if all
            .iter()
            .any(|(id, name)| name == new_name && !moving.contains(id))
        {
            return Err(StoreError::AlreadyExists(new_name.clone()));
        }
    }
    // A new name may be the old name of another mailbox that is moving too (`a/b` to
    // `a` turns `a/b/b` into `a/b`), so every name is first parked on one no mailbox
    // can have: valid names hold no control characters.
    for (id, _) in &renames {
        set_name(tx, *id, &format!("\u{1}{id}")).await?;
    }
    for (id, new_name) in &renames {
        set_name(tx, *id, new_name).await?;
    }
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

async fn set_name(tx: &Transaction<'_>, id: MailboxId, name: &str) -> Result<()> {
    match sql::try_execute(
        tx,
        "UPDATE mailboxes SET name = $2 WHERE id = $1",
        &[&id, &name],
    )
    .await
    {
        Ok(_) => Ok(()),
        // Another node took the name after this one looked.
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(name.to_string())),
        Err(e) => Err(db_error("rename mailbox")(e)),
    }
}

/// RFC 9051 §6.3.6: renaming INBOX moves its messages to a new mailbox of that name and
/// leaves INBOX, and any mailboxes below it, where they are.
async fn rename_inbox(
    tx: &Transaction<'_>,
    account: AccountId,
    to: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let inbox = id_by_name(tx, account, "INBOX").await?;
    let target = insert(tx, account, to, now).await?;
    Counters::lock_all(tx, &[inbox, target]).await?;
    let uids = messages::uids(tx, inbox).await?;
    messages::move_messages(tx, inbox, &uids, target, changes).await?;
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

pub(super) async fn set_subscribed(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
    subscribed: bool,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let updated = sql::execute(
        db,
        "subscribe to mailbox",
        "UPDATE mailboxes SET subscribed = $3 WHERE account = $1 AND name = $2",
        &[&account, &name, &subscribed],
    )
    .await?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("mailbox {name:?}")));
    }
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

/// Every mailbox name of the account, with its id.
async fn names(db: &impl GenericClient, account: AccountId) -> Result<Vec<(MailboxId, String)>> {
    sql::rows(
        db,
        "list mailboxes",
        "SELECT id, name FROM mailboxes WHERE account = $1",
        &[&account],
    )
    .await?
    .iter()
    .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
    .collect()
}

pub(super) async fn by_id(db: &impl GenericClient, mailbox: MailboxId) -> Result<Option<Mailbox>> {
    sql::row(
        db,
        "look up mailbox",
        &format!("SELECT {COLUMNS} FROM mailboxes WHERE id = $1"),
        &[&mailbox],
    )
    .await?
    .map(|row| mailbox_from_row(&row))
    .transpose()
}

pub(super) async fn mailboxes(db: &impl GenericClient, account: AccountId) -> Result<Vec<Mailbox>> {
    sql::rows(
        db,
        "list mailboxes",
        &format!("SELECT {COLUMNS} FROM mailboxes WHERE account = $1 ORDER BY id"),
        &[&account],
    )
    .await?
    .iter()
    .map(mailbox_from_row)
    .collect()
}

pub(super) async fn mailbox(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
) -> Result<Option<Mailbox>> {
    sql::row(
        db,
        "look up mailbox",
        &format!("SELECT {COLUMNS} FROM mailboxes WHERE account = $1 AND name = $2"),
        &[&account, &name],
    )
    .await?
    .map(|row| mailbox_from_row(&row))
    .transpose()
}

fn mailbox_from_row(row: &Row) -> Result<Mailbox> {
    Ok(Mailbox {
        id: get(row, 0)?,
        account: get(row, 1)?,
        name: get(row, 2)?,
        uid_validity: get_u32(row, 3)?,
        uid_next: get_u32(row, 4)?,
        highest_modseq: get_u64(row, 5)?,
        special_use: get(row, 6)?,
        subscribed: get(row, 7)?,
    })
}
