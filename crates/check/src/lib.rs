//! `sealpost check`: inspects any mail server's TLS posture (and, for a domain, its DNS
//! policies) the way testssl.sh, a STARTTLS checker and a DMARC inspector would, in
//! seconds, for a person (`render`) or a program (`report`, serialized as `--json`).
//!
//! Probes are real connections: rustls for TLS 1.3/1.2 handshakes, hand-built
//! ClientHellos for everything older or weaker (`hello`, answers parsed by tls-parser),
//! and the mail protocols' own commands around STARTTLS. See README.md for the JSON schema
//! and the grading table.

mod certificate;
mod dialogue;
mod endpoint;
pub mod grade;
mod handshake;
mod hello;
mod legacy;
mod link;
pub mod render;
pub mod report;
mod server_flight;
mod starttls;
pub mod suites;
pub mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

pub use certificate::{CertificateReport, CertificateSummary, TrustStore};
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
}

/// Checks every target concurrently.
pub async fn check(targets: &[Target], options: &Options, progress: Arc<dyn Progress>) -> Report {
    let started = Instant::now();
    let tracker = link::Tracker::new(progress);
    let endpoints = targets.iter().filter_map(|t| match t {
        Target::Endpoint(e) => Some(e.clone()),
        Target::Domain(_) => None,
    });
    let endpoints =
        join_all(endpoints.map(|e| {
            endpoint::check_endpoint(e, options.timeout, &options.trust, tracker.clone())
        }))
        .await;
    Report {
        schema_version: report::SCHEMA_VERSION,
        endpoints,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}
