//! The outbound queue, shared by every node: entries, their recipients, and the bytes to
//! send; workers claim due entries under a lease and record each attempt.
//!
//! A claim selects due, unleased entries `FOR UPDATE SKIP LOCKED` and leases them in the
//! same statement, so concurrent claims from any number of nodes never return the same
//! entry: each skips the rows another is leasing and, once that commits, sees the lease.
//! A node that dies holding a lease only delays its entries until the lease runs out.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::messages;
use super::sql::{self, get, get_u32, get_u64, to_i64};
use crate::{
    Outbound, QueueAttempt, QueueEntry, QueueId, QueueRecipient, RecipientStatus, Result,
    StoreError,
};

/// Adds an entry for `blob` with every recipient pending, due at once.
pub(super) async fn enqueue(
    tx: &Transaction<'_>,
    blob: i64,
    outbound: &Outbound,
    size: u64,
    now: i64,
) -> Result<QueueId> {
    let row = sql::row(
        tx,
        "queue message",
        "INSERT INTO queue (blob, sender, size, created, next_attempt, require_tls) \
         VALUES ($1, $2, $3, $4, $4, $5) RETURNING id",
        &[
            &blob,
            &outbound.sender,
            &to_i64(size)?,
            &now,
            &outbound.require_tls,
        ],
    )
    .await?
    .ok_or_else(|| StoreError::Database("queue message: no id returned".into()))?;
    let id: QueueId = get(&row, 0)?;
    let positions: Vec<i32> = (0..outbound.recipients.len())
        .map(|position| i32::try_from(position).unwrap_or(i32::MAX))
        .collect();
    sql::execute(
        tx,
        "queue recipient",
        "INSERT INTO queue_recipients (queue, position, address, status) \
         SELECT $1, r.position, r.address, 'pending' \
         FROM unnest($2::integer[], $3::text[]) AS r(position, address)",
        &[&id, &positions, &outbound.recipients],
    )
    .await?;
    Ok(id)
}

/// The columns [`collect_entries`] reads, entry first, then one recipient.
const ENTRY_COLUMNS: &str = "queue.id, queue.sender, queue.size, queue.created, \
    queue.next_attempt, queue.attempts, queue.require_tls, queue.policy, \
    r.address, r.status, r.last_error \
    FROM queue LEFT JOIN queue_recipients AS r ON r.queue = queue.id";

/// Every entry, oldest first, read in one statement so entries and recipients come from
/// the same snapshot.
pub(super) async fn entries(db: &impl GenericClient) -> Result<Vec<QueueEntry>> {
    let rows = sql::rows(
        db,
        "list queue",
        &format!("SELECT {ENTRY_COLUMNS} ORDER BY queue.created, queue.id, r.position"),
        &[],
    )
    .await?;
    collect_entries(&rows)
}

/// Folds rows of [`ENTRY_COLUMNS`] ordered by entry (one per recipient) into entries.
fn collect_entries(rows: &[Row]) -> Result<Vec<QueueEntry>> {
    let mut entries: Vec<QueueEntry> = Vec::new();
    for row in rows {
        let id: QueueId = get(row, 0)?;
        // An entry starts where the id changes.
        if entries.last().is_none_or(|last| last.id != id) {
            entries.push(QueueEntry {
                id,
                sender: get(row, 1)?,
                recipients: Vec::new(),
                size: get_u64(row, 2)?,
                created: get(row, 3)?,
                next_attempt: get(row, 4)?,
                attempts: get_u32(row, 5)?,
                require_tls: get(row, 6)?,
                policy: get(row, 7)?,
            });
        }
        if let (Some(last), Some(address)) = (entries.last_mut(), get::<Option<String>>(row, 8)?) {
            last.recipients.push(QueueRecipient {
                address,
                status: status_from_text(&get::<String>(row, 9)?)?,
                last_error: get(row, 10)?,
            });
        }
    }
    Ok(entries)
}

pub(super) async fn message(db: &impl GenericClient, id: QueueId) -> Result<Option<Vec<u8>>> {
    sql::row(
        db,
        "read queued message",
        "SELECT blobs.raw FROM queue JOIN blobs ON blobs.id = queue.blob WHERE queue.id = $1",
        &[&id],
    )
    .await?
    .map(|row| get(&row, 0))
    .transpose()
}

/// Leases up to `limit` due entries that no live lease holds, oldest due first, and
/// returns them with all their recipients.
pub(super) async fn claim(
    tx: &Transaction<'_>,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> Result<Vec<QueueEntry>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let claimed: Vec<QueueId> = sql::rows(
        tx,
        "claim due queue entries",
        "WITH due AS ( \
             SELECT id FROM queue WHERE next_attempt <= $1 AND lease_until <= $1 \
             ORDER BY next_attempt, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE queue SET lease_until = $3 FROM due WHERE queue.id = due.id \
         RETURNING queue.id",
        &[&now, &limit, &lease_until],
    )
    .await?
    .iter()
    .map(|row| get(row, 0))
    .collect::<Result<_>>()?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sql::rows(
        tx,
        "read claimed queue entries",
        &format!(
            "SELECT {ENTRY_COLUMNS} WHERE queue.id = ANY($1) \
             ORDER BY queue.next_attempt, queue.id, r.position"
        ),
        &[&claimed],
    )
    .await?;
    collect_entries(&rows)
}

/// Extends the lease of those of `ids` still leased (`lease_until` > 0: claimed, not yet
/// finished or released), in one statement; a finished entry must stay free for its
/// retry.
pub(super) async fn renew_leases(
    db: &impl GenericClient,
    ids: &[QueueId],
    lease_until: i64,
) -> Result<()> {
    sql::execute(
        db,
        "renew queue leases",
        "UPDATE queue SET lease_until = $2 WHERE id = ANY($1) AND lease_until > 0",
        &[&ids, &lease_until],
    )
    .await?;
    Ok(())
}

/// Applies one attempt's outcome and releases the lease; removes the entry (and its
/// bytes, if nothing else uses them) once no recipient is pending.
pub(super) async fn finish_attempt(tx: &Transaction<'_>, attempt: &QueueAttempt) -> Result<()> {
    let blob = lock_entry(tx, attempt.id)
        .await?
        .ok_or_else(|| not_found(attempt.id))?;
    for recipient in &attempt.recipients {
        let updated = sql::execute(
            tx,
            "update queue recipient",
            "UPDATE queue_recipients SET status = $3, last_error = $4 \
             WHERE queue = $1 AND address = $2",
            &[
                &attempt.id,
                &recipient.address,
                &status_text(recipient.status),
                &recipient.last_error,
            ],
        )
        .await?;
        // A recipient the entry does not have is the caller's bug; failing (which rolls
        // the whole attempt back) is better than silently losing a status.
        if updated == 0 {
            return Err(StoreError::Invalid {
                what: "queue recipient",
                value: recipient.address.clone(),
            });
        }
    }
    sql::execute(
        tx,
        "record delivery attempt",
        "UPDATE queue SET attempts = attempts + 1, next_attempt = $2, policy = $3, \
             lease_until = 0 \
         WHERE id = $1",
        &[&attempt.id, &attempt.next_attempt, &attempt.policy],
    )
    .await?;
    let pending = sql::row(
        tx,
        "count pending recipients",
        "SELECT 1 FROM queue_recipients WHERE queue = $1 AND status = 'pending' LIMIT 1",
        &[&attempt.id],
    )
    .await?;
    if pending.is_none() {
        remove(tx, attempt.id, blob).await?;
    }
    Ok(())
}

/// Makes the entry due at `now` and frees it from any lease; `false` if absent.
pub(super) async fn retry(db: &impl GenericClient, id: QueueId, now: i64) -> Result<bool> {
    let updated = sql::execute(
        db,
        "retry queue entry",
        "UPDATE queue SET next_attempt = $2, lease_until = 0 WHERE id = $1",
        &[&id, &now],
    )
    .await?;
    Ok(updated > 0)
}

/// Removes the entry, its recipients and, if nothing else uses them, its bytes.
pub(super) async fn drop_entry(tx: &Transaction<'_>, id: QueueId) -> Result<bool> {
    match lock_entry(tx, id).await? {
        Some(blob) => remove(tx, id, blob).await.map(|()| true),
        None => Ok(false),
    }
}

/// Locks the entry's row (an attempt and a drop of one entry take turns) and returns its
/// bytes' id; `None` if the entry is gone.
async fn lock_entry(tx: &Transaction<'_>, id: QueueId) -> Result<Option<i64>> {
    sql::row(
        tx,
        "find queue entry",
        "SELECT blob FROM queue WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?
    .map(|row| get(&row, 0))
    .transpose()
}

/// Deletes the entry (its recipients cascade), then its bytes unless a mailbox copy or
/// another entry shares them.
async fn remove(tx: &Transaction<'_>, id: QueueId, blob: i64) -> Result<()> {
    sql::execute(
        tx,
        "remove queue entry",
        "DELETE FROM queue WHERE id = $1",
        &[&id],
    )
    .await?;
    messages::delete_unreferenced_blobs(tx, &[blob]).await
}

fn not_found(id: QueueId) -> StoreError {
    StoreError::NotFound(format!("queue entry {id}"))
}

pub(super) fn status_text(status: RecipientStatus) -> &'static str {
    match status {
        RecipientStatus::Pending => "pending",
        RecipientStatus::Delivered => "delivered",
        RecipientStatus::Failed => "failed",
    }
}

fn status_from_text(text: &str) -> Result<RecipientStatus> {
    match text {
        "pending" => Ok(RecipientStatus::Pending),
        "delivered" => Ok(RecipientStatus::Delivered),
        "failed" => Ok(RecipientStatus::Failed),
        other => Err(StoreError::Database(format!(
            "unknown recipient status {other:?}"
        ))),
    }
}
