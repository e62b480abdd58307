//! What `sealpost check` found, as data: the `--json` output is exactly these types
//! serialized (the schema is in the crate README).

use serde::Serialize;

use crate::certificate::CertificateReport;
use crate::domain::DomainReport;
use crate::grade::{Finding, Grade};
use crate::handshake::AlpnHandling;
use crate::suites::{Weakness, suite_name, weaknesses};
use crate::target::{Endpoint, Service};

/// Bumped when a field changes meaning or disappears (new fields do not bump it).
pub const SCHEMA_VERSION: u32 = 1;

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub endpoints: Vec<EndpointReport>,
    pub domains: Vec<DomainReport>,
    pub elapsed_ms: u64,
}

impl Report {
    /// Every graded thing and its grade: endpoints by URL, domains by name.
    pub fn grades(&self) -> impl Iterator<Item = (&str, Grade)> {
        self.endpoints
            .iter()
            .map(|e| (e.target.as_str(), e.grade))
            .chain(self.domains.iter().map(|d| (d.domain.as_str(), d.grade)))
    }
}

/// Everything found about one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    /// `smtp://host:port`.
    pub target: String,
    pub service: Service,
    pub host: String,
    pub port: u16,
    /// The address probed (`ip:port`); null when the host could not be reached.
    pub address: Option<String>,
    pub grade: Grade,
    /// Worst first; those with `cap` below A+ are the reasons for the grade.
    pub findings: Vec<Finding>,
    /// Plaintext-port behaviour; null for implicit-TLS ports.
    pub plaintext: Option<PlaintextReport>,
    /// What a modern client (rustls, TLS 1.3/1.2) negotiated.
    pub negotiated: Option<Negotiated>,
    /// One entry per version, SSLv3 to TLSv1.3.
    pub versions: Vec<VersionResult>,
    /// Suites accepted at the highest version up to TLS 1.2.
    pub cipher_suites: Option<SuiteReport>,
    /// TLS 1.3 suites accepted (IANA names).
    pub tls13_cipher_suites: Vec<String>,
    pub groups: Vec<GroupResult>,
    pub certificate: Option<CertificateReport>,
    /// How an ALPN offer of only `http/1.1` is treated: refused, ignored or accepted.
    pub alpn_foreign: Option<AlpnHandling>,
    /// NewSessionTicket messages received in one TLS 1.3 session.
    pub tls13_tickets: Option<u32>,
    /// SASL mechanisms offered once TLS is up.
    pub auth_after_tls: Option<Vec<String>>,
    /// Probes that failed, and why.
    pub errors: Vec<ProbeFailure>,
    pub elapsed_ms: u64,
}

impl EndpointReport {
    pub fn new(endpoint: &Endpoint) -> EndpointReport {
        EndpointReport {
            target: endpoint.to_string(),
            service: endpoint.service,
            host: endpoint.host.clone(),
            port: endpoint.port,
            address: None,
            grade: Grade::F,
            findings: Vec::new(),
            plaintext: None,
            negotiated: None,
            versions: Vec::new(),
            cipher_suites: None,
            tls13_cipher_suites: Vec::new(),
            groups: Vec::new(),
            certificate: None,
            alpn_foreign: None,
            tls13_tickets: None,
            auth_after_tls: None,
            errors: Vec::new(),
            elapsed_ms: 0,
        }
    }

    /// Records a failed probe once per distinct error.
    pub(crate) fn failed(&mut self, probe: &str, error: &crate::ProbeError) {
        let error = error.to_string();
        if let Some(same) = self.errors.iter_mut().find(|e| e.error == error) {
            if !same.probes.iter().any(|p| p == probe) {
                same.probes.push(probe.to_string());
            }
        } else {
            self.errors.push(ProbeFailure {
                probes: vec![probe.to_string()],
                error,
            });
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeFailure {
    /// The probes that failed this way, e.g. `["TLSv1.0", "groups"]`.
    pub probes: Vec<String>,
    pub error: String,
}

/// Before TLS, on STARTTLS ports.
#[derive(Debug, Clone, Serialize)]
pub struct PlaintextReport {
    pub starttls_offered: bool,
    /// Authentication offered before TLS: SASL mechanisms, plus `LOGIN` (IMAP) or `USER`
    /// (POP3) when password login is not disabled.
    pub auth_before_tls: Vec<String>,
    /// The result of trying fake credentials before TLS (null: not tried, as on port 25
    /// without AUTH).
    pub plaintext_login: Option<LoginResult>,
    /// CVE-2011-0411: a command pipelined after STARTTLS answered inside TLS.
    pub command_injection: Option<bool>,
    /// Plaintext sent by the server after its STARTTLS reply.
    pub response_injection: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginResult {
    pub outcome: LoginOutcome,
    /// The server's reply, for the reader.
    pub reply: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginOutcome {
    /// Refused without looking at the credentials (e.g. 538, PRIVACYREQUIRED).
    Refused,
    /// The credentials were checked: a real password would have been exposed.
    Evaluated,
}

#[derive(Debug, Clone, Serialize)]
pub struct Negotiated {
    pub version: String,
    pub cipher_suite: String,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionResult {
    /// `SSLv3`, `TLSv1.0`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`.
    pub version: String,
    /// null when the probe failed.
    pub accepted: Option<bool>,
    /// The suite chosen, or how the server refused.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// The version the suites were enumerated at.
    pub version: String,
    pub suites: Vec<SuiteResult>,
    /// True when the server picks by its own order, false when it follows the client's,
    /// null when it could not be told.
    pub server_preference: Option<bool>,
    /// The server's order (names) when it has one.
    pub server_order: Vec<String>,
}

impl SuiteReport {
    pub(crate) fn new(version: &str, accepted: &[u16], order: Option<Vec<u16>>) -> SuiteReport {
        let ordered: Vec<u16> = match &order {
            Some(order) if order.len() == accepted.len() => order.clone(),
            _ => accepted.to_vec(),
        };
        SuiteReport {
            version: version.to_string(),
            suites: ordered.iter().map(|id| SuiteResult::new(*id)).collect(),
            server_preference: match &order {
                Some(_) if accepted.len() < 2 => None,
                Some(_) => Some(true),
                None => Some(false),
            },
            server_order: order
                .unwrap_or_default()
                .iter()
                .map(|id| suite_name(*id))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    /// `0xC02F`.
    pub id: String,
    pub name: String,
    pub weaknesses: Vec<Weakness>,
}

impl SuiteResult {
    pub(crate) fn new(id: u16) -> SuiteResult {
        SuiteResult {
            id: format!("0x{id:04X}"),
            name: suite_name(id),
            weaknesses: weaknesses(id),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupResult {
    /// `X25519MLKEM768`, `X25519`, `secp256r1` ...
    pub name: String,
    pub accepted: Option<bool>,
}
