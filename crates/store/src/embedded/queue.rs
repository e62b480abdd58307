//! The outbound queue: entries, their recipients, and the bytes to send.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::sql_error;
use crate::{Outbound, QueueEntry, QueueId, QueueRecipient, RecipientStatus, Result};

/// Adds an entry for `blob` with every recipient pending, due at once.
pub(super) fn enqueue(
    conn: &Connection,
    blob: i64,
    outbound: &Outbound,
    size: u64,
    now: i64,
) -> Result<QueueId> {
    conn.prepare_cached(
        "INSERT INTO queue (blob, sender, size, created, next_attempt) \
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )
    .and_then(|mut insert| insert.execute(params![blob, outbound.sender, size, now]))
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

/// Every entry, oldest first, read in one statement so entries and recipients come from
/// the same snapshot.
pub(super) fn entries(conn: &Connection) -> Result<Vec<QueueEntry>> {
    let mut select = conn
        .prepare_cached(
            "SELECT queue.id, queue.sender, queue.size, queue.created, queue.next_attempt, \
                    queue.attempts, r.address, r.status, r.last_error \
             FROM queue LEFT JOIN queue_recipients AS r ON r.queue = queue.id \
             ORDER BY queue.created, queue.id, r.position",
        )
        .map_err(sql_error("list queue"))?;
    let rows = select
        .query_map([], |row| {
            let entry = QueueEntry {
                id: row.get(0)?,
                sender: row.get(1)?,
                recipients: Vec::new(),
                size: row.get(2)?,
                created: row.get(3)?,
                next_attempt: row.get(4)?,
                attempts: row.get(5)?,
                require_tls: false,
                policy: None,
            };
            let recipient = match row.get::<_, Option<String>>(6)? {
                Some(address) => Some(QueueRecipient {
                    address,
                    status: row.get(7)?,
                    last_error: row.get(8)?,
                }),
                None => None,
            };
            Ok((entry, recipient))
        })
        .map_err(sql_error("list queue"))?;
    // One row per recipient: an entry starts where the id changes.
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
