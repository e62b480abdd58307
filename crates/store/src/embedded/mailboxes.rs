//! Mailboxes and the UIDVALIDITY values they are born with.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::sql_error;
use crate::{AccountId, DEFAULT_MAILBOXES, Mailbox, Result, StoreError};

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
