//! Where a domain's mail goes (RFC 5321 §5.1): its MX hosts in preference order, equal
//! preferences in random order so load spreads as the domain intends; without MX
//! records the domain itself (the implicit MX); a null MX (RFC 7505) means no mail at
//! all. Each host comes with its addresses and with what DNSSEC said about the MX and
//! address records, which decides whether DANE can apply (RFC 7672 §2.2).

use std::net::IpAddr;

use rand::seq::SliceRandom;
use sealpost_dns::{Dnssec, LookupError, Resolver};

use super::RouteError;

/// MX hosts looked at, most preferred first. The records are the remote domain's to
/// write: without a bound one answer with hundreds of MX records would cost hundreds of
/// address and TLSA lookups on every connection (Postfix's `smtp_mx_address_limit` is
/// in the same spirit).
pub(crate) const MAX_MX_HOSTS: usize = 10;

/// One host mail for the domain can go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MxHost {
    /// Lower-case, without the trailing dot; the domain itself for the implicit MX.
    pub name: String,
    pub preference: u16,
    pub addresses: Vec<IpAddr>,
    /// The MX RRset (or, for the implicit MX, the address RRset) is DNSSEC-secure.
    pub mx_secure: bool,
    /// The host's address RRsets are DNSSEC-secure.
    pub addresses_secure: bool,
}

/// Every usable host of `domain`, most preferred first.
pub(crate) async fn resolve(resolver: &Resolver, domain: &str) -> Result<Vec<MxHost>, RouteError> {
    let mx = match resolver.mx_validated(domain).await {
        Ok(mx) => mx,
        Err(LookupError::NoData(_)) => return implicit_mx(resolver, domain).await,
        Err(LookupError::NxDomain(_)) => {
            return Err(RouteError::NoSuchDomain(format!(
                "{domain}: no such domain"
            )));
        }
        Err(LookupError::InvalidName(_)) => {
            return Err(RouteError::NoSuchDomain(format!(
                "{domain} is not a valid domain name"
            )));
        }
        Err(error) => {
            return Err(RouteError::Temporary(format!("MX lookup failed: {error}")));
        }
    };
    if mx.dnssec == Dnssec::Bogus {
        return Err(RouteError::Temporary(format!(
            "the MX records of {domain} fail DNSSEC validation"
        )));
    }
    // RFC 7505 §3: "." as exchange says the domain takes no mail. Beside real MX records
    // it is a misconfiguration the real ones win over.
    let exchanges: Vec<(u16, String)> = mx
        .records
        .iter()
        .filter(|record| !record.exchange.is_empty() && record.exchange != ".")
        .map(|record| (record.preference, record.exchange.clone()))
        .collect();
    if exchanges.is_empty() {
        return Err(RouteError::NullMx(domain.to_string()));
    }
    let mx_secure = mx.dnssec == Dnssec::Secure;

    let mut hosts = Vec::with_capacity(exchanges.len());
    let mut temporary = None;
    for (preference, name) in order(exchanges).into_iter().take(MAX_MX_HOSTS) {
        match resolver.ip_validated(&name).await {
            Ok(addresses) if addresses.dnssec == Dnssec::Bogus => {
                temporary = Some(format!("the addresses of {name} fail DNSSEC validation"));
            }
            Ok(addresses) if !addresses.records.is_empty() => hosts.push(MxHost {
                name,
                preference,
                addresses: addresses.records,
                mx_secure,
                addresses_secure: addresses.dnssec == Dnssec::Secure,
            }),
            Ok(_) => {}
            Err(error) if error.is_temporary() => {
                temporary = Some(format!("address lookup failed: {error}"));
            }
            Err(_) => {}
        }
    }
    match (hosts.is_empty(), temporary) {
        (false, _) => Ok(hosts),
        (true, Some(reason)) => Err(RouteError::Temporary(reason)),
        (true, None) => Err(RouteError::NoSuchDomain(format!(
            "no MX host of {domain} has an address"
        ))),
    }
}

/// RFC 5321 §5.1: no MX records, so the domain's own address records, as one host of
/// preference 0.
async fn implicit_mx(resolver: &Resolver, domain: &str) -> Result<Vec<MxHost>, RouteError> {
    match resolver.ip_validated(domain).await {
        Ok(addresses) if addresses.dnssec == Dnssec::Bogus => Err(RouteError::Temporary(format!(
            "the addresses of {domain} fail DNSSEC validation"
        ))),
        Ok(addresses) if !addresses.records.is_empty() => {
            let secure = addresses.dnssec == Dnssec::Secure;
            Ok(vec![MxHost {
                name: domain.to_string(),
                preference: 0,
                addresses: addresses.records,
                mx_secure: secure,
                addresses_secure: secure,
            }])
        }
        Ok(_) => Err(no_mail_host(domain)),
        Err(error) if error.is_temporary() => Err(RouteError::Temporary(format!(
            "address lookup failed: {error}"
        ))),
        Err(_) => Err(no_mail_host(domain)),
    }
}

fn no_mail_host(domain: &str) -> RouteError {
    RouteError::NoSuchDomain(format!("{domain} has neither MX nor address records"))
}

/// Most preferred first; hosts of equal preference in random order (RFC 5321 §5.1).
fn order(mut exchanges: Vec<(u16, String)>) -> Vec<(u16, String)> {
    let mut rng = rand::rng();
    exchanges.shuffle(&mut rng);
    // A stable sort keeps the shuffled order within each preference.
    exchanges.sort_by_key(|(preference, _)| *preference);
    exchanges
}

/// `[192.0.2.1]` / `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3): an address literal as the
/// domain names the host itself; no DNS is asked.
pub(crate) fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let inner = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &inner[5..],
        _ => inner,
    };
    inner.parse().ok()
}

#[cfg(test)]
mod tests;
