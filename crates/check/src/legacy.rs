//! Probes with hand-built ClientHellos: which protocol versions up to TLS 1.2 a server
//! accepts, which cipher suites, and in whose order it picks them.

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ProbeError;
use crate::hello::{ClientHello, WireVersion};
use crate::link::Link;
use crate::server_flight::{HelloAnswer, Parse, ServerFlight, parse_at_end, parse_flight};
use crate::suites::{Family, all_suites, family_suites, ssl3_suites};

/// Sends one ClientHello and reads the answer.
pub(crate) async fn offer(
    link: &Link,
    version: WireVersion,
    suites: &[u16],
    want_certificates: bool,
) -> Result<HelloAnswer, ProbeError> {
    let (mut stream, _) = link.ready_for_tls(false).await?;
    let host = link.endpoint.host.as_str();
    let server_name = host.parse::<std::net::IpAddr>().is_err().then_some(host);
    let record = ClientHello {
        version,
        cipher_suites: suites,
        server_name,
        random: random_bytes(),
    }
    .to_record();
    stream.write_all(&record).await?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A reset is how many stacks say no to an unknown version.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(parse_at_end(&received));
        }
        received.extend_from_slice(&chunk[..n]);
        match parse_flight(&received, want_certificates) {
            Parse::Incomplete => {}
            Parse::Done(answer) => return Ok(answer),
            Parse::NotTls(why) => return Err(ProbeError::Protocol(why)),
        }
    }
}

fn random_bytes() -> [u8; 32] {
    let mut random = [0u8; 32];
    // The provider's RNG cannot fail in practice; a fixed random would still probe fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut random);
    random
}

/// Whether the server completes the hello for `version` (and the flight it sent).
#[derive(Debug, Clone)]
pub(crate) struct VersionAnswer {
    pub accepted: bool,
    /// What the refusal looked like, or the suite chosen.
    pub detail: String,
    pub flight: Option<ServerFlight>,
}

pub(crate) async fn probe_version(
    link: &Link,
    version: WireVersion,
) -> Result<VersionAnswer, ProbeError> {
    let suites = if version == WireVersion::SSL3 {
        ssl3_suites()
    } else {
        all_suites()
    };
    let answer = link
        .run(version.name(), offer(link, version, &suites, true))
        .await?;
    Ok(match answer {
        HelloAnswer::Accepted(flight) if flight.version == version => VersionAnswer {
            accepted: true,
            detail: crate::suites::suite_name(flight.cipher_suite),
            flight: Some(flight),
        },
        HelloAnswer::Accepted(flight) => VersionAnswer {
            accepted: false,
            detail: format!("answered with {}", flight.version.name()),
            flight: None,
        },
        HelloAnswer::Alert(code) => VersionAnswer {
            accepted: false,
            detail: format!("alert {}", alert_name(code)),
            flight: None,
        },
        HelloAnswer::Closed => VersionAnswer {
            accepted: false,
            detail: "connection closed".into(),
            flight: None,
        },
    })
}

/// The suites of every family the server accepts at `version`, families in parallel.
pub(crate) async fn enumerate_suites(
    link: &Link,
    version: WireVersion,
) -> Result<Vec<u16>, ProbeError> {
    let families = join_all(
        Family::ALL
            .into_iter()
            .map(|family| enumerate_family(link, version, family)),
    )
    .await;
    let mut accepted = Vec::new();
    for family in families {
        accepted.extend(family?);
    }
    Ok(accepted)
}

/// Offers the family, removes what the server picked, and repeats until it refuses.
async fn enumerate_family(
    link: &Link,
    version: WireVersion,
    family: Family,
) -> Result<Vec<u16>, ProbeError> {
    let mut remaining = family_suites(family);
    if version == WireVersion::SSL3 {
        remaining.retain(|id| *id < 0x0100);
    }
    let mut accepted = Vec::new();
    while !remaining.is_empty() {
        let answer = link
            .run("cipher suites", offer(link, version, &remaining, false))
            .await?;
        match answer {
            HelloAnswer::Accepted(flight)
                if flight.version == version && remaining.contains(&flight.cipher_suite) =>
            {
                accepted.push(flight.cipher_suite);
                remaining.retain(|id| *id != flight.cipher_suite);
            }
            _ => break,
        }
    }
    Ok(accepted)
}

/// Who decides the suite: `Some(order)` when the server picks by its own preference
/// (the full order), `None` when it follows the client's.
pub(crate) async fn server_order(
    link: &Link,
    version: WireVersion,
    accepted: &[u16],
) -> Result<Option<Vec<u16>>, ProbeError> {
    if accepted.len() < 2 {
        return Ok(Some(accepted.to_vec()));
    }
    let reversed: Vec<u16> = accepted.iter().rev().copied().collect();
    let (forward, backward) = tokio::join!(
        pick(link, version, accepted),
        pick(link, version, &reversed)
    );
    let first = forward?;
    if first != backward? || first.is_none() {
        return Ok(None);
    }
    let mut order = Vec::with_capacity(accepted.len());
    let mut remaining: Vec<u16> = accepted.to_vec();
    let mut next = first;
    while let Some(chosen) = next {
        order.push(chosen);
        remaining.retain(|id| *id != chosen);
        next = match remaining.len() {
            0 => None,
            1 => Some(remaining[0]),
            _ => pick(link, version, &remaining).await?,
        };
    }
    Ok(Some(order))
}

async fn pick(
    link: &Link,
    version: WireVersion,
    suites: &[u16],
) -> Result<Option<u16>, ProbeError> {
    let answer = link
        .run("server preference", offer(link, version, suites, false))
        .await?;
    Ok(match answer {
        HelloAnswer::Accepted(flight) if suites.contains(&flight.cipher_suite) => {
            Some(flight.cipher_suite)
        }
        _ => None,
    })
}

/// RFC 8446 §6 alert names, for the refusals people will read.
pub(crate) fn alert_name(code: u8) -> String {
    match code {
        10 => "unexpected_message".into(),
        20 => "bad_record_mac".into(),
        40 => "handshake_failure".into(),
        42 => "bad_certificate".into(),
        47 => "illegal_parameter".into(),
        50 => "decode_error".into(),
        70 => "protocol_version".into(),
        71 => "insufficient_security".into(),
        80 => "internal_error".into(),
        86 => "inappropriate_fallback".into(),
        109 => "missing_extension".into(),
        112 => "unrecognized_name".into(),
        120 => "no_application_protocol".into(),
        other => format!("{other}"),
    }
}
