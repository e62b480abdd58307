//! Verification of mail arriving on port 25: SPF for HELO and MAIL FROM, every DKIM
//! signature, DMARC for the From domain(s), ARC (verified and reported only), one
//! Authentication-Results header with the verdict, and the action policy asks for.
//!
//! The action follows DMARC alone: SPF or DKIM failing without a DMARC policy only shows
//! in the header (RFC 9989 §8.5 advises against acting on them before DMARC).
//! A DMARC evaluation stopped by a DNS failure is a temporary failure for the sender
//! to retry, never a pass. All DNS goes through `sealpost-dns`.

mod cache;
mod dkim;
mod dmarc;
mod results;
mod spf;
#[cfg(test)]
mod testing;

use std::borrow::Cow;
use std::net::IpAddr;

use mail_auth::{AuthenticatedMessage, MessageAuthenticator, Parameters};
use sealpost_dns::Resolver;
use tracing::{Level, debug, info};

pub use dkim::{DkimCheck, DkimResult};
pub use dmarc::{DmarcOutcome, DmarcPolicy, DmarcResult, PublishedPolicy};
pub use spf::{SpfCheck, SpfResult};

use crate::inbound::cache::TxtCache;
use crate::inbound::dmarc::{DmarcCheck, DmarcInput};
use crate::inbound::results::ResultsHeader;
use crate::inbound::spf::SpfRecords;

/// What to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    Accept,
    /// Deliver to the recipients' Junk mailbox.
    Quarantine,
    /// Refuse at the end of DATA (550 5.7.1), with this reason.
    Reject(String),
    /// Refuse for now (451 4.7.x): the verdict could not be reached.
    TempFail(String),
}

impl PolicyAction {
    /// Stricter actions win when several From domains are evaluated.
    fn rank(&self) -> u8 {
        match self {
            PolicyAction::Accept => 0,
            PolicyAction::Quarantine => 1,
            PolicyAction::TempFail(_) => 2,
            PolicyAction::Reject(_) => 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct InboundVerdict {
    /// One Authentication-Results field, CRLF-terminated, to put at the top.
    pub header: String,
    pub action: PolicyAction,
    /// Present when the From domain publishes DMARC: what the aggregate reports need.
    pub dmarc: Option<DmarcOutcome>,
    pub spf: SpfCheck,
    pub spf_helo: SpfCheck,
    pub dkim: Vec<DkimCheck>,
}

pub struct InboundVerifier {
    resolver: Resolver,
    authenticator: MessageAuthenticator,
    /// DKIM keys, DMARC and ARC records, parsed, for their TTL.
    records: TxtCache,
    /// SPF records, checked and parsed, for their TTL.
    spf_records: SpfRecords,
    /// Our hostname, the authserv-id of our Authentication-Results.
    hostname: String,
    enforce: bool,
}

impl InboundVerifier {
    /// Verifies with `resolver`'s nameservers and cache, and enforces DMARC policy.
    pub fn new(resolver: Resolver, hostname: impl Into<String>) -> Self {
        Self {
            authenticator: MessageAuthenticator(resolver.hickory().clone()),
            records: TxtCache::new(),
            spf_records: SpfRecords::new(),
            resolver,
            hostname: hostname.into(),
            enforce: true,
        }
    }

    /// `false`: only annotate; every action is Accept.
    pub fn enforce(mut self, enforce: bool) -> Self {
        self.enforce = enforce;
        self
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// `message` without any Authentication-Results field that claims our authserv-id.
    pub fn remove_forged_results<'m>(&self, message: &'m [u8]) -> Cow<'m, [u8]> {
        results::remove_own_results(message, &self.hostname)
    }

    /// Authenticates one message as received from `peer`, before our trace headers.
    ///
    /// A verdict that DNS failures left open is reached once more before it is given:
    /// one lost UDP answer should not cost the sender a retry hours later. (The resolver
    /// retries too, but a retry of a query still in flight joins that same query.)
    /// Everything answered the first time comes from the resolver's cache.
    pub async fn verify(
        &self,
        peer: IpAddr,
        helo: &str,
        mail_from: &str,
        message: &[u8],
    ) -> InboundVerdict {
        let verdict = self.verify_once(peer, helo, mail_from, message).await;
        if !matches!(verdict.action, PolicyAction::TempFail(_)) {
            return verdict;
        }
        info!(%peer, "temporary DNS failure: checking once more");
        self.verify_once(peer, helo, mail_from, message).await
    }

    async fn verify_once(
        &self,
        peer: IpAddr,
        helo: &str,
        mail_from: &str,
        message: &[u8],
    ) -> InboundVerdict {
        let peer = peer.to_canonical();
        // Non-strict: signatures with l= are verified here and judged in `dkim`.
        let parsed = AuthenticatedMessage::parse_with_opts(message, None, false);
        let empty = AuthenticatedMessage::default();
        let parsed = parsed.as_ref().unwrap_or(&empty);

        let spf_verifier = spf::SpfVerifier::new(
            &self.resolver,
            &self.spf_records,
            peer,
            helo,
            &self.hostname,
        );
        let (spf_helo, spf, (dkim, dkim_outputs), arc) = tokio::join!(
            spf_verifier.check_helo(),
            spf_verifier.check_mail_from(mail_from),
            dkim::verify(&self.authenticator, &self.records, parsed),
            self.authenticator
                .verify_arc(Parameters::new(parsed).with_txt_cache(&self.records)),
        );
        let dmarc_checks = dmarc::evaluate(
            &self.authenticator,
            DmarcInput {
                resolver: &self.resolver,
                records: &self.records,
                message: parsed,
                dkim: &dkim_outputs,
                spf: &spf,
            },
        )
        .await;

        let mut action = PolicyAction::Accept;
        for check in &dmarc_checks {
            let wanted = self.action_for(check);
            if wanted.rank() > action.rank() {
                action = wanted;
            }
        }
        let disposition = match action {
            PolicyAction::Quarantine => DmarcPolicy::Quarantine,
            PolicyAction::Reject(_) => DmarcPolicy::Reject,
            PolicyAction::Accept | PolicyAction::TempFail(_) => DmarcPolicy::None,
        };
        // The outcome of the domain that decided, else of the first with a policy.
        let deciding = dmarc_checks
            .iter()
            .filter(|check| check.published.is_some())
            .max_by_key(|check| self.action_for(check).rank());
        let dmarc = deciding
            .and_then(|check| dmarc::outcome(check, &spf.domain, peer, disposition, &spf, &dkim));

        let mut header = ResultsHeader::new(&self.hostname);
        let mail_from_property = if mail_from.is_empty() {
            format!("postmaster@{helo}")
        } else {
            mail_from.to_string()
        };
        header.method(
            "spf",
            spf.result.as_str(),
            spf.reason.as_deref(),
            &[("smtp.mailfrom", &mail_from_property)],
        );
        header.method(
            "spf",
            spf_helo.result.as_str(),
            spf_helo.reason.as_deref(),
            &[("smtp.helo", helo)],
        );
        if dkim.is_empty() {
            header.method("dkim", "none", None, &[]);
        }
        for check in &dkim {
            header.method(
                "dkim",
                check.result.as_str(),
                check.reason.as_deref(),
                &[
                    ("header.d", &check.domain),
                    ("header.s", &check.selector),
                    ("header.a", &check.algorithm),
                    ("header.b", &check.signature_prefix),
                ],
            );
        }
        for check in &dmarc_checks {
            let comment = dmarc_comment(check, self.enforce);
            header.method(
                "dmarc",
                check.result.as_str(),
                comment.as_deref(),
                &[("header.from", &check.from_domain)],
            );
        }
        let (arc_result, arc_reason) = arc_result(arc.result());
        header.method(
            "arc",
            arc_result,
            arc_reason.as_deref(),
            &[("smtp.remote-ip", &peer.to_string())],
        );
        let header = header.finish();

        log_verdict(peer, &action, &spf, &dkim, &dmarc_checks);
        InboundVerdict {
            header,
            action,
            dmarc,
            spf,
            spf_helo,
            dkim,
        }
    }

    fn action_for(&self, check: &DmarcCheck) -> PolicyAction {
        if !self.enforce {
            return PolicyAction::Accept;
        }
        match (check.result, check.policy) {
            (DmarcResult::TempError, _) => PolicyAction::TempFail(format!(
                "DMARC of {} could not be checked (DNS), try again later",
                check.from_domain
            )),
            (DmarcResult::Fail, DmarcPolicy::Reject) => PolicyAction::Reject(format!(
                "message refused by the DMARC policy of {}",
                check.from_domain
            )),
            (DmarcResult::Fail, DmarcPolicy::Quarantine) => PolicyAction::Quarantine,
            _ => PolicyAction::Accept,
        }
    }
}

/// One line per message: at info for a verdict that changes what happens to the message
/// or is a DMARC failure, at debug for the rest (passes, and domains without a policy),
/// which are most mail and would make the log the busiest part of intake.
fn log_verdict(
    peer: IpAddr,
    action: &PolicyAction,
    spf: &SpfCheck,
    dkim: &[DkimCheck],
    dmarc_checks: &[DmarcCheck],
) {
    let noteworthy = *action != PolicyAction::Accept
        || dmarc_checks.iter().any(|check| {
            matches!(
                check.result,
                DmarcResult::Fail | DmarcResult::TempError | DmarcResult::PermError
            )
        });
    if !noteworthy && !tracing::enabled!(Level::DEBUG) {
        return;
    }
    let dmarc_summary: Vec<String> = dmarc_checks
        .iter()
        .map(|check| match &check.reason {
            Some(reason) => format!("{}:{} ({reason})", check.from_domain, check.result.as_str()),
            None => format!("{}:{}", check.from_domain, check.result.as_str()),
        })
        .collect();
    let dkim_summary: Vec<&str> = dkim.iter().map(|check| check.result.as_str()).collect();
    macro_rules! verdict {
        ($level:ident) => {
            $level!(
                %peer,
                spf = spf.result.as_str(),
                dkim = %dkim_summary.join(","),
                dmarc = %dmarc_summary.join(","),
                action = ?action,
                "mail authenticated"
            )
        };
    }
    if noteworthy {
        verdict!(info);
    } else {
        verdict!(debug);
    }
}

/// `p=reject dis=quarantine` (the policy, and what was done) or the error's reason.
fn dmarc_comment(check: &DmarcCheck, enforce: bool) -> Option<String> {
    let Some(published) = check.published.as_ref() else {
        return check.reason.clone();
    };
    let disposition = match (check.result, enforce) {
        (DmarcResult::Fail, true) => check.policy,
        _ => DmarcPolicy::None,
    };
    let mut comment = format!(
        "p={} sp={} dis={}",
        published.p.as_str(),
        published.sp.as_str(),
        disposition.as_str()
    );
    if published.testing {
        comment.push_str(" t=y");
    }
    if let Some(reason) = &check.reason {
        comment.push_str("; ");
        comment.push_str(reason);
    }
    Some(comment)
}

/// RFC 8617 §4.4 chain validation status; a DNS failure is reported as `fail` with why,
/// since ARC is informational here.
fn arc_result(result: &mail_auth::DkimResult) -> (&'static str, Option<String>) {
    match result {
        mail_auth::DkimResult::Pass => ("pass", None),
        mail_auth::DkimResult::None => ("none", None),
        mail_auth::DkimResult::Fail(error)
        | mail_auth::DkimResult::Neutral(error)
        | mail_auth::DkimResult::PermError(error)
        | mail_auth::DkimResult::TempError(error) => ("fail", Some(error.to_string())),
    }
}

#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod tests;
