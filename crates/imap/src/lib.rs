//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) server sessions on ports 143 (STARTTLS)
//! and 993 (implicit TLS).

pub mod message;
pub mod section;

use std::sync::Arc;

use sealpost_store::{Login, Store};
use sealpost_tls::{MailStream, TlsAcceptor};
use tokio::sync::watch;

pub struct ImapService {
    pub hostname: String,
    pub store: Arc<dyn Store>,
    pub login: Arc<Login>,
    /// Used for STARTTLS on port 143.
    pub tls: TlsAcceptor,
}

impl ImapService {
    /// Runs one session to its end; `stream` is already TLS on port 993.
    pub async fn serve(&self, mut stream: MailStream, _shutdown: watch::Receiver<bool>) {
        let _ = stream.write_all(b"* BYE not implemented\r\n").await;
    }
}
