//! DMARC: the policy record found by the DNS tree walk of DMARCbis (RFC 9989 §4.10):
//! `_dmarc.<domain>` first, then the parent domains, longest first, starting from at most
//! seven labels, so a subdomain is covered by its organisation's record.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Dmarc, Policy};
use sealpost_dns::Resolver;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DmarcReport {
    /// The record, or null when the walk found none.
    pub record: Option<String>,
    /// The domain whose `_dmarc` name held it.
    pub found_at: Option<String>,
    /// The policy that applies to mail from the checked domain: `p`, or `sp` when the
    /// record was found at a parent ("none", "quarantine", "reject").
    pub policy: Option<String>,
    /// Aggregate report destinations.
    pub rua: Vec<String>,
    /// The names queried, in order.
    pub queried: Vec<String>,
    pub error: Option<String>,
}

/// The names to query for `domain`, in order (RFC 9989 §4.10.1).
pub(crate) fn walk_names(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    let mut names = vec![labels.join(".")];
    let mut start = 1;
    if labels.len() > 8 {
        start = labels.len() - 7;
    }
    for i in start..labels.len() {
        names.push(labels[i..].join("."));
    }
    names
}

pub(crate) async fn check(resolver: &Resolver, domain: &str) -> DmarcReport {
    let mut report = DmarcReport {
        record: None,
        found_at: None,
        policy: None,
        rua: Vec::new(),
        queried: Vec::new(),
        error: None,
    };
    for name in walk_names(domain) {
        report.queried.push(format!("_dmarc.{name}"));
        let records = match resolver.txt(&format!("_dmarc.{name}")).await {
            Ok(txt) => txt
                .into_iter()
                .map(|r| String::from_utf8_lossy(&r).into_owned())
                .filter(|r| r.trim_start().starts_with("v=DMARC1"))
                .collect::<Vec<_>>(),
            Err(e) if e.is_empty_answer() => Vec::new(),
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        let Some(record) = records.first() else {
            continue;
        };
        report.record = Some(record.clone());
        report.found_at = Some(name.clone());
        if records.len() > 1 {
            report.error = Some(format!("_dmarc.{name} has more than one DMARC record"));
            return report;
        }
        match Dmarc::parse(record.as_bytes()) {
            Ok(dmarc) => {
                let policy = if name == domain { dmarc.p } else { dmarc.sp };
                report.policy = Some(policy_name(policy, dmarc.p).into());
                report.rua = dmarc.rua.iter().map(|u| u.uri.clone()).collect();
            }
            Err(e) => report.error = Some(format!("the DMARC record does not parse: {e}")),
        }
        return report;
    }
    report
}

/// `sp` unspecified falls back to `p` (RFC 9989 §4.7).
fn policy_name(policy: Policy, p: Policy) -> &'static str {
    match policy {
        Policy::None => "none",
        Policy::Quarantine => "quarantine",
        Policy::Reject => "reject",
        Policy::Unspecified => match p {
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
            _ => "none",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_goes_up_to_the_top_level_domain() {
        assert_eq!(
            walk_names("a.b.example.org"),
            ["a.b.example.org", "b.example.org", "example.org", "org"]
        );
        assert_eq!(walk_names("example.org"), ["example.org", "org"]);
    }

    #[test]
    fn long_names_jump_to_seven_labels() {
        let names = walk_names("1.2.3.4.5.6.7.8.9.example");
        assert_eq!(names[0], "1.2.3.4.5.6.7.8.9.example");
        assert_eq!(names[1], "4.5.6.7.8.9.example");
        assert_eq!(names.last().unwrap(), "example");
        assert_eq!(names.len(), 8);
    }
}
