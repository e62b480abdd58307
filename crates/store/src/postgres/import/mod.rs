//! `sealpost store migrate`: copying an embedded store into a PostgreSQL database, so a
//! site can move to several nodes without losing a message, a UID or a flag.
//!
//! Every row is copied with its ids, so UIDs, UIDVALIDITY, MODSEQs and queue ids stay
//! what clients and workers knew. The copy goes in batches, each committed on its own; a
//! `store_migration` row marks the database as half-filled until the end, so no node
//! serves it early, and a copy that stopped is resumed by running the command again
//! (rows already there are skipped, bodies already there are not even read). The end
//! compares row counts and checksums over every message's and queued entry's bytes.

mod source;
mod tables;

use std::collections::HashSet;
use std::path::Path;

use aws_lc_rs::digest::{self, SHA256};
use tokio_postgres::types::ToSql;

use self::source::{Checksums, Read, Values};
use self::tables::TABLES;
use super::connect::Target;
use super::schema;
use super::sql::{self, db_error, get};
use crate::{EmbeddedStore, Result, StoreError};

/// How far the copy is, for a progress display.
#[derive(Debug, Clone)]
pub struct ImportProgress {
    pub table: &'static str,
    /// Rows of this table copied (or found already there) so far.
    pub copied: u64,
    pub total: u64,
}

/// What was copied and verified.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Rows per table, equal on both sides.
    pub tables: Vec<(&'static str, u64)>,
    /// The checksum over every message's bytes, equal on both sides.
    pub messages_checksum: String,
    pub queue_checksum: String,
    /// A copy that an earlier run had started was completed.
    pub resumed: bool,
}

/// Copies the embedded store in `data_dir` into the database at `url` and verifies it.
/// The source is only read; stop the sealpost that writes it first, or mail it accepts
/// meanwhile stays behind.
pub async fn import_embedded(
    data_dir: &Path,
    url: &str,
    progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<ImportReport> {
    let file = data_dir.join("store.sqlite3");
    if !file.exists() {
        return Err(StoreError::NotFound(format!(
            "embedded store {} (set data_dir to the directory that holds it)",
            file.display()
        )));
    }
    // Opening brings an older embedded schema up to date, which the copy expects.
    drop(EmbeddedStore::open(data_dir)?);
    let source_name = std::fs::canonicalize(&file)
        .unwrap_or_else(|_| file.clone())
        .display()
        .to_string();

    let target = Target::parse(url)?;
    let pool = target.pool()?;
    let mut client = pool.get().await.map_err(|e| {
        StoreError::Database(format!(
            "cannot connect to PostgreSQL at {}: {e}",
            target.describe()
        ))
    })?;
    schema::migrate(&mut client).await?;
    let resumed = claim_target(&client, &source_name).await?;

    let skip_blobs = present_blobs(&client).await?;
    let mut reads = source::spawn(file, skip_blobs)
        .map_err(|e| StoreError::Database(format!("cannot start the reader: {e}")))?;
    let mut totals = Vec::new();
    let mut copied = vec![0u64; TABLES.len()];
    let source_checksums = loop {
        let Some(read) = reads.recv().await else {
            return Err(StoreError::Database(
                "the reader of the embedded store stopped early".into(),
            ));
        };
        match read {
            Read::Totals(counts) => totals = counts,
            Read::UidValidity(last) => {
                sql::execute(
                    &client,
                    "copy the UIDVALIDITY counter",
                    "UPDATE uid_validity SET last = GREATEST(last, $1)",
                    &[&last],
                )
                .await?;
            }
            Read::Batch {
                table,
                rows,
                values,
            } => {
                copy_batch(&client, table, &values).await?;
                copied[table] += rows as u64;
                progress(&ImportProgress {
                    table: TABLES[table].name,
                    copied: copied[table],
                    total: totals.get(table).copied().unwrap_or(0),
                });
            }
            Read::Checksums(checksums) => break checksums,
            Read::Failed(e) => {
                return Err(StoreError::Database(format!(
                    "reading the embedded store: {e}"
                )));
            }
        }
    };
    move_identities_past_copied_ids(&client).await?;

    let tables = verify_counts(&client, &totals).await?;
    let target_checksums = target_checksums(&client).await?;
    if target_checksums != source_checksums {
        return Err(StoreError::Database(format!(
            "the copy does not match its source: message bytes {} here, {} in the embedded \
             store; queue {} here, {} there. The database stays marked unfinished; run the \
             migration again",
            target_checksums.messages,
            source_checksums.messages,
            target_checksums.queue,
            source_checksums.queue
        )));
    }
    sql::execute(
        &client,
        "mark the copy finished",
        "UPDATE store_migration SET finished = extract(epoch FROM now())::bigint \
         WHERE finished IS NULL",
        &[],
    )
    .await?;
    Ok(ImportReport {
        tables,
        messages_checksum: source_checksums.messages,
        queue_checksum: source_checksums.queue,
        resumed,
    })
}

/// Makes sure the database is ours to fill: empty, or half-filled from this same
/// source. Returns whether an earlier copy is being resumed.
async fn claim_target(client: &deadpool_postgres::Client, source: &str) -> Result<bool> {
    let row = sql::row(
        client,
        "read migration state",
        "SELECT source, finished FROM store_migration",
        &[],
    )
    .await?;
    if let Some(row) = row {
        let earlier: String = get(&row, 0)?;
        let finished: Option<i64> = get(&row, 1)?;
        return match finished {
            Some(_) => Err(StoreError::Invalid {
                what: "database to migrate into",
                value: format!(
                    "it holds a finished copy of {earlier} (servers may have written to it \
                     since; to copy again, start from an empty database)"
                ),
            }),
            None if earlier == source => Ok(true),
            None => Err(StoreError::Invalid {
                what: "database to migrate into",
                value: format!("it holds an unfinished copy of another store, {earlier}"),
            }),
        };
    }
    let accounts = sql::row(
        client,
        "look for existing data",
        "SELECT 1 FROM accounts UNION ALL SELECT 1 FROM domains LIMIT 1",
        &[],
    )
    .await?;
    if accounts.is_some() {
        return Err(StoreError::Invalid {
            what: "database to migrate into",
            value: "it already holds a sealpost store; migrate into an empty database".into(),
        });
    }
    sql::execute(
        client,
        "mark the copy started",
        "INSERT INTO store_migration (source, started) \
         VALUES ($1, extract(epoch FROM now())::bigint)",
        &[&source],
    )
    .await?;
    Ok(false)
}

async fn present_blobs(client: &deadpool_postgres::Client) -> Result<HashSet<i64>> {
    sql::rows(client, "list copied bodies", "SELECT id FROM blobs", &[])
        .await?
        .iter()
        .map(|row| get(row, 0))
        .collect()
}

async fn copy_batch(
    client: &deadpool_postgres::Client,
    table: usize,
    values: &[Values],
) -> Result<()> {
    let params: Vec<&(dyn ToSql + Sync)> = values
        .iter()
        .map(|column| match column {
            Values::Int(v) => v as &(dyn ToSql + Sync),
            Values::Text(v) => v as &(dyn ToSql + Sync),
            Values::Bool(v) => v as &(dyn ToSql + Sync),
            Values::Bytes(v) => v as &(dyn ToSql + Sync),
        })
        .collect();
    let statement = client
        .prepare_cached(&TABLES[table].insert())
        .await
        .map_err(db_error("prepare copy"))?;
    client.execute(&statement, &params).await.map_err(|e| {
        StoreError::Database(format!(
            "copy {}: {}",
            TABLES[table].name,
            sql::describe(&e)
        ))
    })?;
    Ok(())
}

/// New rows must not collide with copied ids.
async fn move_identities_past_copied_ids(client: &deadpool_postgres::Client) -> Result<()> {
    for table in TABLES {
        if let Some(column) = table.identity {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', '{1}'), \
                 COALESCE((SELECT max({1}) FROM {0}), 0) + 1, false)",
                table.name, column
            );
            client
                .query_one(&sql, &[])
                .await
                .map_err(db_error("move identity past copied ids"))?;
        }
    }
    Ok(())
}

/// Rows per table on the target, which must equal the source's.
async fn verify_counts(
    client: &deadpool_postgres::Client,
    totals: &[u64],
) -> Result<Vec<(&'static str, u64)>> {
    let mut counts = Vec::with_capacity(TABLES.len());
    for (table, expected) in TABLES.iter().zip(totals) {
        let row = client
            .query_one(&format!("SELECT count(*) FROM {}", table.name), &[])
            .await
            .map_err(db_error("count copied rows"))?;
        let count = u64::try_from(get::<i64>(&row, 0)?).unwrap_or(0);
        if count != *expected {
            return Err(StoreError::Database(format!(
                "{}: {count} rows in the database, {expected} in the embedded store; the \
                 database stays marked unfinished",
                table.name
            )));
        }
        counts.push((table.name, count));
    }
    Ok(counts)
}

/// [`Checksums`] computed by PostgreSQL from what it stores (`sha256()` runs in the
/// server, so only digests travel).
async fn target_checksums(client: &deadpool_postgres::Client) -> Result<Checksums> {
    let messages = checksum(
        client,
        "SELECT messages.mailbox, messages.uid, sha256(blobs.raw) FROM messages \
         JOIN blobs ON blobs.id = messages.blob ORDER BY messages.mailbox, messages.uid",
        true,
    )
    .await?;
    let queue = checksum(
        client,
        "SELECT queue.id, 0::bigint, sha256(blobs.raw) FROM queue \
         JOIN blobs ON blobs.id = queue.blob ORDER BY queue.id",
        false,
    )
    .await?;
    Ok(Checksums { messages, queue })
}

async fn checksum(client: &deadpool_postgres::Client, sql: &str, two_keys: bool) -> Result<String> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(db_error("checksum the copy"))?;
    let mut total = digest::Context::new(&SHA256);
    for row in &rows {
        let first: i64 = get(row, 0)?;
        let second: i64 = get(row, 1)?;
        let body: Vec<u8> = get(row, 2)?;
        source::add_to_checksum(&mut total, first, two_keys.then_some(second), &body);
    }
    Ok(source::hex(total.finish().as_ref()))
}
