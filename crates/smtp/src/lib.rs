//! SMTP server sessions for the MX port (25) and submission (587 STARTTLS, 465 implicit).
//!
//! The protocol lives in a state machine without I/O (`session.rs`, with its parts:
//! `commands.rs`, `auth.rs`, `envelope.rs`, `data.rs`, `bdat.rs`, `body.rs`,
//! `received.rs`, `submission_headers.rs`, `reply.rs`); `driver.rs` is the async loop that
//! connects it to a [`MailStream`], the store and the login checker.
//!
//! [`client`] is the other direction: the SMTP client outbound delivery talks through.

mod auth;
mod authentication;
mod bdat;
mod body;
pub mod client;
mod commands;
mod data;
mod dmarc_recorder;
mod driver;
mod envelope;
mod received;
mod reply;
mod session;
mod submission_headers;
#[cfg(test)]
mod testing;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use sealpost_mailauth::{DkimSigner, InboundVerifier};
use sealpost_store::{Login, Store};
use sealpost_tls::{MailStream, TlsAcceptor};
use tokio::sync::watch;

pub use crate::dmarc_recorder::DmarcRecorder;
use crate::driver::Env;
use crate::session::SessionConfig;

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
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4: 512); longer lines get
    /// `500 5.5.2` and the session goes on.
    pub max_command_line: usize,
    /// Longest DATA line, CRLF included (RFC 5321 §4.5.3.1.6: 1000); a message with a
    /// longer line is refused with `500 5.5.6`.
    pub max_text_line: usize,
    /// Largest message accepted, in octets, as received (before our trace headers);
    /// advertised as SIZE.
    pub max_message_size: usize,
    /// Recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// 5xx replies after which the session says `421 4.7.0` and ends.
    pub max_errors: u32,
    /// Silence after which the session says `421 4.4.2` and ends.
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
    /// Port 25: SPF, DKIM and DMARC verification before a message is stored, with the
    /// verdict in an Authentication-Results header and DMARC policy applied. `None`:
    /// messages are stored unverified. Not used on the submission ports.
    pub verifier: Option<Arc<InboundVerifier>>,
    /// Submission ports: DKIM signing of messages whose sender's domain has keys. Not
    /// used on port 25.
    pub signer: Option<Arc<DkimSigner>>,
    /// Port 25: where DMARC evaluations go for the aggregate reports; `None` keeps none.
    pub dmarc_recorder: Option<DmarcRecorder>,
}

impl SmtpService {
    /// Runs one session to its end. `stream` is already TLS on port 465. When `shutdown`
    /// turns true, an idle session says 421 and ends; a transaction under way finishes first.
    pub async fn serve(&self, stream: MailStream, shutdown: watch::Receiver<bool>) {
        let mx = self.kind == ListenerKind::Mx;
        let verifier = self.verifier.as_deref().filter(|_| mx);
        let signer = self.signer.as_deref().filter(|_| !mx);
        let config = SessionConfig {
            kind: self.kind,
            hostname: self.hostname.clone(),
            limits: self.limits.clone(),
            starttls: true,
            verify: verifier.is_some(),
            sign: signer.is_some(),
        };
        let env = Env {
            store: &self.store,
            login: &self.login,
            verifier,
            signer,
            dmarc_recorder: self.dmarc_recorder.as_ref().filter(|_| mx),
        };
        driver::run(config, env, stream, Some(&self.tls), shutdown).await;
    }
}
