//! What every backend refuses before it writes, so that both refuse the same things with
//! the same errors, and the report families both backends de-duplicate.

use crate::{Delivery, OutgoingReport, Result, StoreError};

/// Refuses a delivery that would store bytes nothing refers to, or a queue entry with
/// nobody to send it to.
pub(crate) fn check_delivery(delivery: &Delivery) -> Result<()> {
    let problem = match &delivery.outbound {
        Some(outbound) if outbound.recipients.is_empty() => "outbound without recipients",
        None if delivery.local.is_empty() => "no local mailbox and no outbound recipients",
        _ => return Ok(()),
    };
    Err(StoreError::Invalid {
        what: "delivery",
        value: problem.to_string(),
    })
}

/// Which report family; each de-duplicates on its own, so a DMARC and a TLS-RPT report
/// for the same domain and day are both sent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReportKind {
    Dmarc,
    Tls,
}

impl ReportKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReportKind::Dmarc => "dmarc",
            ReportKind::Tls => "tls",
        }
    }

    fn delivery_name(self) -> &'static str {
        match self {
            ReportKind::Dmarc => "DMARC report delivery",
            ReportKind::Tls => "TLS report delivery",
        }
    }
}

/// A report goes out by the queue only: it must have outbound recipients.
pub(crate) fn check_report(kind: ReportKind, report: &OutgoingReport) -> Result<()> {
    if report.delivery.outbound.is_none() {
        return Err(StoreError::Invalid {
            what: kind.delivery_name(),
            value: "no outbound recipients".into(),
        });
    }
    check_delivery(&report.delivery)
}
