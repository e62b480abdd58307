//! Running statements and reading columns. Every statement is prepared once per
//! connection (deadpool's statement cache), so a query is one round trip. PostgreSQL has
//! no unsigned integers: UIDs (32 bits) and sizes and MODSEQs (63 bits in practice) are
//! `bigint` columns, range-checked on the way out.

use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Error, Row};

use crate::{Result, StoreError};

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Wraps a PostgreSQL error with what the store was doing when it happened.
pub(super) fn db_error(context: &'static str) -> impl Fn(Error) -> StoreError {
    move |e| StoreError::Database(format!("{context}: {}", describe(&e)))
}

/// The server's own message when there is one (tokio-postgres's `Display` says only
/// "db error"), otherwise the error with its causes.
pub(super) fn describe(error: &Error) -> String {
    if let Some(db) = error.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        };
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

pub(super) fn is_unique_violation(error: &Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

pub(super) async fn rows(
    db: &impl GenericClient,
    context: &'static str,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>> {
    let statement = db.prepare_cached(sql).await.map_err(db_error(context))?;
    db.query(&statement, params)
        .await
        .map_err(db_error(context))
}

pub(super) async fn row(
    db: &impl GenericClient,
    context: &'static str,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>> {
    let statement = db.prepare_cached(sql).await.map_err(db_error(context))?;
    db.query_opt(&statement, params)
        .await
        .map_err(db_error(context))
}

/// Runs a statement and returns how many rows it touched.
pub(super) async fn execute(
    db: &impl GenericClient,
    context: &'static str,
    sql: &str,
    params: Params<'_>,
) -> Result<u64> {
    let statement = db.prepare_cached(sql).await.map_err(db_error(context))?;
    db.execute(&statement, params)
        .await
        .map_err(db_error(context))
}

/// Like [`execute`], but hands the error back so the caller can tell a unique violation
/// from the rest.
pub(super) async fn try_execute(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> std::result::Result<u64, Error> {
    let statement = db.prepare_cached(sql).await?;
    db.execute(&statement, params).await
}

pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index).map_err(db_error("read column"))
}

pub(super) fn get_u32(row: &Row, index: usize) -> Result<u32> {
    let value: i64 = get(row, index)?;
    u32::try_from(value)
        .map_err(|_| StoreError::Database(format!("column {index}: {value} is not a 32-bit value")))
}

pub(super) fn get_u64(row: &Row, index: usize) -> Result<u64> {
    let value: i64 = get(row, index)?;
    u64::try_from(value)
        .map_err(|_| StoreError::Database(format!("column {index}: {value} is negative")))
}

/// A size, MODSEQ or count as the `bigint` it is stored as.
pub(super) fn to_i64(value: u64) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Database(format!("{value} does not fit in a bigint")))
}

/// UIDs as a `bigint[]` parameter.
pub(super) fn uid_array(uids: &[u32]) -> Vec<i64> {
    uids.iter().map(|&uid| i64::from(uid)).collect()
}
