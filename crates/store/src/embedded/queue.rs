//! The outbound queue: entries, their recipients, and the bytes to send; workers claim
//! due entries under a lease and record each attempt.
//!
//! Every write runs on the writer thread, one at a time, so a claim's select-then-lease
//! cannot interleave with another claim: two workers never hold the same entry. A worker
//! that dies holding a lease only delays its entries until the lease runs out.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Params, ToSql, params};

use super::{messages, sql_error};
use crate::{
    Outbound, QueueAttempt, QueueEntry, QueueId, QueueRecipient, RecipientStatus, Result,
    StoreError,
};

/// Adds an entry for `blob` with every recipient pending, due at once.
pub(super) fn enqueue(
    conn: &Connection,
    blob: i64,
    outbound: &Outbound,
    size: u64,
    now: i64,
) -> Result<QueueId> {
    conn.prepare_cached(
        "INSERT INTO queue (blob, sender, size, created, next_attempt, require_tls) \
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            blob,
            outbound.sender,
            size,
            now,
            outbound.require_tls
        ])
    })
    .map_err(sql_error("queue message"))?;
    let id = conn.last_insert_rowid();
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO queue_recipients (queue, position, address, status) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql_error("queue recipient"))?;
    for (position, address) in outbound.recipients.iter().enumerate() {
        insert
            .execute(params![id, position, address, RecipientStatus::Pending])
            .map_err(sql_error("queue recipient"))?;
    }
    Ok(id)
}

/// The columns [`collect_entries`] reads, entry first, then one recipient.
const ENTRY_COLUMNS: &str = "queue.id, queue.sender, queue.size, queue.created, \
    queue.next_attempt, queue.attempts, queue.require_tls, queue.policy, \
    r.address, r.status, r.last_error \
    FROM queue LEFT JOIN queue_recipients AS r ON r.queue = queue.id";

/// Every entry, oldest first, read in one statement so entries and recipients come from
/// the same snapshot.
pub(super) fn entries(conn: &Connection) -> Result<Vec<QueueEntry>> {
    collect_entries(
        conn,
        &format!("SELECT {ENTRY_COLUMNS} ORDER BY queue.created, queue.id, r.position"),
        [],
    )
}

/// One entry with all its recipients, whatever their status.
fn entry(conn: &Connection, id: QueueId) -> Result<Option<QueueEntry>> {
    let found = collect_entries(
        conn,
        &format!("SELECT {ENTRY_COLUMNS} WHERE queue.id = ?1 ORDER BY r.position"),
        [id],
    )?;
    Ok(found.into_iter().next())
}

/// Runs a select of [`ENTRY_COLUMNS`] ordered by entry, and folds its rows (one per
/// recipient) into entries.
fn collect_entries(conn: &Connection, sql: &str, params: impl Params) -> Result<Vec<QueueEntry>> {
    let mut select = conn.prepare_cached(sql).map_err(sql_error("list queue"))?;
    let rows = select
        .query_map(params, |row| {
            let entry = QueueEntry {
                id: row.get(0)?,
                sender: row.get(1)?,
                recipients: Vec::new(),
                size: row.get(2)?,
                created: row.get(3)?,
                next_attempt: row.get(4)?,
                attempts: row.get(5)?,
                require_tls: row.get(6)?,
                policy: row.get(7)?,
            };
            let recipient = match row.get::<_, Option<String>>(8)? {
                Some(address) => Some(QueueRecipient {
                    address,
                    status: row.get(9)?,
                    last_error: row.get(10)?,
                }),
                None => None,
            };
            Ok((entry, recipient))
        })
        .map_err(sql_error("list queue"))?;
    // An entry starts where the id changes.
    let mut entries: Vec<QueueEntry> = Vec::new();
    for row in rows {
        let (entry, recipient) = row.map_err(sql_error("read queue entry"))?;
        if entries.last().is_none_or(|last| last.id != entry.id) {
            entries.push(entry);
        }
        if let (Some(last), Some(recipient)) = (entries.last_mut(), recipient) {
            last.recipients.push(recipient);
        }
    }
    Ok(entries)
}

pub(super) fn message(conn: &Connection, id: QueueId) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached(
        "SELECT blobs.raw FROM queue JOIN blobs ON blobs.id = queue.blob WHERE queue.id = ?1",
    )
    .and_then(|mut select| select.query_row([id], |row| row.get(0)).optional())
    .map_err(sql_error("read queued message"))
}

/// Leases up to `limit` due entries that no live lease holds, oldest due first, and
/// returns them with all their recipients.
pub(super) fn claim(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> Result<Vec<QueueEntry>> {
    let due: Vec<QueueId> = conn
        .prepare_cached(
            "SELECT id FROM queue WHERE next_attempt <= ?1 AND lease_until <= ?1 \
             ORDER BY next_attempt, id LIMIT ?2",
        )
        .and_then(|mut select| {
            select
                .query_map(params![now, limit], |row| row.get(0))?
                .collect()
        })
        .map_err(sql_error("find due queue entries"))?;
    let mut lease = conn
        .prepare_cached("UPDATE queue SET lease_until = ?2 WHERE id = ?1")
        .map_err(sql_error("lease queue entry"))?;
    let mut claimed = Vec::with_capacity(due.len());
    for id in due {
        lease
            .execute(params![id, lease_until])
            .map_err(sql_error("lease queue entry"))?;
        claimed.extend(entry(conn, id)?);
    }
    Ok(claimed)
}

/// Extends the lease of those of `ids` still leased (`lease_until` > 0: claimed, not yet
/// finished or released); a finished entry must stay free for its retry.
pub(super) fn renew_leases(conn: &Connection, ids: &[QueueId], lease_until: i64) -> Result<()> {
    let mut renew = conn
        .prepare_cached("UPDATE queue SET lease_until = ?2 WHERE id = ?1 AND lease_until > 0")
        .map_err(sql_error("renew queue lease"))?;
    for id in ids {
        renew
            .execute(params![id, lease_until])
            .map_err(sql_error("renew queue lease"))?;
    }
    Ok(())
}

/// Applies one attempt's outcome and releases the lease; removes the entry (and its
/// bytes, if nothing else uses them) once no recipient is pending.
pub(super) fn finish_attempt(conn: &Connection, attempt: &QueueAttempt) -> Result<()> {
    let blob = blob_of(conn, attempt.id)?.ok_or_else(|| not_found(attempt.id))?;
    let mut update = conn
        .prepare_cached(
            "UPDATE queue_recipients SET status = ?3, last_error = ?4 \
             WHERE queue = ?1 AND address = ?2",
        )
        .map_err(sql_error("update queue recipient"))?;
    for recipient in &attempt.recipients {
        let updated = update
            .execute(params![
                attempt.id,
                recipient.address,
                recipient.status,
                recipient.last_error
            ])
            .map_err(sql_error("update queue recipient"))?;
        // A recipient the entry does not have is the caller's bug; failing (which rolls
        // the whole attempt back) is better than silently losing a status.
        if updated == 0 {
            return Err(StoreError::Invalid {
                what: "queue recipient",
                value: recipient.address.clone(),
            });
        }
    }
    conn.prepare_cached(
        "UPDATE queue SET attempts = attempts + 1, next_attempt = ?2, policy = ?3, \
             lease_until = 0 \
         WHERE id = ?1",
    )
    .and_then(|mut update| {
        update.execute(params![attempt.id, attempt.next_attempt, attempt.policy])
    })
    .map_err(sql_error("record delivery attempt"))?;
    if !has_pending(conn, attempt.id)? {
        remove(conn, attempt.id, blob)?;
    }
    Ok(())
}

/// Makes the entry due at `now` and frees it from any lease; `false` if absent.
pub(super) fn retry(conn: &Connection, id: QueueId, now: i64) -> Result<bool> {
    let updated = conn
        .prepare_cached("UPDATE queue SET next_attempt = ?2, lease_until = 0 WHERE id = ?1")
        .and_then(|mut update| update.execute(params![id, now]))
        .map_err(sql_error("retry queue entry"))?;
    Ok(updated > 0)
}

/// Removes the entry, its recipients and, if nothing else uses them, its bytes.
pub(super) fn drop_entry(conn: &Connection, id: QueueId) -> Result<bool> {
    match blob_of(conn, id)? {
        Some(blob) => remove(conn, id, blob).map(|()| true),
        None => Ok(false),
    }
}

fn blob_of(conn: &Connection, id: QueueId) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT blob FROM queue WHERE id = ?1")
        .and_then(|mut select| select.query_row([id], |row| row.get(0)).optional())
        .map_err(sql_error("find queue entry"))
}

fn has_pending(conn: &Connection, id: QueueId) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM queue_recipients WHERE queue = ?1 AND status = ?2)",
    )
    .and_then(|mut select| {
        select.query_row(params![id, RecipientStatus::Pending], |row| row.get(0))
    })
    .map_err(sql_error("count pending recipients"))
}

/// Deletes the entry (its recipients cascade), then its bytes unless a mailbox copy or
/// another entry shares them.
fn remove(conn: &Connection, id: QueueId, blob: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM queue WHERE id = ?1")
        .and_then(|mut delete| delete.execute([id]))
        .map_err(sql_error("remove queue entry"))?;
    messages::delete_unreferenced_blobs(conn, &[blob])
}

fn not_found(id: QueueId) -> StoreError {
    StoreError::NotFound(format!("queue entry {id}"))
}

impl ToSql for RecipientStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Failed => "failed",
        }))
    }
}

impl FromSql for RecipientStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "pending" => Ok(RecipientStatus::Pending),
            "delivered" => Ok(RecipientStatus::Delivered),
            "failed" => Ok(RecipientStatus::Failed),
            other => Err(FromSqlError::Other(
                format!("unknown recipient status {other:?}").into(),
            )),
        }
    }
}
