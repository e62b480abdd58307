//! The one config file (DESIGN.md, "Config"). Every key has a default, so the file may be
//! absent; a key we do not know is an error that names it, never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
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
        for path in [
            &mut config.tls.cert,
            &mut config.tls.key,
            &mut config.tls.client_ca,
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *path = None;
            }
        }
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.hostname.trim().is_empty() {
            bail!("hostname is empty: set hostname = \"mail.example.org\" in the config file");
        }
        let url = self.store.url.trim();
        if !url.is_empty() && !url.starts_with("postgres://") && !url.starts_with("postgresql://")
        {
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
        Ok(())
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
            trust_anchor: self.dns.trust_anchor.clone(),
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
}
