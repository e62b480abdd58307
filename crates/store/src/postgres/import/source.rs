//! Reading the embedded store: one thread, one read transaction (a consistent snapshot
//! even if the file is written meanwhile), every table streamed in key order and cut into
//! batches, then the checksums of every message's and queue entry's bytes.

use std::collections::HashSet;
use std::path::PathBuf;

use aws_lc_rs::digest::{self, SHA256};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use super::tables::{Kind, TABLES, Table};

/// A batch closes at whichever comes first.
const BATCH_ROWS: usize = 1000;
const BATCH_BYTES: usize = 16 << 20;

/// One column of a batch, as the array PostgreSQL gets.
pub(super) enum Values {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

/// What the reader sends, in this order: totals, the UIDVALIDITY counter, batches
/// table by table, checksums.
pub(super) enum Read {
    /// Rows per table, in [`TABLES`] order.
    Totals(Vec<u64>),
    UidValidity(i64),
    Batch {
        table: usize,
        rows: usize,
        values: Vec<Values>,
    },
    Checksums(Checksums),
    Failed(String),
}

/// SHA-256 over every message (mailbox, UID, SHA-256 of its bytes, in that order) and
/// every queue entry (id, SHA-256 of its bytes), as both stores can compute them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Checksums {
    pub(super) messages: String,
    pub(super) queue: String,
}

/// Starts the reader; `skip_blobs` are bodies the target already has (a resumed copy),
/// which are not read again.
pub(super) fn spawn(
    file: PathBuf,
    skip_blobs: HashSet<i64>,
) -> std::io::Result<mpsc::Receiver<Read>> {
    let (send, receive) = mpsc::channel(4);
    std::thread::Builder::new()
        .name("sealpost-import-reader".into())
        .spawn(move || {
            if let Err(e) = read(&file, &skip_blobs, &send) {
                let _ = send.blocking_send(Read::Failed(e.to_string()));
            }
        })?;
    Ok(receive)
}

fn read(
    file: &PathBuf,
    skip_blobs: &HashSet<i64>,
    send: &mpsc::Sender<Read>,
) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // Everything below reads one snapshot.
    conn.execute_batch("BEGIN")?;
    let mut totals = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let count: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", table.name), [], |row| {
                row.get(0)
            })?;
        totals.push(u64::try_from(count).unwrap_or(0));
    }
    if send.blocking_send(Read::Totals(totals)).is_err() {
        return Ok(());
    }
    let last: i64 = conn.query_row("SELECT last FROM uid_validity", [], |row| row.get(0))?;
    if send.blocking_send(Read::UidValidity(last)).is_err() {
        return Ok(());
    }
    for (index, table) in TABLES.iter().enumerate() {
        let skip = if table.name == "blobs" {
            Some(skip_blobs)
        } else {
            None
        };
        if !read_table(&conn, index, table, skip, send)? {
            return Ok(());
        }
    }
    let checksums = checksums(&conn)?;
    let _ = send.blocking_send(Read::Checksums(checksums));
    Ok(())
}

/// Streams one table; `false` if the receiver went away.
fn read_table(
    conn: &Connection,
    index: usize,
    table: &Table,
    skip: Option<&HashSet<i64>>,
    send: &mpsc::Sender<Read>,
) -> rusqlite::Result<bool> {
    let mut select = conn.prepare(&table.select())?;
    let mut rows = select.query([])?;
    let mut batch = Batch::new(table);
    while let Some(row) = rows.next()? {
        // Bodies are the bulk: the ones already copied are passed over (their rows count
        // as copied all the same).
        if let Some(skip) = skip
            && skip.contains(&row.get::<_, i64>(0)?)
        {
            batch.skipped += 1;
            continue;
        }
        for (i, column) in table.columns.iter().enumerate() {
            batch.push(i, column.kind, row.get_ref(i)?)?;
        }
        batch.rows += 1;
        let full = batch.rows >= BATCH_ROWS || batch.bytes >= BATCH_BYTES;
        if full && send.blocking_send(batch.take(index, table)).is_err() {
            return Ok(false);
        }
    }
    if (batch.rows > 0 || batch.skipped > 0)
        && send.blocking_send(batch.take(index, table)).is_err()
    {
        return Ok(false);
    }
    Ok(true)
}

struct Batch {
    values: Vec<Values>,
    rows: usize,
    /// Rows passed over, reported with the next batch so progress still adds up.
    skipped: usize,
    bytes: usize,
}

impl Batch {
    fn new(table: &Table) -> Self {
        Self {
            values: empty_values(table),
            rows: 0,
            skipped: 0,
            bytes: 0,
        }
    }

    fn push(&mut self, column: usize, kind: Kind, value: ValueRef<'_>) -> rusqlite::Result<()> {
        let invalid = |e| rusqlite::Error::FromSqlConversionFailure(column, value.data_type(), e);
        match (&mut self.values[column], value) {
            (Values::Int(values), ValueRef::Null) | (Values::Int(values), ValueRef::Integer(_)) => {
                values.push(value.as_i64_or_null().map_err(|e| invalid(Box::new(e)))?);
            }
            (Values::Bool(values), _) => {
                values.push(
                    value
                        .as_i64_or_null()
                        .map_err(|e| invalid(Box::new(e)))?
                        .map(|v| v != 0),
                );
            }
            (Values::Text(values), _) => {
                let text = value.as_str_or_null().map_err(|e| invalid(Box::new(e)))?;
                self.bytes += text.map_or(0, str::len);
                values.push(text.map(str::to_string));
            }
            (Values::Bytes(values), _) => {
                let bytes = value.as_blob_or_null().map_err(|e| invalid(Box::new(e)))?;
                self.bytes += bytes.map_or(0, <[u8]>::len);
                values.push(bytes.map(<[u8]>::to_vec));
            }
            (Values::Int(_), _) => {
                return Err(invalid(
                    format!("{kind:?} column holds a non-integer").into(),
                ));
            }
        }
        Ok(())
    }

    fn take(&mut self, index: usize, table: &Table) -> Read {
        let values = std::mem::replace(&mut self.values, empty_values(table));
        let read = Read::Batch {
            table: index,
            rows: self.rows + self.skipped,
            values,
        };
        self.rows = 0;
        self.skipped = 0;
        self.bytes = 0;
        read
    }
}

fn empty_values(table: &Table) -> Vec<Values> {
    table
        .columns
        .iter()
        .map(|column| match column.kind {
            Kind::Int => Values::Int(Vec::new()),
            Kind::Text | Kind::Flags => Values::Text(Vec::new()),
            Kind::Bool => Values::Bool(Vec::new()),
            Kind::Bytes => Values::Bytes(Vec::new()),
        })
        .collect()
}

fn checksums(conn: &Connection) -> rusqlite::Result<Checksums> {
    let messages = checksum(
        conn,
        "SELECT messages.mailbox, messages.uid, blobs.raw FROM messages \
         JOIN blobs ON blobs.id = messages.blob ORDER BY messages.mailbox, messages.uid",
        true,
    )?;
    let queue = checksum(
        conn,
        "SELECT queue.id, 0, blobs.raw FROM queue JOIN blobs ON blobs.id = queue.blob \
         ORDER BY queue.id",
        false,
    )?;
    Ok(Checksums { messages, queue })
}

/// Hashes rows of (key, second key, bytes); see [`Checksums`].
fn checksum(conn: &Connection, sql: &str, two_keys: bool) -> rusqlite::Result<String> {
    let mut select = conn.prepare(sql)?;
    let mut rows = select.query([])?;
    let mut total = digest::Context::new(&SHA256);
    while let Some(row) = rows.next()? {
        let raw = row.get_ref(2)?.as_blob().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Blob, Box::new(e))
        })?;
        let first: i64 = row.get(0)?;
        let second: i64 = row.get(1)?;
        add_to_checksum(
            &mut total,
            first,
            two_keys.then_some(second),
            digest::digest(&SHA256, raw).as_ref(),
        );
    }
    Ok(hex(total.finish().as_ref()))
}

/// One item of a checksum; the target side feeds the same items in the same order.
pub(super) fn add_to_checksum(
    total: &mut digest::Context,
    first: i64,
    second: Option<i64>,
    body_digest: &[u8],
) {
    total.update(&first.to_be_bytes());
    if let Some(second) = second {
        total.update(&second.to_be_bytes());
    }
    total.update(body_digest);
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
