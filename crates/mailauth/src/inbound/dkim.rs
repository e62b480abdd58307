//! DKIM (RFC 6376) verification of every signature, on mail-auth, with our acceptance
//! rules on top:
//!
//! - `rsa-sha1` is never valid (RFC 8301 §3.1): a signature that verifies with it is
//!   reported as `fail`.
//! - `l=` (RFC 6376 §8.2): a signature whose body length covers less than the whole
//!   canonicalized body leaves the rest unsigned, where anyone may have appended content.
//!   It is reported as `policy` and does not count for DMARC. One whose `l=` covers the
//!   whole body is an ordinary signature.
//! - A body hash that does not match is `fail` (RFC 6376 §6.1.3, "body hash did not
//!   verify"); mail-auth calls it neutral.

use mail_auth::common::crypto::Algorithm;
use mail_auth::common::headers::Writer;
use mail_auth::dkim::{DkimError, Signature};
use mail_auth::{AuthenticatedMessage, DkimOutput, Error, MessageAuthenticator, Parameters};

use super::cache::TxtCache;

/// The DKIM results of RFC 8601 §2.7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimResult {
    Pass,
    Fail,
    /// Verified, but not acceptable here (`l=` short of the body).
    Policy,
    /// Could not be processed (syntax errors and the like).
    Neutral,
    TempError,
    PermError,
}

impl DkimResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimResult::Pass => "pass",
            DkimResult::Fail => "fail",
            DkimResult::Policy => "policy",
            DkimResult::Neutral => "neutral",
            DkimResult::TempError => "temperror",
            DkimResult::PermError => "permerror",
        }
    }
}

/// One signature's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimCheck {
    pub result: DkimResult,
    /// `d=`; empty when the signature could not be parsed.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// `a=`, e.g. `ed25519-sha256`.
    pub algorithm: String,
    /// The first characters of `b=` in base64, to tell signatures apart (RFC 6008).
    pub signature_prefix: String,
    pub reason: Option<String>,
}

/// Verifies every signature. Returns our verdicts and, for DMARC, mail-auth's outputs
/// with our rules applied (only our passes stay passes).
pub(crate) async fn verify<'x>(
    authenticator: &MessageAuthenticator,
    keys: &'x TxtCache,
    message: &'x AuthenticatedMessage<'x>,
) -> (Vec<DkimCheck>, Vec<DkimOutput<'x>>) {
    let outputs = authenticator
        .verify_dkim(Parameters::new(message).with_txt_cache(keys))
        .await;
    let mut checks = Vec::with_capacity(outputs.len());
    let mut for_dmarc = Vec::with_capacity(outputs.len());
    for output in outputs {
        let check = judge(&output, message);
        // Only passes and temporary errors matter to DMARC; anything we refuse must not
        // pass there either.
        let output = match check.result {
            DkimResult::Pass | DkimResult::TempError => output,
            _ => DkimOutput::fail(Error::NotAligned),
        };
        checks.push(check);
        for_dmarc.push(output);
    }
    (checks, for_dmarc)
}

fn judge(output: &DkimOutput<'_>, message: &AuthenticatedMessage<'_>) -> DkimCheck {
    let signature = output.signature();
    let (result, reason) = match output.result() {
        mail_auth::DkimResult::Pass => match signature {
            Some(signature) if signature.a == Algorithm::RsaSha1 => (
                DkimResult::Fail,
                Some("rsa-sha1 is not accepted (RFC 8301)".to_string()),
            ),
            Some(signature)
                if signature.l > 0 && signature.l < canonical_body_len(signature, message) =>
            {
                (
                    DkimResult::Policy,
                    Some(format!(
                        "l={} leaves part of the body unsigned",
                        signature.l
                    )),
                )
            }
            _ => (DkimResult::Pass, None),
        },
        mail_auth::DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)) => (
            DkimResult::Fail,
            Some("body hash did not verify".to_string()),
        ),
        mail_auth::DkimResult::Neutral(error) => (DkimResult::Neutral, Some(error.to_string())),
        mail_auth::DkimResult::Fail(error) => (DkimResult::Fail, Some(error.to_string())),
        mail_auth::DkimResult::PermError(error) => (DkimResult::PermError, Some(error.to_string())),
        mail_auth::DkimResult::TempError(error) => (DkimResult::TempError, Some(error.to_string())),
        mail_auth::DkimResult::None => (DkimResult::Neutral, None),
    };
    let (domain, selector, algorithm, signature_prefix) = match signature {
        Some(signature) => (
            signature.d.to_ascii_lowercase(),
            signature.s.clone(),
            algorithm_name(signature.a).to_string(),
            signature_prefix(&signature.b),
        ),
        None => Default::default(),
    };
    DkimCheck {
        result,
        domain,
        selector,
        algorithm,
        signature_prefix,
        reason,
    }
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RsaSha1 => "rsa-sha1",
        Algorithm::RsaSha256 => "rsa-sha256",
        Algorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}

/// Eight base64 characters of `b=` (RFC 6008 §4: enough to tell signatures apart).
fn signature_prefix(b: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&b[..b.len().min(6)]);
    encoded.chars().take(8).collect()
}

/// The length of the whole body in the signature's body canonicalization.
fn canonical_body_len(signature: &Signature, message: &AuthenticatedMessage<'_>) -> u64 {
    struct Count(u64);
    impl Writer for Count {
        fn write(&mut self, buf: &[u8]) {
            self.0 += buf.len() as u64;
        }
    }
    let mut count = Count(0);
    mail_auth::common::headers::Writable::write(
        signature.cb.canonical_body(message.raw_body(), 0),
        &mut count,
    );
    count.0
}

#[cfg(test)]
mod tests;
