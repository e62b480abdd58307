//! Mail authentication on port 25: a received message waiting for its verdict, and the
//! DMARC evaluation kept for the aggregate reports (RFC 9990) once the message is stored.

use sealpost_mailauth::DmarcOutcome;
use sealpost_mailauth::inbound::DmarcPolicy;
use sealpost_store::{
    DkimAuthResult, DmarcDisposition, DmarcEvaluationRecord, DmarcPolicyPublished, SpfAuthResult,
};
use time::OffsetDateTime;

use crate::envelope::Transaction;

/// A complete message on port 25, not yet stored: the verifier decides what happens.
#[derive(Debug)]
pub(crate) struct Received {
    pub transaction: Transaction,
    /// Exactly what the client sent.
    pub content: Vec<u8>,
    pub date: OffsetDateTime,
}

impl Received {
    /// The reverse-path, empty for `<>`.
    pub(crate) fn mail_from(&self) -> &str {
        self.transaction.sender()
    }
}

/// The store's form of a DMARC outcome.
pub(crate) fn evaluation_record(
    outcome: &DmarcOutcome,
    envelope_to: &str,
    evaluated_at: i64,
) -> DmarcEvaluationRecord {
    let policy = &outcome.policy;
    DmarcEvaluationRecord {
        evaluated_at,
        source_ip: outcome.source_ip,
        header_from: outcome.header_from.clone(),
        envelope_from: outcome.envelope_from.clone(),
        envelope_to: envelope_to.to_ascii_lowercase(),
        policy_domain: policy.domain.clone(),
        policy: DmarcPolicyPublished {
            p: disposition(policy.p),
            sp: Some(disposition(policy.sp)),
            np: Some(disposition(policy.np)),
            adkim_strict: policy.adkim_strict,
            aspf_strict: policy.aspf_strict,
            testing: policy.testing,
            fo: None,
        },
        disposition: disposition(outcome.disposition),
        dkim_aligned: outcome.dkim_aligned,
        spf_aligned: outcome.spf_aligned,
        dkim: outcome
            .dkim
            .iter()
            .filter(|check| !check.domain.is_empty())
            .map(|check| DkimAuthResult {
                domain: check.domain.clone(),
                selector: check.selector.clone(),
                result: check.result.as_str().to_string(),
            })
            .collect(),
        spf: Some(SpfAuthResult {
            domain: outcome.spf.domain.clone(),
            scope: "mfrom".to_string(),
            result: outcome.spf.result.as_str().to_string(),
        }),
        rua: policy
            .rua
            .iter()
            .map(|address| format!("mailto:{address}"))
            .collect(),
    }
}

fn disposition(policy: DmarcPolicy) -> DmarcDisposition {
    match policy {
        DmarcPolicy::None => DmarcDisposition::None,
        DmarcPolicy::Quarantine => DmarcDisposition::Quarantine,
        DmarcPolicy::Reject => DmarcDisposition::Reject,
    }
}
