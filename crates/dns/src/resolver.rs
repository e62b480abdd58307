use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::proto::serialize::txt::{ParseError, trust_anchor};
use hickory_resolver::{ResolverBuilder, TokioResolver};

/// The shortest time a negative answer is remembered.
const NEGATIVE_TTL_FLOOR: Duration = Duration::from_secs(30);

/// How the resolver is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSettings {
    /// Empty: the system's configuration (`/etc/resolv.conf`). Otherwise these, each over
    /// UDP and TCP, and the system's are ignored.
    pub nameservers: Vec<SocketAddr>,
    /// How long one attempt at one nameserver may take.
    pub timeout: Duration,
    /// Attempts per query before it is a temporary failure.
    pub attempts: usize,
    /// DNSSEC trust anchors used instead of the built-in root keys: a file of DNSKEY
    /// records in zone-file syntax (`. 300 IN DNSKEY 257 3 13 <base64>`; hickory reads no
    /// DS records there). Tests point it at sealpost-testdns's root key.
    pub trust_anchor: Option<std::path::PathBuf>,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(3),
            attempts: 2,
            trust_anchor: None,
        }
    }
}

/// Why a lookup has no records to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The name does not exist (RCODE 3).
    #[error("{0}: no such domain")]
    NxDomain(String),
    /// The name exists but has no records of the type asked for.
    #[error("{0}: no records of that type")]
    NoData(String),
    /// Not a domain name.
    #[error("invalid domain name {0}")]
    InvalidName(String),
    /// No usable answer: timeout, SERVFAIL, REFUSED, a network error. Worth retrying later.
    #[error("{name}: {reason}")]
    Temporary { name: String, reason: String },
}

impl LookupError {
    /// NXDOMAIN or NODATA: an answer that says there is nothing (RFC 7208 §4.6.4 calls
    /// these void lookups).
    pub fn is_empty_answer(&self) -> bool {
        matches!(self, LookupError::NxDomain(_) | LookupError::NoData(_))
    }

    pub fn is_temporary(&self) -> bool {
        matches!(self, LookupError::Temporary { .. })
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// Lower-case, without the trailing dot.
    pub exchange: String,
}

/// Cheap to clone: clones share one cache and one set of connections.
///
/// Two hickory resolvers over the same nameservers: a plain one for everything mail
/// authentication asks (DKIM, SPF and DMARC do not depend on DNSSEC, and validation would
/// cost extra queries on every message), and a validating one for the lookups DANE relies
/// on (`validated.rs`).
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    validating: TokioResolver,
}

impl Resolver {
    /// Fails on an unreadable nameserver configuration or trust anchor file, so a wrong
    /// `[dns] trust_anchor` stops the server at start rather than failing every delivery.
    pub fn new(settings: &ResolverSettings) -> Result<Self, NetError> {
        let inner = builder(settings)?.build()?;
        let anchors = match &settings.trust_anchor {
            Some(path) => trust_anchors(path)?,
            None => TrustAnchors::default(),
        };
        let mut validating = builder(settings)?.with_trust_anchor(Arc::new(anchors));
        validating.options_mut().validate = true;
        Ok(Self {
            inner,
            validating: validating.build()?,
        })
    }

    /// The hickory resolver underneath, for libraries that take one (mail-auth).
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The validating resolver: every answer it gives carries a DNSSEC proof, and it turns
    /// bogus answers into errors.
    pub(crate) fn validating(&self) -> &TokioResolver {
        &self.validating
    }

    /// TXT records, each one's character-strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
    pub async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, LookupError> {
        let lookup = self.lookup(name, RecordType::TXT).await?;
        let records = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(txt.txt_data.concat()),
                _ => None,
            })
            .collect();
        non_empty(name, records)
    }

    /// MX records, most preferred first.
    pub async fn mx(&self, name: &str) -> Result<Vec<Mx>, LookupError> {
        let lookup = self.lookup(name, RecordType::MX).await?;
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
        non_empty(name, records)
    }

    pub async fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, LookupError> {
        let lookup = self.lookup(name, RecordType::A).await?;
        let records = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        non_empty(name, records)
    }

    pub async fn ipv6(&self, name: &str) -> Result<Vec<Ipv6Addr>, LookupError> {
        let lookup = self.lookup(name, RecordType::AAAA).await?;
        let records = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::AAAA(aaaa) => Some(aaaa.0),
                _ => None,
            })
            .collect();
        non_empty(name, records)
    }

    /// A and AAAA records together. Empty only if both are; a temporary failure of either
    /// is a temporary failure, so a caller never mistakes half an answer for all of it.
    pub async fn ip(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let (v4, v6) = tokio::join!(self.ipv4(name), self.ipv6(name));
        let mut addresses = Vec::new();
        let mut empty = None;
        for result in [v4.map(into_ip), v6.map(into_ip)] {
            match result {
                Ok(found) => addresses.extend(found),
                Err(error) if error.is_empty_answer() => {
                    // NXDOMAIN says more than NODATA; keep it if either side saw it.
                    if !matches!(empty, Some(LookupError::NxDomain(_))) {
                        empty = Some(error);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        match empty {
            Some(error) if addresses.is_empty() => Err(error),
            _ => Ok(addresses),
        }
    }

    /// PTR names of an address (without the trailing dot, lower-case).
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, LookupError> {
        let name = reverse_name(ip);
        let lookup = self.lookup(&name, RecordType::PTR).await?;
        let records = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::PTR(ptr) => Some(host_name(&ptr.0)),
                _ => None,
            })
            .collect();
        non_empty(&name, records)
    }

    async fn lookup(&self, name: &str, record_type: RecordType) -> Result<Lookup, LookupError> {
        self.inner
            .lookup(query_name(name)?, record_type)
            .await
            .map_err(|error| classify(name, error))
    }
}

/// A resolver builder with our nameservers and timeouts; validation is added by the caller.
fn builder(settings: &ResolverSettings) -> Result<ResolverBuilder<TokioRuntimeProvider>, NetError> {
    let mut builder = if settings.nameservers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let servers = settings.nameservers.iter().map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
        });
        let config = ResolverConfig::from_name_servers(servers.collect());
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
    };
    let options = builder.options_mut();
    options.timeout = settings.timeout;
    options.attempts = settings.attempts;
    // An NXDOMAIN or NODATA answer without an SOA would otherwise not be cached at all,
    // and mail authentication asks mostly for names that do not exist (`_dmarc.`
    // walks, void SPF terms): each message would ask again. Half a minute is far below
    // any zone's negative TTL and keeps a burst of mail from flooding the resolver.
    options.negative_min_ttl = Some(NEGATIVE_TTL_FLOOR);
    Ok(builder)
}

/// DNSKEY records in zone-file syntax (hickory reads no DS records here). hickory's own
/// `ResolverOpts::trust_anchor` path is only read by its recursor, not by this resolver,
/// so the file is loaded here and handed over. A file without keys is refused: it would
/// make every answer bogus.
fn trust_anchors(path: &Path) -> Result<TrustAnchors, NetError> {
    let failed =
        |reason: String| NetError::from(format!("trust anchor {}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
    let keys = trust_anchor::Parser::new(text.as_str())
        .parse()
        .map_err(|error| failed(error.to_string()))?;
    if keys.is_empty() {
        return Err(failed("no DNSKEY records".to_string()));
    }
    text.parse()
        .map_err(|error: ParseError| failed(error.to_string()))
}

/// The fully qualified query name, or why `name` is not one.
pub(crate) fn query_name(name: &str) -> Result<Name, LookupError> {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    Name::from_utf8(&fqdn).map_err(|_| LookupError::InvalidName(name.to_string()))
}

pub(crate) fn classify(name: &str, error: NetError) -> LookupError {
    match &error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => match no_records.response_code {
            ResponseCode::NXDomain => LookupError::NxDomain(name.to_string()),
            ResponseCode::NoError => LookupError::NoData(name.to_string()),
            code => LookupError::Temporary {
                name: name.to_string(),
                reason: code.to_string(),
            },
        },
        _ => LookupError::Temporary {
            name: name.to_string(),
            reason: error.to_string(),
        },
    }
}

/// An answer that held only other types (say, a CNAME whose target has none) is NODATA.
pub(crate) fn non_empty<T>(name: &str, records: Vec<T>) -> Result<Vec<T>, LookupError> {
    if records.is_empty() {
        Err(LookupError::NoData(name.to_string()))
    } else {
        Ok(records)
    }
}

pub(crate) fn into_ip<T: Into<IpAddr>>(addresses: Vec<T>) -> Vec<IpAddr> {
    addresses.into_iter().map(Into::into).collect()
}

pub(crate) fn host_name(name: &Name) -> String {
    let text = name.to_lowercase().to_ascii();
    text.strip_suffix('.').unwrap_or(&text).to_string()
}

/// `in-addr.arpa` / `ip6.arpa` name of an address (RFC 1035 §3.5, RFC 3596 §2.5).
fn reverse_name(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

#[cfg(test)]
mod tests;
