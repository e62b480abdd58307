//! SPF's check_host() (RFC 7208 §4–§6) over `sealpost-dns`.
//!
//! The record grammar and macro expansion are mail-auth's; the evaluation is ours because
//! mail-auth's does not enforce the void-lookup limit (§4.6.4) and does not go through our
//! resolver. Limits, per check_host() run including everything it includes or redirects to:
//! 10 terms that cause DNS lookups, 2 void lookups (NXDOMAIN or NODATA answers), 10 MX or
//! PTR names per term. Exceeding one is a permerror; a DNS failure is a temperror.
//! `exp=` is not fetched: we never reject on SPF alone, so there is no reply to explain.
//!
//! A domain's record, parsed and checked, is kept for its TTL ([`SpfRecords`]): a sender's
//! every message asks for the same one or two.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::spf::{Macro, Mechanism, Qualifier, Spf, Variables};
use sealpost_dns::{LookupError, Resolver};

use super::cache::{Expiring, txt_answer};

/// RFC 7208 §4.6.4.
const MAX_LOOKUPS: u32 = 10;
const MAX_VOID_LOOKUPS: u32 = 2;
const MAX_NAMES_PER_TERM: usize = 10;

/// The results of RFC 7208 §2.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// As written in Authentication-Results (RFC 8601 §2.7.2).
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }

    pub(crate) fn to_mail_auth(self) -> mail_auth::SpfResult {
        match self {
            SpfResult::None => mail_auth::SpfResult::None,
            SpfResult::Neutral => mail_auth::SpfResult::Neutral,
            SpfResult::Pass => mail_auth::SpfResult::Pass,
            SpfResult::Fail => mail_auth::SpfResult::Fail,
            SpfResult::SoftFail => mail_auth::SpfResult::SoftFail,
            SpfResult::TempError => mail_auth::SpfResult::TempError,
            SpfResult::PermError => mail_auth::SpfResult::PermError,
        }
    }
}

/// The outcome of one check_host() run, with a short why for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfCheck {
    pub result: SpfResult,
    /// The domain whose record was evaluated (the identity's domain).
    pub domain: String,
    pub reason: Option<String>,
}

/// What a check_host() run may still spend (§4.6.4).
#[derive(Debug, Default)]
struct Budget {
    lookups: u32,
    voids: u32,
}

/// Why evaluation stopped before a result was reached.
enum Stop {
    Temp(String),
    Perm(String),
}

impl Budget {
    fn lookup(&mut self) -> Result<(), Stop> {
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            return Err(Stop::Perm(format!(
                "more than {MAX_LOOKUPS} DNS-querying terms"
            )));
        }
        Ok(())
    }

    fn void(&mut self) -> Result<(), Stop> {
        self.voids += 1;
        if self.voids > MAX_VOID_LOOKUPS {
            return Err(Stop::Perm(format!(
                "more than {MAX_VOID_LOOKUPS} void lookups"
            )));
        }
        Ok(())
    }

    /// Records a term's lookup answer: a void one counts against the void limit and
    /// matches nothing; a failure to get an answer is a temperror.
    fn answer<T>(&mut self, answer: Result<Vec<T>, LookupError>) -> Result<Vec<T>, Stop> {
        match answer {
            Ok(records) => Ok(records),
            Err(error) if error.is_empty_answer() => {
                self.void()?;
                Ok(Vec::new())
            }
            Err(LookupError::InvalidName(name)) => {
                Err(Stop::Perm(format!("invalid domain name {name}")))
            }
            Err(error) => Err(Stop::Temp(error.to_string())),
        }
    }
}

/// What a domain publishes, as check_host() sees it (§4.4, §4.5).
#[derive(Clone)]
enum Published {
    /// No SPF record (or no such domain).
    Nothing,
    Record(Arc<Spf>),
    /// Several SPF records, or one that does not parse: a permerror with this reason.
    Invalid(String),
}

/// Domains' SPF records for as long as their DNS answers live (see `cache.rs`).
pub(crate) struct SpfRecords(Expiring<Box<str>, Published>);

impl SpfRecords {
    pub(crate) fn new() -> Self {
        Self(Expiring::new())
    }
}

/// Checks one identity: `sender` is `local@domain`, or `postmaster@helo` for the HELO
/// identity and for the null reverse-path (§2.3, §2.4).
pub(crate) struct SpfVerifier<'a> {
    resolver: &'a Resolver,
    records: &'a SpfRecords,
    ip: IpAddr,
    helo: &'a str,
    /// Our hostname, for the `%{r}` macro.
    hostname: &'a str,
}

impl<'a> SpfVerifier<'a> {
    pub(crate) fn new(
        resolver: &'a Resolver,
        records: &'a SpfRecords,
        ip: IpAddr,
        helo: &'a str,
        hostname: &'a str,
    ) -> Self {
        Self {
            resolver,
            records,
            ip: ip.to_canonical(),
            helo,
            hostname,
        }
    }

    /// check_host() for the HELO identity (§2.3). A HELO that is an address literal or
    /// not a multi-label domain name has no SPF identity: none.
    pub(crate) async fn check_helo(&self) -> SpfCheck {
        let sender = format!("postmaster@{}", self.helo);
        self.check(self.helo, &sender).await
    }

    /// check_host() for the MAIL FROM identity (§2.4); `<>` is checked as
    /// postmaster@HELO.
    pub(crate) async fn check_mail_from(&self, mail_from: &str) -> SpfCheck {
        match mail_from.rsplit_once('@') {
            Some((_, domain)) if !mail_from.is_empty() => self.check(domain, mail_from).await,
            _ => self.check_helo().await,
        }
    }

    async fn check(&self, domain: &str, sender: &str) -> SpfCheck {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !is_valid_domain(&domain) {
            return SpfCheck {
                result: SpfResult::None,
                domain,
                reason: Some("not a domain name".into()),
            };
        }
        let mut budget = Budget::default();
        // Most identities have no record, or one of addresses only: the macro variables
        // are made when a record needs them.
        let outcome = match self.record(&domain).await {
            Ok(None) => Ok(SpfResult::None),
            Ok(Some(record)) => {
                let vars = self.variables(sender);
                self.evaluate(&record, &domain, &vars, &mut budget).await
            }
            Err(stop) => Err(stop),
        };
        let (result, reason) = match outcome {
            Ok(result) => (result, None),
            Err(Stop::Temp(reason)) => (SpfResult::TempError, Some(reason)),
            Err(Stop::Perm(reason)) => (SpfResult::PermError, Some(reason)),
        };
        SpfCheck {
            result,
            domain,
            reason,
        }
    }

    /// The macro variables (§7.2) of a check of `sender`.
    fn variables(&self, sender: &str) -> Variables<'static> {
        let mut vars = Variables::new();
        vars.set_ip(&self.ip);
        vars.set_sender(sender.as_bytes().to_vec());
        vars.set_helo_domain(self.helo.as_bytes().to_vec());
        vars.set_host_domain(self.hostname.as_bytes().to_vec());
        vars
    }

    /// One check_host() level below the first (include and redirect): the target's
    /// record, evaluated with the same `budget`.
    fn check_host<'s>(
        &'s self,
        domain: &'s str,
        vars: &'s Variables<'s>,
        budget: &'s mut Budget,
    ) -> Pin<Box<dyn Future<Output = Result<SpfResult, Stop>> + Send + 's>> {
        Box::pin(async move {
            match self.record(domain).await? {
                Some(record) => self.evaluate(&record, domain, vars, budget).await,
                None => Ok(SpfResult::None),
            }
        })
    }

    /// `domain`'s record against the client (§4.6, §5, §6.1).
    async fn evaluate(
        &self,
        record: &Spf,
        domain: &str,
        vars: &Variables<'_>,
        budget: &mut Budget,
    ) -> Result<SpfResult, Stop> {
        // %{d} is this level's domain; made when a mechanism first expands a macro.
        let mut scoped: Option<Variables<'_>> = None;
        for directive in record.directives.iter() {
            let matched = match self.matches_address(&directive.mechanism) {
                Some(matched) => matched,
                None => {
                    let vars = scoped.get_or_insert_with(|| with_domain(vars, domain));
                    self.matches(&directive.mechanism, domain, vars, budget)
                        .await?
                }
            };
            if matched {
                return Ok(match directive.qualifier {
                    Qualifier::Pass => SpfResult::Pass,
                    Qualifier::Fail => SpfResult::Fail,
                    Qualifier::SoftFail => SpfResult::SoftFail,
                    Qualifier::Neutral => SpfResult::Neutral,
                });
            }
        }
        // §6.1: redirect applies only when no mechanism matched.
        let Some(redirect) = &record.redirect else {
            return Ok(SpfResult::Neutral);
        };
        budget.lookup()?;
        let vars = scoped.get_or_insert_with(|| with_domain(vars, domain));
        let target = expand(redirect, vars, domain)?;
        match self.check_host(&target, vars, budget).await? {
            SpfResult::None => Err(Stop::Perm(format!("redirect to {target} without SPF"))),
            result => Ok(result),
        }
    }

    /// Whether `all`, `ip4` or `ip6` matches; `None` for mechanisms that need DNS.
    fn matches_address(&self, mechanism: &Mechanism) -> Option<bool> {
        Some(match mechanism {
            Mechanism::All => true,
            Mechanism::Ip4 { addr, mask } => match self.ip {
                IpAddr::V4(ip) => u32::from(ip) & mask == u32::from(*addr) & mask,
                IpAddr::V6(_) => false,
            },
            Mechanism::Ip6 { addr, mask } => match self.ip {
                IpAddr::V6(ip) => u128::from(ip) & mask == u128::from(*addr) & mask,
                IpAddr::V4(_) => false,
            },
            _ => return None,
        })
    }

    /// The domain's one SPF record (§4.4, §4.5), `None` when it has none.
    async fn record(&self, domain: &str) -> Result<Option<Arc<Spf>>, Stop> {
        if !is_valid_domain(domain) {
            return Ok(None);
        }
        let fqdn = domain.to_fqdn();
        let published = match self.records.0.get(fqdn.as_ref()) {
            Some(published) => published,
            None => {
                let (answer, until) = match txt_answer(self.resolver, &fqdn).await {
                    Ok(answer) => answer,
                    Err(LookupError::InvalidName(_)) => return Ok(None),
                    Err(error) => return Err(Stop::Temp(error.to_string())),
                };
                let published = match answer {
                    Ok(records) => published(domain, &records),
                    Err(_) => Published::Nothing,
                };
                if let Some(until) = until {
                    let key = fqdn.into_owned().into_boxed_str();
                    self.records.0.insert(key, published.clone(), until);
                }
                published
            }
        };
        match published {
            Published::Nothing => Ok(None),
            Published::Record(record) => Ok(Some(record)),
            Published::Invalid(reason) => Err(Stop::Perm(reason)),
        }
    }

    async fn matches(
        &self,
        mechanism: &Mechanism,
        domain: &str,
        vars: &Variables<'_>,
        budget: &mut Budget,
    ) -> Result<bool, Stop> {
        if let Some(matched) = self.matches_address(mechanism) {
            return Ok(matched);
        }
        match mechanism {
            Mechanism::All | Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. } => {
                unreachable!("matched by matches_address")
            }
            Mechanism::A {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                budget.lookup()?;
                let target = expand(macro_string, vars, domain)?;
                let addresses = budget.answer(self.addresses(&target).await)?;
                Ok(addresses
                    .iter()
                    .any(|address| self.in_network(*address, *ip4_mask, *ip6_mask)))
            }
            Mechanism::Mx {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                budget.lookup()?;
                let target = expand(macro_string, vars, domain)?;
                let exchanges = budget.answer(self.resolver.mx(&target).await)?;
                if exchanges.len() > MAX_NAMES_PER_TERM {
                    return Err(Stop::Perm(format!(
                        "{target} has more than {MAX_NAMES_PER_TERM} MX records"
                    )));
                }
                for exchange in exchanges {
                    let addresses = match self.addresses(&exchange.exchange).await {
                        Ok(addresses) => addresses,
                        Err(error) if error.is_empty_answer() => continue,
                        Err(error) => return Err(Stop::Temp(error.to_string())),
                    };
                    if addresses
                        .iter()
                        .any(|address| self.in_network(*address, *ip4_mask, *ip6_mask))
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Include { macro_string } => {
                budget.lookup()?;
                let target = expand(macro_string, vars, domain)?;
                // §5.2: the included record's result decides only whether this matches.
                match self.check_host(&target, vars, budget).await? {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::None => Err(Stop::Perm(format!("include of {target} without SPF"))),
                    SpfResult::TempError | SpfResult::PermError => {
                        unreachable!("errors return early through Stop")
                    }
                }
            }
            Mechanism::Exists { macro_string } => {
                budget.lookup()?;
                let target = expand(macro_string, vars, domain)?;
                // §5.7: an A query whatever the connection's address family.
                Ok(!budget.answer(self.resolver.ipv4(&target).await)?.is_empty())
            }
            Mechanism::Ptr { macro_string } => {
                budget.lookup()?;
                let target = expand(macro_string, vars, domain)?;
                self.ptr_matches(&target, budget).await
            }
        }
    }

    /// §5.5: a validated PTR name equal to or below `target`. DNS errors make it not
    /// match rather than fail the check.
    async fn ptr_matches(&self, target: &str, budget: &mut Budget) -> Result<bool, Stop> {
        let names = match self.resolver.ptr(self.ip).await {
            Ok(names) => names,
            Err(error) if error.is_empty_answer() => {
                budget.void()?;
                return Ok(false);
            }
            Err(_) => return Ok(false),
        };
        let target = target.trim_end_matches('.').to_ascii_lowercase();
        for name in names.iter().take(MAX_NAMES_PER_TERM) {
            let below = *name == target || name.ends_with(&format!(".{target}"));
            if !below {
                continue;
            }
            if let Ok(addresses) = self.addresses(name).await
                && addresses.contains(&self.ip)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The addresses of `name` of the client's family (§5.3).
    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        match self.ip {
            IpAddr::V4(_) => self
                .resolver
                .ipv4(name)
                .await
                .map(|found| found.into_iter().map(IpAddr::V4).collect()),
            IpAddr::V6(_) => self
                .resolver
                .ipv6(name)
                .await
                .map(|found| found.into_iter().map(IpAddr::V6).collect()),
        }
    }

    fn in_network(&self, address: IpAddr, ip4_mask: u32, ip6_mask: u128) -> bool {
        match (self.ip, address) {
            (IpAddr::V4(ip), IpAddr::V4(address)) => {
                u32::from(ip) & ip4_mask == u32::from(address) & ip4_mask
            }
            (IpAddr::V6(ip), IpAddr::V6(address)) => {
                u128::from(ip) & ip6_mask == u128::from(address) & ip6_mask
            }
            _ => false,
        }
    }
}

/// What `domain`'s TXT records publish: its one SPF record, checked and parsed.
fn published(domain: &str, records: &[Vec<u8>]) -> Published {
    let spf: Vec<&Vec<u8>> = records.iter().filter(|txt| is_spf1(txt)).collect();
    let record = match spf.as_slice() {
        [] => return Published::Nothing,
        [record] => *record,
        _ => return Published::Invalid(format!("{domain} has several SPF records")),
    };
    let invalid = || Published::Invalid(format!("{domain} has an invalid SPF record"));
    if !terms_are_valid(record) {
        return invalid();
    }
    match Spf::parse(record) {
        Ok(record) => Published::Record(Arc::new(record)),
        Err(_) => invalid(),
    }
}

/// `vars` with %{d} set to `domain`.
fn with_domain<'v>(vars: &Variables<'v>, domain: &str) -> Variables<'v> {
    let mut vars = vars.clone();
    vars.set_domain(domain.as_bytes().to_vec());
    vars
}

/// Expands a domain-spec (§7); no domain-spec means the current domain.
fn expand(macro_string: &Macro, vars: &Variables<'_>, domain: &str) -> Result<String, Stop> {
    let expanded = macro_string.eval(vars, domain, false);
    let mut name = expanded.trim_end_matches('.').to_string();
    // §7.3: an expansion longer than 253 octets loses labels from the left.
    while name.len() > 253 {
        match name.split_once('.') {
            Some((_, rest)) => name = rest.to_string(),
            None => break,
        }
    }
    if name.is_empty() {
        return Err(Stop::Perm("empty domain-spec".into()));
    }
    Ok(name)
}

/// Checks what mail-auth's parser lets through: every mechanism must be one RFC 7208
/// defines (it skips unknown ones as if they were modifiers, which only modifiers may be,
/// §4.6.1, §12), modifier names must be valid, and `ip4:`/`ip6:` must hold real addresses
/// and prefix lengths (§5.6).
fn terms_are_valid(record: &[u8]) -> bool {
    let Ok(record) = std::str::from_utf8(record) else {
        return false;
    };
    record
        .split(' ')
        .skip(1)
        .filter(|term| !term.is_empty())
        .all(term_is_valid)
}

fn term_is_valid(term: &str) -> bool {
    let name_end = term.find([':', '/', '=']).unwrap_or(term.len());
    let (name, rest) = term.split_at(name_end);
    if rest.starts_with('=') {
        return name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    }
    let name = name
        .trim_start_matches(['+', '-', '~', '?'])
        .to_ascii_lowercase();
    match name.as_str() {
        "ip4" => network_is_valid::<std::net::Ipv4Addr>(rest, 32),
        "ip6" => network_is_valid::<std::net::Ipv6Addr>(rest, 128),
        "all" | "include" | "a" | "mx" | "ptr" | "exists" => true,
        _ => false,
    }
}

/// `:address` with an optional `/prefix-length` no longer than `max`.
fn network_is_valid<A: std::str::FromStr>(rest: &str, max: u8) -> bool {
    let Some(network) = rest.strip_prefix(':') else {
        return false;
    };
    let (address, length) = match network.split_once('/') {
        Some((address, length)) => (address, Some(length)),
        None => (network, None),
    };
    // §5.6: ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT), so no leading zeros.
    let length_is_valid = |length: &str| {
        (length == "0" || !length.starts_with('0'))
            && length.parse::<u8>().is_ok_and(|length| length <= max)
    };
    address.parse::<A>().is_ok() && length.is_none_or(length_is_valid)
}

/// `v=spf1` alone or followed by a space (§4.5).
fn is_spf1(txt: &[u8]) -> bool {
    txt.len() >= 6
        && txt[..6].eq_ignore_ascii_case(b"v=spf1")
        && txt.get(6).is_none_or(|&b| b == b' ')
}

/// §4.3: a multi-label name without empty or over-long labels.
fn is_valid_domain(domain: &str) -> bool {
    domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests;
