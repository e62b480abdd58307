//! `sealpost dmarc import|report|send-reports`: DMARC aggregate reports (RFC 9990) in
//! both directions.
//!
//! Incoming: reports arrive as ordinary mail in the `dmarc-reports@<domain>` mailbox
//! that `domain add` creates (the `rua` that `sealpost dns` publishes). `import` reads
//! the INBOX of those mailboxes, stores every report it finds (once per organisation and
//! report ID) and flags each message it has read `$DmarcScanned`, so the next run only
//! reads new mail. `report` imports first, then summarises what is stored. Intake stays
//! untouched: a report is just mail until someone asks for the summary.
//!
//! Outgoing: port 25 intake records each DMARC evaluation in the store;
//! [`send_due_reports`] turns each complete UTC day of them into one report per policy
//! domain that publishes a `mailto:` rua, signs it with DKIM and queues it. The store
//! queues a report for a domain and day once only, so running it again is harmless.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use sealpost_dns::Resolver;
use sealpost_mailauth::DkimSigner;
use sealpost_mailauth::reports::{
    self, ActionDisposition, Alignment, DKIMAuthResult, Discovery, Disposition, DkimResult,
    DmarcResult, PolicyPublished, Record, Report, SPFAuthResult, SPFDomainScope, SpfResult,
};
use sealpost_store::{
    Delivery, DkimAuthResult, DmarcAggregateReport, DmarcDisposition, DmarcEvaluationRecord,
    DmarcPolicyPublished, DmarcReportRow, FlagOperation, FlagUpdate, Outbound, OutgoingReport,
    SpfAuthResult, Store,
};
use time::OffsetDateTime;

use crate::account::open_store;
use crate::config::Config;
use crate::domain::DMARC_REPORTS_LOCAL_PART;

/// The keyword set on report-mailbox messages `import` has read.
pub const SCANNED_FLAG: &str = "$DmarcScanned";

/// Days of evaluations kept: reports for days missed (server down at midnight) are still
/// sent within this window.
pub const EVALUATION_RETENTION_DAYS: i64 = 7;

const DAY: i64 = 86_400;

#[derive(Subcommand)]
pub enum DmarcCommand {
    /// Store the aggregate reports that arrived in the report mailboxes.
    Import {
        /// Read these mailboxes too (addresses of local accounts), besides
        /// dmarc-reports@ of every local domain.
        #[arg(long = "address", value_name = "ADDRESS")]
        addresses: Vec<String>,
    },
    /// Import new reports, then summarise those about the domain.
    Report {
        domain: String,
        #[arg(long = "address", value_name = "ADDRESS")]
        addresses: Vec<String>,
    },
    /// Queue the aggregate reports due for complete days of evaluated mail.
    SendReports,
}

pub async fn run(command: DmarcCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        DmarcCommand::Import { addresses } => {
            let imported =
                import_reports(&*store, &report_mailboxes(&*store, addresses).await?).await?;
            println!("{imported}");
        }
        DmarcCommand::Report { domain, addresses } => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            let mut mailboxes = addresses;
            mailboxes.push(format!("{DMARC_REPORTS_LOCAL_PART}@{domain}"));
            let imported = import_reports(&*store, &mailboxes).await?;
            if imported.imported > 0 {
                eprintln!("{imported}");
            }
            print!(
                "{}",
                summarise(&domain, &store.dmarc_reports(&domain).await?)
            );
        }
        DmarcCommand::SendReports => {
            let signer = DkimSigner::load(&config.data_dir)
                .context("cannot load the DKIM keys to sign reports with")?;
            let resolver = resolver(config)?;
            let sent =
                send_due_reports(&*store, &config.hostname, &signer, Some(&resolver)).await?;
            for report in &sent {
                println!(
                    "queued report {} for {} ({} messages) to {}",
                    report.report_id,
                    report.policy_domain,
                    report.messages,
                    report.recipients.join(", ")
                );
            }
            if sent.is_empty() {
                println!("no reports due");
            }
        }
    }
    Ok(())
}

fn resolver(config: &Config) -> anyhow::Result<Resolver> {
    Resolver::new(&config.resolver_settings()?).context("cannot set up the DNS resolver")
}

/// `dmarc-reports@` of every local domain that has that mailbox, and `extra`.
async fn report_mailboxes(store: &dyn Store, extra: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut addresses = extra;
    for domain in store.domains().await? {
        let address = format!("{DMARC_REPORTS_LOCAL_PART}@{domain}");
        if store.account(&address).await?.is_some() {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

/// What one `import` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub scanned: usize,
    pub imported: usize,
    pub duplicates: usize,
    pub not_reports: usize,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} new messages: {} reports imported, {} already stored, {} not reports",
            self.scanned, self.imported, self.duplicates, self.not_reports
        )
    }
}

/// Reads the INBOX messages of `addresses` not flagged [`SCANNED_FLAG`] yet, stores the
/// aggregate reports among them, and flags them. Addresses without an account are
/// skipped.
pub async fn import_reports(store: &dyn Store, addresses: &[String]) -> anyhow::Result<Imported> {
    let mut imported = Imported::default();
    for address in addresses {
        let Some(account) = store.account(address).await? else {
            continue;
        };
        let Some(inbox) = store.mailbox(account.id, "INBOX").await? else {
            continue;
        };
        let mut scanned = Vec::new();
        for meta in store.messages(inbox.id).await? {
            if meta
                .flags
                .iter()
                .any(|f| f.eq_ignore_ascii_case(SCANNED_FLAG))
            {
                continue;
            }
            let Some(raw) = store.message_raw(inbox.id, meta.uid).await? else {
                continue;
            };
            scanned.push(meta.uid);
            match tokio::task::spawn_blocking(move || reports::parse_aggregate_report(&raw)).await?
            {
                Some(report) => {
                    if store.store_dmarc_report(stored_report(&report)).await? {
                        imported.imported += 1;
                    } else {
                        imported.duplicates += 1;
                    }
                }
                None => imported.not_reports += 1,
            }
        }
        imported.scanned += scanned.len();
        if !scanned.is_empty() {
            store
                .update_flags(
                    inbox.id,
                    FlagUpdate {
                        uids: scanned,
                        operation: FlagOperation::Add,
                        flags: vec![SCANNED_FLAG.to_string()],
                        unchanged_since: None,
                    },
                )
                .await
                .with_context(|| format!("cannot flag the reports read in {address}"))?;
        }
    }
    Ok(imported)
}

/// A parsed report as the store keeps it.
pub fn stored_report(report: &Report) -> DmarcAggregateReport {
    let metadata = &report.report_metadata;
    let published = &report.policy_published;
    DmarcAggregateReport {
        org_name: metadata.org_name.clone(),
        email: metadata.email.clone(),
        report_id: metadata.report_id.clone(),
        begin: i64::try_from(metadata.date_range.begin).unwrap_or(i64::MAX),
        end: i64::try_from(metadata.date_range.end).unwrap_or(i64::MAX),
        policy_domain: published.domain.to_ascii_lowercase(),
        policy: DmarcPolicyPublished {
            p: disposition(published.p).unwrap_or(DmarcDisposition::None),
            sp: disposition(published.sp),
            np: disposition(published.np),
            adkim_strict: published.adkim == Alignment::Strict,
            aspf_strict: published.aspf == Alignment::Strict,
            testing: published.testing,
            fo: published.fo.clone(),
        },
        rows: report
            .record
            .iter()
            .map(|record| DmarcReportRow {
                source_ip: record.row.source_ip,
                count: u64::from(record.row.count),
                disposition: match record.row.policy_evaluated.disposition {
                    ActionDisposition::Quarantine => DmarcDisposition::Quarantine,
                    ActionDisposition::Reject => DmarcDisposition::Reject,
                    _ => DmarcDisposition::None,
                },
                dkim_aligned: record.row.policy_evaluated.dkim == DmarcResult::Pass,
                spf_aligned: record.row.policy_evaluated.spf == DmarcResult::Pass,
                header_from: record.identifiers.header_from.to_ascii_lowercase(),
                envelope_from: record.identifiers.envelope_from.to_ascii_lowercase(),
                dkim: record
                    .auth_results
                    .dkim
                    .iter()
                    .map(|r| DkimAuthResult {
                        domain: r.domain.to_ascii_lowercase(),
                        selector: r.selector.clone(),
                        result: dkim_result_name(r.result).to_string(),
                    })
                    .collect(),
                spf: record
                    .auth_results
                    .spf
                    .iter()
                    .map(|r| SpfAuthResult {
                        domain: r.domain.to_ascii_lowercase(),
                        scope: match r.scope {
                            SPFDomainScope::Helo => "helo",
                            SPFDomainScope::MailFrom => "mfrom",
                            SPFDomainScope::Unspecified => "",
                        }
                        .to_string(),
                        result: spf_result_name(r.result).to_string(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn disposition(value: Disposition) -> Option<DmarcDisposition> {
    match value {
        Disposition::None => Some(DmarcDisposition::None),
        Disposition::Quarantine => Some(DmarcDisposition::Quarantine),
        Disposition::Reject => Some(DmarcDisposition::Reject),
        Disposition::Unspecified => None,
    }
}

/// The summary `dmarc report` prints: totals, then one line per source address, then
/// the DKIM signatures and SPF domains seen, then the reporting organisations.
pub fn summarise(domain: &str, stored: &[DmarcAggregateReport]) -> String {
    let mut out = String::new();
    if stored.is_empty() {
        let _ = writeln!(
            out,
            "no DMARC aggregate reports about {domain} yet (they arrive at \
             {DMARC_REPORTS_LOCAL_PART}@{domain}, usually daily)"
        );
        return out;
    }
    let rows = || stored.iter().flat_map(|r| r.rows.iter());
    let total: u64 = rows().map(|r| r.count).sum();
    let count_where = |keep: &dyn Fn(&DmarcReportRow) -> bool| -> u64 {
        rows().filter(|r| keep(r)).map(|r| r.count).sum()
    };
    let passed = count_where(&|r| r.dkim_aligned || r.spf_aligned);
    let begin = stored.iter().map(|r| r.begin).min().unwrap_or(0);
    let end = stored.iter().map(|r| r.end).max().unwrap_or(0);
    let organisations: BTreeMap<&str, (usize, u64)> =
        stored.iter().fold(BTreeMap::new(), |mut map, report| {
            let entry = map.entry(report.org_name.as_str()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += report.rows.iter().map(|r| r.count).sum::<u64>();
            map
        });

    let _ = writeln!(out, "DMARC aggregate reports for {domain}");
    let _ = writeln!(
        out,
        "period: {} to {} ({} reports from {} organisations)",
        day(begin),
        day(end),
        stored.len(),
        organisations.len()
    );
    let latest = &stored[stored.len() - 1].policy;
    let _ = writeln!(
        out,
        "policy published: p={}{}",
        latest.p.as_str(),
        if latest.testing { " (testing)" } else { "" }
    );
    let _ = writeln!(out, "messages: {total}");
    let _ = writeln!(out, "dmarc pass: {passed} ({})", percent(passed, total));
    let _ = writeln!(
        out,
        "dkim aligned pass: {}",
        count_where(&|r| r.dkim_aligned)
    );
    let _ = writeln!(out, "spf aligned pass: {}", count_where(&|r| r.spf_aligned));
    let _ = writeln!(
        out,
        "disposition: none {}, quarantine {}, reject {}",
        count_where(&|r| r.disposition == DmarcDisposition::None),
        count_where(&|r| r.disposition == DmarcDisposition::Quarantine),
        count_where(&|r| r.disposition == DmarcDisposition::Reject)
    );

    #[derive(Default)]
    struct Source {
        messages: u64,
        dkim: u64,
        spf: u64,
        quarantined: u64,
        rejected: u64,
        header_from: BTreeMap<String, ()>,
    }
    let mut sources: HashMap<String, Source> = HashMap::new();
    for row in rows() {
        let ip = row.source_ip.map_or("-".into(), |ip| ip.to_string());
        let source = sources.entry(ip).or_default();
        source.messages += row.count;
        source.dkim += if row.dkim_aligned { row.count } else { 0 };
        source.spf += if row.spf_aligned { row.count } else { 0 };
        match row.disposition {
            DmarcDisposition::Quarantine => source.quarantined += row.count,
            DmarcDisposition::Reject => source.rejected += row.count,
            DmarcDisposition::None => {}
        }
        source.header_from.insert(row.header_from.clone(), ());
    }
    let mut sources: Vec<(String, Source)> = sources.into_iter().collect();
    sources.sort_by(|a, b| b.1.messages.cmp(&a.1.messages).then(a.0.cmp(&b.0)));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<40} {:>8} {:>8} {:>8} {:>10} {:>8}  header from",
        "source", "messages", "dkim", "spf", "quarantine", "reject"
    );
    for (ip, s) in &sources {
        let _ = writeln!(
            out,
            "{ip:<40} {:>8} {:>8} {:>8} {:>10} {:>8}  {}",
            s.messages,
            s.dkim,
            s.spf,
            s.quarantined,
            s.rejected,
            s.header_from.keys().cloned().collect::<Vec<_>>().join(",")
        );
    }

    let mut dkim: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut spf: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for row in rows() {
        for r in &row.dkim {
            *dkim
                .entry((r.domain.clone(), r.selector.clone(), r.result.clone()))
                .or_default() += row.count;
        }
        for r in &row.spf {
            *spf.entry((r.domain.clone(), r.scope.clone(), r.result.clone()))
                .or_default() += row.count;
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "dkim signatures (domain selector result: messages)");
    for ((domain, selector, result), count) in &dkim {
        let selector = if selector.is_empty() { "-" } else { selector };
        let _ = writeln!(out, "  {domain} {selector} {result}: {count}");
    }
    let _ = writeln!(out, "spf (domain scope result: messages)");
    for ((domain, scope, result), count) in &spf {
        let scope = if scope.is_empty() { "-" } else { scope };
        let _ = writeln!(out, "  {domain} {scope} {result}: {count}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "reporting organisations");
    for (org, (reports, messages)) in &organisations {
        let _ = writeln!(out, "  {org}: {reports} reports, {messages} messages");
    }
    out
}

fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return "-".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / total as f64)
}

fn day(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// One report [`send_due_reports`] queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReport {
    pub policy_domain: String,
    pub report_id: String,
    pub begin: i64,
    pub messages: u64,
    pub recipients: Vec<String>,
}

/// Queues an aggregate report for each policy domain and complete UTC day of recorded
/// evaluations (within the last [`EVALUATION_RETENTION_DAYS`]) not reported yet, then
/// forgets evaluations older than that. Destinations outside the policy domain's
/// organisation get reports only when their DNS authorises it (RFC 9990 §4); without a
/// resolver they get none. Serve runs this daily; `sealpost dmarc send-reports` on demand.
pub async fn send_due_reports(
    store: &dyn Store,
    hostname: &str,
    signer: &DkimSigner,
    resolver: Option<&Resolver>,
) -> anyhow::Result<Vec<SentReport>> {
    send_reports_at(store, hostname, signer, resolver, OffsetDateTime::now_utc()).await
}

async fn send_reports_at(
    store: &dyn Store,
    hostname: &str,
    signer: &DkimSigner,
    resolver: Option<&Resolver>,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<SentReport>> {
    let today = now.unix_timestamp().div_euclid(DAY) * DAY;
    let oldest = today - EVALUATION_RETENTION_DAYS * DAY;
    let reporter = reporting_domain(store, hostname, signer).await?;
    let from = format!("{DMARC_REPORTS_LOCAL_PART}@{reporter}");
    let mut sent = Vec::new();
    let mut day_start = oldest;
    while day_start < today {
        let evaluations = store.dmarc_evaluations(day_start, day_start + DAY).await?;
        let mut by_domain: BTreeMap<String, Vec<DmarcEvaluationRecord>> = BTreeMap::new();
        for evaluation in evaluations {
            by_domain
                .entry(evaluation.policy_domain.to_ascii_lowercase())
                .or_default()
                .push(evaluation);
        }
        for (domain, evaluations) in by_domain {
            let job = ReportJob {
                hostname,
                from: &from,
                reporter: &reporter,
                domain: &domain,
                begin: day_start,
                now,
            };
            match job.queue(store, signer, resolver, &evaluations).await {
                Ok(Some(report)) => sent.push(report),
                Ok(None) => {}
                Err(e) => tracing::warn!(%domain, "DMARC report not sent: {e:#}"),
            }
        }
        day_start += DAY;
    }
    store.prune_dmarc_evaluations(oldest).await?;
    Ok(sent)
}

/// The domain reports are sent from: the local domain that is or contains the hostname,
/// or else the first with DKIM keys, so the report can be signed; the hostname itself
/// when there is none.
async fn reporting_domain(
    store: &dyn Store,
    hostname: &str,
    signer: &DkimSigner,
) -> anyhow::Result<String> {
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    let signing = signer.domains();
    let mut best: Option<String> = None;
    for domain in store.domains().await? {
        if (hostname == domain || hostname.ends_with(&format!(".{domain}")))
            && best.as_ref().is_none_or(|b| b.len() < domain.len())
        {
            best = Some(domain);
        }
    }
    Ok(best
        .or_else(|| signing.first().cloned())
        .unwrap_or(hostname))
}

struct ReportJob<'a> {
    hostname: &'a str,
    from: &'a str,
    reporter: &'a str,
    domain: &'a str,
    begin: i64,
    now: OffsetDateTime,
}

impl ReportJob<'_> {
    async fn queue(
        &self,
        store: &dyn Store,
        signer: &DkimSigner,
        resolver: Option<&Resolver>,
        evaluations: &[DmarcEvaluationRecord],
    ) -> anyhow::Result<Option<SentReport>> {
        let Some(latest) = evaluations.last() else {
            return Ok(None);
        };
        let destinations = reports::mailto_destinations(&latest.rua);
        let mut allowed = Vec::new();
        for destination in destinations {
            if reports::same_organisation(self.domain, destination.domain()) {
                allowed.push(destination);
                continue;
            }
            let Some(resolver) = resolver else {
                tracing::info!(domain = self.domain, rua = %destination.address,
                    "no resolver to verify an external report destination; skipped");
                continue;
            };
            // A lookup failure leaves the whole report for the next run rather than
            // sending it to some destinations only.
            if reports::external_destination_authorised(resolver, self.domain, destination.domain())
                .await?
            {
                allowed.push(destination);
            } else {
                tracing::info!(domain = self.domain, rua = %destination.address,
                    "external report destination not authorised by _report._dmarc; skipped");
            }
        }
        if allowed.is_empty() {
            return Ok(None);
        }

        let report_id = format!("{}.{}.{}", self.domain, day(self.begin), self.hostname);
        let report = build_report(self, &report_id, evaluations);
        let recipients: Vec<String> = allowed.iter().map(|d| d.address.clone()).collect();
        let mut message = reports::aggregate_report_message(
            &report,
            self.hostname,
            self.from,
            &recipients,
            self.now,
        )?;
        if let Some(signature) = signer.sign(self.reporter, &message) {
            message.splice(0..0, signature);
        }
        let size = message.len() as u64;
        let recipients: Vec<String> = allowed
            .into_iter()
            .filter(|d| d.max_size.is_none_or(|max| size <= max))
            .map(|d| d.address)
            .collect();
        if recipients.is_empty() {
            tracing::info!(
                domain = self.domain,
                size,
                "DMARC report larger than every rua allows"
            );
            return Ok(None);
        }
        let queued = store
            .queue_dmarc_report(OutgoingReport {
                policy_domain: self.domain.to_string(),
                begin: self.begin,
                end: self.begin + DAY - 1,
                report_id: report_id.clone(),
                delivery: Delivery {
                    raw: Arc::new(message),
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
        Ok(queued.map(|_| SentReport {
            policy_domain: self.domain.to_string(),
            report_id,
            begin: self.begin,
            messages: evaluations.len() as u64,
            recipients,
        }))
    }
}

/// The RFC 9990 report for one domain and day: one record per distinct source,
/// outcome and identifiers, with its count.
fn build_report(
    job: &ReportJob<'_>,
    report_id: &str,
    evaluations: &[DmarcEvaluationRecord],
) -> Report {
    let latest = &evaluations[evaluations.len() - 1];
    let policy = &latest.policy;
    let alignment = |strict| {
        if strict {
            Alignment::Strict
        } else {
            Alignment::Relaxed
        }
    };
    let published = |d: Option<DmarcDisposition>| match d {
        Some(DmarcDisposition::None) => Disposition::None,
        Some(DmarcDisposition::Quarantine) => Disposition::Quarantine,
        Some(DmarcDisposition::Reject) => Disposition::Reject,
        None => Disposition::Unspecified,
    };
    let mut report = Report::new()
        .with_version(1.0)
        .with_org_name(job.hostname)
        .with_email(job.from)
        .with_report_id(report_id)
        .with_date_range_begin(u64::try_from(job.begin).unwrap_or(0))
        .with_date_range_end(u64::try_from(job.begin + DAY - 1).unwrap_or(0))
        .with_generator(format!("sealpost {}", env!("CARGO_PKG_VERSION")))
        .with_policy_published(PolicyPublished {
            domain: job.domain.to_string(),
            version_published: None,
            adkim: alignment(policy.adkim_strict),
            aspf: alignment(policy.aspf_strict),
            p: published(Some(policy.p)),
            sp: published(policy.sp),
            np: published(policy.np),
            testing: policy.testing,
            discovery_method: Discovery::Treewalk,
            fo: policy.fo.clone(),
        });

    let mut rows: Vec<(&DmarcEvaluationRecord, u32)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for evaluation in evaluations {
        let key = format!(
            "{:?}",
            (
                evaluation.source_ip,
                evaluation.disposition,
                evaluation.dkim_aligned,
                evaluation.spf_aligned,
                &evaluation.header_from,
                &evaluation.envelope_from,
                &evaluation.envelope_to,
                &evaluation.dkim,
                &evaluation.spf
            )
        );
        match index.get(&key) {
            Some(&i) => rows[i].1 = rows[i].1.saturating_add(1),
            None => {
                index.insert(key, rows.len());
                rows.push((evaluation, 1));
            }
        }
    }
    for (evaluation, count) in rows {
        report.add_record(record(evaluation, count));
    }
    report
}

fn record(evaluation: &DmarcEvaluationRecord, count: u32) -> Record {
    let pass = |aligned| {
        if aligned {
            DmarcResult::Pass
        } else {
            DmarcResult::Fail
        }
    };
    let dmarc_passed = evaluation.dkim_aligned || evaluation.spf_aligned;
    let mut record = Record::new()
        .with_source_ip(evaluation.source_ip)
        .with_count(count)
        .with_action_disposition(match evaluation.disposition {
            // RFC 9990 tells "passed, nothing to do" from "failed, but p=none".
            DmarcDisposition::None if dmarc_passed => ActionDisposition::Pass,
            DmarcDisposition::None => ActionDisposition::None,
            DmarcDisposition::Quarantine => ActionDisposition::Quarantine,
            DmarcDisposition::Reject => ActionDisposition::Reject,
        })
        .with_dmarc_dkim_result(pass(evaluation.dkim_aligned))
        .with_dmarc_spf_result(pass(evaluation.spf_aligned))
        .with_header_from(evaluation.header_from.clone())
        .with_envelope_from(evaluation.envelope_from.clone());
    if !evaluation.envelope_to.is_empty() {
        record = record.with_envelope_to(evaluation.envelope_to.clone());
    }
    for dkim in &evaluation.dkim {
        record = record.with_dkim_auth_result(
            DKIMAuthResult::new()
                .with_domain(dkim.domain.clone())
                .with_selector(dkim.selector.clone())
                .with_result(dkim_result(&dkim.result)),
        );
    }
    if let Some(spf) = &evaluation.spf {
        record = record.with_spf_auth_result(SPFAuthResult {
            domain: spf.domain.clone(),
            scope: if spf.scope.eq_ignore_ascii_case("helo") {
                SPFDomainScope::Helo
            } else {
                SPFDomainScope::MailFrom
            },
            result: spf_result(&spf.result),
            human_result: None,
        });
    }
    record
}

const DKIM_RESULTS: [(DkimResult, &str); 7] = [
    (DkimResult::None, "none"),
    (DkimResult::Pass, "pass"),
    (DkimResult::Fail, "fail"),
    (DkimResult::Policy, "policy"),
    (DkimResult::Neutral, "neutral"),
    (DkimResult::TempError, "temperror"),
    (DkimResult::PermError, "permerror"),
];

const SPF_RESULTS: [(SpfResult, &str); 7] = [
    (SpfResult::None, "none"),
    (SpfResult::Neutral, "neutral"),
    (SpfResult::Pass, "pass"),
    (SpfResult::Fail, "fail"),
    (SpfResult::SoftFail, "softfail"),
    (SpfResult::TempError, "temperror"),
    (SpfResult::PermError, "permerror"),
];

fn dkim_result(name: &str) -> DkimResult {
    DKIM_RESULTS
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map_or(DkimResult::None, |(r, _)| *r)
}

fn dkim_result_name(result: DkimResult) -> &'static str {
    DKIM_RESULTS
        .iter()
        .find(|(r, _)| *r == result)
        .map_or("none", |(_, n)| n)
}

fn spf_result(name: &str) -> SpfResult {
    SPF_RESULTS
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map_or(SpfResult::None, |(r, _)| *r)
}

fn spf_result_name(result: SpfResult) -> &'static str {
    SPF_RESULTS
        .iter()
        .find(|(r, _)| *r == result)
        .map_or("none", |(_, n)| n)
}

#[cfg(test)]
mod tests;
