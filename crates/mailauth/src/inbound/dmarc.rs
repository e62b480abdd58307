//! DMARC (RFC 9989, "DMARCbis") on mail-auth, which implements the DNS tree walk
//! (§4.10), `psd=`, `np=` for non-existent subdomains and `t=y` (the policy is applied
//! one level lower: reject as quarantine, quarantine as none). `pct=` is gone from
//! DMARCbis and is ignored.
//!
//! What RFC 9989 leaves to us, decided here:
//!
//! - No RFC5322.From domain (no From field, or one without an address): `permerror`,
//!   and no policy applies.
//! - Several From domains (several From fields, or one with several addresses in
//!   different domains): each domain is evaluated on its own and the strictest action
//!   wins. RFC 9989 exempts such messages from DMARC, which would let anyone escape a
//!   domain's `p=reject` by adding a second author; evaluating all of them cannot be
//!   escaped that way and still does not punish domains without a policy.

use std::net::IpAddr;
use std::sync::Arc;

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::{Alignment, Dmarc, Policy, Psd};
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DnsError, Error, MessageAuthenticator, Parameters, SpfOutput,
};
use sealpost_dns::Resolver;

use super::cache::TxtCache;
use super::dkim::DkimCheck;
use super::spf::SpfCheck;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcResult {
    Pass,
    Fail,
    /// No policy record (or nothing to evaluate).
    None,
    TempError,
    PermError,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::None => "none",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

impl DmarcPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }

    fn from_mail_auth(policy: Policy) -> Self {
        match policy {
            Policy::Quarantine => DmarcPolicy::Quarantine,
            Policy::Reject => DmarcPolicy::Reject,
            Policy::None | Policy::Unspecified => DmarcPolicy::None,
        }
    }
}

/// The policy record as published (RFC 9990's `policy_published`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPolicy {
    /// Where the record was found: the author domain or one above it.
    pub domain: String,
    pub p: DmarcPolicy,
    pub sp: DmarcPolicy,
    pub np: DmarcPolicy,
    pub adkim_strict: bool,
    pub aspf_strict: bool,
    /// `t=y`.
    pub testing: bool,
    /// `rua=` addresses, `mailto:` taken off: `dmarc@example.org`.
    pub rua: Vec<String>,
}

/// What we decided about a message whose From domain publishes DMARC, kept for the
/// aggregate reports (RFC 9990).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcOutcome {
    pub header_from: String,
    /// The RFC5321.MailFrom domain (the HELO domain for `<>`).
    pub envelope_from: String,
    pub source_ip: IpAddr,
    pub result: DmarcResult,
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
    pub policy: PublishedPolicy,
    /// What was done: `None` also when policy was not enforced (`[mailauth] enforce`).
    pub disposition: DmarcPolicy,
    pub spf: SpfCheck,
    pub dkim: Vec<DkimCheck>,
}

/// DMARC's verdict for one From domain.
#[derive(Debug, Clone)]
pub(crate) struct DmarcCheck {
    pub from_domain: String,
    pub result: DmarcResult,
    /// The policy to apply on failure, after `sp`/`np` and `t=y`.
    pub policy: DmarcPolicy,
    pub published: Option<PublishedPolicy>,
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
    pub reason: Option<String>,
}

pub(crate) struct DmarcInput<'a, 'x> {
    pub resolver: &'a Resolver,
    /// Parsed `_dmarc` records and the names without one.
    pub records: &'a TxtCache,
    pub message: &'a AuthenticatedMessage<'x>,
    pub dkim: &'a [DkimOutput<'x>],
    /// The SPF result DMARC uses: MAIL FROM's (HELO's for `<>`).
    pub spf: &'a SpfCheck,
}

/// One verdict per distinct From domain (see the module comment for zero and several).
pub(crate) async fn evaluate(
    authenticator: &MessageAuthenticator,
    input: DmarcInput<'_, '_>,
) -> Vec<DmarcCheck> {
    let mut domains: Vec<(String, &str)> = Vec::new();
    for address in &input.message.from {
        if let Some((_, domain)) = address.rsplit_once('@') {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            if !domain.is_empty() && !domains.iter().any(|(known, _)| *known == domain) {
                domains.push((domain, address));
            }
        }
    }
    let spf_output =
        SpfOutput::new(input.spf.domain.clone()).with_result(input.spf.result.to_mail_auth());
    match domains.as_slice() {
        [] => vec![DmarcCheck {
            from_domain: String::new(),
            result: DmarcResult::PermError,
            policy: DmarcPolicy::None,
            published: None,
            spf_aligned: false,
            dkim_aligned: false,
            reason: Some("no RFC5322.From domain".into()),
        }],
        [(domain, _)] => {
            vec![evaluate_one(authenticator, &input, input.message, &spf_output, domain).await]
        }
        several => {
            let mut checks = Vec::with_capacity(several.len());
            for (domain, address) in several {
                let mut single = input.message.clone();
                single.from = vec![address.to_string()];
                checks
                    .push(evaluate_one(authenticator, &input, &single, &spf_output, domain).await);
            }
            checks
        }
    }
}

async fn evaluate_one(
    authenticator: &MessageAuthenticator,
    input: &DmarcInput<'_, '_>,
    message: &AuthenticatedMessage<'_>,
    spf_output: &SpfOutput,
    from_domain: &str,
) -> DmarcCheck {
    // Our walk first: it tells where the applied record was published, and leaves every
    // answer of the walk, found or not, where mail-auth's walk finds it.
    let walk = tree_walk(input.records, input.resolver, from_domain).await;
    let output = authenticator
        .verify_dmarc(
            Parameters::new(DmarcParameters::new(
                message,
                input.dkim,
                &input.spf.domain,
                spf_output,
            ))
            .with_txt_cache(input.records),
        )
        .await;
    let (result, reason) = match output.result() {
        mail_auth::DmarcResult::Pass => (DmarcResult::Pass, None),
        mail_auth::DmarcResult::Fail(_) => (DmarcResult::Fail, None),
        mail_auth::DmarcResult::None => (DmarcResult::None, None),
        mail_auth::DmarcResult::TempError(error) => {
            (DmarcResult::TempError, Some(error.to_string()))
        }
        mail_auth::DmarcResult::PermError(error) => {
            (DmarcResult::PermError, Some(error.to_string()))
        }
    };
    let published = output
        .dmarc_record_cloned()
        .map(|record| published(&record, policy_domain(&walk, &record, from_domain)));
    DmarcCheck {
        from_domain: from_domain.to_string(),
        result,
        policy: DmarcPolicy::from_mail_auth(output.policy()),
        published,
        spf_aligned: *output.spf_result() == mail_auth::DmarcResult::Pass,
        dkim_aligned: *output.dkim_result() == mail_auth::DmarcResult::Pass,
        reason,
    }
}

fn published(record: &Dmarc, domain: String) -> PublishedPolicy {
    PublishedPolicy {
        domain,
        p: DmarcPolicy::from_mail_auth(record.p),
        sp: DmarcPolicy::from_mail_auth(record.sp),
        np: DmarcPolicy::from_mail_auth(record.np),
        adkim_strict: record.adkim == Alignment::Strict,
        aspf_strict: record.aspf == Alignment::Strict,
        testing: record.t,
        rua: record.rua.iter().map(|uri| uri.uri().to_string()).collect(),
    }
}

/// The DMARC records of the DNS tree walk (RFC 9989 §4.10) from `from_domain`: the
/// author domain, then at most 7 labels, then one label fewer at a time, until a record
/// with `psd=y` or `psd=n`; with the names they were found at. A failed lookup ends the
/// walk (mail-auth's, which decides, meets the same failure).
async fn tree_walk(
    records: &TxtCache,
    resolver: &Resolver,
    from_domain: &str,
) -> Vec<(String, Arc<Dmarc>)> {
    let domain = mail_auth::common::to_a_label(from_domain);
    let domain = domain.trim_matches('.');
    let total = domain.split('.').count();
    let mut found = Vec::new();
    if total < 2 || domain.split('.').any(str::is_empty) {
        return found;
    }
    let mut count = total;
    let mut key = String::with_capacity(domain.len() + 8);
    while count >= 1 {
        let name = last_labels(domain, count);
        key.clear();
        key.push_str("_dmarc.");
        key.push_str(name);
        key.push('.');
        match records.record::<Dmarc>(resolver, &key).await {
            Ok(record) => {
                let stop = matches!(record.psd, Psd::Yes | Psd::No);
                found.push((name.to_string(), record));
                if stop {
                    break;
                }
            }
            Err(Error::Dns(DnsError::RecordNotFound(_) | DnsError::InvalidRecordType)) => {}
            Err(_) => break,
        }
        count = if count >= 8 { 7 } else { count - 1 };
    }
    found
}

/// The last `count` labels of `domain`.
fn last_labels(domain: &str, count: usize) -> &str {
    match domain.rmatch_indices('.').nth(count - 1) {
        Some((dot, _)) => &domain[dot + 1..],
        None => domain,
    }
}

/// Where the record that was applied is published: the walk's entry holding that very
/// record (both come from one cache), else one with the same content.
fn policy_domain(walk: &[(String, Arc<Dmarc>)], applied: &Arc<Dmarc>, from_domain: &str) -> String {
    walk.iter()
        .find(|(_, record)| Arc::ptr_eq(record, applied))
        .or_else(|| walk.iter().find(|(_, record)| **record == **applied))
        .map_or_else(|| from_domain.to_string(), |(name, _)| name.clone())
}

/// The outcome to keep for reports, for a check whose domain publishes a policy.
pub(crate) fn outcome(
    check: &DmarcCheck,
    envelope_from: &str,
    source_ip: IpAddr,
    disposition: DmarcPolicy,
    spf: &SpfCheck,
    dkim: &[DkimCheck],
) -> Option<DmarcOutcome> {
    let policy = check.published.clone()?;
    Some(DmarcOutcome {
        header_from: check.from_domain.clone(),
        envelope_from: envelope_from.to_string(),
        source_ip,
        result: check.result,
        spf_aligned: check.spf_aligned,
        dkim_aligned: check.dkim_aligned,
        policy,
        disposition,
        spf: spf.clone(),
        dkim: dkim.to_vec(),
    })
}

#[cfg(test)]
mod walk_tests {
    use super::last_labels;

    #[test]
    fn last_labels_count_from_the_right() {
        assert_eq!(last_labels("a.b.example.org", 1), "org");
        assert_eq!(last_labels("a.b.example.org", 2), "example.org");
        assert_eq!(last_labels("a.b.example.org", 4), "a.b.example.org");
    }
}
