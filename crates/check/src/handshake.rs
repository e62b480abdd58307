//! Full TLS 1.3 and 1.2 handshakes with rustls: what a modern client negotiates, the
//! certificate chain and stapled OCSP response, each key-exchange group and TLS 1.3 suite
//! on its own, ALPN handling (ALPACA), and whether session tickets are issued.
//!
//! The client is deliberately permissive: every suite and group the aws-lc-rs provider
//! has, and a certificate verifier that records what it is shown and accepts it. A probe
//! must see a misconfigured server's whole answer; whether the certificate deserves trust
//! is judged afterwards by `certificate` with webpki, and no probe connection carries
//! anything that matters.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::aws_lc_rs::{self, cipher_suite, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{
    AlertDescription, ClientConfig, DigitallySignedStruct, SignatureScheme, SupportedCipherSuite,
    SupportedProtocolVersion,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::ProbeError;
use crate::dialogue::{Capabilities, Conversation};
use crate::link::Link;

/// Key-exchange groups probed one at a time, hybrid post-quantum first.
pub(crate) fn probe_groups() -> Vec<&'static dyn SupportedKxGroup> {
    vec![
        kx_group::X25519MLKEM768,
        kx_group::SECP256R1MLKEM768,
        kx_group::MLKEM768,
        kx_group::X25519,
        kx_group::SECP256R1,
        kx_group::SECP384R1,
    ]
}

/// TLS 1.3 suites probed one at a time.
pub(crate) fn tls13_suites() -> Vec<SupportedCipherSuite> {
    vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ]
}

/// What one rustls handshake settled.
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    pub version: rustls::ProtocolVersion,
    pub suite: rustls::CipherSuite,
    pub group: Option<rustls::NamedGroup>,
    pub alpn: Option<Vec<u8>>,
    pub chain: Vec<CertificateDer<'static>>,
    pub ocsp_stapled: bool,
}

/// The main probe's extra: what the session looked like once encrypted.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub handshake: Handshake,
    /// Bytes sent after the STARTTLS reply, before the handshake (response injection).
    pub plaintext_after_starttls: usize,
    /// TLS 1.3 NewSessionTicket messages received.
    pub tls13_tickets: u32,
    /// Capabilities inside TLS (for SMTP, the EHLO reply).
    pub capabilities: Option<Capabilities>,
}

/// What the client offers.
pub(crate) struct Offer {
    pub suites: Vec<SupportedCipherSuite>,
    pub groups: Vec<&'static dyn SupportedKxGroup>,
    pub versions: &'static [&'static SupportedProtocolVersion],
    pub alpn: Vec<Vec<u8>>,
}

impl Offer {
    /// Everything rustls can speak.
    pub fn everything() -> Offer {
        Offer {
            suites: aws_lc_rs::ALL_CIPHER_SUITES.to_vec(),
            groups: aws_lc_rs::ALL_KX_GROUPS.to_vec(),
            versions: rustls::ALL_VERSIONS,
            alpn: Vec::new(),
        }
    }
}

/// Records the chain and OCSP response and accepts: see the module comment.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<(Vec<CertificateDer<'static>>, bool)>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((chain, !ocsp_response.is_empty()));
        Ok(ServerCertVerified::assertion())
    }

    /// Signatures are checked for real: a handshake that completes proves the server holds
    /// the key of the certificate it showed.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects (with STARTTLS where needed) and completes one handshake; also returns how
/// many plaintext bytes followed the STARTTLS reply (see `Link::ready_for_tls`).
async fn connect(
    link: &Link,
    offer: Offer,
    watch_after_starttls: bool,
) -> Result<(TlsStream<TcpStream>, Handshake, usize), ProbeError> {
    let (tcp, leftover) = link.ready_for_tls(watch_after_starttls).await?;
    let (stream, handshake) = handshake_on(link, tcp, offer).await?;
    Ok((stream, handshake, leftover.len()))
}

/// Completes one handshake on a connection that is ready for the ClientHello.
pub(crate) async fn handshake_on(
    link: &Link,
    tcp: TcpStream,
    offer: Offer,
) -> Result<(TlsStream<TcpStream>, Handshake), ProbeError> {
    let provider = Arc::new(CryptoProvider {
        cipher_suites: offer.suites,
        kx_groups: offer.groups,
        ..aws_lc_rs::default_provider()
    });
    let verifier = Arc::new(RecordingVerifier {
        provider: provider.clone(),
        seen: Mutex::new(None),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(offer.versions)
        .map_err(|e| ProbeError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = offer.alpn;
    let server_name = ServerName::try_from(link.endpoint.host.clone())
        .map_err(|e| ProbeError::Tls(format!("{}: {e}", link.endpoint.host)))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(tls_error)?;
    let (_, conn) = stream.get_ref();
    let (chain, ocsp_stapled) = verifier
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_default();
    let handshake = Handshake {
        version: conn
            .protocol_version()
            .ok_or_else(|| ProbeError::Tls("no version after the handshake".into()))?,
        suite: conn
            .negotiated_cipher_suite()
            .map(|s| s.suite())
            .ok_or_else(|| ProbeError::Tls("no suite after the handshake".into()))?,
        group: conn.negotiated_key_exchange_group().map(|g| g.name()),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        chain,
        ocsp_stapled,
    };
    Ok((stream, handshake))
}

/// The main probe: a full handshake as a modern client, then the protocol's capability
/// command inside TLS (which also lets TLS 1.3 tickets arrive), then QUIT/LOGOUT.
pub(crate) async fn session(link: &Link) -> Result<Session, ProbeError> {
    let (stream, handshake, plaintext_after_starttls) =
        connect(link, Offer::everything(), true).await?;
    let mut conversation = Conversation::new(stream, link.endpoint.service.protocol());
    if link.endpoint.service.implicit_tls() {
        conversation.greeting().await?;
    }
    let capabilities = conversation.capabilities().await.ok();
    let tls13_tickets = conversation.stream().get_ref().1.tls13_tickets_received();
    conversation.quit().await;
    Ok(Session {
        handshake,
        plaintext_after_starttls,
        tls13_tickets,
        capabilities,
    })
}

/// A handshake offering only `offer`; `Ok(None)` when the server refuses it.
pub(crate) async fn try_offer(link: &Link, offer: Offer) -> Result<Option<Handshake>, ProbeError> {
    match connect(link, offer, false).await {
        Ok((_, handshake, _)) => Ok(Some(handshake)),
        Err(ProbeError::TlsRefused(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How the server treats an ALPN offer naming only a foreign protocol (ALPACA,
/// alpaca-attack.com: a cross-protocol redirect works only if the server goes along).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlpnHandling {
    /// no_application_protocol alert: the strict answer (RFC 7301 §3.2).
    Refused,
    /// The handshake completes without ALPN.
    Ignored,
    /// The server selected the foreign protocol.
    Accepted,
}

pub(crate) async fn foreign_alpn(link: &Link) -> Result<AlpnHandling, ProbeError> {
    let offer = Offer {
        alpn: vec![b"http/1.1".to_vec()],
        ..Offer::everything()
    };
    match connect(link, offer, false).await {
        Ok((_, handshake, _)) if handshake.alpn.is_some() => Ok(AlpnHandling::Accepted),
        Ok(_) => Ok(AlpnHandling::Ignored),
        Err(ProbeError::TlsRefused(why)) if why.contains("NoApplicationProtocol") => {
            Ok(AlpnHandling::Refused)
        }
        Err(e) => Err(e),
    }
}

/// rustls errors split into "the server said no" (an alert, a refused parameter) and
/// everything else.
fn tls_error(e: std::io::Error) -> ProbeError {
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                ProbeError::TlsRefused("the server closed the connection".into())
            }
            _ => ProbeError::Io(e),
        };
    };
    match inner {
        rustls::Error::AlertReceived(alert) => ProbeError::TlsRefused(match alert {
            AlertDescription::NoApplicationProtocol => "NoApplicationProtocol".to_string(),
            other => format!("alert {other:?}"),
        }),
        rustls::Error::PeerIncompatible(why) => ProbeError::TlsRefused(format!("{why:?}")),
        rustls::Error::PeerMisbehaved(why) => ProbeError::TlsRefused(format!("{why:?}")),
        other => ProbeError::Tls(other.to_string()),
    }
}

/// Versions for a TLS 1.3-only offer.
pub(crate) static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
