//! The one TLS policy engine: for a destination domain it decides where mail goes (MX,
//! RFC 5321 §5.1, RFC 7505) and what TLS each connection must have, strongest that
//! applies first (issue: DANE, MTA-STS, REQUIRETLS, downgrade memory, overrides,
//! opportunistic), and it explains the decision in one line per delivery. After a session
//! it learns from what TLS showed (downgrade memory) and keeps it for TLS-RPT.
//!
//! CHANGES to the contract of 56d3413 (the queue worker codes against these):
//! - `HostPlan` has two more fields: `policy` (the policy that decided *this* host; the
//!   route's `policy` is the strongest of its hosts, hosts of one domain can differ, RFC
//!   7672 §2.2.1) and `report` (what TLS-RPT files this host's sessions under).
//! - `PolicyKind::as_str` names have no spaces (`mta-sts-enforce`, `mta-sts-testing`), so
//!   the `policy=` field of the delivery log line stays one token.
//! - `tls_required` means "no delivery without a completed TLS handshake". The handshake
//!   completing is the acceptance: the verifier fails it whenever the certificate does not
//!   satisfy the policy. The verdict is what the verifier found, for the log, downgrade
//!   memory and TLS-RPT; with TLSA records that are all unusable (RFC 7672 §2.2: TLS is
//!   mandatory, authentication impossible) the handshake succeeds and the verdict is
//!   `Failed { tlsa-invalid }`. Do not defer a completed handshake for its verdict.
//! - Session resumption is never offered: rustls resumes only with the verifier instance
//!   that verified the first session, and every connection has its own verifier (it
//!   holds that connection's verdict). `DomainOverride::no_session_tickets` is therefore
//!   always satisfied.
//! - Results for TLS-RPT are buffered (one store commit per second or 256 sessions):
//!   call [`PolicyEngine::flush`] at shutdown so the last second's are kept.
//! - `RouteRequest.domain` may be an address literal (`[192.0.2.1]`): one opportunistic
//!   host, no DNS.
//!
//! The engine: [`PolicyEngine::new`], [`PolicyEngine::route`], [`PolicyEngine::learn`],
//! [`PolicyEngine::explain`], [`PolicyEngine::flush`].

mod dane;
mod engine;
mod https_get;
mod memory;
mod mta_sts;
mod mx;
mod results;
#[cfg(test)]
mod test_dns;
#[cfg(test)]
mod test_https;
#[cfg(test)]
mod test_pki;
mod verifier;

use std::net::IpAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;

pub use engine::{PolicyEngine, RouteRequest};
pub use memory::TLS_SEEN_MEMO;
pub use mta_sts::{MTA_STS_MEMO, StsMode, StsPolicy, StsPolicyError};

/// Which policy decided a route, as logs, `queue list` and TLS-RPT name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// RFC 7672: DNSSEC-secure MX and address records with usable TLSA records.
    Dane,
    /// RFC 8461 `mode: enforce`.
    MtaStsEnforce,
    /// RFC 8461 `mode: testing`: deliver anyway, report failures.
    MtaStsTesting,
    /// The message carries REQUIRETLS (RFC 8689).
    RequireTls,
    /// The domain showed verified TLS before (downgrade memory).
    SeenBefore,
    /// `[delivery.domains]` in the config.
    Override,
    /// None applies: STARTTLS when offered, certificate checked and logged, not required.
    Opportunistic,
}

impl PolicyKind {
    /// The strongest first: when several apply to a host, the first of these decides.
    const PRECEDENCE: [PolicyKind; 7] = [
        PolicyKind::Dane,
        PolicyKind::MtaStsEnforce,
        PolicyKind::Override,
        PolicyKind::SeenBefore,
        PolicyKind::RequireTls,
        PolicyKind::MtaStsTesting,
        PolicyKind::Opportunistic,
    ];

    /// 0 for the strongest.
    fn rank(self) -> usize {
        Self::PRECEDENCE
            .iter()
            .position(|kind| *kind == self)
            .unwrap_or(Self::PRECEDENCE.len())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Dane => "dane",
            PolicyKind::MtaStsEnforce => "mta-sts-enforce",
            PolicyKind::MtaStsTesting => "mta-sts-testing",
            PolicyKind::RequireTls => "requiretls",
            PolicyKind::SeenBefore => "seen-before",
            PolicyKind::Override => "override",
            PolicyKind::Opportunistic => "opportunistic",
        }
    }
}

/// Where mail for one domain goes and how.
#[derive(Debug, Clone)]
pub struct Route {
    /// The recipient domain, lower-case.
    pub domain: String,
    pub policy: PolicyKind,
    /// Hosts to try, in order (MX preference; equal preferences shuffled).
    pub hosts: Vec<HostPlan>,
}

/// One host of a route: its addresses and the TLS a connection to it must have.
#[derive(Clone)]
pub struct HostPlan {
    /// The MX name (or the domain itself for the implicit MX); also the SNI sent.
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// TLS with a verified certificate is required; without it the attempt is deferred.
    pub tls_required: bool,
    /// How the certificate is judged: PKIX against the roots, DANE TLSA, a pin.
    pub verification: Arc<dyn HostVerifier>,
    /// The policy that decided this host's TLS.
    pub policy: PolicyKind,
    /// The policy TLS-RPT reports this host's sessions under.
    pub report: Arc<ReportPolicy>,
}

impl std::fmt::Debug for HostPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPlan")
            .field("name", &self.name)
            .field("addresses", &self.addresses)
            .field("tls_required", &self.tls_required)
            .field("verification", &self.verification.describe())
            .field("policy", &self.policy)
            .field("report", &self.report)
            .finish()
    }
}

/// A policy as a TLS-RPT report names it (RFC 8460 §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPolicy {
    /// `sts`, `tlsa` or `no-policy-found`.
    pub policy_type: &'static str,
    /// The MTA-STS policy's lines, or the TLSA records in presentation format.
    pub strings: Vec<String>,
    /// The domain announces an MTA-STS policy that could not be had: the RFC 8460 result
    /// type (`sts-policy-fetch-error`, `sts-policy-invalid`, `sts-webpki-invalid`) and
    /// why. Every session under it is reported as that failure.
    pub unavailable: Option<(&'static str, String)>,
}

impl ReportPolicy {
    pub fn no_policy() -> Self {
        Self {
            policy_type: "no-policy-found",
            strings: Vec::new(),
            unavailable: None,
        }
    }
}

/// Judges one connection's certificate. `connector` gives a fresh client config per
/// connection whose verifier fails the handshake only when TLS is required; it records
/// its verdict either way, for the log line, downgrade memory and TLS-RPT.
pub trait HostVerifier: Send + Sync {
    fn connector(&self) -> TlsConnector;
    /// How it verifies, for the log: `pkix`, `dane-ee`, `pinned spki`, ...
    fn describe(&self) -> String;
}

/// What one connection uses for its handshake.
pub struct TlsConnector {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    /// Filled by the verifier during the handshake.
    pub verdict: Arc<std::sync::OnceLock<Verification>>,
}

/// What certificate verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The certificate verified; `how` is e.g. `pkix`, `dane-ee 3 1 1`.
    Verified { how: String },
    /// It did not; `result_type` is the RFC 8460 §4.3 result type
    /// (`certificate-host-mismatch`, `certificate-expired`, `certificate-not-trusted`,
    /// `tlsa-invalid`, `validation-failure`), `detail` says why.
    Failed {
        result_type: &'static str,
        detail: String,
    },
}

/// Why a domain has no route now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Null MX (RFC 7505): the domain accepts no mail. Permanent (5.1.10).
    #[error("{0} accepts no mail (null MX)")]
    NullMx(String),
    /// The domain does not exist, or has neither MX nor address records. Permanent.
    #[error("{0}")]
    NoSuchDomain(String),
    /// DNS failed, a secure MX's TLSA lookup failed, an MTA-STS policy allows no MX, ...:
    /// try again later.
    #[error("{0}")]
    Temporary(String),
    /// REQUIRETLS cannot be met for this domain (no verifiable route). Permanent 5.7.30.
    #[error("{0}")]
    RequireTlsUnmet(String),
}

/// What TLS looked like on one session, reported back to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTls {
    /// The handshake completed; `verification` is the verifier's verdict.
    Tls {
        version: String,
        cipher: String,
        verification: Verification,
    },
    /// The server did not offer STARTTLS.
    NoStarttls,
    /// STARTTLS was offered but the handshake failed.
    HandshakeFailed {
        detail: String,
        verification: Option<Verification>,
    },
    /// Could not connect at all (no TLS outcome to learn from).
    Unreachable,
}
