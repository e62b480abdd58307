//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) server sessions on ports 143 (STARTTLS)
//! and 993 (implicit TLS).
//!
//! The parts, outside in: [`driver`] runs the connection (lines, literals, STARTTLS,
//! IDLE, timeouts, shutdown); [`framer`] gathers a command's lines and literals;
//! [`parser`] turns them into a [`command::Command`]; [`session`] is the state machine
//! that answers it, keeping the selected mailbox's view in [`selected`].

pub mod command;
mod driver;
pub mod framer;
pub mod limits;
pub mod mailbox_name;
#[cfg(test)]
mod memory_store;
pub mod message;
pub mod parser;
pub mod registry;
pub mod response;
pub mod section;
pub mod selected;
pub mod session;
pub mod uid_map;

use std::sync::Arc;

use sealpost_store::{Login, Store};
use sealpost_tls::{MailStream, TlsAcceptor};
use tokio::sync::watch;

pub use limits::ImapLimits;
pub use parser::{ParseError, parse_command};

pub struct ImapService {
    pub hostname: String,
    pub store: Arc<dyn Store>,
    pub login: Arc<Login>,
    /// Used for STARTTLS on port 143.
    pub tls: TlsAcceptor,
    pub limits: ImapLimits,
    /// Open sessions per account, shared by every connection of this service (and of
    /// the services given the same registry).
    sessions: Arc<registry::SessionRegistry>,
}

impl ImapService {
    pub fn new(
        hostname: String,
        store: Arc<dyn Store>,
        login: Arc<Login>,
        tls: TlsAcceptor,
    ) -> Self {
        Self {
            hostname,
            store,
            login,
            tls,
            limits: ImapLimits::default(),
            sessions: Arc::default(),
        }
    }

    /// Counts this service's sessions in `sessions`; give the services of 143 and 993
    /// the same registry so the per-account limit covers both ports together.
    pub fn with_session_registry(mut self, sessions: Arc<registry::SessionRegistry>) -> Self {
        self.sessions = sessions;
        self
    }

    /// Runs one session to its end; `stream` is already TLS on port 993.
    pub async fn serve(&self, stream: MailStream, shutdown: watch::Receiver<bool>) {
        driver::run(self, stream, shutdown).await;
    }

    fn env(&self) -> session::Env {
        session::Env {
            store: Arc::clone(&self.store),
            login: Arc::clone(&self.login),
            limits: self.limits.clone(),
            registry: Arc::clone(&self.sessions),
        }
    }
}
