//! `sealpost check`: inspects any mail server's TLS posture (and, for a domain, its DNS
//! policies) the way testssl.sh, a STARTTLS checker and a DMARC inspector would, in
//! seconds, for a person (`render`) or a program (`report`, serialized as `--json`).
//!
//! Probes are real connections: rustls for TLS 1.3/1.2 handshakes, hand-built
//! ClientHellos for everything older or weaker (`hello`, answers parsed by tls-parser),
//! and the mail protocols' own commands around STARTTLS. See README.md for the JSON schema
//! and the grading table.

mod certificate;
mod dane;
mod dialogue;
mod dkim;
mod dmarc;
pub mod domain;
mod endpoint;
pub mod grade;
mod handshake;
mod hello;
mod legacy;
mod link;
mod mta_sts;
pub mod render;
pub mod report;
mod server_flight;
mod spf;
mod starttls;
pub mod suites;
pub mod target;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

pub use certificate::{CertificateReport, CertificateSummary, TrustStore};
pub use domain::DomainReport;
pub use grade::{Finding, Grade};
pub use handshake::AlpnHandling;
pub use link::{NoProgress, Progress, ProgressStatus};
pub use report::{EndpointReport, Report};
pub use target::{Endpoint, Protocol, Service, Target};

/// Errors that stop a check before any probe runs.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{target}: {reason}")]
    Target { target: String, reason: String },
    #[error("cannot read --ca {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// Why one probe failed. These end up in a report's `errors`, not as a failed run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve: {0}")]
    Resolve(String),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("STARTTLS is not offered")]
    NoStartTls,
    #[error("STARTTLS refused: {0}")]
    StartTlsRefused(String),
    /// The server declined what was offered (an alert, or it hung up mid-handshake).
    #[error("TLS handshake refused: {0}")]
    TlsRefused(String),
    #[error("TLS: {0}")]
    Tls(String),
}

/// How to check.
pub struct Options {
    /// For each probe (connection, dialogue and handshake together).
    pub timeout: Duration,
    pub trust: TrustStore,
    /// For domain targets: empty means the system's resolvers.
    pub nameservers: Vec<SocketAddr>,
    pub dkim_selectors: Vec<String>,
}

/// Checks every target concurrently: domains' DNS first, then every endpoint (those named
/// and the domains' MX hosts, each once), then DANE against what the MX hosts served.
pub async fn check(
    targets: &[Target],
    options: &Options,
    progress: Arc<dyn Progress>,
) -> Result<Report, CheckError> {
    let started = Instant::now();
    let tracker = link::Tracker::new(progress);
    let domains: Vec<&str> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Domain(d) => Some(d.as_str()),
            Target::Endpoint(_) => None,
        })
        .collect();
    let resolver = if domains.is_empty() {
        None
    } else {
        let settings = sealpost_dns::ResolverSettings {
            nameservers: options.nameservers.clone(),
            timeout: options.timeout.min(Duration::from_secs(3)),
            attempts: 2,
            trust_anchor: None,
        };
        Some(
            sealpost_dns::Resolver::new(&settings)
                .map_err(|e| CheckError::Resolver(e.to_string()))?,
        )
    };
    let domain_dns = match &resolver {
        Some(resolver) => {
            join_all(domains.iter().map(|d| {
                domain::lookup(
                    resolver,
                    d,
                    &options.dkim_selectors,
                    &options.trust,
                    options.timeout,
                )
            }))
            .await
        }
        None => Vec::new(),
    };

    let mut jobs: Vec<(Endpoint, Option<Vec<IpAddr>>)> = Vec::new();
    let mut seen = HashSet::new();
    for target in targets {
        if let Target::Endpoint(e) = target
            && seen.insert((e.host.clone(), e.port))
        {
            jobs.push((e.clone(), None));
        }
    }
    for dns in &domain_dns {
        for (host, addresses) in &dns.endpoints {
            if seen.insert((host.clone(), 25)) {
                let endpoint = Endpoint {
                    service: Service::Smtp,
                    host: host.clone(),
                    port: 25,
                };
                jobs.push((endpoint, Some(addresses.clone())));
            }
        }
    }
    let endpoints = join_all(jobs.into_iter().map(|(e, addresses)| {
        endpoint::check_endpoint(
            e,
            addresses,
            options.timeout,
            &options.trust,
            tracker.clone(),
        )
    }))
    .await;

    let mut domain_reports = Vec::new();
    if let Some(resolver) = &resolver {
        let validating = dane::validating_resolver(&options.nameservers).ok();
        for dns in domain_dns {
            let mx_endpoints: Vec<&EndpointReport> = endpoints
                .iter()
                .filter(|e| e.port == 25 && dns.endpoints.iter().any(|(h, _)| *h == e.host))
                .collect();
            domain_reports.push(
                domain::finish(
                    dns.report,
                    resolver.hickory(),
                    validating.as_ref(),
                    &mx_endpoints,
                )
                .await,
            );
        }
    }
    Ok(Report {
        schema_version: report::SCHEMA_VERSION,
        endpoints,
        domains: domain_reports,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
