//! What the `[delivery]` section of the config decides.

use std::collections::HashMap;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

/// How outbound delivery behaves. `Default` is the secure production setting.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Our name in EHLO and in DSNs (`[hostname]` of the config).
    pub hostname: String,
    /// The port remote MXes are reached on: 25, other values only for tests.
    pub port: u16,
    /// The port MTA-STS policies are fetched from (`https://mta-sts.<domain>:<port>/`):
    /// 443, other values only for tests.
    pub mta_sts_port: u16,
    /// Roots trusted for PKIX verification (MX certificates, MTA-STS policy hosts): the
    /// system's, plus any configured (`[delivery] extra_ca`).
    pub roots: Vec<CertificateDer<'static>>,
    /// The first retry after a temporary failure; later ones back off exponentially.
    pub first_retry: Duration,
    /// The longest wait between two attempts.
    pub max_retry: Duration,
    /// A message still undelivered this long after it was queued is given up (DSN).
    pub max_age: Duration,
    /// Connections at once to one destination domain.
    pub per_destination: usize,
    /// Connections at once in all.
    pub max_connections: usize,
    /// How long one SMTP command may wait for its reply (RFC 5321 §4.5.3.2 gives minutes;
    /// DATA's end gets 10 minutes there).
    pub command_timeout: Duration,
    /// How long establishing the TCP connection to one MX address may take before the
    /// next address is tried (Postfix's `smtp_connect_timeout`; RFC 5321 sets none).
    pub connect_timeout: Duration,
    /// How long a claim holds a queue entry. The worker renews the lease of every entry
    /// it still works on each third of this, so it bounds how long a dead node's entries
    /// wait for another node, not how long one attempt may take.
    pub lease: Duration,
    /// Once a domain has shown verified TLS, require it from then on (downgrade memory).
    pub downgrade_memory: bool,
    /// Send TLS-RPT reports (RFC 8460) to domains that ask for them.
    pub tls_reports: bool,
    /// Per-domain overrides, by lower-case domain.
    pub domains: HashMap<String, DomainOverride>,
}

/// `[delivery.domains."example.org"]`: what one destination domain gets beyond its
/// published policy. Overrides only make delivery stricter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainOverride {
    /// Deliver only over TLS whose certificate verifies (PKIX, or the pin below).
    pub require_verified_tls: bool,
    /// Trust only this CA (DER) for the domain's MXes, instead of the roots.
    pub pinned_ca: Option<CertificateDer<'static>>,
    /// Accept only a certificate whose SubjectPublicKeyInfo has this SHA-256 digest.
    pub pinned_spki_sha256: Option<[u8; 32]>,
    /// Offer no session tickets / resumption toward this domain's MXes.
    pub no_session_tickets: bool,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            port: 25,
            mta_sts_port: 443,
            roots: Vec::new(),
            first_retry: Duration::from_secs(5 * 60),
            max_retry: Duration::from_secs(4 * 60 * 60),
            max_age: Duration::from_secs(5 * 24 * 60 * 60),
            per_destination: 4,
            max_connections: 64,
            command_timeout: Duration::from_secs(5 * 60),
            connect_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(120),
            downgrade_memory: true,
            tls_reports: true,
            domains: HashMap::new(),
        }
    }
}
