//! SPF (RFC 7208): the record's syntax (mail-auth parses it), and the two limits that make
//! a record fail for everyone — at most 10 terms that cause DNS lookups (§4.6.4), counted
//! through every include and redirect, and at most 2 lookups that find nothing.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Macro, Mechanism, Qualifier, Spf};
use sealpost_dns::Resolver;
use serde::Serialize;

/// RFC 7208 §4.6.4.
pub const MAX_LOOKUPS: usize = 10;
pub const MAX_VOID_LOOKUPS: usize = 2;
/// Records fetched before the walk gives up (an include loop would never end).
const MAX_RECORDS: usize = 40;

#[derive(Debug, Clone, Serialize)]
pub struct SpfReport {
    /// The v=spf1 record, when there is exactly one.
    pub record: Option<String>,
    /// DNS-querying terms, counted through includes and redirects.
    pub lookups: usize,
    /// Lookups that returned no records (NXDOMAIN or NODATA).
    pub void_lookups: usize,
    /// The record's final `all` qualifier: "-", "~", "?", "+", or null without `all`.
    pub all: Option<String>,
    /// Syntax errors, missing includes, more than one record ...
    pub errors: Vec<String>,
}

/// Walks the SPF tree of `domain`.
pub(crate) async fn check(resolver: &Resolver, domain: &str) -> SpfReport {
    let mut report = SpfReport {
        record: None,
        lookups: 0,
        void_lookups: 0,
        all: None,
        errors: Vec::new(),
    };
    let records = match spf_records(resolver, domain).await {
        Ok(records) => records,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    match records.as_slice() {
        [] => return report,
        [one] => report.record = Some(one.clone()),
        _ => {
            report.errors.push(format!(
                "{domain} has {} v=spf1 records (permerror)",
                records.len()
            ));
            return report;
        }
    }
    let mut walk = Walk {
        resolver,
        report: &mut report,
        fetched: 1,
    };
    let top = records[0].clone();
    walk.record(domain, &top, true).await;
    report
}

async fn spf_records(resolver: &Resolver, domain: &str) -> Result<Vec<String>, String> {
    match resolver.txt(domain).await {
        Ok(txt) => Ok(txt
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .filter(|r| {
                let r = r.to_ascii_lowercase();
                r == "v=spf1" || r.starts_with("v=spf1 ")
            })
            .collect()),
        Err(e) if e.is_empty_answer() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

struct Walk<'a> {
    resolver: &'a Resolver,
    report: &'a mut SpfReport,
    fetched: usize,
}

impl Walk<'_> {
    /// Counts the terms of one record and descends into includes and redirect. Boxed:
    /// the recursion is async.
    fn record<'s>(
        &'s mut self,
        domain: &'s str,
        text: &'s str,
        top: bool,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 's>> {
        Box::pin(async move {
            let spf = match Spf::parse(text.as_bytes()) {
                Ok(spf) => spf,
                Err(e) => {
                    self.report
                        .errors
                        .push(format!("{domain}: the SPF record does not parse: {e}"));
                    return;
                }
            };
            for directive in spf.directives.iter() {
                match &directive.mechanism {
                    Mechanism::Include { macro_string } => {
                        self.report.lookups += 1;
                        if let Some(target) = literal(macro_string, domain) {
                            self.descend(&target, "include").await;
                        }
                    }
                    Mechanism::A { macro_string, .. } => {
                        self.report.lookups += 1;
                        if let Some(target) = literal(macro_string, domain)
                            && matches!(self.resolver.ip(&target).await, Err(e) if e.is_empty_answer())
                        {
                            self.report.void_lookups += 1;
                        }
                    }
                    Mechanism::Mx { macro_string, .. } => {
                        self.report.lookups += 1;
                        if let Some(target) = literal(macro_string, domain)
                            && matches!(self.resolver.mx(&target).await, Err(e) if e.is_empty_answer())
                        {
                            self.report.void_lookups += 1;
                        }
                    }
                    Mechanism::Ptr { .. } => {
                        self.report.lookups += 1;
                        self.report
                            .errors
                            .push(format!("{domain} uses ptr (RFC 7208 §5.5: do not use)"));
                    }
                    Mechanism::Exists { .. } => self.report.lookups += 1,
                    Mechanism::All if top => {
                        self.report.all = Some(qualifier(&directive.qualifier).into());
                    }
                    _ => {}
                }
            }
            if let Some(redirect) = &spf.redirect {
                self.report.lookups += 1;
                if let Some(target) = literal(redirect, domain) {
                    self.descend(&target, "redirect").await;
                }
            }
        })
    }

    async fn descend(&mut self, target: &str, how: &str) {
        if self.fetched >= MAX_RECORDS {
            return;
        }
        self.fetched += 1;
        match spf_records(self.resolver, target).await {
            Ok(records) if records.len() == 1 => {
                let text = records[0].clone();
                self.record(target, &text, false).await;
            }
            Ok(records) if records.is_empty() => {
                self.report.void_lookups += 1;
                self.report
                    .errors
                    .push(format!("{how}:{target} has no SPF record (permerror)"));
            }
            Ok(_) => self
                .report
                .errors
                .push(format!("{how}:{target} has more than one SPF record")),
            Err(e) => self.report.errors.push(format!("{how}:{target}: {e}")),
        }
    }
}

/// The domain a term names: its literal text, the current domain when it names none, and
/// `None` when it depends on macros only a real check can expand (%{i}, %{s} ...).
fn literal(macro_string: &Macro, current: &str) -> Option<String> {
    match macro_string {
        Macro::None => Some(current.to_string()),
        Macro::Literal(bytes) => Some(
            String::from_utf8_lossy(bytes)
                .trim_end_matches('.')
                .to_ascii_lowercase(),
        ),
        Macro::Variable { .. } | Macro::List(_) => None,
    }
}

fn qualifier(q: &Qualifier) -> &'static str {
    match q {
        Qualifier::Pass => "+",
        Qualifier::Fail => "-",
        Qualifier::SoftFail => "~",
        Qualifier::Neutral => "?",
    }
}
