//! Small durable facts the delivery side keeps about a recipient domain, by kind: that
//! it has offered TLS before (so a later plaintext session is a downgrade to refuse) or
//! its cached MTA-STS policy (RFC 8461 §5). The store does not read the values; domains
//! are stored lower-case so lookups ignore case.

use rusqlite::{Connection, OptionalExtension, params};

use super::sql_error;
use crate::Result;

/// `domain` must already be canonical (see [`crate::names::domain`]).
pub(super) fn memo(conn: &Connection, kind: &str, domain: &str) -> Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM delivery_memos WHERE kind = ?1 AND domain = ?2")
        .and_then(|mut select| {
            select
                .query_row(params![kind, domain], |row| row.get(0))
                .optional()
        })
        .map_err(sql_error("read delivery memo"))
}

/// Replaces the memo, or with `None` forgets it.
pub(super) fn set(conn: &Connection, kind: &str, domain: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(value) => conn
            .prepare_cached(
                "INSERT INTO delivery_memos (kind, domain, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (kind, domain) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut upsert| upsert.execute(params![kind, domain, value])),
        None => conn
            .prepare_cached("DELETE FROM delivery_memos WHERE kind = ?1 AND domain = ?2")
            .and_then(|mut delete| delete.execute(params![kind, domain])),
    }
    .map_err(sql_error("write delivery memo"))?;
    Ok(())
}

/// Every memo of `kind` as (domain, value), by domain.
pub(super) fn memos(conn: &Connection, kind: &str) -> Result<Vec<(String, String)>> {
    conn.prepare_cached("SELECT domain, value FROM delivery_memos WHERE kind = ?1 ORDER BY domain")
        .and_then(|mut select| {
            select
                .query_map([kind], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(sql_error("list delivery memos"))
}
