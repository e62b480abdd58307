//! The aggregate reports sealpost builds and sends by the queue: DMARC (RFC 9990) and
//! TLS-RPT (RFC 8460). Each is queued at most once per kind, policy domain and period
//! start, however often and on however many nodes `send-reports` runs: the record (whose
//! primary key a second node's insert waits on, then skips) and the queue entry are one
//! transaction.

use deadpool_postgres::Transaction;

use super::messages;
use super::sql;
use crate::rules::ReportKind;
use crate::{Change, OutgoingReport, QueueId, Result};

/// Queues the report unless one of the same kind for the same domain and period start
/// was queued before; `None` for such a duplicate.
pub(super) async fn queue_once(
    tx: &Transaction<'_>,
    kind: ReportKind,
    report: &OutgoingReport,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<Option<QueueId>> {
    let domain = report.policy_domain.to_ascii_lowercase();
    let inserted = sql::execute(
        tx,
        "record queued report",
        "INSERT INTO reports_sent (kind, policy_domain, begin_at, end_at, report_id) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        &[
            &kind.as_str(),
            &domain,
            &report.begin,
            &report.end,
            &report.report_id,
        ],
    )
    .await?;
    if inserted == 0 {
        return Ok(None);
    }
    let delivered = messages::deliver(tx, &report.delivery, now, changes).await?;
    sql::execute(
        tx,
        "record queued report",
        "UPDATE reports_sent SET queue_id = $4 \
         WHERE kind = $1 AND policy_domain = $2 AND begin_at = $3",
        &[&kind.as_str(), &domain, &report.begin, &delivered.queue_id],
    )
    .await?;
    Ok(delivered.queue_id)
}
