//! Mailboxes: the UIDVALIDITY values they are born with, the UID and MODSEQ counters
//! every write to them advances, and CREATE, DELETE, RENAME and SUBSCRIBE.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{is_unique_violation, messages, sql_error};
use crate::{
    AccountId, Change, DEFAULT_MAILBOXES, MAILBOX_DELIMITER, Mailbox, MailboxId, Result, StoreError,
};

const COLUMNS: &str =
    "id, account, name, uid_validity, uid_next, highest_modseq, special_use, subscribed";

pub(super) fn create_defaults(conn: &Connection, account: AccountId, now: i64) -> Result<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO mailboxes (account, name, uid_validity, special_use) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql_error("create mailbox"))?;
    for (name, special_use) in DEFAULT_MAILBOXES {
        let uid_validity = next_uid_validity(conn, now)?;
        insert
            .execute(params![account, name, uid_validity, special_use])
            .map_err(sql_error("create mailbox"))?;
    }
    Ok(())
}

/// The current Unix time, or one more than the last value handed out if that is not
/// smaller: unique and increasing across every mailbox ever created here, even ones
/// since deleted, as RFC 9051 §2.3.1.1 needs for a name that is reused.
fn next_uid_validity(conn: &Connection, now: i64) -> Result<u32> {
    let last: i64 = conn
        .query_row("SELECT last FROM uid_validity", [], |row| row.get(0))
        .map_err(sql_error("read last UIDVALIDITY"))?;
    let next = now.max(last + 1);
    let next = u32::try_from(next)
        .map_err(|_| StoreError::Database(format!("UIDVALIDITY {next} does not fit in 32 bits")))?;
    conn.execute("UPDATE uid_validity SET last = ?1", [next])
        .map_err(sql_error("record UIDVALIDITY"))?;
    Ok(next)
}

/// A mailbox's UID and MODSEQ counters, read once by a write, advanced in memory as it
/// takes UIDs and MODSEQs, and written back by [`Counters::save`]. Both are kept on the
/// mailbox rather than derived from its messages, so a UID is never handed out twice,
/// even after the message that had it is gone (RFC 9051 §2.3.1.1), and a MODSEQ never
/// goes back (RFC 7162).
pub(super) struct Counters {
    pub(super) id: MailboxId,
    pub(super) account: AccountId,
    pub(super) uid_validity: u32,
    uid_next: u32,
    highest_modseq: u64,
}

impl Counters {
    pub(super) fn load(conn: &Connection, mailbox: MailboxId) -> Result<Self> {
        conn.prepare_cached(
            "SELECT id, account, uid_validity, uid_next, highest_modseq FROM mailboxes \
             WHERE id = ?1",
        )
        .and_then(|mut select| select.query_row([mailbox], Self::from_row).optional())
        .map_err(sql_error("look up mailbox"))?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
    }

    pub(super) fn load_by_name(conn: &Connection, account: AccountId, name: &str) -> Result<Self> {
        conn.prepare_cached(
            "SELECT id, account, uid_validity, uid_next, highest_modseq FROM mailboxes \
             WHERE account = ?1 AND name = ?2",
        )
        .and_then(|mut select| {
            select
                .query_row(params![account, name], Self::from_row)
                .optional()
        })
        .map_err(sql_error("look up mailbox"))?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {name:?} of account {account}")))
    }

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            account: row.get(1)?,
            uid_validity: row.get(2)?,
            uid_next: row.get(3)?,
            highest_modseq: row.get(4)?,
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

    pub(super) fn save(&self, conn: &Connection) -> Result<()> {
        conn.prepare_cached(
            "UPDATE mailboxes SET uid_next = ?2, highest_modseq = ?3 WHERE id = ?1",
        )
        .and_then(|mut update| update.execute(params![self.id, self.uid_next, self.highest_modseq]))
        .map_err(sql_error("advance mailbox counters"))?;
        Ok(())
    }
}

/// RFC 9051 §6.3.4. A created mailbox is not subscribed: SUBSCRIBE is the client's own
/// step (§6.3.7).
pub(super) fn create(
    conn: &Connection,
    account: AccountId,
    name: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Mailbox> {
    let id = insert(conn, account, name, now)?;
    changes.push(Change::MailboxesChanged { account });
    by_id(conn, id)?.ok_or_else(|| StoreError::Database(format!("mailbox {id} vanished")))
}

fn insert(conn: &Connection, account: AccountId, name: &str, now: i64) -> Result<MailboxId> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?1)")
        .and_then(|mut select| select.query_row([account], |row| row.get(0)))
        .map_err(sql_error("look up account"))?;
    if !exists {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    let uid_validity = next_uid_validity(conn, now)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO mailboxes (account, name, uid_validity, subscribed) \
             VALUES (?1, ?2, ?3, 0)",
        )
        .and_then(|mut insert| insert.execute(params![account, name, uid_validity]));
    match inserted {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(name.to_string())),
        Err(e) => Err(sql_error("create mailbox")(e)),
    }
}

/// RFC 9051 §6.3.5: the mailbox goes with its messages and tombstones (foreign-key
/// cascade), then so do the bytes nothing else refers to. Mailboxes below it stay.
pub(super) fn delete(
    conn: &Connection,
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
    let mailbox = Counters::load_by_name(conn, account, name)?;
    let blobs = messages::blobs_of_mailbox(conn, mailbox.id)?;
    conn.prepare_cached("DELETE FROM mailboxes WHERE id = ?1")
        .and_then(|mut delete| delete.execute([mailbox.id]))
        .map_err(sql_error("delete mailbox"))?;
    messages::delete_unreferenced_blobs(conn, &blobs)?;
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

/// RFC 9051 §6.3.6: the mailbox keeps its id, UIDVALIDITY and messages under the new
/// name, and every mailbox below it moves along (`from/x` becomes `to/x`).
pub(super) fn rename(
    conn: &Connection,
    account: AccountId,
    from: &str,
    to: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<()> {
    if from == "INBOX" {
        return rename_inbox(conn, account, to, now, changes);
    }
    let all = names(conn, account)?;
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

    let mut update = conn
        .prepare_cached("UPDATE mailboxes SET name = ?2 WHERE id = ?1")
        .map_err(sql_error("rename mailbox"))?;
    // A new name may be the old name of another mailbox that is moving too (`a/b` to
    // `a` turns `a/b/b` into `a/b`), so every name is first parked on one no mailbox
    // can have: valid names hold no control characters.
    for (id, _) in &renames {
        update
            .execute(params![id, format!("\0{id}")])
            .map_err(sql_error("rename mailbox"))?;
    }
    for (id, new_name) in &renames {
        update
            .execute(params![id, new_name])
            .map_err(sql_error("rename mailbox"))?;
    }
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

/// RFC 9051 §6.3.6: renaming INBOX moves its messages to a new mailbox of that name and
/// leaves INBOX, and any mailboxes below it, where they are.
fn rename_inbox(
    conn: &Connection,
    account: AccountId,
    to: &str,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let inbox = Counters::load_by_name(conn, account, "INBOX")?;
    let target = insert(conn, account, to, now)?;
    let uids = messages::uids(conn, inbox.id)?;
    messages::move_messages(conn, inbox.id, &uids, target, changes)?;
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

pub(super) fn set_subscribed(
    conn: &Connection,
    account: AccountId,
    name: &str,
    subscribed: bool,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let updated = conn
        .prepare_cached("UPDATE mailboxes SET subscribed = ?3 WHERE account = ?1 AND name = ?2")
        .and_then(|mut update| update.execute(params![account, name, subscribed]))
        .map_err(sql_error("subscribe to mailbox"))?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("mailbox {name:?}")));
    }
    changes.push(Change::MailboxesChanged { account });
    Ok(())
}

/// Every mailbox name of the account, with its id.
fn names(conn: &Connection, account: AccountId) -> Result<Vec<(MailboxId, String)>> {
    let mut select = conn
        .prepare_cached("SELECT id, name FROM mailboxes WHERE account = ?1")
        .map_err(sql_error("list mailboxes"))?;
    select
        .query_map([account], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(sql_error("list mailboxes"))
}

pub(super) fn by_id(conn: &Connection, mailbox: MailboxId) -> Result<Option<Mailbox>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM mailboxes WHERE id = ?1"))
        .and_then(|mut select| select.query_row([mailbox], mailbox_from_row).optional())
        .map_err(sql_error("look up mailbox"))
}

pub(super) fn mailboxes(conn: &Connection, account: AccountId) -> Result<Vec<Mailbox>> {
    let mut select = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM mailboxes WHERE account = ?1 ORDER BY id"
        ))
        .map_err(sql_error("list mailboxes"))?;
    select
        .query_map([account], mailbox_from_row)
        .and_then(Iterator::collect)
        .map_err(sql_error("list mailboxes"))
}

pub(super) fn mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<Option<Mailbox>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM mailboxes WHERE account = ?1 AND name = ?2"
    ))
    .and_then(|mut select| {
        select
            .query_row(params![account, name], mailbox_from_row)
            .optional()
    })
    .map_err(sql_error("look up mailbox"))
}

fn mailbox_from_row(row: &Row<'_>) -> rusqlite::Result<Mailbox> {
    Ok(Mailbox {
        id: row.get(0)?,
        account: row.get(1)?,
        name: row.get(2)?,
        uid_validity: row.get(3)?,
        uid_next: row.get(4)?,
        highest_modseq: row.get(5)?,
        special_use: row.get(6)?,
        subscribed: row.get(7)?,
    })
}
