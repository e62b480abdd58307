//! From what the probes found to a grade. Each finding caps the grade (a server with TLS
//! 1.0 cannot be better than B, whatever else it does well); the endpoint's grade is the
//! lowest cap, A+ when nothing caps it. The caps are the table in the crate README.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::handshake::AlpnHandling;
use crate::report::{EndpointReport, LoginOutcome};
use crate::suites::Weakness;

/// A+ (best) to F.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grade {
    F,
    E,
    D,
    C,
    B,
    AMinus,
    A,
    APlus,
}

impl Grade {
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::APlus => "A+",
            Grade::A => "A",
            Grade::AMinus => "A-",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
            Grade::E => "E",
            Grade::F => "F",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grade {
    type Err = String;

    fn from_str(s: &str) -> Result<Grade, String> {
        [
            Grade::APlus,
            Grade::A,
            Grade::AMinus,
            Grade::B,
            Grade::C,
            Grade::D,
            Grade::E,
            Grade::F,
        ]
        .into_iter()
        .find(|g| g.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("{s:?} is not a grade: use A+, A, A-, B, C, D, E or F"))
    }
}

impl Serialize for Grade {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One reason for (or note about) a grade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `tls10`, `cert_expired` (README: "Findings").
    pub id: &'static str,
    /// The best grade an endpoint with this finding can get; A+ for notes that cost
    /// nothing.
    pub cap: Grade,
    pub message: String,
}

impl Finding {
    fn new(id: &'static str, cap: Grade, message: impl Into<String>) -> Finding {
        Finding {
            id,
            cap,
            message: message.into(),
        }
    }

    pub fn costs_points(&self) -> bool {
        self.cap < Grade::APlus
    }
}

/// The findings for one endpoint, worst first.
pub fn assess(report: &EndpointReport) -> Vec<Finding> {
    let mut out = Vec::new();
    if report.address.is_none() {
        out.push(Finding::new(
            "unreachable",
            Grade::F,
            format!(
                "no usable connection: {}",
                report
                    .errors
                    .first()
                    .map_or("unknown error", |e| e.error.as_str())
            ),
        ));
        return out;
    }
    plaintext_findings(report, &mut out);
    version_findings(report, &mut out);
    suite_findings(report, &mut out);
    certificate_findings(report, &mut out);
    match report.alpn_foreign {
        Some(AlpnHandling::Accepted) => out.push(Finding::new(
            "alpn_foreign_accepted",
            Grade::B,
            "selects a foreign ALPN protocol (http/1.1): cross-protocol attacks (ALPACA) can \
             redirect a browser's TLS session here",
        )),
        Some(AlpnHandling::Ignored) => out.push(Finding::new(
            "alpn_ignored",
            Grade::A,
            "ignores ALPN: a foreign protocol id (http/1.1) is not refused with \
             no_application_protocol (ALPACA mitigation, RFC 7301 §3.2)",
        )),
        Some(AlpnHandling::Refused) | None => {}
    }
    if let Some(tickets) = report.tls13_tickets.filter(|n| *n > 0) {
        out.push(Finding::new(
            "tls13_tickets",
            Grade::APlus,
            format!("issues TLS 1.3 session tickets ({tickets} per handshake)"),
        ));
    }
    let has_pq = report
        .groups
        .iter()
        .any(|g| g.accepted == Some(true) && g.name.contains("MLKEM"));
    if !has_pq && report.groups.iter().any(|g| g.accepted == Some(true)) {
        out.push(Finding::new(
            "no_post_quantum_group",
            Grade::APlus,
            "no hybrid post-quantum key exchange (X25519MLKEM768)",
        ));
    }
    out.sort_by_key(|f| f.cap);
    out
}

/// The grade the findings allow.
pub fn grade_of(findings: &[Finding]) -> Grade {
    findings.iter().map(|f| f.cap).min().unwrap_or(Grade::APlus)
}

fn plaintext_findings(report: &EndpointReport, out: &mut Vec<Finding>) {
    let Some(plain) = &report.plaintext else {
        return;
    };
    if !plain.starttls_offered {
        out.push(Finding::new(
            "starttls_not_offered",
            Grade::F,
            "STARTTLS is not offered: everything travels in plaintext",
        ));
    }
    if let Some(login) = &plain.plaintext_login
        && login.outcome == LoginOutcome::Evaluated
    {
        out.push(Finding::new(
            "plaintext_login",
            Grade::F,
            format!(
                "checks passwords sent before TLS (reply: {}): STARTTLS is not required",
                login.reply
            ),
        ));
    }
    if !plain.auth_before_tls.is_empty() {
        out.push(Finding::new(
            "auth_before_tls",
            Grade::C,
            format!(
                "offers authentication before TLS ({})",
                plain.auth_before_tls.join(", ")
            ),
        ));
    }
    if plain.command_injection == Some(true) {
        out.push(Finding::new(
            "starttls_command_injection",
            Grade::F,
            "answers a command pipelined after STARTTLS inside TLS (CVE-2011-0411): \
             a man in the middle can inject commands into the encrypted session",
        ));
    }
    if plain.response_injection == Some(true) {
        out.push(Finding::new(
            "starttls_response_injection",
            Grade::C,
            "sends plaintext after its STARTTLS reply, before the handshake \
             (a vulnerable client would take it as part of the TLS session)",
        ));
    }
}

fn version_findings(report: &EndpointReport, out: &mut Vec<Finding>) {
    let accepted = |name: &str| {
        report
            .versions
            .iter()
            .find(|v| v.version == name)
            .and_then(|v| v.accepted)
    };
    let any_tls = report.versions.iter().any(|v| v.accepted == Some(true));
    let all_known = report.versions.iter().all(|v| v.accepted.is_some());
    if !any_tls {
        if report.plaintext.as_ref().is_none_or(|p| p.starttls_offered) {
            out.push(Finding::new(
                "no_tls",
                Grade::F,
                "no TLS handshake succeeded with any protocol version",
            ));
        }
        return;
    }
    if accepted("SSLv3") == Some(true) {
        out.push(Finding::new(
            "sslv3",
            Grade::F,
            "accepts SSLv3 (POODLE; prohibited by RFC 7568)",
        ));
    }
    let old: Vec<&str> = ["TLSv1.0", "TLSv1.1"]
        .into_iter()
        .filter(|v| accepted(v) == Some(true))
        .collect();
    if !old.is_empty() {
        out.push(Finding::new(
            if old.len() == 2 {
                "tls10_tls11"
            } else if old[0] == "TLSv1.0" {
                "tls10"
            } else {
                "tls11"
            },
            Grade::B,
            format!("accepts {} (deprecated by RFC 8996)", old.join(" and ")),
        ));
    }
    if accepted("TLSv1.2") == Some(false) && accepted("TLSv1.3") == Some(false) {
        out.push(Finding::new(
            "no_tls12",
            Grade::C,
            "supports neither TLS 1.2 nor TLS 1.3",
        ));
    } else if accepted("TLSv1.3") == Some(false) {
        out.push(Finding::new(
            "no_tls13",
            Grade::A,
            "does not support TLS 1.3",
        ));
    }
    if !all_known {
        out.push(Finding::new(
            "incomplete_probe",
            Grade::APlus,
            "some protocol versions could not be tested (see errors)",
        ));
    }
}

fn suite_findings(report: &EndpointReport, out: &mut Vec<Finding>) {
    let Some(suites) = &report.cipher_suites else {
        return;
    };
    let with = |w: Weakness| -> Vec<&str> {
        suites
            .suites
            .iter()
            .filter(|s| s.weaknesses.contains(&w))
            .map(|s| s.name.as_str())
            .collect()
    };
    let rules: [(Weakness, &'static str, Grade, &str); 8] = [
        (
            Weakness::NullCipher,
            "suite_null",
            Grade::F,
            "no encryption",
        ),
        (
            Weakness::Export,
            "suite_export",
            Grade::F,
            "export-grade (FREAK, Logjam)",
        ),
        (
            Weakness::Anonymous,
            "suite_anonymous",
            Grade::F,
            "anonymous, unauthenticated",
        ),
        (
            Weakness::BrokenCipher,
            "suite_broken_cipher",
            Grade::F,
            "DES or RC2",
        ),
        (Weakness::Rc4, "suite_rc4", Grade::C, "RC4 (RFC 7465)"),
        (
            Weakness::TripleDes,
            "suite_3des",
            Grade::C,
            "3DES (Sweet32)",
        ),
        (
            Weakness::NoForwardSecrecy,
            "no_forward_secrecy",
            Grade::B,
            "without forward secrecy (static RSA/DH key exchange)",
        ),
        (
            Weakness::Cbc,
            "suite_cbc",
            Grade::A,
            "CBC mode (Lucky13 family)",
        ),
    ];
    for (weakness, id, cap, what) in rules {
        let names = with(weakness);
        if !names.is_empty() {
            out.push(Finding::new(
                id,
                cap,
                format!(
                    "accepts {what} cipher suites at {}: {}",
                    suites.version,
                    list(&names)
                ),
            ));
        }
    }
    let weak_accepted = suites.suites.iter().any(|s| !s.weaknesses.is_empty());
    if suites.server_preference == Some(false) && weak_accepted {
        out.push(Finding::new(
            "client_preference",
            Grade::APlus,
            "follows the client's cipher suite order, so a client may pick a weak suite",
        ));
    }
}

fn certificate_findings(report: &EndpointReport, out: &mut Vec<Finding>) {
    let Some(cert) = &report.certificate else {
        return;
    };
    if cert.expired {
        out.push(Finding::new(
            "cert_expired",
            Grade::F,
            format!(
                "the certificate expired {} days ago ({})",
                -cert.days_to_expiry,
                cert.chain.first().map_or("", |c| c.not_after.as_str())
            ),
        ));
    } else if cert.not_yet_valid {
        out.push(Finding::new(
            "cert_not_yet_valid",
            Grade::F,
            "the certificate is not valid yet",
        ));
    } else if cert.days_to_expiry < 14 {
        out.push(Finding::new(
            "cert_expires_soon",
            Grade::B,
            format!("the certificate expires in {} days", cert.days_to_expiry),
        ));
    } else if cert.days_to_expiry < 30 {
        out.push(Finding::new(
            "cert_expires_soon",
            Grade::AMinus,
            format!("the certificate expires in {} days", cert.days_to_expiry),
        ));
    }
    if !cert.chain_complete {
        out.push(Finding::new(
            "cert_chain_incomplete",
            Grade::C,
            cert.trust_error
                .clone()
                .unwrap_or_else(|| "incomplete chain".into()),
        ));
    } else if !cert.trusted && !cert.expired && !cert.not_yet_valid {
        out.push(Finding::new(
            "cert_untrusted",
            Grade::C,
            format!(
                "not trusted: {}",
                cert.trust_error
                    .as_deref()
                    .unwrap_or("no path to a trust anchor")
            ),
        ));
    }
    if !cert.name_matches {
        out.push(Finding::new(
            "cert_name_mismatch",
            Grade::C,
            format!(
                "the certificate is not valid for {} (subject {})",
                cert.checked_name,
                cert.chain.first().map_or("", |c| c.subject.as_str())
            ),
        ));
    }
    let weak_key = match cert.key_type.as_str() {
        "RSA" | "DSA" => cert.key_bits < 2048,
        t if t.starts_with("EC") => cert.key_bits < 256,
        _ => false,
    };
    if weak_key {
        out.push(Finding::new(
            "cert_weak_key",
            Grade::F,
            format!("a {} key of {} bits", cert.key_type, cert.key_bits),
        ));
    }
    if cert.weak_signature {
        out.push(Finding::new(
            "cert_weak_signature",
            Grade::C,
            "a certificate in the chain is signed with SHA-1 or MD5",
        ));
    }
    if !cert.chain_in_order {
        out.push(Finding::new(
            "cert_chain_order",
            Grade::AMinus,
            "the chain is not in order (each certificate followed by its issuer)",
        ));
    }
    if cert.sends_root {
        out.push(Finding::new(
            "cert_sends_root",
            Grade::APlus,
            "the chain includes a self-signed root (needless bytes)",
        ));
    }
    if !cert.ocsp_stapled {
        out.push(Finding::new(
            "ocsp_not_stapled",
            Grade::APlus,
            "no OCSP response stapled",
        ));
    }
}

fn list(names: &[&str]) -> String {
    const SHOWN: usize = 4;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{} and {} more",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        EndpointReport, LoginResult, PlaintextReport, SuiteReport, SuiteResult, VersionResult,
    };
    use crate::target::{Endpoint, Service};

    fn good() -> EndpointReport {
        let mut r = EndpointReport::new(&Endpoint {
            service: Service::Submissions,
            host: "mx.example.org".into(),
            port: 465,
        });
        r.address = Some("192.0.2.1:465".into());
        r.versions = ["SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
            .iter()
            .map(|v| VersionResult {
                version: v.to_string(),
                accepted: Some(v.starts_with("TLSv1.2") || v.starts_with("TLSv1.3")),
                detail: String::new(),
            })
            .collect();
        r.cipher_suites = Some(SuiteReport::new(
            "TLSv1.2",
            &[0xc02b, 0xc02c],
            Some(vec![0xc02b, 0xc02c]),
        ));
        r.alpn_foreign = Some(AlpnHandling::Refused);
        r
    }

    fn grade(r: &EndpointReport) -> (Grade, Vec<&'static str>) {
        let findings = assess(r);
        (
            grade_of(&findings),
            findings
                .iter()
                .filter(|f| f.costs_points())
                .map(|f| f.id)
                .collect(),
        )
    }

    #[test]
    fn a_modern_server_gets_a_plus() {
        assert_eq!(grade(&good()), (Grade::APlus, vec![]));
    }

    #[test]
    fn grades_order_and_parse() {
        assert!(Grade::APlus > Grade::A && Grade::A > Grade::AMinus && Grade::B > Grade::F);
        assert_eq!("a+".parse::<Grade>().unwrap(), Grade::APlus);
        assert_eq!("A-".parse::<Grade>().unwrap(), Grade::AMinus);
        assert!("G".parse::<Grade>().is_err());
        assert_eq!(serde_json::to_string(&Grade::APlus).unwrap(), "\"A+\"");
    }

    #[test]
    fn tls10_with_a_non_forward_secret_suite_is_c() {
        let mut r = good();
        for v in &mut r.versions {
            v.accepted = Some(v.version == "TLSv1.0");
        }
        r.cipher_suites = Some(SuiteReport::new("TLSv1.0", &[0x002f], Some(vec![0x002f])));
        let (g, ids) = grade(&r);
        assert_eq!(g, Grade::C);
        assert_eq!(
            ids,
            ["no_tls12", "tls10", "no_forward_secrecy", "suite_cbc"]
        );
    }

    #[test]
    fn injection_and_plaintext_login_are_f() {
        let mut r = good();
        r.plaintext = Some(PlaintextReport {
            starttls_offered: true,
            auth_before_tls: vec!["PLAIN".into()],
            plaintext_login: Some(LoginResult {
                outcome: LoginOutcome::Evaluated,
                reply: "535 no".into(),
            }),
            command_injection: Some(true),
            response_injection: Some(false),
        });
        let (g, ids) = grade(&r);
        assert_eq!(g, Grade::F);
        assert_eq!(
            ids,
            [
                "plaintext_login",
                "starttls_command_injection",
                "auth_before_tls"
            ]
        );
    }

    #[test]
    fn weak_suites_are_named_with_their_cap() {
        let mut r = good();
        r.cipher_suites = Some(SuiteReport {
            version: "TLSv1.2".into(),
            suites: [0xc02f, 0x000a, 0x0005]
                .iter()
                .map(|id| SuiteResult::new(*id))
                .collect(),
            server_preference: Some(false),
            server_order: Vec::new(),
        });
        let findings = assess(&r);
        assert_eq!(grade_of(&findings), Grade::C);
        let rc4 = findings.iter().find(|f| f.id == "suite_rc4").unwrap();
        assert!(
            rc4.message.contains("TLS_RSA_WITH_RC4_128_SHA"),
            "{}",
            rc4.message
        );
        assert!(
            findings
                .iter()
                .any(|f| f.id == "client_preference" && !f.costs_points())
        );
    }

    #[test]
    fn alpn_and_tls13_cost_the_plus() {
        let mut r = good();
        r.alpn_foreign = Some(AlpnHandling::Ignored);
        assert_eq!(grade(&r), (Grade::A, vec!["alpn_ignored"]));
        r.alpn_foreign = Some(AlpnHandling::Accepted);
        assert_eq!(grade(&r).0, Grade::B);
    }

    #[test]
    fn an_unreachable_endpoint_is_f() {
        let mut r = good();
        r.address = None;
        assert_eq!(grade(&r), (Grade::F, vec!["unreachable"]));
    }
}
