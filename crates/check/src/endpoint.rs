//! Checking one endpoint: every probe at once (bounded by the link's connection cap),
//! then the findings and the grade.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rustls_pki_types::UnixTime;

use crate::ProbeError;
use crate::certificate::{TrustStore, analyse};
use crate::dialogue::LoginAttempt;
use crate::grade::{assess, grade_of};
use crate::handshake::{self, Offer, TLS13_ONLY};
use crate::hello::WireVersion;
use crate::legacy::{self, VersionAnswer};
use crate::link::{Link, Tracker, resolve};
use crate::report::{
    EndpointReport, GroupResult, LoginOutcome, LoginResult, Negotiated, PlaintextReport,
    SuiteReport, VersionResult,
};
use crate::starttls;
use crate::suites::suite_name;
use crate::target::Endpoint;

/// What the legacy (hand-built hello) probes found.
struct LegacyResults {
    versions: Vec<(WireVersion, Result<VersionAnswer, ProbeError>)>,
    suites: Option<(WireVersion, Result<Vec<u16>, ProbeError>)>,
    order: Option<Result<Option<Vec<u16>>, ProbeError>>,
}

/// Versions probed with hand-built hellos, oldest first.
const LEGACY_VERSIONS: [WireVersion; 4] = [
    WireVersion::SSL3,
    WireVersion::TLS10,
    WireVersion::TLS11,
    WireVersion::TLS12,
];

pub(crate) async fn check_endpoint(
    endpoint: Endpoint,
    known_addresses: Option<Vec<std::net::IpAddr>>,
    timeout: Duration,
    trust: &TrustStore,
    tracker: Arc<Tracker>,
) -> EndpointReport {
    let started = Instant::now();
    let mut report = EndpointReport::new(&endpoint);
    let address = match resolve(&endpoint, known_addresses.as_deref(), timeout).await {
        Ok(address) => address,
        Err(e) => {
            report.failed("connect", &e);
            return finish(report, started);
        }
    };
    report.address = Some(address.to_string());
    let link = Link::new(endpoint, address, timeout, tracker);
    let starttls_port = !link.endpoint.service.implicit_tls();

    let (plaintext, injection, session, groups, tls13_suites, alpn, legacy) = tokio::join!(
        async {
            match starttls_port {
                true => Some(
                    link.run("plaintext", starttls::plaintext_session(&link))
                        .await,
                ),
                false => None,
            }
        },
        async {
            match starttls_port {
                true => Some(
                    link.run("STARTTLS injection", starttls::command_injection(&link))
                        .await,
                ),
                false => None,
            }
        },
        link.run("handshake", handshake::session(&link)),
        join_all(handshake::probe_groups().into_iter().map(|group| {
            let offer = Offer {
                groups: vec![group],
                ..Offer::everything()
            };
            let link = &link;
            async move {
                let name = format!("{:?}", group.name());
                let result = link.run(&name, handshake::try_offer(link, offer)).await;
                (group.name(), result)
            }
        })),
        join_all(handshake::tls13_suites().into_iter().map(|suite| {
            let offer = Offer {
                suites: vec![suite],
                versions: TLS13_ONLY,
                ..Offer::everything()
            };
            let link = &link;
            async move {
                let name = format!("{:?}", suite.suite());
                let result = link.run(&name, handshake::try_offer(link, offer)).await;
                (suite.suite(), result)
            }
        })),
        link.run("ALPN", handshake::foreign_alpn(&link)),
        legacy_probes(&link),
    );

    // Plaintext port behaviour.
    if let Some(plaintext) = plaintext {
        let protocol = link.endpoint.service.protocol();
        let mut plain = PlaintextReport {
            starttls_offered: false,
            auth_before_tls: Vec::new(),
            plaintext_login: None,
            command_injection: None,
            response_injection: None,
        };
        match plaintext {
            Ok(session) => {
                plain.starttls_offered = session.capabilities.starttls;
                plain.auth_before_tls = starttls::auth_offered(protocol, &session.capabilities);
                plain.plaintext_login = session.login.map(|attempt| match attempt {
                    LoginAttempt::Refused(reply) => LoginResult {
                        outcome: LoginOutcome::Refused,
                        reply,
                    },
                    LoginAttempt::Evaluated(reply) => LoginResult {
                        outcome: LoginOutcome::Evaluated,
                        reply,
                    },
                });
            }
            Err(e) => report.failed("plaintext", &e),
        }
        match injection {
            Some(Ok(injected)) => plain.command_injection = Some(injected),
            Some(Err(e)) => report.failed("STARTTLS injection", &e),
            None => {}
        }
        // A STARTTLS that works shows it is offered even if the capability list hid it.
        plain.starttls_offered |= session.is_ok() || plain.command_injection.is_some();
        if let Ok(session) = &session {
            plain.response_injection = Some(session.plaintext_after_starttls > 0);
        }
        report.plaintext = Some(plain);
    }

    // The modern handshake.
    let mut chain = Vec::new();
    let mut ocsp_stapled = false;
    let mut tls13 = Some(false);
    match session {
        Ok(session) => {
            let h = &session.handshake;
            tls13 = Some(h.version == rustls::ProtocolVersion::TLSv1_3);
            report.negotiated = Some(Negotiated {
                version: version_name(h.version),
                cipher_suite: suite_name(u16::from(h.suite)),
                group: h.group.map(|g| format!("{g:?}")),
            });
            report.tls13_tickets = Some(session.tls13_tickets);
            report.auth_after_tls = session.capabilities.map(|c| c.auth_mechanisms);
            chain = h.chain.clone();
            ocsp_stapled = h.ocsp_stapled;
        }
        Err(ProbeError::TlsRefused(_)) => {}
        Err(e) => {
            tls13 = None;
            report.failed("handshake", &e);
        }
    }

    // Versions: the hand-built hellos up to 1.2, rustls for 1.3.
    for (version, answer) in &legacy.versions {
        report.versions.push(VersionResult {
            version: version.name().to_string(),
            accepted: answer.as_ref().ok().map(|a| a.accepted),
            detail: match answer {
                Ok(a) => a.detail.clone(),
                Err(e) => e.to_string(),
            },
        });
        if let Err(e) = answer {
            report.failed(version.name(), e);
        }
    }
    report.versions.push(VersionResult {
        version: WireVersion::TLS13.name().to_string(),
        accepted: tls13,
        detail: report
            .negotiated
            .as_ref()
            .filter(|_| tls13 == Some(true))
            .map(|n| n.cipher_suite.clone())
            .unwrap_or_default(),
    });
    if chain.is_empty() {
        // No modern handshake: take the chain from the newest legacy version accepted.
        if let Some(flight) = legacy
            .versions
            .iter()
            .rev()
            .find_map(|(_, a)| a.as_ref().ok().and_then(|a| a.flight.clone()))
        {
            chain = flight
                .certificates
                .into_iter()
                .map(rustls_pki_types::CertificateDer::from)
                .collect();
            ocsp_stapled = flight.ocsp_stapled;
        }
    }

    if let Some((version, accepted)) = &legacy.suites {
        match accepted {
            Ok(accepted) => {
                let order = match &legacy.order {
                    Some(Ok(order)) => order.clone(),
                    Some(Err(e)) => {
                        report.failed("server preference", e);
                        None
                    }
                    None => None,
                };
                let preference_known = matches!(legacy.order, Some(Ok(_)));
                let mut suites = SuiteReport::new(version.name(), accepted, order);
                if !preference_known {
                    suites.server_preference = None;
                }
                report.cipher_suites = Some(suites);
            }
            Err(e) => report.failed("cipher suites", e),
        }
    }

    for (suite, result) in tls13_suites {
        match result {
            Ok(Some(_)) => report
                .tls13_cipher_suites
                .push(suite_name(u16::from(suite))),
            Ok(None) => {}
            Err(e) => report.failed("TLS 1.3 suites", &e),
        }
    }
    for (group, result) in groups {
        let accepted = match result {
            Ok(handshake) => Some(handshake.is_some_and(|h| h.group == Some(group))),
            Err(e) => {
                report.failed("groups", &e);
                None
            }
        };
        report.groups.push(GroupResult {
            name: format!("{group:?}"),
            accepted,
        });
    }
    match alpn {
        Ok(handling) => report.alpn_foreign = Some(handling),
        Err(ProbeError::TlsRefused(_)) => {}
        Err(e) => report.failed("ALPN", &e),
    }

    if !chain.is_empty() {
        match analyse(
            &chain,
            &link.endpoint.host,
            ocsp_stapled,
            trust,
            UnixTime::now(),
        ) {
            Ok(certificate) => report.certificate = Some(certificate),
            Err(e) => report.failed("certificate", &ProbeError::Protocol(e)),
        }
    }
    finish(report, started)
}

fn finish(mut report: EndpointReport, started: Instant) -> EndpointReport {
    report.findings = assess(&report);
    report.grade = grade_of(&report.findings);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report
}

/// Versions in parallel; then the suites at the newest version accepted up to 1.2, and
/// whose order decides.
async fn legacy_probes(link: &Link) -> LegacyResults {
    let versions: Vec<(WireVersion, Result<VersionAnswer, ProbeError>)> = join_all(
        LEGACY_VERSIONS
            .into_iter()
            .map(|v| async move { (v, legacy::probe_version(link, v).await) }),
    )
    .await;
    let best = versions
        .iter()
        .rev()
        .find(|(_, a)| a.as_ref().is_ok_and(|a| a.accepted))
        .map(|(v, _)| *v);
    let Some(best) = best else {
        return LegacyResults {
            versions,
            suites: None,
            order: None,
        };
    };
    let accepted = legacy::enumerate_suites(link, best).await;
    let order = match &accepted {
        Ok(accepted) => Some(legacy::server_order(link, best, accepted).await),
        Err(_) => None,
    };
    LegacyResults {
        versions,
        suites: Some((best, accepted)),
        order,
    }
}

fn version_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}
