//! DKIM public keys for the selectors the user names (`--dkim-selector`): present, valid
//! (mail-auth parses it), and of what type and size.

use base64::Engine;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use sealpost_dns::Resolver;
use serde::Serialize;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

#[derive(Debug, Clone, Serialize)]
pub struct DkimReport {
    pub selector: String,
    pub record: Option<String>,
    /// "rsa" or "ed25519".
    pub key_type: Option<String>,
    pub key_bits: Option<u32>,
    /// An empty p= (RFC 6376 §3.6.1).
    pub revoked: bool,
    pub error: Option<String>,
}

pub(crate) async fn check(resolver: &Resolver, domain: &str, selector: &str) -> DkimReport {
    let mut report = DkimReport {
        selector: selector.to_string(),
        record: None,
        key_type: None,
        key_bits: None,
        revoked: false,
        error: None,
    };
    let name = format!("{selector}._domainkey.{domain}");
    let record = match resolver.txt(&name).await {
        Ok(txt) => txt
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .find(|r| r.contains("p=")),
        Err(e) if e.is_empty_answer() => None,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    let Some(record) = record else {
        report.error = Some(format!("no DKIM key at {name}"));
        return report;
    };
    report.record = Some(record.clone());
    let tags = tags(&record);
    let key_type = tags
        .iter()
        .find(|(k, _)| *k == "k")
        .map_or("rsa", |(_, v)| v)
        .to_ascii_lowercase();
    let p: String = tags
        .iter()
        .find(|(k, _)| *k == "p")
        .map(|(_, v)| v.chars().filter(|c| !c.is_whitespace()).collect())
        .unwrap_or_default();
    report.key_type = Some(key_type.clone());
    if p.is_empty() {
        report.revoked = true;
        return report;
    }
    if let Err(e) = DomainKey::parse(record.as_bytes()) {
        report.error = Some(format!("the key record does not parse: {e}"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(&p)
        .unwrap_or_default();
    report.key_bits = match key_type.as_str() {
        "ed25519" => Some(256),
        _ => SubjectPublicKeyInfo::from_der(&der)
            .ok()
            .and_then(|(_, spki)| match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => Some(rsa.key_size() as u32),
                _ => None,
            }),
    };
    report
}

/// `tag=value` pairs of a DKIM record (RFC 6376 §3.2).
fn tags(record: &str) -> Vec<(&str, &str)> {
    record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}
