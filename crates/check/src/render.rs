//! The report for a person: one block per endpoint, grade first, then a line per aspect,
//! then the reasons that cost points. Colour only when asked (a terminal).

use std::fmt::Write;

use crate::domain::DomainReport;
use crate::grade::{Finding, Grade};
use crate::handshake::AlpnHandling;
use crate::report::{EndpointReport, LoginOutcome, Report};

/// Renders the whole report; `colour` adds ANSI colours.
pub fn render(report: &Report, colour: bool) -> String {
    let paint = Paint { colour };
    let mut out = String::new();
    for domain in &report.domains {
        render_domain(&mut out, domain, paint);
        out.push('\n');
    }
    for endpoint in &report.endpoints {
        render_endpoint(&mut out, endpoint, paint);
        out.push('\n');
    }
    if report.endpoints.len() + report.domains.len() > 1 {
        let _ = writeln!(out, "{}", paint.bold("summary"));
        let rows: Vec<(&str, Grade, &[Finding])> = report
            .domains
            .iter()
            .map(|d| (d.domain.as_str(), d.grade, d.findings.as_slice()))
            .chain(
                report
                    .endpoints
                    .iter()
                    .map(|e| (e.target.as_str(), e.grade, e.findings.as_slice())),
            )
            .collect();
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (name, grade, findings) in rows {
            let reasons: Vec<&str> = findings
                .iter()
                .filter(|f| f.costs_points())
                .map(|f| f.id)
                .collect();
            let _ = writeln!(
                out,
                "  {:width$}  {}  {}",
                name,
                paint.grade(grade),
                reasons.join(" ")
            );
        }
    }
    let _ = writeln!(out, "checked in {:.1} s", report.elapsed_ms as f64 / 1000.0);
    out
}

fn render_domain(out: &mut String, d: &DomainReport, paint: Paint) {
    let _ = writeln!(out, "{}  {}", paint.bold(&d.domain), paint.grade(d.grade));
    let line = |out: &mut String, label: &str, text: String| {
        let _ = writeln!(out, "  {label:<15} {text}");
    };
    let mx: Vec<String> =
        d.mx.iter()
            .map(|m| format!("{} {}", m.preference, m.host))
            .collect();
    line(out, "MX", mx.join(", "));
    line(
        out,
        "MTA-STS",
        match &d.mta_sts {
            None => "none".into(),
            Some(sts) => match (&sts.policy, &sts.error) {
                (Some(p), _) => format!(
                    "mode {}, max_age {}, mx {}",
                    p.mode,
                    p.max_age,
                    p.mx.join(" ")
                ),
                (None, Some(e)) => paint.bad(e),
                (None, None) => sts.record.clone(),
            },
        },
    );
    for t in &d.tlsa {
        line(
            out,
            "TLSA",
            format!(
                "{}: {} (DNSSEC {}, {})",
                t.mx,
                t.records.join("; "),
                t.dnssec,
                match t.matches {
                    Some(true) => "matches",
                    Some(false) => "does NOT match",
                    None => "not compared",
                }
            ),
        );
    }
    line(
        out,
        "TLS-RPT",
        d.tls_rpt.clone().unwrap_or_else(|| "none".into()),
    );
    line(
        out,
        "SPF",
        match &d.spf.record {
            Some(record) => format!(
                "{record} ({} lookups, {} void)",
                d.spf.lookups, d.spf.void_lookups
            ),
            None => "none".into(),
        },
    );
    line(
        out,
        "DMARC",
        match (&d.dmarc.record, &d.dmarc.found_at) {
            (Some(record), Some(at)) => format!("{record} (at _dmarc.{at})"),
            _ => "none".into(),
        },
    );
    for k in &d.dkim {
        line(
            out,
            &format!("DKIM {}", k.selector),
            match (&k.key_type, k.key_bits, &k.error) {
                (_, _, Some(e)) => paint.bad(e),
                (Some(t), Some(bits), None) => format!("{t} {bits} bits"),
                (Some(t), None, None) => t.clone(),
                _ => "?".into(),
            },
        );
    }
    for f in d.findings.iter().filter(|f| f.costs_points()) {
        let _ = writeln!(out, "  {} {}", paint.grade_tag(f.cap), f.message);
    }
    for f in d.findings.iter().filter(|f| !f.costs_points()) {
        let _ = writeln!(out, "  note {}", f.message);
    }
    for e in &d.errors {
        let _ = writeln!(out, "  error {e}");
    }
}

fn render_endpoint(out: &mut String, e: &EndpointReport, paint: Paint) {
    let _ = writeln!(
        out,
        "{}  {}  ({}, {:.1} s)",
        paint.bold(&e.target),
        paint.grade(e.grade),
        e.address.as_deref().unwrap_or("unreachable"),
        e.elapsed_ms as f64 / 1000.0
    );
    let line = |out: &mut String, label: &str, text: String| {
        let _ = writeln!(out, "  {label:<15} {text}");
    };
    if let Some(p) = &e.plaintext {
        let mut parts = vec![if p.starttls_offered {
            "offered".to_string()
        } else {
            paint.bad("NOT offered")
        }];
        if p.auth_before_tls.is_empty() {
            parts.push("no authentication before TLS".into());
        } else {
            parts.push(paint.bad(&format!(
                "authentication before TLS: {}",
                p.auth_before_tls.join(" ")
            )));
        }
        if let Some(login) = &p.plaintext_login {
            parts.push(match login.outcome {
                LoginOutcome::Refused => format!("plaintext login refused ({})", login.reply),
                LoginOutcome::Evaluated => {
                    paint.bad(&format!("plaintext login CHECKED ({})", login.reply))
                }
            });
        }
        match p.command_injection {
            Some(true) => parts.push(paint.bad("command injection (CVE-2011-0411)")),
            Some(false) => parts.push("no command injection".into()),
            None => {}
        }
        if p.response_injection == Some(true) {
            parts.push(paint.bad("response injection"));
        }
        line(out, "STARTTLS", parts.join("; "));
    }
    if !e.versions.is_empty() {
        let versions: Vec<String> = e
            .versions
            .iter()
            .rev()
            .map(|v| {
                let modern = v.version == "TLSv1.3" || v.version == "TLSv1.2";
                match (v.accepted, modern) {
                    (Some(true), true) => paint.good(&format!("{} yes", v.version)),
                    (Some(true), false) => paint.bad(&format!("{} yes", v.version)),
                    (Some(false), _) => format!("{} no", v.version),
                    (None, _) => format!("{} ?", v.version),
                }
            })
            .collect();
        line(out, "versions", versions.join("  "));
    }
    if let Some(n) = &e.negotiated {
        line(
            out,
            "negotiated",
            format!(
                "{} {} {}",
                n.version,
                n.cipher_suite,
                n.group.as_deref().unwrap_or("")
            ),
        );
    }
    if let Some(s) = &e.cipher_suites {
        let order = match s.server_preference {
            _ if s.suites.len() == 1 => "one suite",
            Some(true) => "server order",
            Some(false) => "client order",
            None => "order unknown",
        };
        let names: Vec<String> = s
            .suites
            .iter()
            .map(|suite| {
                if suite.weaknesses.is_empty() {
                    suite.name.clone()
                } else {
                    paint.bad(&suite.name)
                }
            })
            .collect();
        line(
            out,
            &format!("{} suites", s.version),
            format!("({order}) {}", names.join(", ")),
        );
    }
    if !e.tls13_cipher_suites.is_empty() {
        line(out, "TLSv1.3 suites", e.tls13_cipher_suites.join(", "));
    }
    if !e.groups.is_empty() {
        let groups: Vec<&str> = e
            .groups
            .iter()
            .filter(|g| g.accepted == Some(true))
            .map(|g| g.name.as_str())
            .collect();
        line(
            out,
            "groups",
            if groups.is_empty() {
                "none negotiated".into()
            } else {
                groups.join(" ")
            },
        );
    }
    if let Some(c) = &e.certificate {
        let leaf = c.chain.first();
        let trust = if c.trusted {
            paint.good("trusted")
        } else {
            paint.bad(c.trust_error.as_deref().unwrap_or("not trusted"))
        };
        let name = if c.name_matches {
            format!("valid for {}", c.checked_name)
        } else {
            paint.bad(&format!("NOT valid for {}", c.checked_name))
        };
        line(
            out,
            "certificate",
            format!(
                "{}; {trust}; {name}; {} days left; {} {} bits; {}; chain of {}{}; OCSP {}",
                leaf.map_or("", |l| l.subject.as_str()),
                c.days_to_expiry,
                c.key_type,
                c.key_bits,
                c.signature_algorithm,
                c.chain.len(),
                if c.chain_in_order {
                    ""
                } else {
                    " out of order"
                },
                if c.ocsp_stapled {
                    "stapled"
                } else {
                    "not stapled"
                },
            ),
        );
    }
    if let Some(alpn) = e.alpn_foreign {
        line(
            out,
            "ALPN",
            match alpn {
                AlpnHandling::Refused => paint.good("foreign protocol refused"),
                AlpnHandling::Ignored => "ignored".to_string(),
                AlpnHandling::Accepted => paint.bad("foreign protocol ACCEPTED"),
            },
        );
    }
    if let Some(tickets) = e.tls13_tickets {
        line(
            out,
            "tickets",
            format!("{tickets} TLS 1.3 session tickets per handshake"),
        );
    }
    let costs: Vec<&Finding> = e.findings.iter().filter(|f| f.costs_points()).collect();
    let notes: Vec<&Finding> = e.findings.iter().filter(|f| !f.costs_points()).collect();
    for f in costs {
        let _ = writeln!(out, "  {} {}", paint.grade_tag(f.cap), f.message);
    }
    for f in notes {
        let _ = writeln!(out, "  note {}", f.message);
    }
    for error in &e.errors {
        let _ = writeln!(out, "  error {} ({})", error.error, error.probes.join(", "));
    }
}

#[derive(Clone, Copy)]
struct Paint {
    colour: bool,
}

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }

    fn good(self, text: &str) -> String {
        self.wrap("32", text)
    }

    fn bad(self, text: &str) -> String {
        self.wrap("31", text)
    }

    fn grade_colour(grade: Grade) -> &'static str {
        match grade {
            Grade::APlus | Grade::A => "1;32",
            Grade::AMinus | Grade::B => "1;33",
            _ => "1;31",
        }
    }

    fn grade(self, grade: Grade) -> String {
        self.wrap(Self::grade_colour(grade), &format!("{:<2}", grade.as_str()))
    }

    /// `[B]` before a reason: the best grade it allows.
    fn grade_tag(self, grade: Grade) -> String {
        self.wrap(Self::grade_colour(grade), &format!("[{}]", grade.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{Endpoint, Service};

    fn report() -> Report {
        let mut e = EndpointReport::new(&Endpoint {
            service: Service::Smtp,
            host: "mx.example.org".into(),
            port: 25,
        });
        e.findings = vec![Finding {
            id: "tls10",
            cap: Grade::B,
            message: "accepts TLSv1.0".into(),
        }];
        e.grade = Grade::B;
        Report {
            schema_version: 1,
            endpoints: vec![e.clone(), e],
            domains: Vec::new(),
            elapsed_ms: 1234,
        }
    }

    #[test]
    fn plain_output_has_no_escape_codes_and_names_the_reasons() {
        let text = render(&report(), false);
        assert!(!text.contains('\x1b'));
        assert!(text.contains("smtp://mx.example.org:25  B "), "{text}");
        assert!(text.contains("[B] accepts TLSv1.0"));
        assert!(text.contains("summary"));
        assert!(text.contains("checked in 1.2 s"));
    }

    #[test]
    fn colour_output_paints_grades() {
        let text = render(&report(), true);
        assert!(text.contains("\x1b[1;33mB \x1b[0m"), "{text:?}");
    }
}
