//! Checking a mail domain: its MX hosts (each then checked as an `smtp://` endpoint), and
//! the DNS policies around them — MTA-STS, DANE, TLS-RPT, SPF, DMARC, DKIM — with
//! findings and a grade of their own.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use mail_auth::common::parse::TxtRecordParser;
use sealpost_dns::Resolver;
use serde::Serialize;

use crate::certificate::TrustStore;
use crate::dane::{self, TlsaReport};
use crate::dkim::{self, DkimReport};
use crate::dmarc::{self, DmarcReport};
use crate::grade::{Finding, Grade, grade_of};
use crate::mta_sts::{self, MtaStsReport};
use crate::report::EndpointReport;
use crate::spf::{self, MAX_LOOKUPS, MAX_VOID_LOOKUPS, SpfReport};

#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    pub domain: String,
    pub grade: Grade,
    /// Worst first; as for endpoints.
    pub findings: Vec<Finding>,
    /// By preference; an implicit MX (the domain itself, RFC 5321 §5.1) when there is
    /// no MX record.
    pub mx: Vec<MxHost>,
    pub mta_sts: Option<MtaStsReport>,
    /// One per MX that has TLSA records.
    pub tlsa: Vec<TlsaReport>,
    /// The `_smtp._tls` record (RFC 8460).
    pub tls_rpt: Option<String>,
    pub spf: SpfReport,
    pub dmarc: DmarcReport,
    pub dkim: Vec<DkimReport>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MxHost {
    pub preference: u16,
    pub host: String,
    pub addresses: Vec<IpAddr>,
}

/// What the DNS said about the domain before any MX is probed.
pub(crate) struct DomainDns {
    pub report: DomainReport,
    /// Hosts to check as endpoints, with their addresses.
    pub endpoints: Vec<(String, Vec<IpAddr>)>,
}

/// Everything but the MX endpoint probes and DANE (which needs their certificates).
pub(crate) async fn lookup(
    resolver: &Resolver,
    domain: &str,
    selectors: &[String],
    trust: &TrustStore,
    timeout: Duration,
) -> DomainDns {
    let mut errors = Vec::new();
    let sts_name = format!("_mta-sts.{domain}");
    let sts_host = format!("mta-sts.{domain}");
    let rpt_name = format!("_smtp._tls.{domain}");
    let (mx, txt_sts, sts_ips, tls_rpt, spf, dmarc, dkim) = tokio::join!(
        mx_hosts(resolver, domain),
        txt(resolver, &sts_name),
        resolver.ip(&sts_host),
        txt(resolver, &rpt_name),
        spf::check(resolver, domain),
        dmarc::check(resolver, domain),
        futures_util::future::join_all(selectors.iter().map(|s| dkim::check(resolver, domain, s))),
    );
    let mx = mx.unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    });
    let mx_names: Vec<String> = mx.iter().map(|m| m.host.clone()).collect();
    let mta_sts = mta_sts::check(
        domain,
        txt_sts.unwrap_or_default(),
        sts_ips.map_err(|e| e.to_string()),
        &mx_names,
        trust,
        timeout,
    )
    .await;
    let tls_rpt = tls_rpt
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.trim_start().starts_with("v=TLSRPTv1"));
    let endpoints = mx
        .iter()
        .filter(|m| !m.addresses.is_empty())
        .map(|m| (m.host.clone(), m.addresses.clone()))
        .collect();
    DomainDns {
        report: DomainReport {
            domain: domain.to_string(),
            grade: Grade::APlus,
            findings: Vec::new(),
            mx,
            mta_sts,
            tlsa: Vec::new(),
            tls_rpt,
            spf,
            dmarc,
            dkim,
            errors,
        },
        endpoints,
    }
}

/// TLSA for each MX, matched against what its endpoint served; then the findings.
pub(crate) async fn finish(
    mut report: DomainReport,
    plain: &TokioResolver,
    validating: Option<&TokioResolver>,
    endpoints: &[&EndpointReport],
) -> DomainReport {
    for mx in &report.mx {
        let chain = endpoints
            .iter()
            .find(|e| e.host == mx.host)
            .and_then(|e| e.certificate.as_ref())
            .map(|c| c.chain.as_slice());
        match dane::check(plain, validating, &mx.host, chain).await {
            Ok(Some(tlsa)) => report.tlsa.push(tlsa),
            Ok(None) => {}
            Err(e) => report.errors.push(e),
        }
    }
    report.findings = assess(&report);
    report.grade = grade_of(&report.findings);
    report
}

async fn txt(resolver: &Resolver, name: &str) -> Result<Vec<String>, String> {
    match resolver.txt(name).await {
        Ok(records) => Ok(records
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .collect()),
        Err(e) if e.is_empty_answer() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

async fn mx_hosts(resolver: &Resolver, domain: &str) -> Result<Vec<MxHost>, String> {
    let records = match resolver.mx(domain).await {
        Ok(mut records) => {
            records.sort_by_key(|m| m.preference);
            records
        }
        Err(e) if e.is_empty_answer() => Vec::new(),
        Err(e) => return Err(e.to_string()),
    };
    let names: Vec<(u16, String)> = if records.is_empty() {
        vec![(0, domain.to_string())]
    } else {
        records
            .into_iter()
            .map(|m| (m.preference, m.exchange))
            .collect()
    };
    let addresses =
        futures_util::future::join_all(names.iter().map(|(_, host)| resolver.ip(host))).await;
    Ok(names
        .into_iter()
        .zip(addresses)
        .map(|((preference, host), ips)| MxHost {
            preference,
            // A null MX (RFC 7505) has an empty exchange: no addresses, nothing to probe.
            addresses: if host.is_empty() || host == "." {
                Vec::new()
            } else {
                ips.unwrap_or_default()
            },
            host,
        })
        .collect())
}

fn finding(id: &'static str, cap: Grade, message: impl Into<String>) -> Finding {
    Finding {
        id,
        cap,
        message: message.into(),
    }
}

/// The domain's findings, worst first (caps in the crate README).
pub(crate) fn assess(r: &DomainReport) -> Vec<Finding> {
    let mut out = Vec::new();
    let null_mx = r.mx.len() == 1 && (r.mx[0].host.is_empty() || r.mx[0].host == ".");
    if null_mx {
        out.push(finding(
            "null_mx",
            Grade::APlus,
            "a null MX: the domain accepts no mail (RFC 7505)",
        ));
    } else if r.mx.iter().all(|m| m.addresses.is_empty()) {
        out.push(finding(
            "no_mx",
            Grade::F,
            "no MX host has an address: mail cannot be delivered",
        ));
    }
    let dane_secure = r.tlsa.iter().any(|t| t.dnssec == "secure");
    match &r.mta_sts {
        None if !dane_secure => out.push(finding(
            "no_mta_sts_or_dane",
            Grade::A,
            "neither MTA-STS nor DNSSEC-signed TLSA records: senders cannot insist on TLS",
        )),
        None => {}
        Some(sts) => {
            if let Some(error) = &sts.error {
                out.push(finding(
                    "mta_sts_broken",
                    Grade::C,
                    format!("MTA-STS: {error}"),
                ));
            }
            if let Some(policy) = &sts.policy {
                if !sts.unmatched_mx.is_empty() {
                    let cap = if policy.mode == "enforce" {
                        Grade::C
                    } else {
                        Grade::B
                    };
                    out.push(finding(
                        "mta_sts_mx_mismatch",
                        cap,
                        format!(
                            "MTA-STS policy ({}) matches no pattern for MX {}: senders refuse \
                             to deliver there in enforce mode",
                            policy.mode,
                            sts.unmatched_mx.join(", ")
                        ),
                    ));
                }
                if policy.mode != "enforce" {
                    out.push(finding(
                        "mta_sts_not_enforced",
                        Grade::A,
                        format!("MTA-STS mode is {}", policy.mode),
                    ));
                }
            }
        }
    }
    for t in &r.tlsa {
        if t.matches == Some(false) {
            out.push(finding(
                "tlsa_mismatch",
                Grade::C,
                format!(
                    "no TLSA record of {} matches the certificate it serves",
                    t.mx
                ),
            ));
        }
        if t.dnssec != "secure" {
            out.push(finding(
                "tlsa_not_secure",
                Grade::APlus,
                format!(
                    "TLSA records of {} are not DNSSEC-secure ({}): senders ignore them",
                    t.mx, t.dnssec
                ),
            ));
        }
    }
    if r.tls_rpt.is_none() {
        out.push(finding(
            "no_tls_rpt",
            Grade::APlus,
            "no TLS-RPT record (_smtp._tls)",
        ));
    } else if let Some(record) = &r.tls_rpt
        && let Err(e) = mail_auth::mta_sts::TlsRpt::parse(record.as_bytes())
    {
        out.push(finding(
            "tls_rpt_invalid",
            Grade::AMinus,
            format!("the TLS-RPT record does not parse: {e}"),
        ));
    }
    spf_findings(&r.spf, &mut out);
    dmarc_findings(&r.dmarc, &mut out);
    for d in &r.dkim {
        if let Some(error) = &d.error {
            out.push(finding(
                "dkim_key_problem",
                Grade::C,
                format!("DKIM selector {}: {error}", d.selector),
            ));
        } else if d.revoked {
            out.push(finding(
                "dkim_revoked",
                Grade::APlus,
                format!("DKIM selector {} is revoked (empty p=)", d.selector),
            ));
        } else if d.key_type.as_deref() == Some("rsa") {
            match d.key_bits {
                Some(bits) if bits < 1024 => out.push(finding(
                    "dkim_weak_key",
                    Grade::F,
                    format!("DKIM selector {}: RSA {bits} bits", d.selector),
                )),
                Some(bits) if bits < 2048 => out.push(finding(
                    "dkim_weak_key",
                    Grade::B,
                    format!("DKIM selector {}: RSA {bits} bits", d.selector),
                )),
                _ => {}
            }
        }
    }
    out.sort_by_key(|f| f.cap);
    out
}

fn spf_findings(spf: &SpfReport, out: &mut Vec<Finding>) {
    if spf.record.is_none() && spf.errors.is_empty() {
        out.push(finding("spf_missing", Grade::B, "no SPF record"));
        return;
    }
    if spf.lookups > MAX_LOOKUPS {
        out.push(finding(
            "spf_too_many_lookups",
            Grade::C,
            format!("SPF needs {} DNS lookups, more than {MAX_LOOKUPS}: it fails for everyone (permerror)", spf.lookups),
        ));
    }
    if spf.void_lookups > MAX_VOID_LOOKUPS {
        out.push(finding(
            "spf_void_lookups",
            Grade::C,
            format!(
                "SPF has {} lookups that find nothing, more than {MAX_VOID_LOOKUPS} (permerror)",
                spf.void_lookups
            ),
        ));
    }
    for error in &spf.errors {
        out.push(finding("spf_error", Grade::C, format!("SPF: {error}")));
    }
    if spf.all.as_deref() == Some("+") {
        out.push(finding(
            "spf_pass_all",
            Grade::F,
            "SPF ends in +all: anyone may send as the domain",
        ));
    }
}

fn dmarc_findings(dmarc: &DmarcReport, out: &mut Vec<Finding>) {
    if let Some(error) = &dmarc.error {
        out.push(finding("dmarc_error", Grade::C, format!("DMARC: {error}")));
        return;
    }
    match dmarc.policy.as_deref() {
        None => out.push(finding("dmarc_missing", Grade::C, "no DMARC record")),
        Some("none") => out.push(finding(
            "dmarc_p_none",
            Grade::B,
            format!(
                "DMARC policy is none (at _dmarc.{}): mail failing authentication is delivered",
                dmarc.found_at.as_deref().unwrap_or("?")
            ),
        )),
        Some(_) => {}
    }
    if dmarc.record.is_some() && dmarc.rua.is_empty() {
        out.push(finding(
            "dmarc_no_rua",
            Grade::APlus,
            "DMARC asks for no aggregate reports (rua)",
        ));
    }
}
