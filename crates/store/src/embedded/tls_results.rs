//! The TLS outcome of each outbound SMTP session, kept until the daily TLS-RPT report
//! (RFC 8460 §4) about the recipient domain has been built from it.

use rusqlite::{Connection, params};

use super::sql_error;
use crate::lines;
use crate::{Result, TlsSessionResult};

/// Stores the batch; the caller runs it as one write, so it is kept whole or not at all.
pub(super) fn record(conn: &Connection, results: &[TlsSessionResult]) -> Result<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO tls_results (at, policy_domain, policy_type, policy_strings, \
                 mx_host, receiving_ip, result_type, failure_detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql_error("record TLS result"))?;
    for result in results {
        insert
            .execute(params![
                result.at,
                result.policy_domain,
                result.policy_type,
                lines::encode(result.policy_strings.iter().map(|line| [line.as_str()])),
                result.mx_host,
                result.receiving_ip.map(|ip| ip.to_string()),
                result.result_type,
                result.failure_detail,
            ])
            .map_err(sql_error("record TLS result"))?;
    }
    Ok(())
}

/// The outcomes recorded in `[from, until)`, oldest first.
pub(super) fn results(conn: &Connection, from: i64, until: i64) -> Result<Vec<TlsSessionResult>> {
    let mut select = conn
        .prepare_cached(
            "SELECT at, policy_domain, policy_type, policy_strings, mx_host, receiving_ip, \
                    result_type, failure_detail \
             FROM tls_results WHERE at >= ?1 AND at < ?2 ORDER BY at, id",
        )
        .map_err(sql_error("list TLS results"))?;
    select
        .query_map([from, until], |row| {
            Ok(TlsSessionResult {
                at: row.get(0)?,
                policy_domain: row.get(1)?,
                policy_type: row.get(2)?,
                policy_strings: lines::decode(&row.get::<_, String>(3)?)
                    .into_iter()
                    .filter_map(|fields| fields.into_iter().next())
                    .collect(),
                mx_host: row.get(4)?,
                // Written from an `IpAddr`, so it parses; anything else is left out.
                receiving_ip: row
                    .get::<_, Option<String>>(5)?
                    .and_then(|ip| ip.parse().ok()),
                result_type: row.get(6)?,
                failure_detail: row.get(7)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(sql_error("list TLS results"))
}

/// Forgets the outcomes recorded before `before`; returns how many.
pub(super) fn prune(conn: &Connection, before: i64) -> Result<u64> {
    let removed = conn
        .prepare_cached("DELETE FROM tls_results WHERE at < ?1")
        .and_then(|mut delete| delete.execute([before]))
        .map_err(sql_error("prune TLS results"))?;
    Ok(removed as u64)
}
