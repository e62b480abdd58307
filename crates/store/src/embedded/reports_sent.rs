//! The aggregate reports sealpost builds and sends by the queue: DMARC (RFC 9990) and
//! TLS-RPT (RFC 8460). Each is queued at most once per kind, policy domain and period
//! start, however often `send-reports` runs: the check, the record and the queue entry
//! are one transaction.

use rusqlite::{Connection, params};

use super::{messages, sql_error};
use crate::rules::ReportKind;
use crate::{Change, OutgoingReport, QueueId, Result};

/// Queues the report unless one of the same kind for the same domain and period start
/// was queued before; `None` for such a duplicate.
pub(super) fn queue_once(
    conn: &Connection,
    kind: ReportKind,
    report: &OutgoingReport,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Option<QueueId>> {
    let domain = report.policy_domain.to_ascii_lowercase();
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO reports_sent (kind, policy_domain, begin, end, report_id) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                kind.as_str(),
                domain,
                report.begin,
                report.end,
                report.report_id
            ])
        })
        .map_err(sql_error("record queued report"))?;
    if inserted == 0 {
        return Ok(None);
    }
    let delivered = messages::deliver(conn, &report.delivery, now, changes)?;
    conn.prepare_cached(
        "UPDATE reports_sent SET queue_id = ?4 \
         WHERE kind = ?1 AND policy_domain = ?2 AND begin = ?3",
    )
    .and_then(|mut update| {
        update.execute(params![
            kind.as_str(),
            domain,
            report.begin,
            delivered.queue_id
        ])
    })
    .map_err(sql_error("record queued report"))?;
    Ok(delivered.queue_id)
}
