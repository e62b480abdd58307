//! Lookups that also say whether DNSSEC proved the answer (RFC 4035 §4.3), for DANE
//! (RFC 7672 §2.1): only records from a secure zone may be trusted to pin a certificate.
//!
//! They go through the validating resolver (trust anchor: `ResolverSettings.trust_anchor`,
//! else the root's). What each result means:
//!
//! | result | meaning | DANE (RFC 7672 §2.1.1, §2.2) |
//! |---|---|---|
//! | `Ok`, `Secure`, records | signed, signatures chain to the anchor | use them |
//! | `Ok`, `Insecure`, records | provably unsigned (delegation without DS) | not DANE |
//! | `Ok`, `Bogus`, no records | should be signed and is not validly (bad, expired or missing signatures, a denial without proof) | defer: a lookup failure, never a downgrade |
//! | `Err(Temporary)` | no answer (timeout, SERVFAIL, network) | defer |
//! | `Err(NxDomain)` / `Err(NoData)` | MX and address lookups: nothing there (proven, or in an unsigned zone; a forged denial in a signed zone is `Bogus`) | as without DNSSEC |
//!
//! TLSA lookups report "nothing there" as `Ok` with no records and the status of the
//! denial, because for TLSA an absence is the common answer and its proof is what a DANE
//! client logs: `Secure` + empty is "signed, no TLSA: no DANE", `Insecure` + empty is
//! "unsigned: no DANE", `Bogus` is "defer".
//!
//! A failure of the validator's own queries (the DNSKEY or DS lookups it makes) comes back
//! as `Bogus` from hickory, not as a timeout; both mean "defer" to DANE.

use std::net::IpAddr;

use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, Record, RecordType};

use crate::resolver::{LookupError, Mx, Resolver, classify, host_name, non_empty, query_name};

/// What DNSSEC says about an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dnssec {
    /// Should have been signed but did not validate: treat as a lookup failure. The
    /// records are withheld (empty).
    Bogus,
    /// Provably unsigned (a delegation without DS, or below one), or not covered by the
    /// trust anchor.
    Insecure,
    /// Signed, and the signatures chain to a trust anchor.
    Secure,
}

/// An answer together with its DNSSEC status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated<T> {
    pub records: T,
    pub dnssec: Dnssec,
}

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE (RFC 7218).
    pub usage: u8,
    /// 0 the whole certificate, 1 its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 the data itself, 1 its SHA-256, 2 its SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

/// What the validating resolver made of one query.
enum Answer {
    Found(Lookup, Dnssec),
    /// NXDOMAIN or NODATA, with the status of the denial.
    Denied(LookupError, Dnssec),
    Bogus,
}

impl Resolver {
    /// MX records, most preferred first, with their DNSSEC status. NXDOMAIN and NODATA
    /// are errors, as from [`Resolver::mx`].
    pub async fn mx_validated(&self, name: &str) -> Result<Validated<Vec<Mx>>, LookupError> {
        let (lookup, dnssec) = match self.validated(name, RecordType::MX).await? {
            Answer::Found(lookup, dnssec) => (lookup, dnssec),
            Answer::Denied(error, _) => return Err(error),
            Answer::Bogus => return Ok(bogus()),
        };
        let mut records: Vec<Mx> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some(Mx {
                    preference: mx.preference,
                    exchange: host_name(&mx.exchange),
                }),
                _ => None,
            })
            .collect();
        records.sort_by_key(|mx| mx.preference);
        Ok(Validated {
            records: non_empty(name, records)?,
            dnssec,
        })
    }

    /// A and AAAA records together, with the weaker status of the two answers (a secure
    /// A next to an insecure AAAA denial is insecure). Bogus if either is; a temporary
    /// failure of either is a temporary failure; NXDOMAIN/NODATA only if both are empty.
    pub async fn ip_validated(&self, name: &str) -> Result<Validated<Vec<IpAddr>>, LookupError> {
        let (v4, v6) = tokio::join!(
            self.validated(name, RecordType::A),
            self.validated(name, RecordType::AAAA)
        );
        let mut records = Vec::new();
        let mut dnssec = Dnssec::Secure;
        let mut empty: Option<LookupError> = None;
        for answer in [v4?, v6?] {
            match answer {
                Answer::Found(lookup, status) => {
                    dnssec = dnssec.min(status);
                    records.extend(lookup.answers().iter().filter_map(address));
                }
                Answer::Denied(error, status) => {
                    dnssec = dnssec.min(status);
                    // NXDOMAIN says more than NODATA; keep it if either side saw it.
                    if !matches!(empty, Some(LookupError::NxDomain(_))) {
                        empty = Some(error);
                    }
                }
                Answer::Bogus => return Ok(bogus()),
            }
        }
        match empty {
            Some(error) if records.is_empty() => Err(error),
            _ => Ok(Validated {
                records: non_empty(name, records)?,
                dnssec,
            }),
        }
    }

    /// TLSA records at `name` (e.g. `_25._tcp.mx.example.org`), with their status. No
    /// records (NXDOMAIN or NODATA) is `Ok` with an empty list and the denial's status.
    pub async fn tlsa(&self, name: &str) -> Result<Validated<Vec<Tlsa>>, LookupError> {
        match self.validated(name, RecordType::TLSA).await? {
            Answer::Found(lookup, dnssec) => Ok(Validated {
                records: lookup.answers().iter().filter_map(tlsa).collect(),
                dnssec,
            }),
            Answer::Denied(_, dnssec) => Ok(Validated {
                records: Vec::new(),
                dnssec,
            }),
            Answer::Bogus => Ok(bogus()),
        }
    }

    async fn validated(&self, name: &str, record_type: RecordType) -> Result<Answer, LookupError> {
        let query = query_name(name)?;
        match self.validating().lookup(query, record_type).await {
            Ok(lookup) => {
                let dnssec = status(lookup.answers());
                Ok(match dnssec {
                    Dnssec::Bogus => Answer::Bogus,
                    _ => Answer::Found(lookup, dnssec),
                })
            }
            Err(NetError::Dns(DnsError::DnssecBogus)) => Ok(Answer::Bogus),
            Err(NetError::Dns(DnsError::Nsec {
                proof, response, ..
            })) => Ok(match proof {
                Proof::Bogus => Answer::Bogus,
                // hickory hands back a denial it could not prove secure this way.
                _ => Answer::Denied(denial(name, response.response_code), Dnssec::Insecure),
            }),
            Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => {
                let dnssec = no_records
                    .authorities
                    .as_deref()
                    .map_or(Dnssec::Insecure, status);
                let error = classify(name, NetError::Dns(DnsError::NoRecordsFound(no_records)));
                if error.is_empty_answer() {
                    Ok(Answer::Denied(error, dnssec))
                } else {
                    Err(error)
                }
            }
            Err(error) => Err(classify(name, error)),
        }
    }
}

fn bogus<T: Default>() -> Validated<T> {
    Validated {
        records: T::default(),
        dnssec: Dnssec::Bogus,
    }
}

/// Secure only if every record (RRSIGs aside) is; hickory marks each record with the
/// proof of its RRset. An empty section proves nothing: insecure.
fn status(records: &[Record]) -> Dnssec {
    let mut records = records
        .iter()
        .filter(|record| record.record_type() != RecordType::RRSIG)
        .peekable();
    if records.peek().is_none() {
        return Dnssec::Insecure;
    }
    records
        .map(|record| match record.proof {
            Proof::Secure => Dnssec::Secure,
            Proof::Bogus => Dnssec::Bogus,
            Proof::Insecure | Proof::Indeterminate => Dnssec::Insecure,
        })
        .min()
        .unwrap_or(Dnssec::Insecure)
}

fn denial(name: &str, code: ResponseCode) -> LookupError {
    if code == ResponseCode::NXDomain {
        LookupError::NxDomain(name.to_string())
    } else {
        LookupError::NoData(name.to_string())
    }
}

fn address(record: &Record) -> Option<IpAddr> {
    match &record.data {
        RData::A(a) => Some(a.0.into()),
        RData::AAAA(aaaa) => Some(aaaa.0.into()),
        _ => None,
    }
}

fn tlsa(record: &Record) -> Option<Tlsa> {
    match &record.data {
        RData::TLSA(tlsa) => Some(Tlsa {
            usage: tlsa.cert_usage.into(),
            selector: tlsa.selector.into(),
            matching: tlsa.matching.into(),
            data: tlsa.cert_data.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
