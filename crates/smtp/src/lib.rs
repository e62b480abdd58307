//! SMTP server sessions for the MX port (25) and submission (587 STARTTLS, 465 implicit).

use std::sync::Arc;
use std::time::Duration;

use sealpost_store::{Login, Store};
use sealpost_tls::{MailStream, TlsAcceptor};
use tokio::sync::watch;

/// Which port a session serves; it decides what is offered and required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Port 25: STARTTLS offered, no AUTH, mail for local accounts only.
    Mx,
    /// Port 587: STARTTLS required before AUTH.
    Submission,
    /// Port 465: implicit TLS.
    Submissions,
}

#[derive(Debug, Clone)]
pub struct SmtpLimits {
    pub max_command_line: usize,
    pub max_text_line: usize,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub idle_timeout: Duration,
}

impl Default for SmtpLimits {
    fn default() -> Self {
        Self {
            max_command_line: 512,
            max_text_line: 1000,
            max_message_size: 32 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

pub struct SmtpService {
    pub kind: ListenerKind,
    pub hostname: String,
    pub store: Arc<dyn Store>,
    pub login: Arc<Login>,
    pub tls: TlsAcceptor,
    pub limits: SmtpLimits,
}

impl SmtpService {
    /// Runs one session to its end. `stream` is already TLS on port 465. When `shutdown`
    /// turns true, an idle session says 421 and ends; a transaction under way finishes first.
    pub async fn serve(&self, mut stream: MailStream, _shutdown: watch::Receiver<bool>) {
        let _ = stream.write_all(b"421 4.3.0 not implemented\r\n").await;
    }
}
