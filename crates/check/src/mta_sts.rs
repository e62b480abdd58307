//! MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy fetched over HTTPS from
//! `mta-sts.<domain>`, and whether every MX matches the policy's patterns.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mail_auth::common::parse::TxtRecordParser;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::certificate::TrustStore;

/// RFC 8461 §3.3: policies are small; anything bigger is refused.
const MAX_POLICY: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct MtaStsReport {
    /// The TXT record at `_mta-sts.<domain>`.
    pub record: String,
    /// Its `id`, when it parses.
    pub id: Option<String>,
    /// The policy, when it could be fetched and parsed.
    pub policy: Option<Policy>,
    /// Why not, when not.
    pub error: Option<String>,
    /// MX hosts no `mx:` pattern of the policy matches.
    pub unmatched_mx: Vec<String>,
}

/// The policy file (RFC 8461 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub mode: String,
    pub max_age: u64,
    pub mx: Vec<String>,
}

/// Parses a policy body; errors name the missing or bad field.
pub(crate) fn parse_policy(body: &str) -> Result<Policy, String> {
    let mut version = None;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in body.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "mode" => mode = Some(value.to_string()),
            "max_age" => {
                max_age = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("max_age {value:?} is not a number"))?,
                )
            }
            "mx" => mx.push(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("the policy has no \"version: STSv1\" line".into());
    }
    let mode = mode.ok_or("the policy has no mode")?;
    if !["enforce", "testing", "none"].contains(&mode.as_str()) {
        return Err(format!("mode {mode:?} is not enforce, testing or none"));
    }
    let max_age = max_age.ok_or("the policy has no max_age")?;
    if mx.is_empty() && mode != "none" {
        return Err("the policy has no mx lines".into());
    }
    Ok(Policy { mode, max_age, mx })
}

/// RFC 8461 §4.1: a pattern is a host name or `*.` and a domain matching one more label.
pub(crate) fn mx_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => host == pattern.trim_end_matches('.'),
    }
}

/// Looks at the TXT record and, if there is one, fetches the policy and matches the MXs.
pub(crate) async fn check(
    domain: &str,
    txt_records: Vec<String>,
    policy_host_ips: Result<Vec<IpAddr>, String>,
    mx_hosts: &[String],
    trust: &TrustStore,
    timeout: Duration,
) -> Option<MtaStsReport> {
    let sts: Vec<&String> = txt_records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect();
    let record = (*sts.first()?).clone();
    let mut report = MtaStsReport {
        record: record.clone(),
        id: None,
        policy: None,
        error: None,
        unmatched_mx: Vec::new(),
    };
    if sts.len() > 1 {
        report.error = Some("more than one v=STSv1 TXT record (RFC 8461 §3.1)".into());
        return Some(report);
    }
    match mail_auth::mta_sts::MtaSts::parse(record.as_bytes()) {
        Ok(parsed) => report.id = Some(parsed.id),
        Err(e) => {
            report.error = Some(format!("the TXT record does not parse: {e}"));
            return Some(report);
        }
    }
    let host = format!("mta-sts.{domain}");
    let fetched = match policy_host_ips {
        Ok(ips) => tokio::time::timeout(timeout, fetch_policy(&host, &ips, trust))
            .await
            .unwrap_or_else(|_| Err(format!("no answer from {host} within {timeout:?}"))),
        Err(e) => Err(format!("{host} does not resolve: {e}")),
    };
    match fetched.and_then(|body| parse_policy(&body)) {
        Ok(policy) => {
            report.unmatched_mx = mx_hosts
                .iter()
                .filter(|mx| !policy.mx.iter().any(|p| mx_matches(p, mx)))
                .cloned()
                .collect();
            report.policy = Some(policy);
        }
        Err(e) => report.error = Some(e),
    }
    Some(report)
}

/// GET https://<host>/.well-known/mta-sts.txt: the certificate must be valid for the host
/// (RFC 8461 §3.3), redirects are not followed, only 200 counts. HTTP/1.0 keeps the
/// response free of chunked encoding.
async fn fetch_policy(host: &str, ips: &[IpAddr], trust: &TrustStore) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(trust.root_store())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let mut last_error = format!("{host} has no addresses");
    for ip in ips {
        let tcp = match TcpStream::connect(SocketAddr::new(*ip, 443)).await {
            Ok(tcp) => tcp,
            Err(e) => {
                last_error = format!("cannot connect to {host} ({ip}:443): {e}");
                continue;
            }
        };
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config.clone()))
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        let request = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\n\
             User-Agent: sealpost-check\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        let mut limited = (&mut tls).take(MAX_POLICY as u64 + 4096);
        // A server that closes without close_notify still sent its body.
        if let Err(e) = limited.read_to_end(&mut response).await
            && response.is_empty()
        {
            return Err(format!("reading from {host}: {e}"));
        }
        return parse_http_response(&response);
    }
    Err(last_error)
}

fn parse_http_response(response: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("not an HTTP response")?;
    let status = head.lines().next().unwrap_or("");
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!(
            "the policy URL answered {status:?} (only 200 counts; redirects are not followed)"
        ));
    }
    if body.len() > MAX_POLICY {
        return Err("the policy is larger than 64 KiB".into());
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_refuse_nonsense() {
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, "enforce");
        assert_eq!(p.max_age, 604800);
        assert_eq!(p.mx, ["mx1.example.org", "*.example.net"]);
        assert!(parse_policy("mode: enforce\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse_policy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
    }

    #[test]
    fn wildcards_match_exactly_one_label() {
        assert!(mx_matches("mx.example.org", "MX.example.org."));
        assert!(mx_matches("*.example.org", "mx.example.org"));
        assert!(!mx_matches("*.example.org", "a.b.example.org"));
        assert!(!mx_matches("*.example.org", "example.org"));
        assert!(!mx_matches("mx.example.org", "mx2.example.org"));
    }

    #[test]
    fn only_200_is_a_policy() {
        assert_eq!(
            parse_http_response(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\n"
            )
            .unwrap(),
            "version: STSv1\n"
        );
        assert!(parse_http_response(b"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n").is_err());
    }
}
