//! POP3 server sessions (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034) on
//! ports 110 (STLS) and 995 (implicit TLS).

use std::sync::Arc;

use sealpost_store::{Login, Store};
use sealpost_tls::{MailStream, TlsAcceptor};
use tokio::sync::watch;

pub struct Pop3Service {
    pub hostname: String,
    pub store: Arc<dyn Store>,
    pub login: Arc<Login>,
    /// Used for STLS on port 110.
    pub tls: TlsAcceptor,
}

impl Pop3Service {
    /// Runs one session to its end; `stream` is already TLS on port 995.
    pub async fn serve(&self, mut stream: MailStream, _shutdown: watch::Receiver<bool>) {
        let _ = stream.write_all(b"-ERR not implemented\r\n").await;
    }
}
