//! The one config file (DESIGN.md, "Config"). Every key has a default, so the file may be
//! absent; a key we do not know is an error that names it, never silently ignored.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sealpost_delivery::{DeliverySettings, DomainOverride};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub hostname: String,
    pub data_dir: PathBuf,
    pub local_domains: Vec<String>,
    /// Absent: every standard port. Present: exactly the listeners it names.
    pub listeners: Option<ListenersConfig>,
    pub tls: TlsConfig,
    pub dns: DnsConfig,
    pub mailauth: MailauthConfig,
    pub store: StoreConfig,
    pub smtp: SmtpConfig,
    pub limits: LimitsConfig,
    pub delivery: DeliveryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hostname: system_hostname(),
            data_dir: PathBuf::from("sealpost-data"),
            local_domains: Vec::new(),
            listeners: None,
            tls: TlsConfig::default(),
            dns: DnsConfig::default(),
            mailauth: MailauthConfig::default(),
            store: StoreConfig::default(),
            smtp: SmtpConfig::default(),
            limits: LimitsConfig::default(),
            delivery: DeliveryConfig::default(),
        }
    }
}

/// Each listener is `"address:port"`; a missing key or `""` disables it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenersConfig {
    pub smtp: Option<String>,
    pub submission: Option<String>,
    pub submissions: Option<String>,
    pub imap: Option<String>,
    pub imaps: Option<String>,
    pub pop3: Option<String>,
    pub pop3s: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM chain; absent: a self-signed CA and certificate generated into DATA/tls/.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// More certificate/key pairs, chosen by SNI or by the client's signature schemes.
    pub certificates: Vec<CertificatePair>,
    /// Set: client certificates are requested (not required) and verified against it.
    pub client_ca: Option<PathBuf>,
    /// Listeners that issue TLS 1.3 session tickets. Port 25 is left out by default:
    /// some MTAs (Microsoft's) abort STARTTLS when sent a ticket.
    pub session_tickets: Vec<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            certificates: Vec::new(),
            client_ca: None,
            session_tickets: [
                "submission",
                "submissions",
                "imap",
                "imaps",
                "pop3",
                "pop3s",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Empty: the system's resolvers. Tests use ["127.0.0.1:5353"].
    pub nameservers: Vec<String>,
    /// Seconds one query may take at one nameserver (each is tried twice); a lookup that
    /// gets no answer is a temporary failure (451 for a message on port 25).
    pub timeout: u64,
    /// DNSSEC trust anchor file (DNSKEY/DS records) replacing the built-in root key; for
    /// test networks with their own signed zones.
    pub trust_anchor: Option<std::path::PathBuf>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: 3,
            trust_anchor: None,
        }
    }
}

/// Mail authentication of messages arriving on port 25.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailauthConfig {
    /// SPF, DKIM, DMARC and ARC checks with an Authentication-Results header.
    pub verify: bool,
    /// Apply DMARC policy: reject (550), quarantine (to Junk), and 451 when DNS fails.
    /// `false` only annotates.
    pub enforce: bool,
}

impl Default for MailauthConfig {
    fn default() -> Self {
        Self {
            verify: true,
            enforce: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Empty: the embedded store in data_dir.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_command_line: usize,
    pub max_text_line: usize,
    /// Error replies in one session before it is closed.
    pub max_errors: u32,
    /// Seconds without a command before the session is closed (RFC 5321 §4.5.3.2).
    pub idle_timeout: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        let limits = sealpost_smtp::SmtpLimits::default();
        Self {
            max_message_size: limits.max_message_size,
            max_recipients: limits.max_recipients,
            max_command_line: limits.max_command_line,
            max_text_line: limits.max_text_line,
            max_errors: limits.max_errors,
            idle_timeout: limits.idle_timeout.as_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections served at once over all listeners.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Failed logins from one IP before it is refused for `auth_lockout` seconds.
    pub auth_max_failures: u32,
    pub auth_lockout: u64,
    /// Seconds that sessions in flight get to finish after SIGTERM/SIGINT.
    pub shutdown_grace: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 100,
            auth_max_failures: 10,
            auth_lockout: 15 * 60,
            shutdown_grace: 30,
        }
    }
}

/// The shortest `[delivery] lease`, in seconds.
const MIN_DELIVERY_LEASE: u64 = 10;

/// Outbound delivery: the queue worker inside `serve` and its TLS policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// The queue worker runs inside `serve`.
    pub enabled: bool,
    /// Remote MX port: 25; tests set another.
    pub port: u16,
    /// Port of `https://mta-sts.<domain>/`: 443; tests set another.
    pub mta_sts_port: u16,
    /// PEM file of extra roots for MX certificates and MTA-STS hosts; `""` for none.
    pub extra_ca: Option<PathBuf>,
    /// Seconds before the first retry; later retries back off exponentially.
    pub first_retry: u64,
    /// The longest wait between two attempts, in seconds.
    pub max_retry: u64,
    /// Seconds after which undelivered mail is given up (and its sender told).
    pub max_age: u64,
    /// Connections at once to one destination domain.
    pub per_destination: usize,
    /// Outbound connections at once in all.
    pub max_connections: usize,
    /// Seconds a claimed queue entry is held; renewed every third of it while the
    /// attempt is under way, so it is how soon a dead node's entries go to another.
    pub lease: u64,
    /// Once a domain has shown verified TLS, require it from then on.
    pub downgrade_memory: bool,
    /// Send TLS-RPT reports (RFC 8460) to domains that ask for them.
    pub tls_reports: bool,
    /// `[delivery.domains."example.org"]`: stricter TLS toward one domain.
    pub domains: BTreeMap<String, DeliveryDomainConfig>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let settings = DeliverySettings::default();
        Self {
            enabled: true,
            port: settings.port,
            mta_sts_port: settings.mta_sts_port,
            extra_ca: None,
            first_retry: settings.first_retry.as_secs(),
            max_retry: settings.max_retry.as_secs(),
            max_age: settings.max_age.as_secs(),
            per_destination: settings.per_destination,
            max_connections: settings.max_connections,
            lease: settings.lease.as_secs(),
            downgrade_memory: settings.downgrade_memory,
            tls_reports: settings.tls_reports,
            domains: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryDomainConfig {
    /// Deliver only over TLS whose certificate verifies.
    pub require_verified_tls: bool,
    /// PEM file with the one CA the domain's MX certificates must chain to.
    pub pinned_ca: Option<PathBuf>,
    /// Base64 of the SHA-256 digest of the MX certificate's SubjectPublicKeyInfo.
    pub pinned_spki: Option<String>,
    /// Resume TLS sessions with tickets toward this domain's MXes.
    pub session_tickets: bool,
}

impl Default for DeliveryDomainConfig {
    fn default() -> Self {
        Self {
            require_verified_tls: false,
            pinned_ca: None,
            pinned_spki: None,
            session_tickets: true,
        }
    }
}

/// The protocols a listener can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerName {
    Smtp,
    Submission,
    Submissions,
    Imap,
    Imaps,
    Pop3,
    Pop3s,
}

impl ListenerName {
    pub const ALL: [ListenerName; 7] = [
        ListenerName::Smtp,
        ListenerName::Submission,
        ListenerName::Submissions,
        ListenerName::Imap,
        ListenerName::Imaps,
        ListenerName::Pop3,
        ListenerName::Pop3s,
    ];

    pub fn key(self) -> &'static str {
        match self {
            ListenerName::Smtp => "smtp",
            ListenerName::Submission => "submission",
            ListenerName::Submissions => "submissions",
            ListenerName::Imap => "imap",
            ListenerName::Imaps => "imaps",
            ListenerName::Pop3 => "pop3",
            ListenerName::Pop3s => "pop3s",
        }
    }

    fn default_address(self) -> &'static str {
        match self {
            ListenerName::Smtp => "0.0.0.0:25",
            ListenerName::Submission => "0.0.0.0:587",
            ListenerName::Submissions => "0.0.0.0:465",
            ListenerName::Imap => "0.0.0.0:143",
            ListenerName::Imaps => "0.0.0.0:993",
            ListenerName::Pop3 => "0.0.0.0:110",
            ListenerName::Pop3s => "0.0.0.0:995",
        }
    }

    /// Implicit TLS from the first byte, rather than STARTTLS on a plaintext start.
    pub fn implicit_tls(self) -> bool {
        matches!(
            self,
            ListenerName::Submissions | ListenerName::Imaps | ListenerName::Pop3s
        )
    }
}

impl Config {
    /// Reads `path`, or the defaults when no path is given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                Config::parse(&text).with_context(|| format!("in {}", path.display()))?
            }
        };
        config.validate()?;
        Ok(config)
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let mut config: Config = toml::from_str(text)?;
        // `cert = ""` reads as "not set", like an empty listener address.
        let domain_paths = config
            .delivery
            .domains
            .values_mut()
            .map(|domain| &mut domain.pinned_ca);
        for path in [
            &mut config.tls.cert,
            &mut config.tls.key,
            &mut config.tls.client_ca,
            &mut config.delivery.extra_ca,
        ]
        .into_iter()
        .chain(domain_paths)
        {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *path = None;
            }
        }
        for spki in config.delivery.domains.values_mut() {
            if spki
                .pinned_spki
                .as_ref()
                .is_some_and(|s| s.trim().is_empty())
            {
                spki.pinned_spki = None;
            }
        }
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.hostname.trim().is_empty() {
            bail!("hostname is empty: set hostname = \"mail.example.org\" in the config file");
        }
        let url = self.store.url.trim();
        if !url.is_empty() && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            // Not echoed: the URL may hold a password.
            bail!(
                "[store] url: only postgres://USER:PASSWORD@HOST:PORT/DATABASE URLs are \
                 known; leave it empty for the embedded store in data_dir"
            );
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("[tls] needs both cert and key, or neither (for a generated certificate)");
        }
        self.resolver_settings()?;
        if self.dns.timeout == 0 {
            bail!("[dns] timeout = 0: set the seconds a DNS query may take, e.g. timeout = 3");
        }
        for name in &self.tls.session_tickets {
            if !ListenerName::ALL.iter().any(|l| l.key() == name) {
                bail!("[tls] session_tickets: {name:?} is not a listener name");
            }
        }
        self.listeners()?;
        self.validate_delivery()?;
        Ok(())
    }

    fn validate_delivery(&self) -> anyhow::Result<()> {
        let delivery = &self.delivery;
        let positive = [
            ("port", delivery.port as u64, "port = 25"),
            (
                "mta_sts_port",
                delivery.mta_sts_port as u64,
                "mta_sts_port = 443",
            ),
            ("first_retry", delivery.first_retry, "first_retry = 300"),
            ("max_retry", delivery.max_retry, "max_retry = 14400"),
            ("max_age", delivery.max_age, "max_age = 432000"),
            (
                "per_destination",
                delivery.per_destination as u64,
                "per_destination = 4",
            ),
            (
                "max_connections",
                delivery.max_connections as u64,
                "max_connections = 64",
            ),
        ];
        for (key, value, example) in positive {
            if value == 0 {
                bail!("[delivery] {key} = 0: it must be at least 1, e.g. {example}");
            }
        }
        // Renewed every third of it, a lease under 10 s leaves too little room for a
        // renewal delayed by a busy database before another node may claim the entry.
        if delivery.lease < MIN_DELIVERY_LEASE {
            bail!(
                "[delivery] lease = {}: it must be at least {MIN_DELIVERY_LEASE} seconds, e.g. lease = 120",
                delivery.lease
            );
        }
        if delivery.max_retry < delivery.first_retry {
            bail!(
                "[delivery] max_retry = {} is shorter than first_retry = {}: the longest wait between attempts must be at least the first",
                delivery.max_retry,
                delivery.first_retry
            );
        }
        self.delivery_extra_roots()?;
        self.delivery_overrides()?;
        Ok(())
    }

    /// What the queue worker is told: `[delivery]` with the system's roots plus
    /// `extra_ca`, and each domain's override with its pinned CA loaded.
    pub fn delivery_settings(&self) -> anyhow::Result<DeliverySettings> {
        let delivery = &self.delivery;
        let native = rustls_native_certs::load_native_certs();
        if native.certs.is_empty() {
            tracing::warn!(
                errors = ?native.errors,
                "no system CA certificates found: MTA-STS and verified TLS toward other servers will fail; install ca-certificates or set [delivery] extra_ca"
            );
        }
        let mut roots = native.certs;
        roots.extend(self.delivery_extra_roots()?);
        Ok(DeliverySettings {
            hostname: self.hostname.clone(),
            port: delivery.port,
            mta_sts_port: delivery.mta_sts_port,
            roots,
            first_retry: Duration::from_secs(delivery.first_retry),
            max_retry: Duration::from_secs(delivery.max_retry),
            max_age: Duration::from_secs(delivery.max_age),
            per_destination: delivery.per_destination,
            max_connections: delivery.max_connections,
            lease: Duration::from_secs(delivery.lease),
            downgrade_memory: delivery.downgrade_memory,
            tls_reports: delivery.tls_reports,
            domains: self.delivery_overrides()?,
            ..DeliverySettings::default()
        })
    }

    fn delivery_extra_roots(&self) -> anyhow::Result<Vec<CertificateDer<'static>>> {
        match &self.delivery.extra_ca {
            None => Ok(Vec::new()),
            Some(path) => load_certificates(path, "[delivery] extra_ca"),
        }
    }

    fn delivery_overrides(&self) -> anyhow::Result<HashMap<String, DomainOverride>> {
        let mut overrides = HashMap::new();
        for (name, domain) in &self.delivery.domains {
            let key = name.trim().trim_end_matches('.').to_ascii_lowercase();
            let table = format!("[delivery.domains.{name:?}]");
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '@') {
                bail!(
                    "{table}: {name:?} is not a domain name; write e.g. [delivery.domains.\"example.org\"]"
                );
            }
            let pinned_ca = match &domain.pinned_ca {
                None => None,
                Some(path) => {
                    let mut certificates = load_certificates(path, &format!("{table} pinned_ca"))?;
                    if certificates.len() != 1 {
                        bail!(
                            "{table} pinned_ca = {}: holds {} certificates; pin exactly one CA certificate",
                            path.display(),
                            certificates.len()
                        );
                    }
                    certificates.pop()
                }
            };
            let pinned_spki_sha256 = domain
                .pinned_spki
                .as_deref()
                .map(|spki| decode_spki_pin(spki).with_context(|| format!("{table} pinned_spki")))
                .transpose()?;
            let previous = overrides.insert(
                key.clone(),
                DomainOverride {
                    require_verified_tls: domain.require_verified_tls,
                    pinned_ca,
                    pinned_spki_sha256,
                    no_session_tickets: !domain.session_tickets,
                },
            );
            if previous.is_some() {
                bail!("[delivery.domains]: {key} is configured twice");
            }
        }
        Ok(overrides)
    }

    /// The enabled listeners with their addresses.
    pub fn listeners(&self) -> anyhow::Result<Vec<(ListenerName, SocketAddr)>> {
        let mut enabled = Vec::new();
        for name in ListenerName::ALL {
            let address = match &self.listeners {
                None => Some(name.default_address()),
                Some(table) => table.get(name),
            };
            let Some(address) = address.filter(|a| !a.trim().is_empty()) else {
                continue;
            };
            let parsed = address.parse::<SocketAddr>().with_context(|| {
                format!(
                    "[listeners] {} = {address:?} is not an address:port like \"0.0.0.0:{}\"",
                    name.key(),
                    name.default_address()
                        .rsplit(':')
                        .next()
                        .unwrap_or_default()
                )
            })?;
            enabled.push((name, parsed));
        }
        Ok(enabled)
    }

    pub fn smtp_limits(&self) -> sealpost_smtp::SmtpLimits {
        sealpost_smtp::SmtpLimits {
            max_command_line: self.smtp.max_command_line,
            max_text_line: self.smtp.max_text_line,
            max_message_size: self.smtp.max_message_size,
            max_recipients: self.smtp.max_recipients,
            max_errors: self.smtp.max_errors,
            idle_timeout: Duration::from_secs(self.smtp.idle_timeout),
        }
    }

    /// The resolver's setup from `[dns]`.
    pub fn resolver_settings(&self) -> anyhow::Result<sealpost_dns::ResolverSettings> {
        let mut nameservers = Vec::new();
        for server in &self.dns.nameservers {
            nameservers.push(server.parse::<SocketAddr>().with_context(|| {
                format!(
                    "[dns] nameservers: {server:?} is not an address:port like \"127.0.0.1:53\""
                )
            })?);
        }
        Ok(sealpost_dns::ResolverSettings {
            nameservers,
            timeout: Duration::from_secs(self.dns.timeout),
            // `trust_anchor = ""` reads as unset, like the other optional paths.
            trust_anchor: self
                .dns
                .trust_anchor
                .clone()
                .filter(|path| !path.as_os_str().is_empty()),
            ..sealpost_dns::ResolverSettings::default()
        })
    }

    pub fn session_tickets(&self, name: ListenerName) -> bool {
        self.tls.session_tickets.iter().any(|l| l == name.key())
    }
}

impl ListenersConfig {
    fn get(&self, name: ListenerName) -> Option<&str> {
        match name {
            ListenerName::Smtp => self.smtp.as_deref(),
            ListenerName::Submission => self.submission.as_deref(),
            ListenerName::Submissions => self.submissions.as_deref(),
            ListenerName::Imap => self.imap.as_deref(),
            ListenerName::Imaps => self.imaps.as_deref(),
            ListenerName::Pop3 => self.pop3.as_deref(),
            ListenerName::Pop3s => self.pop3s.as_deref(),
        }
    }
}

/// Every certificate of a PEM file; none is an error, as is anything unreadable.
fn load_certificates(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("{key} = {}: cannot read the file", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "{key} = {}: not a PEM certificate file ({e})",
                path.display()
            )
        })?;
    if certificates.is_empty() {
        bail!(
            "{key} = {}: no \"BEGIN CERTIFICATE\" block in the file; give a PEM certificate file",
            path.display()
        );
    }
    Ok(certificates)
}

/// `pinned_spki`: base64 (standard alphabet, padded or not) of a SHA-256 digest, as
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64` prints it.
fn decode_spki_pin(text: &str) -> anyhow::Result<[u8; 32]> {
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|e| anyhow::anyhow!("{text:?} is not base64 ({e})"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow::anyhow!(
            "{text:?} decodes to {} bytes, not the 32 of a SHA-256 digest of the certificate's public key",
            bytes.len()
        )
    })
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_every_standard_port() {
        let config = Config::parse("").unwrap();
        let ports: Vec<u16> = config
            .listeners()
            .unwrap()
            .iter()
            .map(|(_, a)| a.port())
            .collect();
        assert_eq!(ports, [25, 587, 465, 143, 993, 110, 995]);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Config::parse("hostnme = \"x\"").unwrap_err().to_string();
        assert!(err.contains("hostnme"), "{err}");
        let err = Config::parse("[tls]\ncertificate = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("certificate"), "{err}");
    }

    #[test]
    fn listener_removed_or_empty_is_disabled() {
        let config =
            Config::parse("[listeners]\nsmtp = \"127.0.0.1:2525\"\nsubmission = \"\"\n").unwrap();
        let enabled = config.listeners().unwrap();
        assert_eq!(enabled.len(), 1);
        assert_eq!(enabled[0].0, ListenerName::Smtp);
        assert_eq!(enabled[0].1.port(), 2525);
    }

    #[test]
    fn design_md_example_parses() {
        let text = r#"
hostname = "mail.example.test"
data_dir = "sealpost-data"
local_domains = ["example.test"]
[listeners]
smtp = "0.0.0.0:25"
submission = "0.0.0.0:587"
submissions = "0.0.0.0:465"
imap = "0.0.0.0:143"
imaps = "0.0.0.0:993"
pop3 = "0.0.0.0:110"
pop3s = "0.0.0.0:995"
[tls]
cert = "/etc/sealpost/fullchain.pem"
key = "/etc/sealpost/key.pem"
client_ca = ""
[dns]
nameservers = []
[mailauth]
verify = true
enforce = true
[store]
url = ""
"#;
        let config = Config::parse(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.hostname, "mail.example.test");
        assert_eq!(config.listeners().unwrap().len(), 7);
        assert_eq!(config.tls.client_ca, None);
    }

    #[test]
    fn mail_authentication_is_on_and_enforced_by_default() {
        let config = Config::parse("").unwrap();
        assert!(config.mailauth.verify && config.mailauth.enforce);
        let config = Config::parse("[mailauth]\nenforce = false").unwrap();
        assert!(config.mailauth.verify && !config.mailauth.enforce);
        let err = Config::parse("[mailauth]\nverfy = true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("verfy"), "{err}");
    }

    #[test]
    fn dns_empty_trust_anchor_means_the_built_in_root_key() {
        let config = Config::parse("[dns]\ntrust_anchor = \"\"").unwrap();
        assert_eq!(config.resolver_settings().unwrap().trust_anchor, None);
        let config = Config::parse("[dns]\ntrust_anchor = \"/etc/anchor\"").unwrap();
        assert_eq!(
            config.resolver_settings().unwrap().trust_anchor,
            Some(std::path::PathBuf::from("/etc/anchor"))
        );
    }

    #[test]
    fn dns_nameservers_become_resolver_settings() {
        let config =
            Config::parse("[dns]\nnameservers = [\"127.0.0.1:5353\"]\ntimeout = 1").unwrap();
        config.validate().unwrap();
        let settings = config.resolver_settings().unwrap();
        assert_eq!(
            settings.nameservers,
            vec!["127.0.0.1:5353".parse().unwrap()]
        );
        assert_eq!(settings.timeout, Duration::from_secs(1));
        let config = Config::parse("[dns]\nnameservers = [\"127.0.0.1\"]").unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("address:port"), "{err}");
    }

    #[test]
    fn port_25_has_no_session_tickets_by_default() {
        let config = Config::parse("").unwrap();
        assert!(!config.session_tickets(ListenerName::Smtp));
        assert!(config.session_tickets(ListenerName::Submissions));
    }

    #[test]
    fn bad_listener_address_says_what_is_expected() {
        let config = Config::parse("[listeners]\nsmtp = \"25\"").unwrap();
        let err = format!("{:#}", config.listeners().unwrap_err());
        assert!(err.contains("[listeners] smtp"), "{err}");
    }

    #[test]
    fn delivery_defaults_are_production_settings() {
        let config = Config::parse("hostname = \"mail.example.test\"").unwrap();
        config.validate().unwrap();
        assert!(config.delivery.enabled);
        let settings = config.delivery_settings().unwrap();
        assert_eq!(settings.hostname, "mail.example.test");
        assert_eq!(settings.port, 25);
        assert_eq!(settings.mta_sts_port, 443);
        assert_eq!(settings.first_retry, Duration::from_secs(300));
        assert_eq!(settings.max_retry, Duration::from_secs(14_400));
        assert_eq!(settings.max_age, Duration::from_secs(432_000));
        assert_eq!(
            (settings.per_destination, settings.max_connections),
            (4, 64)
        );
        assert_eq!(settings.lease, Duration::from_secs(120));
        assert!(settings.downgrade_memory && settings.tls_reports);
        assert!(settings.domains.is_empty());
    }

    #[test]
    fn delivery_section_of_the_contract_parses() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let ca_pem = test_certificate_pem();
        std::fs::write(&ca, &ca_pem).unwrap();
        let spki = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let text = format!(
            r#"
[delivery]
enabled = false
port = 2525
mta_sts_port = 8443
extra_ca = "{ca}"
first_retry = 1
max_retry = 60
max_age = 3600
per_destination = 2
max_connections = 8
lease = 30
downgrade_memory = false
tls_reports = false
[delivery.domains."Example.ORG."]
require_verified_tls = true
pinned_ca = "{ca}"
pinned_spki = "{spki}"
session_tickets = false
[delivery.domains."plain.example"]
"#,
            ca = ca.display()
        );
        let config = Config::parse(&text).unwrap();
        config.validate().unwrap();
        assert!(!config.delivery.enabled);
        let settings = config.delivery_settings().unwrap();
        assert_eq!((settings.port, settings.mta_sts_port), (2525, 8443));
        assert_eq!(settings.first_retry, Duration::from_secs(1));
        assert_eq!(settings.max_retry, Duration::from_secs(60));
        assert_eq!(settings.max_age, Duration::from_secs(3600));
        assert_eq!((settings.per_destination, settings.max_connections), (2, 8));
        assert_eq!(settings.lease, Duration::from_secs(30));
        assert!(!settings.downgrade_memory && !settings.tls_reports);
        let extra = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert!(
            settings.roots.contains(&extra),
            "extra_ca not among the roots"
        );
        let strict = &settings.domains["example.org"];
        assert!(strict.require_verified_tls && strict.no_session_tickets);
        assert_eq!(strict.pinned_ca.as_ref(), Some(&extra));
        assert_eq!(strict.pinned_spki_sha256, Some([7u8; 32]));
        assert_eq!(settings.domains["plain.example"], DomainOverride::default());
    }

    #[test]
    fn delivery_empty_paths_read_as_unset() {
        let config =
            Config::parse("[delivery]\nextra_ca = \"\"\n[delivery.domains.\"a.example\"]\npinned_ca = \"\"\npinned_spki = \"\"")
                .unwrap();
        config.validate().unwrap();
        assert_eq!(config.delivery.extra_ca, None);
        let settings = config.delivery_settings().unwrap();
        assert_eq!(settings.domains["a.example"], DomainOverride::default());
    }

    #[test]
    fn delivery_zero_limits_say_what_to_set() {
        for key in [
            "per_destination",
            "max_connections",
            "first_retry",
            "max_age",
            "port",
        ] {
            let config = Config::parse(&format!("[delivery]\n{key} = 0")).unwrap();
            let err = format!("{:#}", config.validate().unwrap_err());
            assert!(
                err.starts_with(&format!(
                    "[delivery] {key} = 0: it must be at least 1, e.g. {key} = "
                )),
                "{err}"
            );
        }
        let config = Config::parse("[delivery]\nlease = 9").unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(
            err.starts_with("[delivery] lease = 9: it must be at least 10 seconds"),
            "{err}"
        );
        Config::parse("[delivery]\nlease = 10")
            .unwrap()
            .validate()
            .unwrap();
        let config = Config::parse("[delivery]\nfirst_retry = 600\nmax_retry = 60").unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(
            err.contains("max_retry = 60 is shorter than first_retry = 600"),
            "{err}"
        );
    }

    #[test]
    fn delivery_unknown_keys_are_errors_naming_them() {
        let err = Config::parse("[delivery]\nretry = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retry"), "{err}");
        let err = Config::parse("[delivery.domains.\"a.example\"]\npinned = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pinned"), "{err}");
    }

    #[test]
    fn delivery_pinned_spki_must_be_a_sha256_in_base64() {
        let config =
            Config::parse("[delivery.domains.\"a.example\"]\npinned_spki = \"AAAA\"").unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("pinned_spki"), "{err}");
        assert!(err.contains("decodes to 3 bytes, not the 32"), "{err}");
        let config =
            Config::parse("[delivery.domains.\"a.example\"]\npinned_spki = \"not base64!\"")
                .unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("is not base64"), "{err}");
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode([1u8; 32]);
        let config = Config::parse(&format!(
            "[delivery.domains.\"a.example\"]\npinned_spki = \"{unpadded}\""
        ))
        .unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn delivery_ca_files_must_hold_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let config =
            Config::parse(&format!("[delivery]\nextra_ca = \"{}\"", missing.display())).unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(
            err.contains("[delivery] extra_ca") && err.contains("cannot read"),
            "{err}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "just text\n").unwrap();
        let config =
            Config::parse(&format!("[delivery]\nextra_ca = \"{}\"", garbage.display())).unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("no \"BEGIN CERTIFICATE\" block"), "{err}");

        let two = dir.path().join("two.pem");
        std::fs::write(&two, test_certificate_pem().repeat(2)).unwrap();
        let config = Config::parse(&format!(
            "[delivery.domains.\"a.example\"]\npinned_ca = \"{}\"",
            two.display()
        ))
        .unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(
            err.contains("pinned_ca") && err.contains("holds 2 certificates"),
            "{err}"
        );
    }

    /// A self-signed certificate (any will do: only its PEM framing is read here).
    fn test_certificate_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["ca.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }
}
