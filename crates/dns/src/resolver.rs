use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

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
    /// DNSSEC trust anchors (a file of DNSKEY or DS records in zone-file syntax) used
    /// instead of the built-in root key; tests point it at their signed zones' key.
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
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    pub fn new(settings: &ResolverSettings) -> Result<Self, NetError> {
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
        Ok(Self {
            inner: builder.build()?,
        })
    }

    /// The hickory resolver underneath, for libraries that take one (mail-auth).
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
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
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let query =
            Name::from_utf8(&fqdn).map_err(|_| LookupError::InvalidName(name.to_string()))?;
        self.inner
            .lookup(query, record_type)
            .await
            .map_err(|error| classify(name, error))
    }
}

fn classify(name: &str, error: NetError) -> LookupError {
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
fn non_empty<T>(name: &str, records: Vec<T>) -> Result<Vec<T>, LookupError> {
    if records.is_empty() {
        Err(LookupError::NoData(name.to_string()))
    } else {
        Ok(records)
    }
}

fn into_ip<T: Into<IpAddr>>(addresses: Vec<T>) -> Vec<IpAddr> {
    addresses.into_iter().map(Into::into).collect()
}

fn host_name(name: &Name) -> String {
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
