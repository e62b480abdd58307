//! TLS-RPT (RFC 8460): session outcomes kept per policy domain, and the daily report.
//!
//! The policy engine records every outbound session's TLS outcome in the store (see
//! `policy::learn`). [`send_reports`] turns each complete UTC day of them into one JSON
//! report per policy domain that publishes `_smtp._tls` with a `mailto:` rua (§3),
//! gzipped and mailed as `multipart/report; report-type="tlsrpt"` (§5.3), DKIM-signed
//! when a signer is given, and queued with `TLS-Required: No` so a domain whose TLS is
//! broken still gets the report about it (RFC 8689 §5). The store queues a report for a
//! domain and day once only, so running it again is harmless; a report that cannot be
//! made or sent is logged and never stands in the way of mail.

mod json;
mod message;

use std::collections::BTreeMap;
use std::sync::Arc;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::{ReportUri, TlsRpt};
use sealpost_dns::{LookupError, Resolver};
use sealpost_mailauth::DkimSigner;
use sealpost_store::{Delivery, Outbound, OutgoingReport, Store, StoreError, TlsSessionResult};
use time::OffsetDateTime;

use crate::DeliverySettings;

/// Reports come from `tls-reports@<reporting domain>`, the mailbox `sealpost domain add`
/// creates for the reports other servers send us; replies and bounces land there.
pub const TLS_REPORTS_LOCAL_PART: &str = "tls-reports";

/// Days of session results kept: reports for days missed (server down at midnight, a
/// DNS failure) are still sent within this window.
pub const RESULT_RETENTION_DAYS: i64 = 7;

const DAY: i64 = 86_400;

/// Most `mailto:` destinations one report goes to. The record is the remote domain's
/// to write; without a bound one TXT record could make us mail a report to thousands
/// of third parties.
const MAX_REPORT_DESTINATIONS: usize = 5;

/// Longest address accepted as a destination (RFC 5321 §4.5.3.1: 64 + 1 + 255).
const MAX_REPORT_ADDRESS: usize = 320;

/// One report [`send_reports`] queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentTlsReport {
    pub policy_domain: String,
    pub report_id: String,
    /// Start of the UTC day covered, seconds since the epoch.
    pub begin: i64,
    pub successful_sessions: u64,
    pub failed_sessions: u64,
    pub recipients: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsRptError {
    #[error("TLS-RPT: {0}")]
    Store(#[from] StoreError),
}

/// Queues a report for each policy domain and complete UTC day of recorded sessions
/// (within the last [`RESULT_RETENTION_DAYS`]) not reported yet, then forgets results
/// older than that. Only store failures are errors; a domain whose report cannot be made
/// is logged and skipped (and tried again on the next run while its day is kept).
pub async fn send_reports(
    store: &dyn Store,
    resolver: &Resolver,
    signer: Option<&DkimSigner>,
    settings: &DeliverySettings,
    now: OffsetDateTime,
) -> Result<Vec<SentTlsReport>, TlsRptError> {
    if !settings.tls_reports {
        return Ok(Vec::new());
    }
    let today = now.unix_timestamp().div_euclid(DAY) * DAY;
    let oldest = today - RESULT_RETENTION_DAYS * DAY;
    let reporter = reporting_domain(store, &settings.hostname, signer).await?;
    let from = format!("{TLS_REPORTS_LOCAL_PART}@{reporter}");
    let mut sent = Vec::new();
    let mut day_start = oldest;
    while day_start < today {
        let mut by_domain: BTreeMap<String, Vec<TlsSessionResult>> = BTreeMap::new();
        for result in store.tls_results(day_start, day_start + DAY).await? {
            by_domain
                .entry(result.policy_domain.to_ascii_lowercase())
                .or_default()
                .push(result);
        }
        for (domain, results) in by_domain {
            let job = ReportJob {
                submitter: &settings.hostname,
                reporter: &reporter,
                from: &from,
                domain: &domain,
                begin: day_start,
                now,
            };
            match job.queue(store, resolver, signer, &results).await {
                Ok(Some(report)) => sent.push(report),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(target: "delivery", %domain, "TLS report not sent: {error}")
                }
            }
        }
        day_start += DAY;
    }
    store.prune_tls_results(oldest).await?;
    Ok(sent)
}

/// The `mailto:` destinations of the domain's TLS-RPT record, `None` when it publishes
/// none (§3: not exactly one `v=TLSRPTv1` record counts as none).
pub async fn report_destinations(
    resolver: &Resolver,
    domain: &str,
) -> Result<Option<Vec<String>>, LookupError> {
    let records = match resolver.txt(&format!("_smtp._tls.{domain}")).await {
        Ok(records) => records,
        Err(error) if error.is_empty_answer() => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut candidates = records
        .iter()
        .filter(|record| record.starts_with(b"v=TLSRPTv1"));
    let (Some(record), None) = (candidates.next(), candidates.next()) else {
        return Ok(None);
    };
    let Ok(parsed) = TlsRpt::parse(record) else {
        return Ok(None);
    };
    let mut mailto: Vec<String> = Vec::new();
    for uri in parsed.rua {
        match uri {
            ReportUri::Mail(address) if is_plain_address(&address) => {
                let address = address.to_ascii_lowercase();
                if mailto.len() >= MAX_REPORT_DESTINATIONS {
                    tracing::info!(target: "delivery", %domain, "TLS-RPT record names more than {MAX_REPORT_DESTINATIONS} destinations; the rest are skipped");
                    break;
                }
                if !mailto.contains(&address) {
                    mailto.push(address);
                }
            }
            ReportUri::Mail(address) => {
                tracing::info!(target: "delivery", %domain, rua = ?address, "TLS-RPT rua is not a mail address; skipped");
            }
            ReportUri::Http(url) => {
                tracing::info!(target: "delivery", %domain, rua = ?url, "TLS-RPT https: rua is not supported; skipped");
            }
        }
    }
    Ok((!mailto.is_empty()).then_some(mailto))
}

/// A `mailto:` address fit for an envelope and a `To:` field: `local@domain`, nothing
/// that could end a header line or an address (mail-auth decodes `=0D=0A` in the URI,
/// so the record's author could otherwise write CR LF into our report's header).
fn is_plain_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && address.len() <= MAX_REPORT_ADDRESS
        && !domain.contains('@')
        && address.chars().all(|c| {
            !c.is_control()
                && !c.is_whitespace()
                && !matches!(
                    c,
                    '<' | '>' | ',' | '"' | '(' | ')' | ';' | '\\' | '[' | ']'
                )
        })
}

/// The domain reports are sent from: the local domain that is or contains the hostname,
/// or else the first with DKIM keys, so the report can be signed; the hostname itself
/// when there is neither.
async fn reporting_domain(
    store: &dyn Store,
    hostname: &str,
    signer: Option<&DkimSigner>,
) -> Result<String, StoreError> {
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut best: Option<String> = None;
    for domain in store.domains().await? {
        if (hostname == domain || hostname.ends_with(&format!(".{domain}")))
            && best.as_ref().is_none_or(|b| b.len() < domain.len())
        {
            best = Some(domain);
        }
    }
    Ok(best
        .or_else(|| signer.and_then(|signer| signer.domains().into_iter().next()))
        .unwrap_or(hostname))
}

struct ReportJob<'a> {
    /// Our host name: `TLS-Report-Submitter` and the file name's sender.
    submitter: &'a str,
    /// The domain the report is signed as and sent from.
    reporter: &'a str,
    from: &'a str,
    domain: &'a str,
    begin: i64,
    now: OffsetDateTime,
}

impl ReportJob<'_> {
    async fn queue(
        &self,
        store: &dyn Store,
        resolver: &Resolver,
        signer: Option<&DkimSigner>,
        results: &[TlsSessionResult],
    ) -> Result<Option<SentTlsReport>, Box<dyn std::error::Error + Send + Sync>> {
        let Some(recipients) = report_destinations(resolver, self.domain).await? else {
            return Ok(None);
        };
        let end = self.begin + DAY - 1;
        let report_id = format!(
            "{}.{}.{}",
            day(self.begin),
            self.domain,
            self.submitter.trim_end_matches('.')
        );
        let report = json::Report {
            organization_name: self.reporter,
            contact_info: self.from,
            report_id: &report_id,
            begin: self.begin,
            end,
            domain: self.domain,
            results,
        };
        let (document, successes, failures) = report.to_json();
        let mut raw = message::write(&message::ReportMessage {
            json: document.as_bytes(),
            domain: self.domain,
            submitter: self.submitter,
            report_id: &report_id,
            begin: self.begin,
            end,
            from: self.from,
            to: &recipients,
            date: self.now,
        })?;
        if let Some(signature) = signer.and_then(|signer| signer.sign(self.reporter, &raw)) {
            raw.splice(0..0, signature);
        }
        let queued = store
            .queue_tls_report(OutgoingReport {
                policy_domain: self.domain.to_string(),
                begin: self.begin,
                end,
                report_id: report_id.clone(),
                delivery: Delivery {
                    raw: Arc::new(raw),
                    internal_date: self.now.unix_timestamp(),
                    local: Vec::new(),
                    outbound: Some(Outbound {
                        sender: self.from.to_string(),
                        recipients: recipients.clone(),
                        require_tls: false,
                    }),
                },
            })
            .await?;
        Ok(queued.map(|_| SentTlsReport {
            policy_domain: self.domain.to_string(),
            report_id,
            begin: self.begin,
            successful_sessions: successes,
            failed_sessions: failures,
            recipients,
        }))
    }
}

/// `2026-05-01`.
fn day(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests;
