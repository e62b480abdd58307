//! What the user asked to check: `smtp://host[:port]` and its six siblings, or a bare
//! domain whose MX hosts and DNS policies are checked.

use std::fmt;

use serde::Serialize;

use crate::CheckError;

/// The mail protocol spoken on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Smtp,
    Imap,
    Pop3,
}

impl Protocol {
    /// The ALPN protocol ID of this protocol (RFC 7301 registry; used by the ALPACA probe).
    pub fn alpn_id(self) -> &'static [u8] {
        match self {
            Protocol::Smtp => b"smtp",
            Protocol::Imap => b"imap",
            Protocol::Pop3 => b"pop3",
        }
    }
}

/// One of the seven mail services, named by its URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// MX, port 25, STARTTLS (RFC 3207).
    Smtp,
    /// Message submission, port 587, STARTTLS (RFC 6409).
    Submission,
    /// Message submission over implicit TLS, port 465 (RFC 8314).
    Submissions,
    /// IMAP, port 143, STARTTLS (RFC 9051 §6.2.1).
    Imap,
    /// IMAP over implicit TLS, port 993 (RFC 8314).
    Imaps,
    /// POP3, port 110, STLS (RFC 2595).
    Pop3,
    /// POP3 over implicit TLS, port 995 (RFC 8314).
    Pop3s,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Smtp,
        Service::Submission,
        Service::Submissions,
        Service::Imap,
        Service::Imaps,
        Service::Pop3,
        Service::Pop3s,
    ];

    pub fn scheme(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
            Service::Imap => "imap",
            Service::Imaps => "imaps",
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Service::Smtp => 25,
            Service::Submission => 587,
            Service::Submissions => 465,
            Service::Imap => 143,
            Service::Imaps => 993,
            Service::Pop3 => 110,
            Service::Pop3s => 995,
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Service::Smtp | Service::Submission | Service::Submissions => Protocol::Smtp,
            Service::Imap | Service::Imaps => Protocol::Imap,
            Service::Pop3 | Service::Pop3s => Protocol::Pop3,
        }
    }

    /// True when TLS starts at connect (RFC 8314), false when it is negotiated with
    /// STARTTLS/STLS on the plaintext port.
    pub fn implicit_tls(self) -> bool {
        matches!(self, Service::Submissions | Service::Imaps | Service::Pop3s)
    }

    /// True where users log in, so TLS must come before any authentication. Port 25 is
    /// server-to-server: STARTTLS is offered there but cannot be required (RFC 3207 §4).
    pub fn carries_logins(self) -> bool {
        self != Service::Smtp
    }

    fn from_scheme(scheme: &str) -> Option<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.scheme().eq_ignore_ascii_case(scheme))
    }
}

/// A host and port speaking one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub service: Service,
    /// A DNS name or an IP address (without brackets).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.service.scheme(),
                self.host,
                self.port
            )
        } else {
            write!(f, "{}://{}:{}", self.service.scheme(), self.host, self.port)
        }
    }
}

/// A command-line target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Endpoint(Endpoint),
    /// A mail domain: every MX on port 25 plus MTA-STS, DANE, TLS-RPT, SPF, DMARC, DKIM.
    Domain(String),
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, CheckError> {
        let bad = |why: &str| CheckError::Target {
            target: text.to_string(),
            reason: why.to_string(),
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            let domain = text.trim_end_matches('.');
            if !is_domain_name(domain) {
                return Err(bad(
                    "not a domain name; endpoints look like smtp://host[:port] \
                     (also submission, submissions, imap, imaps, pop3, pop3s)",
                ));
            }
            return Ok(Target::Domain(domain.to_ascii_lowercase()));
        };
        let service = Service::from_scheme(scheme).ok_or_else(|| {
            bad("unknown scheme; use smtp, submission, submissions, imap, imaps, pop3 or pop3s")
        })?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("expected host[:port]"))?;
        let port = match port {
            None => service.default_port(),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        };
        let host = host.trim_end_matches('.');
        if host.parse::<std::net::IpAddr>().is_err() && !is_domain_name(host) {
            return Err(bad("the host is neither a DNS name nor an IP address"));
        }
        Ok(Target::Endpoint(Endpoint {
            service,
            host: host.to_ascii_lowercase(),
            port,
        }))
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Some((text, None)),
        Some((host, port)) => Some((host, Some(port))),
        None => Some((text, None)),
    }
    .filter(|(host, _)| !host.is_empty())
}

/// Letters, digits, hyphens and dots, labels of 1..=63 bytes (RFC 1035 §2.3.1, relaxed to
/// allow leading digits and underscores as real zones do).
pub(crate) fn is_domain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> Endpoint {
        match Target::parse(text).expect(text) {
            Target::Endpoint(e) => e,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn every_scheme_has_its_default_port() {
        let expected = [
            ("smtp", 25, false),
            ("submission", 587, false),
            ("submissions", 465, true),
            ("imap", 143, false),
            ("imaps", 993, true),
            ("pop3", 110, false),
            ("pop3s", 995, true),
        ];
        for (scheme, port, implicit) in expected {
            let e = endpoint(&format!("{scheme}://mx.example.org"));
            assert_eq!(e.port, port, "{scheme}");
            assert_eq!(e.service.scheme(), scheme);
            assert_eq!(e.service.implicit_tls(), implicit, "{scheme}");
        }
    }

    #[test]
    fn explicit_ports_and_ip_literals() {
        assert_eq!(endpoint("smtp://127.0.0.1:2525").port, 2525);
        assert_eq!(endpoint("SMTP://MX.Example.org.").host, "mx.example.org");
        let v6 = endpoint("imaps://[::1]:9993");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9993));
        assert_eq!(endpoint("imaps://[::1]").port, 993);
        assert_eq!(v6.to_string(), "imaps://[::1]:9993");
    }

    #[test]
    fn bare_names_are_domains() {
        assert_eq!(
            Target::parse("Example.ORG.").unwrap(),
            Target::Domain("example.org".into())
        );
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for bad in [
            "http://example.org",
            "smtp://",
            "smtp://host:0",
            "smtp://host:99999",
            "smtp://ho st",
            "-bad-.example",
            "",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
