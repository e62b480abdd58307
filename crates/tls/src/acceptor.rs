//! A listener's TLS front door: one rustls `ServerConfig` (ALPN and ticket policy are per
//! listener) plus the client-certificate check.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tracing::{debug, info};

use crate::client_cert::ClientCertCheck;
use crate::error::TlsError;
use crate::report::TlsInfo;
use crate::stream::{MailStream, Transport};

/// A peer that does not finish its handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    client_certs: Option<Arc<ClientCertCheck>>,
    listener: Arc<str>,
}

impl TlsAcceptor {
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        client_certs: Option<Arc<ClientCertCheck>>,
        listener: &str,
    ) -> Self {
        Self {
            inner: tokio_rustls::TlsAcceptor::from(config),
            client_certs,
            listener: listener.into(),
        }
    }

    /// The rustls configuration this acceptor hands out (tests and benchmarks use it).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.inner.config().clone()
    }

    /// Runs the server handshake on a plaintext stream with nothing buffered (implicit
    /// TLS, or STARTTLS via [`crate::starttls`]) and logs the session's one TLS line.
    pub async fn accept(&self, stream: MailStream) -> Result<MailStream, TlsError> {
        let peer = stream.peer;
        let tcp = match stream.transport {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(_) | Transport::TlsClient(_) => return Err(TlsError::AlreadyTls),
        };
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.inner.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                info!(%peer, listener = %self.listener, error = %e, "TLS handshake failed");
                return Err(TlsError::Handshake(e));
            }
            Err(_) => {
                info!(%peer, listener = %self.listener, "TLS handshake timed out");
                return Err(TlsError::HandshakeTimeout);
            }
        };
        let info = self.describe(tls.get_ref().1);
        // The session logs its one line with this report when it ends.
        debug!(%peer, listener = %self.listener, "{info}");
        Ok(MailStream::new(
            Transport::Tls(Box::new(tls)),
            peer,
            Some(info),
        ))
    }

    fn describe(&self, conn: &rustls::ServerConnection) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_string(),
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let group = conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()))
            .unwrap_or_default();
        let client_cert = match (conn.peer_certificates(), &self.client_certs) {
            (Some(chain), Some(check)) if !chain.is_empty() => Some(check.examine(chain)),
            _ => None,
        };
        TlsInfo {
            version,
            cipher,
            group,
            sni: conn.server_name().map(str::to_owned),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            client_cert,
        }
    }
}
