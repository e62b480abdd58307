//! DANE for SMTP (RFC 7672): the TLSA records at `_25._tcp.<mx>`, whether they match the
//! certificate the MX served, and whether DNSSEC vouches for them (without it, senders
//! ignore TLSA records, RFC 7672 §2.2).

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;

use crate::certificate::CertificateSummary;

#[derive(Debug, Clone, Serialize)]
pub struct TlsaReport {
    pub mx: String,
    /// `usage selector matching data-hex`, as in a zone file.
    pub records: Vec<String>,
    /// "secure", "insecure", "bogus", "indeterminate", or why it is unknown.
    pub dnssec: String,
    /// Some record matches the served chain (null: no chain to compare, or only
    /// full-data records, which are not compared).
    pub matches: Option<bool>,
}

/// One TLSA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    fn zone_text(&self) -> String {
        let hex: String = self.data.iter().map(|b| format!("{b:02x}")).collect();
        format!("{} {} {} {hex}", self.usage, self.selector, self.matching)
    }
}

/// A resolver that validates DNSSEC from the root trust anchor, over the same
/// nameservers as the rest of the check.
pub(crate) fn validating_resolver(nameservers: &[SocketAddr]) -> Result<TokioResolver, NetError> {
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let servers = nameservers.iter().map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
        });
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers.collect()),
            TokioRuntimeProvider::default(),
        )
    };
    builder.options_mut().validate = true;
    builder.build()
}

/// The TLSA records of `mx` (plain lookup) and their DNSSEC status (validating lookup).
pub(crate) async fn check(
    plain: &TokioResolver,
    validating: Option<&TokioResolver>,
    mx: &str,
    chain: Option<&[CertificateSummary]>,
) -> Result<Option<TlsaReport>, String> {
    let name = format!("_25._tcp.{mx}.");
    let records: Vec<Tlsa> = match plain.lookup(name.as_str(), RecordType::TLSA).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TLSA(t) => Some(Tlsa {
                    usage: t.cert_usage.into(),
                    selector: t.selector.into(),
                    matching: t.matching.into(),
                    data: t.cert_data.clone(),
                }),
                _ => None,
            })
            .collect(),
        Err(NetError::Dns(DnsError::NoRecordsFound(_))) => Vec::new(),
        Err(e) => return Err(format!("{name}: {e}")),
    };
    if records.is_empty() {
        return Ok(None);
    }
    let dnssec = match validating {
        None => "unknown: no validating resolver".to_string(),
        Some(resolver) => match resolver.lookup(name.as_str(), RecordType::TLSA).await {
            Ok(lookup) => {
                let proofs: Vec<Proof> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == RecordType::TLSA)
                    .map(|r| r.proof)
                    .collect();
                proof_name(proofs.iter().min().copied().unwrap_or(Proof::Indeterminate)).into()
            }
            Err(e) => format!("unknown: {e}"),
        },
    };
    Ok(Some(TlsaReport {
        mx: mx.to_string(),
        records: records.iter().map(Tlsa::zone_text).collect(),
        dnssec,
        matches: chain.and_then(|chain| matches_chain(&records, chain)),
    }))
}

fn proof_name(proof: Proof) -> &'static str {
    match proof {
        Proof::Secure => "secure",
        Proof::Insecure => "insecure",
        Proof::Bogus => "bogus",
        Proof::Indeterminate => "indeterminate",
    }
}

/// RFC 6698 §2.1: DANE-EE/PKIX-EE (3, 1) name the leaf; DANE-TA/PKIX-TA (2, 0) any
/// certificate above it. Only digests are compared (matching types 1 and 2).
pub(crate) fn matches_chain(records: &[Tlsa], chain: &[CertificateSummary]) -> Option<bool> {
    let mut compared = false;
    for record in records {
        let candidates: &[CertificateSummary] = match record.usage {
            1 | 3 => &chain[..chain.len().min(1)],
            _ => chain.get(1..).unwrap_or(&[]),
        };
        for cert in candidates {
            let digest = match (record.selector, record.matching) {
                (0, 1) => &cert.sha256,
                (1, 1) => &cert.spki_sha256,
                (0, 2) => &cert.sha512,
                (1, 2) => &cert.spki_sha512,
                _ => continue,
            };
            compared = true;
            let data: String = record.data.iter().map(|b| format!("{b:02x}")).collect();
            if *digest == data {
                return Some(true);
            }
        }
    }
    compared.then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(tag: &str) -> CertificateSummary {
        CertificateSummary {
            subject: tag.into(),
            issuer: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            sha256: format!("{tag}01"),
            sha512: format!("{tag}02"),
            spki_sha256: format!("{tag}03"),
            spki_sha512: format!("{tag}04"),
        }
    }

    fn tlsa(usage: u8, selector: u8, matching: u8, data: &[u8]) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data: data.to_vec(),
        }
    }

    #[test]
    fn dane_ee_matches_the_leaf_spki_and_ta_the_issuer() {
        let chain = [cert("aa"), cert("bb")];
        assert_eq!(
            matches_chain(&[tlsa(3, 1, 1, &[0xaa, 0x03])], &chain),
            Some(true)
        );
        assert_eq!(
            matches_chain(&[tlsa(3, 1, 1, &[0xbb, 0x03])], &chain),
            Some(false)
        );
        assert_eq!(
            matches_chain(&[tlsa(2, 0, 1, &[0xbb, 0x01])], &chain),
            Some(true)
        );
        assert_eq!(
            matches_chain(&[tlsa(3, 0, 2, &[0xaa, 0x02])], &chain),
            Some(true)
        );
        assert_eq!(matches_chain(&[tlsa(3, 1, 0, &[0xaa])], &chain), None);
    }

    #[test]
    fn records_print_as_in_a_zone_file() {
        assert_eq!(tlsa(3, 1, 1, &[0xab, 0x01]).zone_text(), "3 1 1 ab01");
    }
}
