//! The client side of the STARTTLS upgrade, for sealpost's own outgoing connections.
//!
//! The mirror image of `starttls.rs`: once the server has answered STARTTLS with its
//! "go ahead", anything else it sent in plaintext could have been injected by anyone on
//! the path and would otherwise be read as the first replies of the TLS session
//! (response injection, the client half of CVE-2011-0411). Such bytes are thrown away.

use std::sync::Arc;

use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;
use tracing::warn;

use crate::error::TlsError;
use crate::report::TlsInfo;
use crate::stream::{MailStream, Transport};

/// Runs the client handshake on a plaintext stream whose server has just agreed to
/// STARTTLS. `server_name` is sent as SNI and is what `config`'s verifier checks the
/// certificate against. The caller bounds the time this may take.
pub async fn starttls_client(
    mut stream: MailStream,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> Result<MailStream, TlsError> {
    let pending = stream.buffered().len();
    if pending > 0 {
        warn!(
            peer = %stream.peer(),
            bytes = pending,
            "discarding plaintext the server sent ahead of the TLS handshake (response injection)"
        );
        stream.consume(pending);
    }
    let peer = stream.peer;
    let tcp = match stream.transport {
        Transport::Plain(tcp) => tcp,
        Transport::Tls(_) | Transport::TlsClient(_) => return Err(TlsError::AlreadyTls),
    };
    let sni = match &server_name {
        ServerName::DnsName(name) => Some(name.as_ref().to_string()),
        _ => None,
    };
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(TlsError::Handshake)?;
    let info = describe(tls.get_ref().1, sni);
    Ok(MailStream::new(
        Transport::TlsClient(Box::new(tls)),
        peer,
        Some(info),
    ))
}

fn describe(conn: &ClientConnection, sni: Option<String>) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    TlsInfo {
        version,
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        group: conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()))
            .unwrap_or_default(),
        sni,
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        client_cert: None,
    }
}
